"""A stateful, validating emulation of the Cekura API for tests and `cekura-gitops demo`.

Package code (not test code) so the demo can run it, but it never imports the client
(`cekura_gitops.cekura`) or httpx: it must test the client honestly, over real HTTP.
"""

from __future__ import annotations

from cekura_gitops.sandbox.faults import Fault, FaultSet
from cekura_gitops.sandbox.optimiser import OptimiserOutcome
from cekura_gitops.sandbox.server import RecordedRequest, Sandbox
from cekura_gitops.sandbox.state import SandboxState

__all__ = ["Fault", "FaultSet", "OptimiserOutcome", "RecordedRequest", "Sandbox", "SandboxState"]

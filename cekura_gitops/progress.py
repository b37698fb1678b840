"""One poll of Cekura's optimiser: its body -> Progress (pending, succeeded or failed).

Parser rules (reference/cekura-api.md §3): read `output`, fall back to the top level;
success/completed is done, error/failed/cancelled is failure, anything else
(undocumented) is pending. The proposal inside a finished run is proposal.py's.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cekura_gitops.proposal import Proposal, parse_proposal
from cekura_gitops.replies import DONE, FAILED
from cekura_gitops.scores import Score


class ProgressState(enum.Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Progress:
    state: ProgressState
    status: str
    proposal: Proposal | None
    error: str | None


def parse_progress(body: Mapping[str, Any]) -> Progress:
    """One poll's body -> Progress (never raises on odd shapes: odd means pending/failed)."""
    status = str(body.get("status") or "").lower()
    output = body.get("output")
    data: Mapping[str, Any] = output if isinstance(output, Mapping) else body
    has_result = "improved_metric_description" in data and (
        bool(data.get("improved_metric_description")) or Score.parse(data.get("new_score")) is not None
    )
    if status in FAILED:
        error = body.get("error") or data.get("error") or body.get("message") or status
        return Progress(ProgressState.FAILED, status, None, str(error)[:500])
    if status in DONE or (not status and has_result):
        if not has_result and not isinstance(data.get("meta_harness"), Mapping):
            return Progress(ProgressState.FAILED, status, None, "the optimiser finished without a proposal")
        return Progress(ProgressState.SUCCEEDED, status or "completed", parse_proposal(data), None)
    return Progress(ProgressState.PENDING, status or "pending", None, None)

"""The console script: `cekura-gitops --version` answers before any import; the rest goes to cli.

Importing the CLI (click, the error boundary) costs more than the interpreter's own start;
a version check (scripts, CI logs, `doctor` users) needs none of it.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

from cekura_gitops import __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the process is expected to exit with the code returned."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        sys.stdout.write(f"cekura-gitops, version {__version__}\n")  # click's version_option format
        return 0
    # httpx imports its own command-line client (rich, pygments: ~50 ms) whenever those
    # happen to be installed; we never call it. A None entry makes that import fail the
    # way it does without them, and httpx then defines a stub instead.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from cekura_gitops.cli import main as cli_main

    code = cli_main(argv)
    # The interpreter's exit collects every object a command left (all of httpx's and the
    # loaded files'): 25-50 ms after the work is done. Moving them out of the collector's
    # reach skips that walk; memory goes back to the OS at exit either way, and files,
    # pipes and connections are closed by the commands themselves, not by the collector.
    gc.freeze()
    return code


__all__ = ["main"]

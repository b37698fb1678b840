"""The console script: `cekura-gitops --version` answers before any import; the rest goes to cli.

Importing the CLI (click, the error boundary) costs more than the interpreter's own start;
a version check (scripts, CI logs, `doctor` users) needs none of it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cekura_gitops import __version__


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        sys.stdout.write(f"cekura-gitops, version {__version__}\n")  # click's version_option format
        return 0
    from cekura_gitops.cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]

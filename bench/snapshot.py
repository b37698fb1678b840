"""--code REV: measure the package as of one commit, extracted once into a temporary folder.

The extraction happens before the benchmark imports the package, and that folder then
comes first on sys.path (the editable install's finder removed), so everything measured
in this process (the poll schedule's simulation, the sandbox) and in the CLI children is
REV's code, whatever happens to the checkout during a long run.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def rev_in(argv: Sequence[str]) -> str | None:
    """The REV of `--code REV` / `--code=REV` in argv, if any."""
    for i, arg in enumerate(argv):
        if arg == "--code" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--code="):
            return arg.split("=", 1)[1]
    return None


def extract(rev: str) -> Path:
    """The package as of rev in a new temporary folder; SystemExit if rev is not a commit."""
    dest = Path(tempfile.mkdtemp(prefix="cekura-gitops-code-"))
    refused = unpack(rev, dest)
    if refused is not None:
        raise SystemExit(f"--code {rev}: {refused}")
    return dest


def unpack(rev: str, dest: Path) -> str | None:
    """Put the package as of rev, its bytecode compiled, into dest; git's complaint if rev
    is not a commit (dest is then left empty)."""
    archive = subprocess.run(["git", "archive", rev, "cekura_gitops"], cwd=REPO, capture_output=True)
    if archive.returncode != 0:
        return archive.stderr.decode(errors="replace").strip()
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    compiled(dest / "cekura_gitops")
    return None


def compiled(package: Path) -> Path:
    """Write the package's bytecode, as `pip install` does for an installed package.

    Without it every CLI child would compile the package from source again (an editable
    install, or PYTHONDONTWRITEBYTECODE, writes no .pyc): a fixed 0.1 s or so that no
    installed copy pays, added to every figure. Both sides of a comparison get it.
    """
    import compileall

    compileall.compile_dir(package, quiet=1)
    return package


def use(code: Path) -> None:
    """Import cekura_gitops from code in this process from now on."""
    if "cekura_gitops" in sys.modules:
        raise RuntimeError("--code must take effect before the package is imported")
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
    sys.path.insert(0, str(code))


def commit(rev: str) -> str:
    done = subprocess.run(["git", "rev-parse", "--short=12", rev], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or rev

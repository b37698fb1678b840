"""The `cekura-gitops-validate` hook, run by the real pre-commit tool with this repository as
the hook repository (pre-commit clones it at a commit and installs it like any Python hook;
the first run installs the package and its dependencies from PyPI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git

ROOT = Path(__file__).resolve().parents[1]
GREETING = "caller_greeted_by_name_1562.yaml"


def _pre_commit() -> str:
    local = Path(sys.executable).parent / "pre-commit"
    found = str(local) if local.exists() else shutil.which("pre-commit")
    if found is None:
        pytest.skip("pre-commit is not installed (pip install '.[test]' provides it)")
    return found


def _this_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("this copy of the project is not a git repository, so it cannot be a hook repo")
    return done.stdout.strip()


def test_the_hook_passes_a_valid_metric_and_fails_an_invalid_one(tmp_path: Path) -> None:
    repo = tmp_path / "metrics-repo"
    git(tmp_path, "init", "-q", "--initial-branch=main", str(repo))
    (repo / "metrics").mkdir()
    shutil.copy(ROOT / "metrics" / GREETING, repo / "metrics" / GREETING)
    hook = "      - id: cekura-gitops-validate\n"
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {ROOT}\n    rev: {_this_commit()}\n    hooks:\n{hook}"
    )
    git(repo, "add", "-A")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_pre_commit(), "run", "--color", "never"],  # the staged files, as at commit time
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    ok = run()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "cekura-gitops validate" in ok.stdout and "Passed" in ok.stdout

    path = repo / "metrics" / GREETING
    text = path.read_text()
    line = 1 + text[: text.index("eval_type: binary")].count("\n")
    path.write_text(text.replace("eval_type: binary", "eval_type: bogus"))
    git(repo, "add", "-A")
    bad = run()
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    assert f"metrics/{GREETING}:{line}:" in bad.stdout

"""A bot branch changed on origin while sync's optimisation is in flight.

Sync learns every bot branch's tip once, when it starts; the optimiser then runs for
minutes. Whatever happens to the branch meanwhile, the push that follows is leased on the
tip sync saw: a deleted branch is recreated (the proposal is never lost), a branch a human
pushed to is never overwritten.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cekura_gitops.sandbox import Sandbox
from tests._hardening import GREETING, IDS, cekura_env, fresh_repo, state, template_origin  # noqa: F401
from tests.conftest import HUMAN, Repo, git

BRANCH = f"refs/heads/cekura-gitops/optimise/{GREETING}"
FILE = f"metrics/{GREETING}.yaml"
START = r"/process_feedbacks/$"


def _sync(repo: Repo, sandbox: Sandbox, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cekura_gitops", "--json", "sync", "--no-pr", "--metric", GREETING, *args],
        cwd=repo.work,
        env={**os.environ, **cekura_env(sandbox)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _during_the_run(
    repo: Repo, sandbox: Sandbox, meddle: Callable[[], None], *args: str
) -> tuple[int, dict[str, Any]]:
    """Run sync; once its optimisation has started, meddle with origin, then let it finish."""
    sandbox.state.set_optimiser_seconds(IDS[GREETING], 600)
    starts = sandbox.count("POST", START)
    proc = _sync(repo, sandbox, *args)
    deadline = time.monotonic() + 120
    while sandbox.count("POST", START) == starts:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the optimisation never started"
        time.sleep(0.05)
    meddle()
    sandbox.state.finish_optimisations()
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    return proc.returncode, json.loads(out)


@pytest.fixture
def repo(template_origin: Path, tmp_path: Path) -> Repo:  # noqa: F811
    return fresh_repo(template_origin, tmp_path / "r")


def _first_proposal(repo: Repo) -> str:
    with Sandbox() as sandbox:
        code, doc = _during_the_run(repo, sandbox, lambda: None)
    assert code == 0 and doc["metrics"][0]["status"] == "proposed"
    tip = repo.origin_ref(BRANCH)
    assert tip is not None
    return tip


@pytest.mark.parametrize("new_feedback", [False, True], ids=["same-proposal", "new-proposal"])
def test_a_branch_deleted_during_the_run_is_recreated(repo: Repo, new_feedback: bool) -> None:
    _first_proposal(repo)
    with Sandbox() as sandbox:
        if new_feedback:
            sandbox.state.add_review(
                IDS[GREETING], True, False, feedback="A nickname the caller offered counts."
            )
        # Without new feedback the optimiser proposes what the branch already held.
        args = () if new_feedback else ("--force",)
        code, doc = _during_the_run(repo, sandbox, lambda: repo.origin_git("update-ref", "-d", BRANCH), *args)
    [m] = doc["metrics"]
    assert code == 0, doc
    assert m["status"] == "proposed"  # a new branch: not "updated", and never lost
    tip = repo.origin_ref(BRANCH)
    assert tip is not None, "the proposal was lost with the deleted branch"
    assert "Guidance from reviewed calls:" in (repo.origin_file(BRANCH, FILE) or "")
    assert ("nickname" in (repo.origin_file(BRANCH, FILE) or "")) is new_feedback
    assert git(repo.origin, "rev-parse", f"{BRANCH}^") == repo.origin_ref("refs/heads/main")
    assert state(repo.origin)["last"][IDS[GREETING]]["outcome"] == "proposed"


def test_a_branch_a_human_pushed_to_during_the_run_is_left_alone(repo: Repo, tmp_path: Path) -> None:
    _first_proposal(repo)
    human = tmp_path / "human"

    def push_a_fix() -> None:
        git(
            tmp_path,
            "clone",
            "-q",
            "--branch",
            BRANCH.removeprefix("refs/heads/"),
            str(repo.origin),
            str(human),
        )
        (human / FILE).write_text((human / FILE).read_text() + "# reviewed by Ada\n")
        git(human, "commit", "-qam", "tweak the proposal", env=HUMAN)
        git(human, "push", "-q", "origin", f"HEAD:{BRANCH}")

    with Sandbox() as sandbox:
        sandbox.state.add_review(IDS[GREETING], True, False, feedback="A nickname the caller offered counts.")
        code, doc = _during_the_run(repo, sandbox, push_a_fix)
    [m] = doc["metrics"]
    assert code == 0, doc
    assert m["status"] == "skipped-edited"
    assert repo.origin_ref(BRANCH) == git(human, "rev-parse", "HEAD")
    assert (repo.origin_file(BRANCH, FILE) or "").endswith("# reviewed by Ada\n")

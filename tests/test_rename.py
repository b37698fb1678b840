"""A metric is its id: renaming its slug (in Cekura and in git) changes nothing sync owes it.

Claims, run records, feedback fingerprints and rejections belong to the metric id. A
rename while the metric's optimisation is in flight resumes that run (no second start
POST); a proposal rejected under the old name stays rejected under the new one; and
state written by version 1 (keyed by slug) is read without losing a claim.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from cekura_gitops.gitrepo import GitRepo, Identity
from cekura_gitops.statestore import STATE_REF, Claim, LastOptimisation, State, StateStore
from tests._hardening import TOKEN, by_metric_id, github_env, state
from tests.conftest import Repo, run_subprocess

OLD = "caller_greeted_by_name_1562"
NEW = "caller_greeted_by_first_name_1562"
START = r"/process_feedbacks/$"


def rename(repo: Repo, sandbox: Any, old: str = OLD, new: str = NEW) -> None:
    """Rename the metric in Cekura and in git (same id), as a user would, and push."""
    sandbox.state.dashboard_edit(1562, slug=new)
    text = (repo.work / f"metrics/{old}.yaml").read_text()
    assert f"slug: {old}\n" in text
    repo.git("mv", f"metrics/{old}.yaml", f"metrics/{new}.yaml")
    repo.write(f"metrics/{new}.yaml", text.replace(f"slug: {old}\n", f"slug: {new}\n"))
    repo.commit_all(f"rename {old} to {new}")
    repo.push()


def test_rename_while_in_flight_resumes_the_run(
    pulled: Repo, cekura_env: dict[str, str], sandbox, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.set_optimiser_seconds(1562, 2.0)
    env = {**cekura_env, "CEKURA_GITOPS_CRASH_AT": f"recorded:{OLD}"}
    killed = run_subprocess(["sync", "--no-pr", "--metric", OLD], pulled.work, env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert sandbox.state.optimisations_started == {1562: 1}

    rename(pulled, sandbox)
    clone = pulled.fresh_clone(tmp_path / "after-rename")
    done = run_subprocess(["--json", "sync", "--no-pr", "--metric", NEW], clone.work, cekura_env)
    assert done.returncode == 0, done.stderr
    [m] = json.loads(done.stdout)["metrics"]
    assert (m["slug"], m["status"]) == (NEW, "proposed")
    assert sandbox.state.optimisations_started == {1562: 1}, "a second optimisation after a rename"
    assert sandbox.state.max_concurrent_per_metric == {1562: 1}
    st = state(pulled.origin)
    assert st["runs"] == {}
    assert st["last"][1562]["slugs"] == [NEW]

    # And the fingerprint followed the id: nothing new to learn under the new name.
    again = run_subprocess(["--json", "sync", "--no-pr", "--metric", NEW], clone.work, cekura_env)
    assert json.loads(again.stdout)["metrics"][0]["status"] == "no-new-feedback"
    assert sandbox.state.optimisations_started == {1562: 1}


def test_rename_while_only_claimed_still_blocks(
    pulled: Repo, cekura_env: dict[str, str], sandbox, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    env = {**cekura_env, "CEKURA_GITOPS_CRASH_AT": f"started:{OLD}"}
    killed = run_subprocess(["sync", "--no-pr", "--metric", OLD], pulled.work, env)
    assert killed.returncode == -signal.SIGKILL
    rename(pulled, sandbox)
    clone = pulled.fresh_clone(tmp_path / "after-rename")
    done = run_subprocess(["--json", "sync", "--no-pr", "--metric", NEW], clone.work, cekura_env)
    assert json.loads(done.stdout)["metrics"][0]["status"] == "in-flight", done.stdout
    assert sandbox.state.optimisations_started == {1562: 1}


def test_rejected_proposal_stays_rejected_after_a_rename(
    pulled: Repo, cli, cekura_env: dict[str, str], sandbox, make_fake_github, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    gh = make_fake_github(origin_path=pulled.origin, owner="acme", repo="metrics", token=TOKEN)
    env = {**cekura_env, **github_env(gh)}
    first = cli("--json", "sync", "--metric", OLD, cwd=pulled.work, env=env)
    assert first.code == 0, first.err
    [pr] = [p for p in gh.pulls if p["head"]["ref"].endswith(OLD)]
    gh.close_pull(pr["number"])  # a human rejects it

    rename(pulled, sandbox)
    clone = pulled.fresh_clone(tmp_path / "after-rename")
    second = cli("--json", "sync", "--force", "--metric", NEW, cwd=clone.work, env=env)
    assert second.code == 0, second.err
    [m] = second.json()["metrics"]  # type: ignore[index]
    assert m["status"] == "rejected", m
    assert len(gh.pulls) == 1, "the rejected proposal was proposed again under the new name"
    assert pulled.origin_ref(f"refs/heads/cekura-gitops/optimise/{NEW}") is None


# -- version 1 state (keyed by slug) ----------------------------------------------------------


def _v1(runs: dict[str, Any], last: dict[str, Any]) -> bytes:
    return json.dumps({"version": 1, "runs": runs, "last": last}).encode()


def test_version_1_state_moves_to_metric_ids_without_losing_a_claim() -> None:
    claim = {"metric_id": 1562, "claimed_at": 100.0, "owner": "a"}
    running = {"metric_id": 1562, "claimed_at": 50.0, "owner": "b", "progress_id": "p1", "started_at": 51.0}
    data = _v1(
        {OLD: running, NEW: claim, "other": {"metric_id": 7, "claimed_at": 1.0, "owner": "c"}},
        {OLD: {"fingerprint": "f", "completed_at": 10.0, "outcome": "proposed"}, "gone": {"completed_at": 1}},
    )
    st = State.from_bytes(data, {NEW: 1562, "other": 7})
    # Two slugs of one id (renamed under version 1): the record with a run wins.
    assert st.claims[1562].progress_id == "p1" and st.claims[1562].slug == OLD
    assert st.claims[7].slug == "other"
    # The old slug no file names any more: kept, not lost, until one does.
    assert set(st.legacy_last) == {OLD, "gone"} and st.last == {}
    later = State.from_bytes(st.to_bytes(), {OLD: 1562})
    assert later.last[1562].fingerprint == "f" and later.last[1562].slugs == (OLD,)
    assert set(later.legacy_last) == {"gone"}
    assert later.claims == st.claims


def test_version_2_round_trips_and_a_version_1_tool_cannot_misread_it() -> None:
    st = State(
        claims={1562: Claim(1562, 1.0, "me", "p", 2.0, "fp", NEW)},
        last={1563: LastOptimisation("f", 3.0, "proposed", "q", (OLD, NEW))},
        applied="abc",
    )
    doc = json.loads(st.to_bytes())
    assert doc["version"] == 2 and isinstance(doc["runs"], list) and isinstance(doc["last"], list)
    assert State.from_bytes(st.to_bytes()) == st
    assert by_metric_id(doc)["runs"][1562]["progress_id"] == "p"


def test_a_newer_state_version_is_refused(repo: Repo) -> None:
    from cekura_gitops.errors import GitError

    git = GitRepo(repo.work)
    identity = Identity("t", "t@example.com")
    sha = git.commit_files(None, {"state.json": b'{"version": 99, "runs": []}'}, "future", identity)
    assert git.update_local_ref(STATE_REF, sha, None)
    try:
        StateStore(git, None, identity).load()
    except GitError as err:
        assert "newer cekura-gitops" in str(err)
    else:
        raise AssertionError("a state from a newer version was read")

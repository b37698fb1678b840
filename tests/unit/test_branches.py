"""branches: the bot branch writer's leases. Rebuilt on the base, idempotent, and never
pushed over a human's commit, even one that lands between our look and our push."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cekura_gitops.branches import BranchStatus, BranchWriter
from tests.conftest import HUMAN, Repo, git
from tests.unit.conftest import BOT, gitrepo, origin_refs

PREFIX = "cekura-gitops"
BRANCH = f"{PREFIX}/greets_caller"
PATH = "metrics/greets_caller.yaml"


def writer(r: Repo, remote: str | None = "origin", **kw: str) -> BranchWriter:
    return BranchWriter(gitrepo(r), BOT, remote, **kw)  # type: ignore[arg-type]


def base_of(r: Repo) -> str:
    return r.git("rev-parse", "HEAD")


def human_pushes_onto(r: Repo, clone_dir: Path, branch: str = BRANCH, text: str = "human edit\n") -> str:
    """A person checks the bot branch out, commits on it and pushes (as they may)."""
    return r.human_edit(branch, PATH, clone_dir, text)


def test_a_new_branch_is_one_bot_commit_on_the_base(repo: Repo) -> None:
    base = base_of(repo)
    result = writer(repo).write(BRANCH, base, PATH, b"v1\n", "Propose v1")
    assert result.status is BranchStatus.CREATED
    assert repo.origin_ref(f"refs/heads/{BRANCH}") == result.sha
    assert git(repo.origin, "rev-parse", f"{result.sha}^") == base
    assert repo.origin_file(BRANCH, PATH) == "v1\n"
    assert (
        git(repo.origin, "log", "-1", "--format=%ae %ce %s", BRANCH) == f"{BOT.email} {BOT.email} Propose v1"
    )
    assert repo.git("status", "--porcelain") == "" and repo.git("branch", "--show-current") == "main"


def test_the_same_content_on_the_same_base_makes_no_new_commit(repo: Repo) -> None:
    base = base_of(repo)
    first = writer(repo).write(BRANCH, base, PATH, b"v1\n", "Propose v1")
    again = writer(repo).write(BRANCH, base, PATH, b"v1\n", "Propose v1 again")
    assert (again.status, again.sha) == (BranchStatus.UNCHANGED, first.sha)
    assert repo.origin_ref(f"refs/heads/{BRANCH}") == first.sha


def test_new_content_rebuilds_the_branch_on_the_base_not_on_the_old_tip(repo: Repo) -> None:
    base = base_of(repo)
    w = writer(repo)
    w.write(BRANCH, base, PATH, b"v1\n", "v1")
    result = w.write(BRANCH, base, PATH, b"v2\n", "v2")
    assert result.status is BranchStatus.UPDATED
    assert git(repo.origin, "rev-list", "--count", f"{base}..{BRANCH}") == "1"
    assert repo.origin_file(BRANCH, PATH) == "v2\n"


def test_a_moved_base_rebuilds_the_branch_even_for_the_same_content(repo: Repo) -> None:
    w = writer(repo)
    w.write(BRANCH, base_of(repo), PATH, b"v1\n", "v1")
    repo.write("README.md", "moved on\n")
    new_base = repo.commit_all("main moves")
    repo.push()
    result = w.write(BRANCH, new_base, PATH, b"v1\n", "v1")
    assert result.status is BranchStatus.UPDATED
    assert git(repo.origin, "rev-parse", f"{BRANCH}^") == new_base
    assert repo.origin_file(BRANCH, "README.md") == "moved on\n"


def test_a_branch_with_a_human_commit_is_left_alone(repo: Repo, tmp_path: Path) -> None:
    base = base_of(repo)
    w = writer(repo)
    w.write(BRANCH, base, PATH, b"v1\n", "v1")
    human = human_pushes_onto(repo, tmp_path / "human")
    result = w.write(BRANCH, base, PATH, b"v2\n", "v2")
    assert result.status is BranchStatus.HUMAN_EDITED
    assert [(c.sha, c.author_email) for c in result.human_commits] == [(human, HUMAN["GIT_AUTHOR_EMAIL"])]
    assert repo.origin_ref(f"refs/heads/{BRANCH}") == human
    assert repo.origin_file(BRANCH, PATH) == "human edit\n"


def test_a_human_commit_landing_after_our_look_is_never_overwritten(repo: Repo, tmp_path: Path) -> None:
    base = base_of(repo)
    writer(repo).write(BRANCH, base, PATH, b"v1\n", "v1")
    w = writer(repo)
    w.prime(PREFIX)  # we look at the branch (one fetch for all of them) ...
    human = human_pushes_onto(repo, tmp_path / "human")  # ... a person pushes ...
    result = w.write(BRANCH, base, PATH, b"v2\n", "v2")  # ... we write on what we saw
    assert result.status is BranchStatus.HUMAN_EDITED
    assert repo.origin_ref(f"refs/heads/{BRANCH}") == human
    assert repo.origin_file(BRANCH, PATH) == "human edit\n"


def test_another_bot_run_moving_the_branch_is_looked_at_again_and_rewritten(
    repo: Repo, tmp_path: Path
) -> None:
    base = base_of(repo)
    writer(repo).write(BRANCH, base, PATH, b"v1\n", "v1")
    w = writer(repo)
    w.prime(PREFIX)
    other = writer(repo.fresh_clone(tmp_path / "other-runner")).write(BRANCH, base, PATH, b"theirs\n", "x")
    assert other.status is BranchStatus.UPDATED
    result = w.write(BRANCH, base, PATH, b"ours\n", "ours")
    assert result.status is BranchStatus.UPDATED
    assert repo.origin_file(BRANCH, PATH) == "ours\n"
    assert git(repo.origin, "rev-parse", f"{BRANCH}^") == base


def test_two_runs_writing_the_same_proposal_confirm_it_unchanged(repo: Repo, tmp_path: Path) -> None:
    base = base_of(repo)
    w = writer(repo)
    w.prime(PREFIX)  # nothing there yet
    other = writer(repo.fresh_clone(tmp_path / "other-runner"))
    theirs = other.write(BRANCH, base, PATH, b"v1\n", "v1 (their run)")
    ours = w.write(BRANCH, base, PATH, b"v1\n", "v1 (our run)")
    assert ours.status is BranchStatus.UNCHANGED and ours.sha == theirs.sha


def test_a_branch_deleted_after_our_look_is_recreated_not_reported_unchanged(repo: Repo) -> None:
    base = base_of(repo)
    writer(repo).write(BRANCH, base, PATH, b"v1\n", "v1")
    w = writer(repo)
    w.prime(PREFIX)
    git(repo.origin, "update-ref", "-d", f"refs/heads/{BRANCH}")  # merged and deleted, say
    result = w.write(BRANCH, base, PATH, b"v1\n", "v1")
    assert result.status is BranchStatus.CREATED
    assert repo.origin_file(BRANCH, PATH) == "v1\n"


def test_a_push_refused_every_time_reports_moved(repo: Repo) -> None:
    hook = repo.origin / "hooks/pre-receive"
    # What the remote says when another push holds the ref's lock; it never lets go here.
    hook.write_text("#!/bin/sh\necho 'error: cannot lock ref: is at another value' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = writer(repo).write(BRANCH, base_of(repo), PATH, b"v1\n", "v1")
    assert (result.status, result.sha) == (BranchStatus.MOVED, None)
    assert origin_refs(repo, "refs/heads/cekura-gitops/") == {}


def test_many_branches_written_at_once_all_land(repo: Repo) -> None:
    base = base_of(repo)
    w = writer(repo)
    w.prime(PREFIX)
    results = {}

    def write(i: int) -> None:
        results[i] = w.write(f"{PREFIX}/m{i}", base, f"metrics/m{i}.yaml", f"{i}\n".encode(), f"m{i}")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert {i: r.status for i, r in results.items()} == {i: BranchStatus.CREATED for i in range(6)}
    assert origin_refs(repo, f"refs/heads/{PREFIX}/") == {
        f"refs/heads/{PREFIX}/m{i}": results[i].sha for i in range(6)
    }


def test_without_a_remote_local_branches_follow_the_same_rules(repo: Repo) -> None:
    base = base_of(repo)
    w = writer(repo, remote=None)
    assert w.write(BRANCH, base, PATH, b"v1\n", "v1").status is BranchStatus.CREATED
    assert w.write(BRANCH, base, PATH, b"v1\n", "v1").status is BranchStatus.UNCHANGED
    assert w.write(BRANCH, base, PATH, b"v2\n", "v2").status is BranchStatus.UPDATED
    repo.git("checkout", "-q", BRANCH)
    repo.write(PATH, "mine\n")
    human = repo.commit_all("local human edit")
    repo.git("checkout", "-q", "main")
    assert w.write(BRANCH, base, PATH, b"v3\n", "v3").status is BranchStatus.HUMAN_EDITED
    assert repo.git("rev-parse", BRANCH) == human
    assert origin_refs(repo, "refs/heads/cekura-gitops/") == {}  # nothing pushed


@pytest.mark.parametrize(
    ("author", "committer", "bot_login", "is_human"),
    [
        (BOT.email, BOT.email, None, False),
        (BOT.email.upper(), BOT.email, None, False),  # emails compare case-insensitively
        (BOT.email, "ada@example.com", None, True),  # a human re-committed (amended) it
        # commit_via: api — GitHub authors as <id>+<login>@users.noreply.github.com
        ("41898282+my-app[bot]@users.noreply.github.com", "noreply@github.com", "my-app[bot]", False),
        ("41898282+my-app[bot]@users.noreply.github.com", "noreply@github.com", None, True),
        ("41898282+other[bot]@users.noreply.github.com", "noreply@github.com", "my-app[bot]", True),
    ],
)
def test_whose_commit_is_it(
    repo: Repo, author: str, committer: str, bot_login: str | None, is_human: bool
) -> None:
    base = base_of(repo)
    repo.write("f", "x\n")
    env = {"GIT_AUTHOR_EMAIL": author, "GIT_COMMITTER_EMAIL": committer}
    repo.git("add", "f")
    repo.git("commit", "-qm", "c", env=env)
    w = BranchWriter(gitrepo(repo), BOT, "origin", bot_login=bot_login)
    assert bool(w.human_commits(base, base_of(repo))) is is_human


# Guarded writes: the branch goes out in one atomic push with a leased no-op of the state
# ref, so it lands only while the run is still ours (the check costs no round trip of its own).


def _guarded(r: Repo, owner: str = "me") -> tuple[BranchWriter, Any, Any]:
    """A writer guarded by a state store in which `owner` holds metric 7's recorded run."""
    from cekura_gitops.optimiser import Optimiser
    from cekura_gitops.statestore import Claim, State, StateStore

    repo = gitrepo(r)  # one, as in a sync: the writer and the store share it
    store = StateStore(repo, "origin", BOT)
    store.update(lambda s: State(claims={7: Claim(7, 1.0, owner, progress_id="p7")}), "record p7")
    optimiser = Optimiser(client=None, store=store, timeout=60, owner=owner)  # type: ignore[arg-type]
    return BranchWriter(repo, BOT, "origin", state=store), store, optimiser


def test_a_guarded_write_of_a_run_still_ours_lands_in_one_push(repo: Repo) -> None:
    w, store, me = _guarded(repo)
    pushes: list[str] = []
    for name in ("push_atomic", "push_many", "push_cas"):  # every way to push
        real = getattr(w._repo, name)  # type: ignore[attr-defined]
        setattr(w._repo, name, lambda *a, _n=name, _r=real: pushes.append(_n) or _r(*a))  # type: ignore[attr-defined]
    result = w.write(BRANCH, base_of(repo), PATH, b"v1\n", "v1", holds=me.holds(7))
    assert result.status is BranchStatus.CREATED
    assert repo.origin_file(BRANCH, PATH) == "v1\n"
    assert pushes == ["push_atomic"]  # the branch and the state's lease: one round trip


def test_a_guarded_write_of_a_run_taken_over_pushes_nothing(repo: Repo, tmp_path: Path) -> None:
    from cekura_gitops.statestore import Claim, State, StateStore

    w, _store, me = _guarded(repo)
    theirs = StateStore(gitrepo(repo.fresh_clone(tmp_path / "taker")), "origin", BOT)
    theirs.update(lambda s: State(claims={7: Claim(7, 1.0, "them", progress_id="p7")}), "resume p7")
    result = w.write(BRANCH, base_of(repo), PATH, b"v1\n", "v1", holds=me.holds(7))
    assert (result.status, result.detail) == (BranchStatus.TAKEN_OVER, "them")
    assert repo.origin_ref(f"refs/heads/{BRANCH}") is None  # the taker publishes, not us
    assert not me.finish(7, "greets_caller", "p7", None, "proposed")  # nor do we finish its run


def test_a_guarded_write_lands_after_an_unrelated_state_change(repo: Repo, tmp_path: Path) -> None:
    # Another sync records a run of another metric: the state ref moved, our run is still
    # ours, so the lease is renewed on a fresh read and the branch lands.
    from cekura_gitops.statestore import Claim, StateStore

    w, store, me = _guarded(repo)
    other = StateStore(gitrepo(repo.fresh_clone(tmp_path / "other")), "origin", BOT)
    other.update(lambda s: replace(s, claims={**s.claims, 8: Claim(8, 1.0, "them", progress_id="p8")}), "p8")
    result = w.write(BRANCH, base_of(repo), PATH, b"v1\n", "v1", holds=me.holds(7))
    assert result.status is BranchStatus.CREATED
    assert repo.origin_file(BRANCH, PATH) == "v1\n"
    assert me.finish(7, "greets_caller", "p7", None, "proposed")
    assert set(store.load(fresh=True).claims) == {8}  # ours cleared, theirs kept


def _finish_of(me: Any) -> Any:
    """The run's finish, pushed with the branch (sync --no-pr: no pull request in between)."""
    finishing = me.finishing(7, "greets_caller", "p7", "fp")
    return lambda status: finishing("updated" if status is BranchStatus.UPDATED else "proposed")


def test_a_finish_carried_by_its_branch_lands_in_the_same_push(repo: Repo) -> None:
    w, store, me = _guarded(repo)
    pushes: list[str] = []
    for name in ("push_atomic", "push_many", "push_cas"):
        real = getattr(w._repo, name)  # type: ignore[attr-defined]
        setattr(w._repo, name, lambda *a, _n=name, _r=real: pushes.append(_n) or _r(*a))  # type: ignore[attr-defined]
    result = w.write(BRANCH, base_of(repo), PATH, b"v1\n", "v1", holds=me.holds(7), finish=_finish_of(me))
    assert result.status is BranchStatus.CREATED
    assert pushes == ["push_atomic"]  # the branch and the state's change: one round trip
    on_origin = store.load(fresh=True)
    assert on_origin.claims == {} and on_origin.last[7].outcome == "proposed"
    assert on_origin.last[7].progress_id == "p7" and on_origin.last[7].fingerprint == "fp"
    assert me.finish(7, "greets_caller", "p7", "fp", "proposed")  # already done: nothing to push
    assert pushes == ["push_atomic"]


def test_a_finish_carried_by_a_branch_of_a_run_taken_over_does_not_land(repo: Repo, tmp_path: Path) -> None:
    from cekura_gitops.statestore import Claim, State, StateStore

    w, store, me = _guarded(repo)
    theirs = StateStore(gitrepo(repo.fresh_clone(tmp_path / "taker")), "origin", BOT)
    theirs.update(lambda s: State(claims={7: Claim(7, 1.0, "them", progress_id="p7")}), "resume p7")
    result = w.write(BRANCH, base_of(repo), PATH, b"v1\n", "v1", holds=me.holds(7), finish=_finish_of(me))
    assert result.status is BranchStatus.TAKEN_OVER
    assert store.load(fresh=True).claims[7].owner == "them"  # their run: they finish it
    assert not me.finish(7, "greets_caller", "p7", "fp", "proposed")


def test_a_guarded_write_onto_a_branch_a_human_moved_is_refused_with_the_finish_it_carries(
    repo: Repo, tmp_path: Path
) -> None:
    base = base_of(repo)
    writer(repo).write(BRANCH, base, PATH, b"v1\n", "v1")
    w, store, me = _guarded(repo)
    w.prime(PREFIX)
    human = human_pushes_onto(repo, tmp_path / "human")  # after our look: the branch's lease fails
    failed: list[list[str]] = []
    real = w._repo.push_atomic  # type: ignore[attr-defined]
    w._repo.push_atomic = lambda *a: failed.append(real(*a)) or failed[-1]  # type: ignore[attr-defined]
    result = w.write(BRANCH, base, PATH, b"v2\n", "v2", holds=me.holds(7), finish=_finish_of(me))
    assert result.status is BranchStatus.HUMAN_EDITED
    assert repo.origin_ref(f"refs/heads/{BRANCH}") == human
    assert failed == [[f"refs/heads/{BRANCH}"]]  # the one atomic push, refused as a whole
    assert set(store.load(fresh=True).claims) == {7}  # the finish did not land: still ours
    assert me.finish(7, "greets_caller", "p7", "fp", "skipped-edited")
    assert store.load(fresh=True).last[7].outcome == "skipped-edited"


def test_a_push_waits_for_no_company_once_every_metric_at_work_has_queued(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cekura_gitops import branches
    from cekura_gitops.statestore import Activity

    slept: list[float] = []
    real_sleep = branches.time.sleep
    monkeypatch.setattr(branches.time, "sleep", lambda t: slept.append(t) or real_sleep(t))
    lone = BranchWriter(gitrepo(repo), BOT, "origin", activity=Activity(1))
    assert lone.write(BRANCH, base_of(repo), PATH, b"v1\n", "v1").status is BranchStatus.CREATED
    assert slept == []  # the only metric at work: nobody to wait for
    two = BranchWriter(gitrepo(repo), BOT, "origin", activity=Activity(2))
    assert two.write(f"{BRANCH}-2", base_of(repo), PATH, b"v1\n", "v1").status is BranchStatus.CREATED
    assert slept  # it waited for the other metric


def test_a_push_waits_for_the_metrics_whose_runs_have_ended_not_for_runs_still_going(repo: Repo) -> None:
    from cekura_gitops.statestore import Activity

    activity = Activity(3)  # a, b, and c whose run is still going
    w = BranchWriter(gitrepo(repo), BOT, "origin", activity=activity)
    w.prime(PREFIX)
    pushed: list[list[str]] = []
    real = w._repo.push_many  # type: ignore[attr-defined]
    w._repo.push_many = lambda remote, updates: (
        pushed.append([u[1] for u in updates]) or real(remote, updates)
    )  # type: ignore[attr-defined]
    base = base_of(repo)
    for key in ("a", "b"):
        activity.ending(key)

    def write(key: str) -> None:
        w.write(f"{PREFIX}/{key}", base, f"metrics/{key}.yaml", b"x\n", key)
        activity.ended(key)

    first = threading.Thread(target=write, args=("a",))
    first.start()
    time.sleep(0.4)  # b's push comes long after END_LINGER: a's waited for it
    write("b")
    first.join(timeout=30)
    assert pushed == [[f"refs/heads/{PREFIX}/a", f"refs/heads/{PREFIX}/b"]]
    started = time.monotonic()
    write("c")  # c's run ended with nobody else's ending: it goes after END_LINGER at most
    assert time.monotonic() - started < 0.5 and pushed[-1] == [f"refs/heads/{PREFIX}/c"]

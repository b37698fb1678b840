"""statestore: the state ref on origin, compare-and-swap updates, claims, v1 -> v2 migration.

Two clones of one bare origin stand for two runners racing; nothing is mocked.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

import pytest

from cekura_gitops import statestore
from cekura_gitops.errors import GitError
from cekura_gitops.optimiser import CLAIM_EXPIRY, Optimiser
from cekura_gitops.statestore import STATE_FILE, STATE_REF, Conflict, LastOptimisation, State, StateStore
from tests.conftest import Repo, git
from tests.unit.conftest import BOT, gitrepo

# Records are built through this one alias, so a rename of the class touches one line.
Record = statestore.Claim


def record(metric_id: int, *, claimed_at: float = 100.0, progress_id: str | None = None, **kw: Any) -> Any:
    return Record(
        metric_id=metric_id, claimed_at=claimed_at, owner=kw.pop("owner", "me"), progress_id=progress_id, **kw
    )


def store(r: Repo, *, remote: str | None = "origin", **kw: Any) -> StateStore:
    return StateStore(gitrepo(r), remote, BOT, **kw)


def claim(metric_id: int, owner: str = "me") -> Any:
    """The claim mutator the optimiser uses: refuse a metric someone already holds."""

    def mutate(state: State) -> State:
        if metric_id in state.claims:
            raise Conflict(metric_id)
        return replace(state, claims={**state.claims, metric_id: record(metric_id, owner=owner)})

    return mutate


def origin_state(r: Repo) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(git(r.origin, "show", f"{STATE_REF}:{STATE_FILE}"))
    return loaded


def origin_tip(r: Repo) -> str | None:
    return r.origin_ref(STATE_REF)


# --- reading and publishing -------------------------------------------------------------


def test_no_state_ref_reads_as_empty_state(repo: Repo) -> None:
    assert store(repo).load() == State()
    assert store(repo, remote=None).load() == State()
    assert origin_tip(repo) is None


def test_an_update_is_a_commit_on_the_state_ref_whose_parent_is_the_state_read(repo: Repo) -> None:
    s = store(repo)
    s.update(claim(1), "claim one")
    first = origin_tip(repo)
    assert first is not None
    assert git(repo.origin, "log", "--format=%s|%ae", "-1", STATE_REF) == f"claim one|{BOT.email}"
    assert origin_state(repo)["version"] == 2
    assert [r["metric_id"] for r in origin_state(repo)["runs"]] == [1]

    s.update(claim(2), "claim two")
    assert git(repo.origin, "rev-parse", f"{STATE_REF}^") == first
    assert [r["metric_id"] for r in origin_state(repo)["runs"]] == [1, 2]
    # The user's branches and working tree are untouched: the state lives on its own ref.
    assert repo.git("status", "--porcelain") == ""
    assert git(repo.origin, "ls-tree", "--name-only", STATE_REF) == STATE_FILE


def test_an_update_that_changes_nothing_pushes_nothing(repo: Repo) -> None:
    s = store(repo)
    s.update(claim(1), "claim")
    tip = origin_tip(repo)
    assert s.update(lambda st: st, "no-op") == s.load()
    assert origin_tip(repo) == tip


def test_a_fresh_clone_reads_what_another_pushed(repo: Repo, clone) -> None:  # type: ignore[no-untyped-def]
    store(repo).update(claim(7, owner="runner a"), "claim")
    other = store(clone())
    assert other.load().claims[7].owner == "runner a"


def test_load_serves_the_cached_view_until_asked_for_a_fresh_one(repo: Repo, clone) -> None:  # type: ignore[no-untyped-def]
    mine, theirs = store(repo), store(clone())
    assert mine.load() == State()
    theirs.update(claim(3), "claim")
    assert mine.load() == State()  # a push behind: harmless, the swap is what guards
    assert 3 in mine.load(fresh=True).claims


# --- compare-and-swap -----------------------------------------------------------------


def test_a_stale_writer_loses_the_lease_rereads_and_keeps_both_updates(repo: Repo, clone) -> None:  # type: ignore[no-untyped-def]
    a, b = store(repo), store(clone())
    a.load()
    b.load()
    b.update(claim(2, owner="b"), "b claims 2")
    seen: list[frozenset[int]] = []

    def a_claims_1(state: State) -> State:
        seen.append(frozenset(state.claims))
        return claim(1, owner="a")(state)

    a.update(a_claims_1, "a claims 1")
    # First try on the stale view (lost the lease), then on b's state.
    assert seen == [frozenset(), frozenset({2})]
    assert {r["metric_id"]: r["owner"] for r in origin_state(repo)["runs"]} == {1: "a", 2: "b"}


def test_two_runners_claiming_one_metric_exactly_one_wins(repo: Repo, clone) -> None:  # type: ignore[no-untyped-def]
    a, b = store(repo), store(clone())
    a.load()
    b.load()  # both saw the metric unclaimed
    a.update(claim(1562, owner="a"), "a claims")
    with pytest.raises(Conflict):
        b.update(claim(1562, owner="b"), "b claims")
    assert [(r["metric_id"], r["owner"]) for r in origin_state(repo)["runs"]] == [(1562, "a")]


def test_a_conflicting_mutator_fails_only_its_own_caller(repo: Repo) -> None:
    s = store(repo)
    s.update(claim(1), "claim 1")
    tip = origin_tip(repo)
    go = threading.Barrier(2)
    results: dict[str, object] = {}

    def attempt(name: str, mutate: Any) -> None:
        go.wait()
        try:
            results[name] = s.update(mutate, name)
        except Conflict as err:
            results[name] = err

    threads = [
        threading.Thread(target=attempt, args=("again", claim(1))),
        threading.Thread(target=attempt, args=("other", claim(2))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert isinstance(results["again"], Conflict)
    assert isinstance(results["other"], State) and set(results["other"].claims) == {1, 2}
    assert git(repo.origin, "rev-parse", f"{STATE_REF}^") == tip  # one new commit, not two
    assert [r["metric_id"] for r in origin_state(repo)["runs"]] == [1, 2]


def test_a_writer_that_never_wins_gives_up_with_advice(repo: Repo, clone) -> None:  # type: ignore[no-untyped-def]
    loser, rival = store(repo, attempts=2), store(clone())
    loser.load()
    n = iter(range(100, 200))

    def rival_moves_first(state: State) -> State:
        rival.update(claim(next(n)), "rival")  # the ref moves under every attempt
        return claim(1)(state)

    with pytest.raises(GitError, match="after 2 attempts"):
        loser.update(rival_moves_first, "loser")
    assert 1 not in {r["metric_id"] for r in origin_state(repo)["runs"]}


def test_without_a_remote_the_local_ref_is_swapped_the_same_way(repo: Repo) -> None:
    a, b = store(repo, remote=None), store(repo, remote=None)
    a.load()
    b.update(claim(2), "b")
    a.update(claim(1), "a")
    assert set(store(repo, remote=None).load().claims) == {1, 2}
    assert origin_tip(repo) is None  # --no-push: nothing went to origin
    assert repo.git("rev-parse", "--verify", "--quiet", STATE_REF)


# --- claims and their expiry (the optimiser's reading of the store) ----------------------


@pytest.mark.parametrize(
    ("age", "progress_id", "blocks"),
    [
        (0.0, None, True),
        (CLAIM_EXPIRY * 60.0, None, True),  # exactly at the expiry: still held
        (CLAIM_EXPIRY * 60.0 + 1, None, False),  # a bare claim older than the expiry is dropped
        (CLAIM_EXPIRY * 60.0 * 10, "run-1", True),  # a recorded run never expires
    ],
)
def test_a_bare_claim_expires_after_twice_the_timeout_a_recorded_run_never(
    repo: Repo, age: float, progress_id: str | None, blocks: bool
) -> None:
    s = store(repo)
    held_claim = record(5, claimed_at=1000.0, progress_id=progress_id)
    s.update(lambda st: replace(st, claims={5: held_claim}), "claim")
    optimiser = Optimiser(client=None, store=s, timeout=60.0, clock=lambda: 1000.0 + age)  # type: ignore[arg-type]
    held = optimiser.existing(s.load(fresh=True), 5)
    assert (held is not None) is blocks
    assert optimiser.expires_at(record(5, claimed_at=1000.0)) == 1000.0 + CLAIM_EXPIRY * 60.0


# --- the document: versions and migration -------------------------------------------------


def test_version_2_round_trips_every_field() -> None:
    st = State(
        claims={9: record(9, progress_id="p", started_at=2.0, fingerprint="f", slug="s")},
        last={8: LastOptimisation("fp", 3.0, "proposed", "q", ("old", "new"))},
        legacy_last={"gone": LastOptimisation(None, 1.0, "tied")},
        applied="abc123",
    )
    doc = json.loads(st.to_bytes())
    assert doc["version"] == 2
    assert isinstance(doc["runs"], list) and isinstance(doc["last"], list)
    assert State.from_bytes(st.to_bytes()) == st
    assert st.to_bytes() == State.from_bytes(st.to_bytes()).to_bytes()  # stable bytes


V1 = {
    "version": 1,
    "runs": {
        # A rename left two slugs for one id: the one with a run wins over a bare claim.
        "new_name": {"metric_id": 1562, "claimed_at": 1.0, "owner": "y", "progress_id": "p1"},
        "old_name": {"metric_id": 1562, "claimed_at": 5.0, "owner": "x"},
        "other": {"metric_id": 7, "claimed_at": 2.0, "owner": "z"},
    },
    "last": {
        "new_name": {"fingerprint": "f-new", "completed_at": 20.0, "outcome": "proposed"},
        "old_name": {"fingerprint": "f-old", "completed_at": 10.0, "outcome": "tied"},
        "deleted_metric": {"fingerprint": "f-x", "completed_at": 1.0, "outcome": "tied"},
    },
    "applied": "deadbeef",
}


def test_version_1_claims_move_to_their_metric_id() -> None:
    st = State.from_bytes(json.dumps(V1).encode())
    assert set(st.claims) == {1562, 7}
    assert st.claims[1562].progress_id == "p1" and st.claims[1562].owner == "y"
    assert st.claims[7].slug == "other"  # the v1 key is kept for humans
    assert st.applied == "deadbeef"
    # Memories stay keyed by slug until a metric file names the slug's id.
    assert st.last == {} and set(st.legacy_last) == {"new_name", "old_name", "deleted_metric"}


def test_version_1_memories_move_to_the_id_a_metric_file_gives_their_slug() -> None:
    st = State.from_bytes(json.dumps(V1).encode(), aliases={"new_name": 1562, "old_name": 1562})
    last = st.last[1562]
    assert (last.fingerprint, last.completed_at) == ("f-new", 20.0)  # the newer memory
    assert set(last.slugs) == {"new_name", "old_name"}  # both names, for finding old branches
    assert set(st.legacy_last) == {"deleted_metric"}  # not lost: no file names it yet
    again = State.from_bytes(st.to_bytes(), aliases={"deleted_metric": 3})
    assert set(again.last) == {1562, 3} and again.legacy_last == {}


def test_the_store_migrates_a_version_1_ref_and_writes_version_2(repo: Repo) -> None:
    g = gitrepo(repo)
    sha = g.commit_files(None, {STATE_FILE: json.dumps(V1).encode()}, "v1", BOT)
    git(repo.work, "push", "-q", "origin", f"{sha}:{STATE_REF}")
    s = store(repo, aliases={"new_name": 1562})
    assert s.load().last[1562].fingerprint == "f-new"
    s.update(claim(99), "claim")
    doc = origin_state(repo)
    assert doc["version"] == 2
    assert {r["metric_id"] for r in doc["runs"]} == {1562, 7, 99}
    assert [d["metric_id"] for d in doc["last"]] == [1562]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"version": 3, "runs": []}', "newer cekura-gitops"),
        (b"{not json", "unreadable state.json"),
        (b'{"version": 2, "runs": [{"claimed_at": 1}]}', "unreadable state.json"),
        (b'{"version": 2, "runs": {"a": 1}}', "unreadable state.json"),
    ],
)
def test_a_state_it_cannot_read_stops_with_advice(data: bytes, says: str) -> None:
    with pytest.raises(GitError, match=says) as info:
        State.from_bytes(data)
    assert STATE_REF in str(info.value)


def test_a_memory_names_each_slug_once_in_first_seen_order() -> None:
    last = LastOptimisation("f", 1.0, "proposed", slugs=("a",))
    assert last.with_slugs("b", "a", "c").slugs == ("a", "b", "c")
    assert last.with_slugs("a") is last


def test_an_update_waits_for_no_company_once_every_metric_at_work_has_queued(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One metric left at work: its update cannot be joined by anyone, so it does not sleep
    # out its linger. With two at work, it waits for the other (a second update to batch).
    activity = statestore.Activity(1)
    s = store(repo, activity=activity)
    slept: list[float] = []
    real_sleep = statestore.time.sleep
    monkeypatch.setattr(statestore.time, "sleep", lambda t: slept.append(t) or real_sleep(t))
    s.update(claim(1), "claim 1", linger=statestore.END_LINGER)
    assert slept == []
    assert [r["metric_id"] for r in origin_state(repo)["runs"]] == [1]

    waiting = store(repo, activity=statestore.Activity(2))
    waiting.update(claim(2), "claim 2", linger=statestore.END_LINGER)
    assert slept  # it lingered for the metric that never came


def test_a_deferred_change_goes_out_with_the_next_push_or_the_flush(repo: Repo) -> None:
    s = store(repo)
    s.update(claim(1), "claim 1")
    tip = origin_tip(repo)
    s.defer(claim(2), "claim 2")
    assert origin_tip(repo) == tip  # no push of its own
    s.update(claim(3), "claim 3")  # the next push carries it
    assert sorted(r["metric_id"] for r in origin_state(repo)["runs"]) == [1, 2, 3]
    tip = origin_tip(repo)
    s.defer(claim(1), "claim 1 again")  # refused (1 is claimed): only its own change is dropped
    s.defer(claim(4), "claim 4")
    s.flush()
    assert sorted(r["metric_id"] for r in origin_state(repo)["runs"]) == [1, 2, 3, 4]
    tip = origin_tip(repo)
    s.flush()  # nothing waiting: no push
    assert origin_tip(repo) == tip


def test_a_deferred_change_is_not_the_company_an_update_waits_for(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two metrics at work, one update and one deferred change queued: the deferred change
    # is not the other metric's update, so the update still lingers for it.
    s = store(repo, activity=statestore.Activity(2))
    slept: list[float] = []
    real_sleep = statestore.time.sleep
    monkeypatch.setattr(statestore.time, "sleep", lambda t: slept.append(t) or real_sleep(t))
    s.defer(claim(1), "claim 1")
    s.update(claim(2), "claim 2", linger=statestore.END_LINGER)
    assert slept
    assert sorted(r["metric_id"] for r in origin_state(repo)["runs"]) == [1, 2]  # it went along

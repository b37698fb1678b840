"""The tool's memory between runs, in a ref on `origin` (`refs/cekura-gitops/state`).

Cekura's optimiser start is not idempotent and has no list endpoint, so we must remember
each run we start somewhere a fresh clone in the next scheduled job finds it. A ref on
the remote is that place: no extra service, visible with `git fetch`, and updatable by
compare-and-swap — every update is a commit whose parent is the state we read, pushed
with `--force-with-lease=<ref>:<that sha>`. When two runs race, exactly one push wins;
the loser re-reads and sees the winner's claim.

Without a remote (`sync --no-push` in a local repo) the same ref is kept locally and
swapped with `git update-ref <ref> <new> <old>`.
"""

from __future__ import annotations

import enum
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cekura_gitops.errors import GitError
from cekura_gitops.gitrepo import GitRepo, Identity

STATE_REF = "refs/cekura-gitops/state"
FETCHED_REF = "refs/cekura-gitops/fetched-state"
STATE_FILE = "state.json"
# The state ref as a fetch refspec that matches it when it exists and nothing when it does
# not (a pattern, not a name): it joins the other refs of one `git fetch`, and with
# `--prune` a ref deleted on the remote is dropped here too.
STATE_REFSPEC = f"+{STATE_REF}*:{FETCHED_REF}*"
# Version 2 keys everything by metric id (version 1 keyed it by slug, so a renamed metric
# looked unclaimed and was optimised twice). Its `runs` and `last` are lists: a version-1
# tool, which reads them as mappings, stops with an error instead of mistaking an id for
# an unknown slug and starting a second optimisation.
VERSION = 2
LINGER = 0.02  # seconds a flush waits for more updates to join it
# Updates at the end of a metric's run (the check that the run is still ours, its branch,
# its finish) wait longer for other metrics' to join: runs that end together reach those
# steps a few tenths of a second apart, and a tenth of a second costs a run nothing. A
# run's record never waits this long: it is pushed the moment its start returns.
END_LINGER = 0.1
# At most this long a flush of claims waits for the metrics still checking their live
# metric (one GET each), so that a batch of metrics is claimed in one push; a slow GET
# delays the others' starts by no more than this. A branch push waits as long at most for
# the metrics whose runs have ended (Activity.ending) to join it.
GATHER_LIMIT = 1.0


@dataclass(frozen=True)
class Claim:
    """One optimisation of ours: claimed (no progress id yet), or recorded (started, with
    its progress id). Stored under the JSON key `runs`, as every version has written it."""

    metric_id: int
    claimed_at: float
    owner: str
    progress_id: str | None = None
    started_at: float | None = None
    fingerprint: str | None = None
    slug: str | None = None  # the slug when claimed: for humans reading the ref

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Claim:
        return cls(
            metric_id=int(data["metric_id"]),
            claimed_at=float(data["claimed_at"]),
            owner=str(data.get("owner", "")),
            progress_id=data.get("progress_id"),
            started_at=data.get("started_at"),
            fingerprint=data.get("fingerprint"),
            slug=data.get("slug"),
        )


@dataclass(frozen=True)
class LastOptimisation:
    """What the metric's last completed optimisation saw, for feedback gating.

    `slugs` are every slug the metric had when one of its runs ended: its bot branches
    are named after them, so a proposal rejected under an old name is still found.
    """

    fingerprint: str | None
    completed_at: float
    outcome: str
    progress_id: str | None = None
    slugs: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        doc = {k: v for k, v in self.__dict__.items() if v is not None and k != "slugs"}
        if self.slugs:
            doc["slugs"] = list(self.slugs)
        return doc

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LastOptimisation:
        return cls(
            fingerprint=data.get("fingerprint"),
            completed_at=float(data.get("completed_at", 0)),
            outcome=str(data.get("outcome", "")),
            progress_id=data.get("progress_id"),
            slugs=tuple(str(s) for s in data.get("slugs", ())),
        )

    def with_slugs(self, *slugs: str) -> LastOptimisation:
        """This memory, also naming `slugs` (in first-seen order, no repeats)."""
        merged = tuple(dict.fromkeys((*self.slugs, *slugs)))
        return self if merged == self.slugs else replace(self, slugs=merged)


@dataclass(frozen=True)
class State:
    """Claims and memories by metric id: a rename changes the slug, never the id."""

    claims: dict[int, Claim] = field(default_factory=dict)
    last: dict[int, LastOptimisation] = field(default_factory=dict)
    # Version-1 memories whose slug no metric file has (yet): kept, not lost, until a
    # file with that slug names their id.
    legacy_last: dict[str, LastOptimisation] = field(default_factory=dict)
    # The last commit `apply` deployed completely: the next apply starts there, so a push
    # whose own run was dropped (concurrency groups keep one pending run) is not skipped.
    applied: str | None = None

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "version": VERSION,
            "runs": [v.to_json() for _, v in sorted(self.claims.items())],
            "last": [{"metric_id": k, **v.to_json()} for k, v in sorted(self.last.items())],
        }
        if self.legacy_last:
            doc["legacy_last"] = {k: v.to_json() for k, v in sorted(self.legacy_last.items())}
        if self.applied:
            doc["applied"] = self.applied
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes | None, aliases: Mapping[str, int] | None = None) -> State:
        """Parse state.json (either version); `aliases` (slug -> id, from the metric files)
        moves slug-keyed version-1 memories to their metric id."""
        if not data:
            return cls()
        try:
            doc = json.loads(data)
            version = int(doc.get("version", 1))
            if version > VERSION:
                raise GitError(
                    f"{STATE_REF} was written by a newer cekura-gitops (state version {version}); "
                    "upgrade cekura-gitops before running it against this repository"
                )
            state = _from_v1(doc) if version == 1 else _from_v2(doc)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise GitError(
                f"{STATE_REF} holds an unreadable state.json ({err}); inspect it with "
                f"`git show {STATE_REF}:{STATE_FILE}` before deleting the ref"
            ) from None
        return state.resolve(aliases or {})

    def resolve(self, aliases: Mapping[str, int]) -> State:
        """Move slug-keyed memories whose slug a metric file names to that file's id."""
        found = {slug: last for slug, last in self.legacy_last.items() if slug in aliases}
        if not found:
            return self
        lasts = dict(self.last)
        for slug, last in sorted(found.items()):
            lasts[aliases[slug]] = _newer(lasts.get(aliases[slug]), last.with_slugs(slug))
        legacy = {k: v for k, v in self.legacy_last.items() if k not in found}
        return replace(self, last=lasts, legacy_last=legacy)


def _from_v2(doc: dict[str, Any]) -> State:
    claims = [Claim.from_json(r) for r in doc.get("runs", [])]
    return State(
        claims={c.metric_id: c for c in claims},
        last={int(d["metric_id"]): LastOptimisation.from_json(d) for d in doc.get("last", [])},
        legacy_last={str(k): LastOptimisation.from_json(v) for k, v in doc.get("legacy_last", {}).items()},
        applied=doc.get("applied"),
    )


def _from_v1(doc: dict[str, Any]) -> State:
    """Version 1 keyed by slug. Its run records carry their metric id, so every claim
    moves to its id; two slugs of one id (a rename) keep the record that has a run."""
    claims: dict[int, Claim] = {}
    for slug, data in doc.get("runs", {}).items():
        record = Claim.from_json(data)
        record = record if record.slug else replace(record, slug=str(slug))
        claims[record.metric_id] = _stronger(claims.get(record.metric_id), record)
    return State(
        claims=claims,
        legacy_last={str(k): LastOptimisation.from_json(v) for k, v in doc.get("last", {}).items()},
        applied=doc.get("applied"),
    )


def _stronger(a: Claim | None, b: Claim) -> Claim:
    """Of two records for one id, the one to keep: a started run beats a bare claim,
    then the later one (its run is the one most likely still going)."""
    if a is None:
        return b
    return max(a, b, key=lambda r: (r.progress_id is not None, r.started_at or 0.0, r.claimed_at))


def _newer(a: LastOptimisation | None, b: LastOptimisation) -> LastOptimisation:
    if a is None:
        return b
    kept = max(a, b, key=lambda r: r.completed_at)
    return kept.with_slugs(*(b if kept is a else a).slugs)


class Conflict(Exception):
    """Raised by a mutator to abort an update (e.g. the metric is already claimed)."""


class Landing(enum.Enum):
    """What became of one guarded ref update (StateStore.push_guarded)."""

    LANDED = "landed"
    MOVED = "moved"  # its own lease failed: the ref moved under us
    REFUSED = "refused"  # its condition on the state no longer holds (e.g. the run was taken over)


@dataclass(frozen=True)
class GuardedUpdate:
    """A ref update (a bot branch) that may land only while the state allows it.

    `holds(state)` says why not (e.g. who took the run over), or None if it may. `then`
    changes the state in the same atomic push: it lands with the ref or not at all (a
    run's finish, when nothing is left to do once its branch is out: one push, not two).
    """

    sha: str
    ref: str
    expected: str | None
    holds: Callable[[State], str | None] | None = None
    then: Callable[[State], State] | None = None


@dataclass(frozen=True)
class GuardedResult:
    landing: Landing
    reason: str = ""


class Gathering:
    """The metrics of one sync that may still claim: a flush of claims waits until each has
    queued its claim or dropped out (`done`), so their claims go out in one push."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._pending = set(keys)
        self._cond = threading.Condition()

    def done(self, key: str) -> None:
        """`key` will not claim (any more) before its claim is queued, or at all."""
        with self._cond:
            self._pending.discard(key)
            if not self._pending:
                self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        """True once every metric is done (within timeout)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending, timeout)


class Activity:
    """How many of one sync's metrics are still at work. An update (or a branch push) that
    waits for others to join its push stops waiting once every metric still at work has
    queued: the only one, or the last to arrive, goes at once instead of sleeping out its
    linger for company that cannot come.

    It also knows which metrics' runs have ended and whose branches are still being
    written (`ending` .. `ended`): a branch push waits for those, which reach it within a
    moment however far apart their runs' ends were noticed, and not for runs still going.
    """

    def __init__(self, count: int) -> None:
        self._count = count
        self._ending: set[str] = set()
        self._lock = threading.Lock()

    def done(self) -> None:
        """One metric is through: it queues nothing more."""
        with self._lock:
            self._count -= 1

    def all_queued(self, queued: int) -> bool:
        return queued >= self._count

    def ending(self, key: str) -> None:
        """`key`'s run has ended: its branch push is on its way."""
        with self._lock:
            self._ending.add(key)

    def ended(self, key: str) -> None:
        """`key`'s branch is pushed, or will not be (no change, an error, a long re-scoring)."""
        with self._lock:
            self._ending.discard(key)

    def more_ending(self, queued: int) -> bool:
        """Whether a metric whose run has ended has yet to queue its push (`queued` are in)."""
        with self._lock:
            return len(self._ending) > queued


@dataclass
class _Pending:
    mutate: Callable[[State], State]
    message: str
    # A claim that waits for the other metrics' claims (Gathering) before it is pushed.
    gather: bool = False
    # Confirm on the remote that the state is still the one the mutator saw, even if it
    # changes nothing (a leased no-op push): the compare-and-swap then says whether
    # anyone else moved the ref, without a fetch.
    confirm: bool = False
    linger: float = LINGER
    # Goes out with whatever is pushed next (StateStore.defer); nobody waits for it.
    deferred: bool = False
    queued: float = field(default_factory=time.monotonic)
    done: bool = False
    result: State | None = None
    error: BaseException | None = None


class StateStore:
    """Read and compare-and-swap the state ref; thread-safe within one process.

    Reads are served from the last state this process saw (fetched once, then kept up to
    date by its own pushes): the compare-and-swap, not the read, is what guarantees
    correctness, since a stale view only makes a push lose its lease and re-read.
    Updates that queue while a push is in flight go out together in one commit (group
    commit), so N concurrent metrics cost far fewer than N round trips; the claims of a
    sync's metrics wait for each other (Gathering), and a check that the state is still
    what we saw is a leased no-op push, not a fetch.
    """

    def __init__(
        self,
        repo: GitRepo,
        remote: str | None,
        identity: Identity,
        *,
        attempts: int = 20,
        aliases: Mapping[str, int] | None = None,
        gathering: Gathering | None = None,
        activity: Activity | None = None,
    ) -> None:
        """`aliases` (slug -> metric id, from the metric files) migrates version-1 memories;
        `gathering` lets claims wait for each other (one push for a batch of metrics);
        `activity` ends a linger once every metric still at work has queued."""
        self._gathering = gathering
        self._activity = activity
        self._repo = repo
        self._aliases = dict(aliases or {})
        self._remote = remote
        self._identity = identity
        self._attempts = attempts
        self._lock = threading.Lock()  # one flusher at a time
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._cached: tuple[State, str | None] | None = None

    def _read(self) -> tuple[State, str | None]:
        if self._remote:
            tip = self._repo.fetch_optional(self._remote, STATE_REF, FETCHED_REF)
        else:
            tip = self._repo.rev_parse(STATE_REF)
        data = self._repo.show_file(tip, STATE_FILE) if tip else None
        self._cached = (State.from_bytes(data, self._aliases), tip)
        return self._cached

    def prime(self) -> None:
        """Take the state from a fetch already made with STATE_REFSPEC (sync fetches it
        with everything else it reads), instead of fetching it again."""
        tip = self._repo.rev_parse(FETCHED_REF if self._remote else STATE_REF)
        data = self._repo.show_file(tip, STATE_FILE) if tip else None
        with self._lock:
            self._cached = (State.from_bytes(data, self._aliases), tip)

    def _current(self) -> tuple[State, str | None]:
        return self._cached if self._cached is not None else self._read()

    def load(self, *, fresh: bool = False) -> State:
        """The state as this process last saw it (`fresh`: fetch it again first).

        Served without waiting for a flush in progress: the view may be a push behind,
        which the compare-and-swap in `update` makes harmless.
        """
        cached = self._cached
        if cached is not None and not fresh:
            return cached[0]
        with self._lock:
            return (self._read() if fresh else self._current())[0]

    def update(
        self,
        mutate: Callable[[State], State],
        message: str,
        *,
        claim: str | None = None,
        confirm: bool = False,
        linger: float = LINGER,
    ) -> State:
        """Apply mutate to the latest state and publish it; retry when another run won.

        A mutator that raises (e.g. Conflict) fails only its own caller. `claim` (the
        metric's key in the Gathering) waits for the other metrics' claims; `confirm`
        makes sure the remote still holds the state the mutator saw, even when it
        changes nothing (a leased no-op push, not a fetch). `linger`: how long this update
        may wait for others to join its push.
        """
        mine = _Pending(mutate, message, gather=claim is not None, confirm=confirm, linger=linger)
        with self._queue_lock:
            self._queue.append(mine)
        if claim is not None and self._gathering is not None:
            self._gathering.done(claim)
        with self._lock:
            if not mine.done:
                self._linger()
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._flush(batch)
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result

    def defer(self, mutate: Callable[[State], State], message: str) -> None:
        """Queue a change that needs no push of its own, and return at once: it goes out
        with the next update's push, or with `flush`. For changes whose loss only costs
        the next run some work (a run's finish, once its pull request is open: the next
        sync resumes the run, reads its result and finds the pull request); a mutator that
        raises (Conflict) drops only its own change."""
        with self._queue_lock:
            self._queue.append(_Pending(mutate, message, deferred=True))

    def flush(self) -> None:
        """Push the deferred changes still waiting, if any (one push for all of them)."""
        with self._queue_lock:
            waiting = any(p.deferred for p in self._queue)
        if waiting:
            self.update(lambda state: state, "deferred changes")

    def _linger(self) -> None:
        """Let updates from other metrics' threads join this push: they tend to arrive
        together (claims at the start, finishes at the end). A batch of claims waits for
        the metrics still checking (at most GATHER_LIMIT); anything else waits its own
        `linger` at most, so a run's record goes out the moment its start returns, and
        nothing waits once every metric still at work has queued (`activity`)."""
        gather_until = time.monotonic() + GATHER_LIMIT
        first = True
        while True:
            with self._queue_lock:
                queue = [p for p in self._queue if not p.deferred]  # they wait for company
            if self._activity is not None and self._activity.all_queued(len(queue)):
                return
            if first:
                time.sleep(LINGER)
                first = False
                continue
            now = time.monotonic()
            if queue and all(p.gather for p in queue):
                if self._gathering is None or now >= gather_until or self._gathering.wait(0.01):
                    return
                continue
            due = min((p.queued + p.linger for p in queue), default=now)
            if now >= due:
                return
            time.sleep(min(0.01, due - now))

    def _flush(self, batch: list[_Pending]) -> None:
        try:
            for attempt in range(self._attempts):
                state, tip = self._current()
                new = state
                results: list[tuple[_Pending, State | None, BaseException | None]] = []
                for pending in batch:
                    try:
                        new = pending.mutate(new)
                        results.append((pending, new, None))
                    except Conflict as err:
                        results.append((pending, None, err))
                unchanged = new == state and not any(p.confirm for p, _r, e in results if e is None)
                if unchanged or self._publish(new, tip, batch):
                    for pending, result, error in results:
                        pending.result, pending.error, pending.done = result, error, True
                    return
                self._cached = None  # lost the lease: read the winner's state and retry
                time.sleep(min(0.05 * (attempt + 1), 0.5))
            raise GitError(
                f"could not update {STATE_REF} after {self._attempts} attempts: another run keeps "
                "changing it; try again when it has finished"
            )
        except BaseException as err:
            for pending in batch:
                if not pending.done:
                    pending.error, pending.done = err, True

    def _publish(self, new: State, tip: str | None, batch: list[_Pending]) -> bool:
        if new == self._current()[0]:
            return self._confirm(tip)
        message = (
            batch[0].message
            if len(batch) == 1
            else f"{len(batch)} updates: " + "; ".join(p.message for p in batch)
        )
        sha = self._repo.commit_files(tip, {STATE_FILE: new.to_bytes()}, message[:500], self._identity)
        if self._remote:
            ok = self._repo.push_cas(self._remote, sha, STATE_REF, tip)
        else:
            ok = self._repo.update_local_ref(STATE_REF, sha, tip)
        if ok:
            self._cached = (new, sha)
        return ok

    def push_guarded(self, updates: Sequence[GuardedUpdate]) -> dict[str, GuardedResult]:
        """Push `updates` in one atomic push with the state ref, leased on the state each
        `holds` approved (a no-op unless a `then` changes it): they land only if the state
        is still that one. The check that a run is still ours and its branch then cost one
        round trip, not two, and no branch of a run taken over lands. Someone else moving
        the state ref costs a re-read and a retry; a ref whose own lease failed is MOVED,
        and the others are pushed again without it.
        """
        assert self._remote is not None
        results: dict[str, GuardedResult] = {}
        with self._lock:  # none of this process's state pushes moves the tip meanwhile
            pending = list(updates)
            for attempt in range(self._attempts):
                state, tip = self._current()
                going = []
                for update in pending:
                    why = update.holds(state) if update.holds is not None else None
                    if why is None:
                        going.append(update)
                    else:
                        results[update.ref] = GuardedResult(Landing.REFUSED, why)
                if not going:
                    return results
                refs = [(u.sha, u.ref, u.expected) for u in going]
                changed = self._changed_with(state, tip, going)
                if changed is not None:
                    refs.append((changed[1], STATE_REF, tip))
                elif tip is not None and any(u.holds is not None for u in going):
                    refs.append((tip, STATE_REF, tip))
                stale = set(self._repo.push_atomic(self._remote, refs))
                if not stale and changed is not None:
                    self._cached = changed
                for update in going:
                    if not stale:
                        results[update.ref] = GuardedResult(Landing.LANDED)
                    elif update.ref in stale:
                        results[update.ref] = GuardedResult(Landing.MOVED)
                pending = [u for u in going if stale and u.ref not in stale]
                if not pending:
                    return results
                if STATE_REF in stale:
                    self._cached = None  # someone moved the state: read it and look again
                    time.sleep(min(0.05 * (attempt + 1), 0.5))
        raise GitError(
            f"could not update bot branches guarded by {STATE_REF} after {self._attempts} attempts: "
            "another run keeps changing it; try again when it has finished"
        )

    def _changed_with(
        self, state: State, tip: str | None, going: Sequence[GuardedUpdate]
    ) -> tuple[State, str] | None:
        """The state the updates' `then`s make, committed on tip; None if they change nothing."""
        new = state
        for update in going:
            if update.then is not None:
                new = update.then(new)
        if new == state:
            return None
        message = f"{sum(u.then is not None for u in going)} run(s) done, with their branches"
        return new, self._repo.commit_files(tip, {STATE_FILE: new.to_bytes()}, message, self._identity)

    def _confirm(self, tip: str | None) -> bool:
        """Is the ref still at tip? A push of tip leased on tip: "up to date" if so,
        refused if anyone moved it (one round trip, like a fetch, and no download)."""
        if tip is None:  # nothing to lease on: look
            return self._read()[1] is None
        if self._remote:
            return self._repo.push_cas(self._remote, tip, STATE_REF, tip)
        return self._repo.rev_parse(STATE_REF) == tip

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

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cekura_gitops.errors import GitError
from cekura_gitops.gitrepo import GitRepo, Identity

STATE_REF = "refs/cekura-gitops/state"
FETCHED_REF = "refs/cekura-gitops/fetched-state"
STATE_FILE = "state.json"
VERSION = 1
LINGER = 0.02  # seconds a flush waits for more updates to join it


@dataclass(frozen=True)
class RunRecord:
    """One optimisation of ours: claimed (no progress id yet) or running."""

    metric_id: int
    claimed_at: float
    owner: str
    progress_id: str | None = None
    started_at: float | None = None
    fingerprint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        return cls(
            metric_id=int(data["metric_id"]),
            claimed_at=float(data["claimed_at"]),
            owner=str(data.get("owner", "")),
            progress_id=data.get("progress_id"),
            started_at=data.get("started_at"),
            fingerprint=data.get("fingerprint"),
        )


@dataclass(frozen=True)
class LastRun:
    """What the last completed run of a metric saw, for feedback gating."""

    fingerprint: str | None
    completed_at: float
    outcome: str
    progress_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LastRun:
        return cls(
            fingerprint=data.get("fingerprint"),
            completed_at=float(data.get("completed_at", 0)),
            outcome=str(data.get("outcome", "")),
            progress_id=data.get("progress_id"),
        )


@dataclass(frozen=True)
class State:
    runs: dict[str, RunRecord] = field(default_factory=dict)
    last: dict[str, LastRun] = field(default_factory=dict)
    # The last commit `apply` deployed completely: the next apply starts there, so a push
    # whose own run was dropped (concurrency groups keep one pending run) is not skipped.
    applied: str | None = None

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "version": VERSION,
            "runs": {k: v.to_json() for k, v in sorted(self.runs.items())},
            "last": {k: v.to_json() for k, v in sorted(self.last.items())},
        }
        if self.applied:
            doc["applied"] = self.applied
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> State:
        if not data:
            return cls()
        try:
            doc = json.loads(data)
            return cls(
                runs={k: RunRecord.from_json(v) for k, v in doc.get("runs", {}).items()},
                last={k: LastRun.from_json(v) for k, v in doc.get("last", {}).items()},
                applied=doc.get("applied"),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise GitError(
                f"{STATE_REF} holds an unreadable state.json ({err}); inspect it with "
                f"`git show {STATE_REF}:{STATE_FILE}` before deleting the ref"
            ) from None


class Conflict(Exception):
    """Raised by a mutator to abort an update (e.g. the metric is already claimed)."""


@dataclass
class _Pending:
    mutate: Callable[[State], State]
    message: str
    done: bool = False
    result: State | None = None
    error: BaseException | None = None


class StateStore:
    """Read and compare-and-swap the state ref; thread-safe within one process.

    Reads are served from the last state this process saw (fetched once, then kept up to
    date by its own pushes): the compare-and-swap, not the read, is what guarantees
    correctness, since a stale view only makes a push lose its lease and re-read.
    Updates that queue while a push is in flight go out together in one commit (group
    commit), so N concurrent metrics cost far fewer than N round trips.
    """

    def __init__(self, repo: GitRepo, remote: str | None, identity: Identity, *, attempts: int = 20) -> None:
        self._repo = repo
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
        self._cached = (State.from_bytes(data), tip)
        return self._cached

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

    def update(self, mutate: Callable[[State], State], message: str) -> State:
        """Apply mutate to the latest state and publish it; retry when another run won.

        A mutator that raises (e.g. Conflict) fails only its own caller.
        """
        mine = _Pending(mutate, message)
        with self._queue_lock:
            self._queue.append(mine)
        with self._lock:
            if not mine.done:
                # Linger a moment so that updates from other metrics' threads (which tend to
                # arrive together: claims at the start, finishes at the end) share one push.
                time.sleep(LINGER)
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._flush(batch)
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result

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
                if new == state or self._publish(new, tip, batch):
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

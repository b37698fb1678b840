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


class StateStore:
    """Read and compare-and-swap the state ref; thread-safe within one process."""

    def __init__(self, repo: GitRepo, remote: str | None, identity: Identity, *, attempts: int = 20) -> None:
        self._repo = repo
        self._remote = remote
        self._identity = identity
        self._attempts = attempts
        self._lock = threading.Lock()

    def _read(self) -> tuple[State, str | None]:
        if self._remote:
            tip = self._repo.fetch_optional(self._remote, STATE_REF, FETCHED_REF)
        else:
            tip = self._repo.rev_parse(STATE_REF)
        data = self._repo.show_file(tip, STATE_FILE) if tip else None
        return State.from_bytes(data), tip

    def load(self) -> State:
        with self._lock:
            return self._read()[0]

    def update(self, mutate: Callable[[State], State], message: str) -> State:
        """Apply mutate to the latest state and publish it; retry when another run won."""
        with self._lock:
            for attempt in range(self._attempts):
                state, tip = self._read()
                new = mutate(state)
                if new == state:
                    return state
                sha = self._repo.commit_files(tip, {STATE_FILE: new.to_bytes()}, message, self._identity)
                if self._remote:
                    ok = self._repo.push_cas(self._remote, sha, STATE_REF, tip)
                else:
                    ok = self._repo.update_local_ref(STATE_REF, sha, tip)
                if ok:
                    return new
                time.sleep(min(0.05 * (attempt + 1), 0.5))
        raise GitError(
            f"could not update {STATE_REF} after {self._attempts} attempts: another run keeps "
            "changing it; try again when it has finished"
        )

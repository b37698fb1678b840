"""Write one file onto a bot branch cut from the default branch, safely.

- The branch is always rebuilt on the current default branch (like Renovate), so its
  diff shows only the proposal.
- A branch holding a commit by anyone but the bot identity belongs to a human now: we
  stop touching it ("human edits win").
- Pushes carry `--force-with-lease=<branch>:<tip we inspected>` ("absent" for a new
  branch), so a commit that lands between our check and our push is never overwritten,
  and a branch deleted meanwhile is noticed and recreated instead of reported as there.
- Re-writing the same content on the same base makes no new commit.
- With `git: {commit_via: api}` the commit is made by GitHub (apicommits.py), and commits
  GitHub authored for the bot's login count as the bot's.
- A write may carry a condition on the state ref (`holds`: the run is still ours): the
  branch then goes out in one atomic push with the state ref, leased on the state that
  allowed it (StateStore.push_guarded), so a run taken over by another sync never lands its
  branch. The same push can carry the run's finish (`finish`), when nothing follows it.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cekura_gitops.errors import GitError
from cekura_gitops.gitrepo import CommitInfo, GitRepo, Identity
from cekura_gitops.statestore import (
    END_LINGER,
    GATHER_LIMIT,
    Activity,
    GuardedUpdate,
    Landing,
    State,
    StateStore,
)

WRITE_ATTEMPTS = 3  # a lost lease is retried on a fresh look; a branch in a push war is left

if TYPE_CHECKING:
    from cekura_gitops.apicommits import ApiCommitter


class BranchStatus(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    HUMAN_EDITED = "human-edited"
    MOVED = "moved"  # the lease failed: someone pushed while we worked
    TAKEN_OVER = "taken-over"  # `holds` refused: the run is another sync's now; nothing pushed


@dataclass(frozen=True)
class BranchResult:
    status: BranchStatus
    branch: str
    sha: str | None
    human_commits: tuple[CommitInfo, ...] = ()
    detail: str = ""  # TAKEN_OVER: why the state refused the write


@dataclass
class _Push:
    sha: str
    ref: str
    expected: str | None
    holds: Callable[[State], str | None] | None = None
    then: Callable[[State], State] | None = None
    result: bool | None = None
    refused: str | None = None
    error: GitError | None = None


@dataclass(frozen=True)
class _Write:
    """One write's request: content for path on branch, cut from base."""

    branch: str
    base: str
    path: str
    content: bytes
    message: str
    holds: Callable[[State], str | None] | None
    # The state change that lands with the branch (given what the write did to it).
    finish: Callable[[BranchStatus], Callable[[State], State]] | None = None

    def then(self, status: BranchStatus) -> Callable[[State], State] | None:
        return self.finish(status) if self.finish is not None else None


class _Refused(Exception):
    """The state refused a guarded write (its `holds` said why)."""


class BranchWriter:
    def __init__(
        self,
        repo: GitRepo,
        identity: Identity,
        remote: str | None,
        *,
        committer: ApiCommitter | None = None,
        bot_login: str | None = None,
        state: StateStore | None = None,
        activity: Activity | None = None,
    ) -> None:
        """`state`: the store whose ref guarded writes are pushed with (atomically);
        `activity`: a push stops waiting for others once every metric at work has queued."""
        self._activity = activity
        self._repo = repo
        self._identity = identity
        self._remote = remote  # None: local branches only (--no-push)
        # commit_via: api — GitHub makes the commits, authored by `bot_login`.
        self._committer = committer if remote else None
        self._bot_login = bot_login
        self._state = state if remote and committer is None else None
        self._primed: dict[str, str] | None = None
        self._seen: set[str] = set()
        self._primed_lock = threading.Lock()
        self._push_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Push] = []

    @property
    def guards(self) -> bool:
        """Whether a write's `holds` is checked in the push itself (git pushes to a remote):
        with GitHub's API committing, or locally, the caller must check before writing."""
        return self._state is not None

    def refspecs(self, prefix: str) -> list[str]:
        """What to fetch (with --prune) before `prime`: every bot branch."""
        return [f"+refs/heads/{prefix}/*:refs/remotes/{self._remote}/{prefix}/*"] if self._remote else []

    def prime(self, prefix: str) -> None:
        """Learn every bot branch's tip from a fetch of `refspecs` (one for all of them,
        instead of one or two per metric)."""
        if self._remote:
            refs = self._repo.refs(f"refs/remotes/{self._remote}/{prefix}/")
            strip = f"refs/remotes/{self._remote}/"
        else:
            refs = self._repo.refs(f"refs/heads/{prefix}/")
            strip = "refs/heads/"
        self._primed = {name[len(strip) :]: sha for name, sha in refs.items()}

    def _push(
        self,
        sha: str,
        ref: str,
        expected: str | None,
        holds: Callable[[State], str | None] | None,
        then: Callable[[State], State] | None = None,
    ) -> bool:
        """Push with a lease; pushes that queue up meanwhile go out in one git push (metrics
        finishing together would otherwise start one git push each on a small runner).
        Raises _Refused when the state refused a guarded push."""
        assert self._remote is not None
        guarded = self._state is not None
        mine = _Push(sha, ref, expected, holds if guarded else None, then if guarded else None)
        with self._queue_lock:
            self._queue.append(mine)
        with self._push_lock:
            if mine.result is None:
                self._linger()
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    self._flush(batch)
                except GitError as err:
                    for p in batch:
                        p.error = err
                        p.result = False
        if mine.error is not None:
            raise mine.error
        if mine.refused is not None:
            raise _Refused(mine.refused)
        return bool(mine.result)

    def _linger(self) -> None:
        """Wait for other metrics' pushes to join this one: END_LINGER at most, or up to
        GATHER_LIMIT while metrics whose runs have ended are still on their way to it."""
        start = time.monotonic()
        while True:
            with self._queue_lock:
                queued = len(self._queue)
            activity, waited = self._activity, time.monotonic() - start
            if activity is not None and activity.all_queued(queued):
                return
            if waited >= GATHER_LIMIT:
                return
            if waited >= END_LINGER and not (activity is not None and activity.more_ending(queued)):
                return
            time.sleep(0.005)

    def _flush(self, batch: list[_Push]) -> None:
        assert self._remote is not None
        if self._state is None or all(p.holds is None and p.then is None for p in batch):
            results = self._repo.push_many(self._remote, [(p.sha, p.ref, p.expected) for p in batch])
            for p in batch:
                p.result = results[p.ref]
            return
        landed = self._state.push_guarded(
            [GuardedUpdate(p.sha, p.ref, p.expected, p.holds, p.then) for p in batch]
        )
        for p in batch:
            outcome = landed[p.ref]
            p.result = outcome.landing is Landing.LANDED
            if outcome.landing is Landing.REFUSED:
                p.refused = outcome.reason

    def tip(self, branch: str) -> str | None:
        # A primed tip serves the first look only; every later look (after a lost lease,
        # say) asks the remote again.
        with self._primed_lock:
            if self._primed is not None and branch not in self._seen:
                self._seen.add(branch)
                return self._primed.get(branch)
        ref = f"refs/heads/{branch}"
        if self._remote:
            return self._repo.fetch_optional(self._remote, ref, f"refs/remotes/{self._remote}/{branch}")
        return self._repo.rev_parse(ref)

    def human_commits(self, base: str, tip: str) -> tuple[CommitInfo, ...]:
        return tuple(c for c in self._repo.commits_between(base, tip) if not self._is_bot(c))

    def _is_bot(self, c: CommitInfo) -> bool:
        bot = self._identity.email.lower()
        if c.author_email.lower() == bot and c.committer_email.lower() == bot:
            return True
        # Either mode's commits are the bot's, so switching commit_via strands no branch.
        from cekura_gitops.apicommits import is_api_bot_commit

        return self._bot_login is not None and is_api_bot_commit(
            c.author_email, c.committer_email, self._bot_login
        )

    def write(
        self,
        branch: str,
        base: str,
        path: str,
        content: bytes,
        message: str,
        *,
        holds: Callable[[State], str | None] | None = None,
        finish: Callable[[BranchStatus], Callable[[State], State]] | None = None,
    ) -> BranchResult:
        """Put content on branch, cut from base. Every outcome is confirmed by a leased push
        against the tip we inspected, even "unchanged": the tip may be stale (read when the
        run started), and a branch deleted meanwhile must be recreated, not reported.
        `holds` (checked in the push when `guards`): TAKEN_OVER, nothing pushed, if it
        refuses. `finish(status)` (when `guards`): a state change that lands in the same
        push as the branch, given the status the write will report."""
        tip = self.tip(branch)
        try:
            return self._write(_Write(branch, base, path, content, message, holds, finish), tip)
        except _Refused as refused:
            return BranchResult(BranchStatus.TAKEN_OVER, branch, tip, detail=str(refused))

    def _write(self, w: _Write, tip: str | None) -> BranchResult:
        branch, base, path, content, holds = w.branch, w.base, w.path, w.content, w.holds
        for _attempt in range(WRITE_ATTEMPTS):
            if tip is not None:
                humans = self.human_commits(base, tip)
                if humans:
                    return BranchResult(BranchStatus.HUMAN_EDITED, branch, tip, humans)
            same = (
                tip is not None
                and self._repo.show_file(tip, path) == content
                and self._repo.is_ancestor(base, tip)
            )
            status = (
                BranchStatus.UNCHANGED
                if same
                else BranchStatus.CREATED
                if tip is None
                else BranchStatus.UPDATED
            )
            if same and tip is not None:
                sha: str | None = tip
                ok = self._confirm(branch, tip, holds, w.then(status))
            else:
                sha, ok = self._commit(w, tip, w.then(status))
            if ok and sha is not None:
                return BranchResult(status, branch, sha)
            # The lease lost: the branch moved or vanished since we looked. Look again; a
            # human's commit stops us above, a deletion is recreated, our own identical
            # write (two runs finishing one optimisation) confirms as unchanged.
            now = self.tip(branch)
            if now == tip:
                break  # refused for another reason that looking again will not change
            tip = now
        return BranchResult(BranchStatus.MOVED, branch, tip)

    def _confirm(
        self,
        branch: str,
        tip: str,
        holds: Callable[[State], str | None] | None,
        then: Callable[[State], State] | None,
    ) -> bool:
        """Leave branch at tip, confirming it is still there (a leased no-op update)."""
        if self._committer is not None:
            return self._committer.confirm(branch, tip)
        ref = f"refs/heads/{branch}"
        return (
            self._push(tip, ref, tip, holds, then)
            if self._remote
            else self._repo.update_local_ref(ref, tip, tip)
        )

    def _commit(
        self, w: _Write, tip: str | None, then: Callable[[State], State] | None
    ) -> tuple[str | None, bool]:
        """(new tip, True), or (None, False) when the branch moved under us."""
        if self._committer is not None:
            made = self._committer.commit(w.branch, w.base, {w.path: w.content}, w.message, tip)
            return (made.sha, True) if made is not None else (None, False)
        sha = self._repo.commit_files(w.base, {w.path: w.content}, w.message, self._identity)
        ref = f"refs/heads/{w.branch}"
        ok = (
            self._push(sha, ref, tip, w.holds, then)
            if self._remote
            else self._repo.update_local_ref(ref, sha, tip)
        )
        return sha, ok

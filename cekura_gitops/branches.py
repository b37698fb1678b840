"""Write one file onto a bot branch cut from the default branch, safely.

- The branch is always rebuilt on the current default branch (like Renovate), so its
  diff shows only the proposal.
- A branch holding a commit by anyone but the bot identity belongs to a human now: we
  stop touching it ("human edits win").
- Pushes carry `--force-with-lease=<branch>:<tip we inspected>`, so a commit that lands
  between our check and our push is never overwritten.
- Re-writing the same content on the same base makes no new commit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cekura_gitops.gitrepo import CommitInfo, GitRepo, Identity


class BranchStatus(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    HUMAN_EDITED = "human-edited"
    MOVED = "moved"  # the lease failed: someone pushed while we worked


@dataclass(frozen=True)
class BranchResult:
    status: BranchStatus
    branch: str
    sha: str | None
    human_commits: tuple[CommitInfo, ...] = ()


class BranchWriter:
    def __init__(self, repo: GitRepo, identity: Identity, remote: str | None) -> None:
        self._repo = repo
        self._identity = identity
        self._remote = remote  # None: local branches only (--no-push)

    def tip(self, branch: str) -> str | None:
        ref = f"refs/heads/{branch}"
        if self._remote:
            return self._repo.fetch_optional(self._remote, ref, f"refs/remotes/{self._remote}/{branch}")
        return self._repo.rev_parse(ref)

    def human_commits(self, base: str, tip: str) -> tuple[CommitInfo, ...]:
        bot = self._identity.email.lower()
        return tuple(
            c
            for c in self._repo.commits_between(base, tip)
            if c.author_email.lower() != bot or c.committer_email.lower() != bot
        )

    def write(self, branch: str, base: str, path: str, content: bytes, message: str) -> BranchResult:
        tip = self.tip(branch)
        if tip is not None:
            humans = self.human_commits(base, tip)
            if humans:
                return BranchResult(BranchStatus.HUMAN_EDITED, branch, tip, humans)
            if self._repo.show_file(tip, path) == content and self._repo.is_ancestor(base, tip):
                return BranchResult(BranchStatus.UNCHANGED, branch, tip)
        sha = self._repo.commit_files(base, {path: content}, message, self._identity)
        ref = f"refs/heads/{branch}"
        if self._remote:
            ok = self._repo.push_cas(self._remote, sha, ref, tip)
        else:
            ok = self._repo.update_local_ref(ref, sha, tip)
        if not ok:
            return BranchResult(BranchStatus.MOVED, branch, tip)
        return BranchResult(BranchStatus.CREATED if tip is None else BranchStatus.UPDATED, branch, sha)

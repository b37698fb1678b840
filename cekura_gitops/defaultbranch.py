"""Which branch is the repository's default branch: the one place that decides it.

Proposals are cut from it and `apply` records how far it deployed only for commits on it,
so a wrong or missing answer loses work silently. `refs/remotes/origin/HEAD` is never
consulted: actions/checkout does not create it, and in a clone it can be stale. Sources,
first answer wins:

1. the event payload (`repository.default_branch` in $GITHUB_EVENT_PATH), and for a
   `schedule` event `GITHUB_REF` (GitHub runs schedules on the default branch);
2. the settings (`git.default_branch` in cekura-gitops.yaml, CEKURA_GITOPS_DEFAULT_BRANCH);
3. the GitHub API, when the command has a client anyway;
4. the remote itself: `git ls-remote --symref <remote> HEAD`;
5. without a remote (a local repository): the branch checked out.
"""

from __future__ import annotations

from collections.abc import Callable

from cekura_gitops import actions
from cekura_gitops.errors import ConfigError, GitError
from cekura_gitops.gitrepo import GitRepo
from cekura_gitops.settings import Settings

HOW_TO_SET = (
    "set it with `git: {default_branch: main}` in cekura-gitops.yaml "
    "or the CEKURA_GITOPS_DEFAULT_BRANCH environment variable"
)


def from_event(settings: Settings) -> str | None:
    """What the runner says: the payload's repository, or a schedule's ref."""
    return actions.default_branch_from_event(
        settings.github_event_name, settings.github_event_path, settings.github_ref
    )


def default_branch(
    settings: Settings,
    repo: GitRepo,
    remote: str | None,
    *,
    api: Callable[[], str] | None = None,
) -> str:
    """The default branch, from the first source that answers (see the module docstring)."""
    found = from_event(settings) or settings.default_branch or (api() if api is not None else None)
    if found:
        return found
    if remote is None:
        current = repo.current_branch()
        if current:
            return current
        raise ConfigError(f"cannot tell the default branch (no remote, HEAD is detached): {HOW_TO_SET}")
    why = f"remote {remote!r} names no HEAD branch"
    try:
        found = repo.remote_head_branch(remote)
    except GitError as err:
        why = f"asking remote {remote!r} failed ({err})"
    if not found:
        raise ConfigError(f"cannot tell the default branch: {why}; {HOW_TO_SET}")
    return found

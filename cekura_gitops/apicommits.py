"""Bot commits through GitHub's Git Data API (`git: {commit_via: api}`), so GitHub signs them.

Organisations that require signed commits (a ruleset on all branches) reject the bot's
pushes. A commit GitHub creates itself for an App — requested without `author`,
`committer` or `signature` — is signed by GitHub and shows as Verified (github-notes §7):

    blobs → tree (on the base commit's tree) → commit → ref update

The ref update is the compare-and-swap that `git push --force-with-lease` gives in push
mode. The REST ref update has no "expected old sha"; it has fast-forward-only updates
(`force: false`), so the new commit takes the tip we inspected as a parent: the update then
succeeds only while the branch is still at that tip (or behind it), and a commit anyone
pushed meanwhile makes it fail instead of being overwritten. When the default branch moved,
the commit also takes the new base as its first parent (a merge), so the pull request's
diff still shows only the proposal. A new branch is created with `create-ref`, which fails
when someone created it first.
"""

from __future__ import annotations

from collections.abc import Mapping

from cekura_gitops.github import GitCommit, GitHubClient
from cekura_gitops.gitrepo import GitRepo

__all__ = ["GITHUB_COMMITTER_EMAIL", "ApiCommitter", "is_api_bot_commit"]

# GitHub commits what it creates for an App as "GitHub <noreply@github.com>".
GITHUB_COMMITTER_EMAIL = "noreply@github.com"


def is_api_bot_commit(author_email: str, committer_email: str, login: str) -> bool:
    """True for a commit GitHub created for `login` (e.g. "my-app[bot]") through the API.

    GitHub authors it as `<user id>+<login>@users.noreply.github.com` (the id is the bot
    user's, which the App's installation does not tell), and commits it as itself.
    """
    author = author_email.lower()
    suffix = f"{login.lower()}@users.noreply.github.com"
    by_bot = author == suffix or author.endswith("+" + suffix)
    return by_bot and committer_email.lower() in (author, GITHUB_COMMITTER_EMAIL)


class ApiCommitter:
    def __init__(self, client: GitHubClient, repo: GitRepo) -> None:
        self._client = client
        self._repo = repo

    def commit(
        self, branch: str, base: str, files: Mapping[str, bytes], message: str, expected: str | None
    ) -> GitCommit | None:
        """Point `branch` at a new commit: `base`'s tree with `files` replaced.

        `expected` is the tip we inspected (None: the branch must not exist). Returns the
        commit, or None when the branch moved meanwhile (nothing was overwritten).
        """
        blobs = {path: self._client.create_blob(data) for path, data in files.items()}
        tree = self._client.create_tree(self._repo.tree_of(base), blobs)
        if expected is None:
            parents = [base]
        elif self._repo.is_ancestor(base, expected):
            parents = [expected]
        else:
            parents = [base, expected]
        commit = self._client.create_commit(message=message, tree=tree, parents=parents)
        if expected is None:
            ok = self._client.create_ref(f"refs/heads/{branch}", commit.sha)
        else:
            ok = self._client.update_ref(f"heads/{branch}", commit.sha)
        return commit if ok else None

    def confirm(self, branch: str, tip: str) -> bool:
        """True when branch is still at tip (a no-op fast-forward update); False when it
        moved or is gone."""
        return self._client.update_ref(f"heads/{branch}", tip)

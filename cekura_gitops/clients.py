"""The clients a command builds at its edge, from Settings: Cekura, GitHub and git.

Commands build each once and pass it down; the services below take a client (or the few
settings values they need), never the whole Settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from cekura_gitops.cekura import CekuraClient
from cekura_gitops.github import GitHubClient
from cekura_gitops.githubaccess import access_for
from cekura_gitops.gitrepo import GitRepo
from cekura_gitops.settings import Settings


def cekura_client(settings: Settings, *, sleep: Callable[[float], None] | None = None) -> CekuraClient:
    """`sleep` replaces the client's waits between retries (sync: one a stop request ends)."""
    return CekuraClient(
        settings.cekura_api_url,
        settings.require_cekura_key(),
        timeout=settings.http_timeout,
        backoff_base=settings.http_backoff,
        deadline=settings.http_deadline,
        sleep=sleep or time.sleep,
    )


def github_client(settings: Settings, *, sleep: Callable[[float], None] | None = None) -> GitHubClient:
    """A GitHub client on the run's identity and write pacer (githubaccess.py).

    `sleep` replaces its waits before retries (sync: a wait that a stop request ends)."""
    return access_for(settings).client(sleep=sleep)


def github_clients(settings: Settings) -> Callable[[str], GitHubClient] | None:
    """GitHub clients on any repository (owner/name) with the configured token, for init and
    doctor, which may know the repository only from the git remote; None without a token."""
    if not settings.github_token:
        return None
    return lambda repository: github_client(replace(settings, github_repository=repository))


def git_repo(settings: Settings) -> GitRepo:
    """The repository at settings.root; with a GitHub App, git fetches and pushes with the
    App's renewing installation token (through git's credential channel only)."""
    repo = GitRepo(settings.root)
    if settings.uses_app and settings.github_configured:
        repo.use_credentials(access_for(settings).git_token(), settings.github_server_url)
    return repo

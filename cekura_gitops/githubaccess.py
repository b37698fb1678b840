"""One run's access to GitHub: which identity (App or token), one write pacer, the clients.

Every GitHub client of a run is built here, from the same `GitHubAccess`, so that they share
the App's renewing token source and the write pacer (GitHub's secondary limits count per
identity, not per client). git gets the same token through `git_token`, for its credential
channel only (see `GitRepo.use_credentials`).
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cekura_gitops.errors import ConfigError
from cekura_gitops.github import GitHubClient
from cekura_gitops.pacer import WritePacer
from cekura_gitops.settings import Settings

if TYPE_CHECKING:  # PyJWT loads only when an App is configured
    from cekura_gitops.githubapp import AppTokens

__all__ = ["ACTIONS_BOT", "GitHubAccess", "access_for", "close_all"]

ACTIONS_BOT = "github-actions[bot]"


@dataclass
class GitHubAccess:
    settings: Settings
    pacer: WritePacer
    app: AppTokens | None = None
    _token: Callable[[], str] = field(default=lambda: "", repr=False)
    _clients: list[GitHubClient] = field(default_factory=list, repr=False)

    @property
    def uses_app(self) -> bool:
        return self.app is not None

    def token(self) -> str:
        """The token for this request: the App's current installation token, or GITHUB_TOKEN."""
        return self._token()

    def client(self, *, sleep: Callable[[float], None] | None = None) -> GitHubClient:
        """A client on this identity and pacer; `sleep` replaces its waits before retries."""
        s = self.settings
        assert s.github_repository is not None
        client = GitHubClient(
            s.github_api_url,
            self._token if self.app is not None else (s.github_token or ""),
            s.github_repository,
            graphql_url=s.github_graphql_url,
            pacer=self.pacer,
            timeout=s.http_timeout,
            deadline=s.http_deadline,
            # Same knob as Cekura's client; at the default 0.5 s these are GitHub's own
            # defaults (1, 2, 4 s after a 5xx; 60 s and up after a secondary rate limit).
            backoff_base=2 * s.http_backoff,
            secondary_wait=120 * s.http_backoff,
        )
        self._clients.append(client)
        return client

    def git_token(self) -> Callable[[], str] | None:
        """What git's credential helper hands out: the App's token; None leaves git's own
        credentials (actions/checkout's) in charge, as before the App existed."""
        return self._token if self.app is not None else None

    def bot_login(self) -> str | None:
        """The login GitHub writes as author of commits it creates for us (commit_via: api)."""
        if self.app is not None:
            return f"{self.app.current().app_slug}[bot]"
        s = self.settings
        if s.github_token and s.actions_token and s.github_token == s.actions_token:
            return ACTIONS_BOT
        return None

    def describe(self) -> tuple[str, dict[str, str]]:
        """(who we are, the token's permissions when GitHub tells them) for `doctor`."""
        if self.app is not None:
            current = self.app.current()
            who = (
                f"GitHub App {current.app_slug!r} (id {self.settings.github_app_id}), installation "
                f"{current.installation_id} on {current.account}; token renewed in-process"
            )
            return who, dict(current.permissions)
        s = self.settings
        if s.github_actions and s.github_token == s.actions_token:
            return "the Actions GITHUB_TOKEN", {}
        return "GITHUB_TOKEN (a token given to the tool; it is not renewed)", {}

    def close(self) -> None:
        """Close every client built here (closing one twice is harmless)."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.app is not None:
            self.app.close()


_LOCK = threading.Lock()
_ACCESS: dict[int, tuple[weakref.ref[Settings], GitHubAccess]] = {}


def access_for(settings: Settings) -> GitHubAccess:
    """The run's access (one per Settings object: one invocation, one identity, one pacer)."""
    if not settings.github_configured:
        raise ConfigError(
            "set GITHUB_REPOSITORY (owner/name) and GITHUB_TOKEN, or a GitHub App "
            "(CEKURA_GITOPS_APP_ID and CEKURA_GITOPS_APP_PRIVATE_KEY), to talk to GitHub"
        )
    with _LOCK:
        for key in [k for k, (ref, _) in _ACCESS.items() if ref() is None]:
            del _ACCESS[key]
        found = _ACCESS.get(id(settings))
        if found is not None and found[0]() is settings:
            return found[1]
        access = _build(settings)
        _ACCESS[id(settings)] = (weakref.ref(settings), access)
        return access


def close_all() -> None:
    """End of a command: close every access (and its connections) this process opened."""
    with _LOCK:
        accesses = [access for _, access in _ACCESS.values()]
        _ACCESS.clear()
    for access in accesses:
        access.close()


def _build(settings: Settings) -> GitHubAccess:
    pacer = WritePacer(
        interval=settings.github_write_interval, per_hour=settings.pull_requests.writes_per_hour
    )
    if not settings.uses_app:
        token = settings.github_token or ""
        return GitHubAccess(settings, pacer, None, lambda: token)
    from cekura_gitops.githubapp import AppCredentials, AppTokens, load_private_key

    assert settings.github_app_id and settings.github_app_private_key and settings.github_repository
    credentials = AppCredentials(settings.github_app_id, load_private_key(settings.github_app_private_key))
    tokens = AppTokens(
        credentials,
        settings.github_api_url,
        settings.github_repository,
        pacer=pacer,
        on_mint=_masker(settings),
        client_options={"timeout": settings.http_timeout, "backoff_base": 2 * settings.http_backoff},
    )
    return GitHubAccess(settings, pacer, tokens, tokens.token)


def _masker(settings: Settings) -> Callable[[str], None]:
    def mask(token: str) -> None:
        if settings.github_actions:
            from cekura_gitops.actions import mask as mask_command

            # stderr: stdout may be a --json document; the runner reads commands from both.
            sys.stderr.write(mask_command(token) + "\n")

    return mask

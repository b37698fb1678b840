"""GitHub App authentication in-process: sign a JWT, find the installation, mint and renew
installation tokens for this one repository. The only module that imports PyJWT.

Why in-process: an installation token lasts one hour and cannot be extended, and a sync of
a hundred metrics outlives it, so a token minted by the workflow at job start fails when the
run finally opens its pull requests. Here every request asks `AppTokens.token()`, which mints
a fresh token once the current one has less than `REFRESH_MARGIN` left (github-notes §7):

    JWT (RS256; iss = App id, iat = now - 60 s, exp = iat + 10 min)
      → GET  /repos/{owner}/{repo}/installation                  (as the App)
      → POST /app/installations/{id}/access_tokens {repositories}  (as the App)
      → token (ghs_…, expires_at)                                  (as the installation)

Tokens and the key never reach a message: `GitHubClient` redacts every token it was given,
and failures are rephrased here into one line that says what to fix.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from cekura_gitops.errors import GitHubAPIError, GitHubAppError
from cekura_gitops.github import UNAUTHORIZED_HINT, GitHubClient, Installation
from cekura_gitops.pacer import WritePacer

__all__ = ["AppCredentials", "AppTokens", "InstallationToken", "load_private_key"]

JWT_BACKDATE = 60  # GitHub: iat 60 s in the past, against clock drift
JWT_LIFETIME = 600  # exp - iat; GitHub refuses an exp more than 10 minutes ahead
JWT_REUSE = 300  # sign a new JWT once the cached one is this old
REFRESH_MARGIN = 300.0  # mint a new installation token before it has 5 minutes left

# The clock tokens are judged by (a test seam: the fake GitHub's clock in tests).
CLOCK: Callable[[], float] = time.time

KEY_HINT = (
    "CEKURA_GITOPS_APP_PRIVATE_KEY must be the App's private key (PEM text starting with "
    "'-----BEGIN', or the path of the .pem file): generate one in the App's settings"
)


@dataclass(frozen=True)
class AppCredentials:
    app_id: str
    private_key: str = field(repr=False)  # PEM text


@dataclass(frozen=True)
class InstallationToken:
    token: str = field(repr=False)
    expires_at: float
    installation_id: int
    app_slug: str
    account: str
    permissions: Mapping[str, str]


def load_private_key(value: str) -> str:
    """The PEM text of `value`: PEM itself (literal `\\n` escapes accepted) or a file path.

    The value is never quoted back: it may be (part of) the key.
    """
    text = value.strip()
    if "-----BEGIN" not in text:
        path = Path(text).expanduser()
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError, ValueError):
            raise GitHubAppError(f"{KEY_HINT}; the value is neither PEM text nor a readable file") from None
    elif "\\n" in text and "\n" not in text:
        text = text.replace("\\n", "\n")  # a key pasted into a one-line variable
    try:
        key = load_pem_private_key(text.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise GitHubAppError(f"{KEY_HINT}; this one cannot be read as an RSA private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise GitHubAppError(f"{KEY_HINT}; GitHub Apps use RSA keys, this one is not")
    return text


class AppTokens:
    """Installation tokens for one repository, renewed before they expire; thread-safe.

    `token()` is what `GitHubClient` (and git's credential helper) ask for each request.
    `on_mint` sees every new token (to mask it in the Actions log).
    """

    def __init__(
        self,
        credentials: AppCredentials,
        api_url: str,
        repository: str,
        *,
        pacer: WritePacer | None = None,
        clock: Callable[[], float] | None = None,
        on_mint: Callable[[str], None] = lambda _token: None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._credentials = credentials
        self._repository = repository
        self._clock = clock or (lambda: CLOCK())
        self._on_mint = on_mint
        self._lock = threading.Lock()
        self._jwt: tuple[str, float] | None = None
        self._current: InstallationToken | None = None
        self._installation: Installation | None = None
        self.minted = 0
        self._app = GitHubClient(api_url, self._app_jwt, repository, pacer=pacer, **(client_options or {}))

    def __repr__(self) -> str:
        return f"AppTokens(app_id={self._credentials.app_id!r}, repository={self._repository!r})"

    def close(self) -> None:
        self._app.close()

    def token(self) -> str:
        return self.current().token

    def current(self) -> InstallationToken:
        """The token in use, minted now if there is none or it has under 5 minutes left."""
        with self._lock:
            token = self._current
            if token is None or token.expires_at - self._clock() < REFRESH_MARGIN:
                token = self._current = self._mint()
            return token

    # -- the App's own requests ---------------------------------------------------------

    def _app_jwt(self) -> str:
        now = self._clock()
        if self._jwt is not None and now - self._jwt[1] < JWT_REUSE:
            return self._jwt[0]
        iat = int(now) - JWT_BACKDATE
        claims = {"iat": iat, "exp": iat + JWT_LIFETIME, "iss": self._credentials.app_id}
        try:
            signed = jwt.encode(claims, self._credentials.private_key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError):
            raise GitHubAppError(f"{KEY_HINT}; signing with it failed") from None
        self._jwt = (signed, now)
        return signed

    def _mint(self) -> InstallationToken:
        app = self._credentials.app_id
        if self._installation is None:
            try:
                self._installation = self._app.get_repo_installation()
            except GitHubAPIError as err:
                raise _app_error(err, app, self._repository) from None
        installation = self._installation
        if installation.suspended:
            raise GitHubAppError(
                f"the GitHub App {installation.app_slug!r} is suspended on {installation.account}: "
                "unsuspend it (Settings → GitHub Apps → Configure) or unset CEKURA_GITOPS_APP_ID"
            )
        name = self._repository.split("/", 1)[1]
        try:
            data = self._app.create_installation_token(installation.id, repositories=[name])
        except GitHubAPIError as err:
            raise _app_error(err, app, self._repository) from None
        self.minted += 1
        self._on_mint(data.token)
        return InstallationToken(
            token=data.token,
            expires_at=_epoch(data.expires_at),
            installation_id=installation.id,
            app_slug=installation.app_slug,
            account=installation.account,
            permissions=data.permissions,
        )


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _app_error(err: GitHubAPIError, app_id: str, repository: str) -> GitHubAppError:
    """One line that says what to fix, from what GitHub answered the App."""
    status, detail = err.status, err.detail.removesuffix(f" ({UNAUTHORIZED_HINT})")
    if status == 401:
        return GitHubAppError(
            f"GitHub refused the App's credentials ({detail}): check that CEKURA_GITOPS_APP_ID "
            f"({app_id}) is the App's id and that CEKURA_GITOPS_APP_PRIVATE_KEY is one of its "
            "current keys (a deleted or regenerated key stops working)"
        )
    if status == 404 and err.path.endswith("/installation"):
        return GitHubAppError(
            f"the GitHub App {app_id} is not installed on {repository}: install it "
            "(App settings → Install App) with access to this repository"
        )
    if status == 403 and "suspend" in detail.lower():
        return GitHubAppError(
            f"the GitHub App {app_id} is suspended ({detail}): unsuspend it in Settings → "
            "GitHub Apps, or unset CEKURA_GITOPS_APP_ID to use GITHUB_TOKEN"
        )
    if status == 422:
        return GitHubAppError(
            f"the GitHub App {app_id} cannot get a token for {repository} ({detail}): add the "
            "repository to the App's installation"
        )
    return GitHubAppError(f"could not mint a GitHub App installation token: {err}")

"""The GitHub App side of the fake GitHub: a key pair, JWT checks, expiring installation tokens.

`FakeApp` is an App installed (or not, or suspended) on the fake's repository. The fake
accepts on the App endpoints only a JWT signed with the App's *current* private key (RS256,
`iss` the App id, `iat` not in the future, `exp` in the future and at most 10 minutes after
`iat`), answering GitHub's own 401 messages otherwise (github-notes §7). Installation tokens
it mints expire one hour later on `FakeClock`, which the tests move.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TOKEN_LIFETIME = 3600.0
MAX_JWT_LIFETIME = 600

UNDECODABLE = "A JSON web token could not be decoded"
EXPIRED = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time at "
    "which the assertion expires"
)
TOO_LONG = "'Expiration time' claim ('exp') is too far in the future"
ISSUED_LATER = (
    "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
)


class FakeClock:
    """Real time plus an offset the test moves forward (`advance`): the fake's idea of now."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


@functools.cache
def _pem(index: int) -> str:
    """A 2048-bit RSA key (cached per process: generating one takes a while)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@dataclass
class FakeApp:
    app_id: int = 424242
    slug: str = "cekura-gitops-test"
    installation_id: int = 7001
    bot_user_id: int = 9100001
    installed: bool = True
    suspended: bool = False
    permissions: dict[str, str] = field(
        default_factory=lambda: {
            "contents": "write",
            "pull_requests": "write",
            "issues": "write",
            "metadata": "read",
        }
    )
    _key_index: int = 0

    @property
    def private_key(self) -> str:
        """The App's current private key (PEM), as downloaded from its settings page."""
        return _pem(self._key_index)

    def revoke_key(self) -> str:
        """Delete the current key and generate another: the old one stops working."""
        old = self.private_key
        self._key_index += 1
        return old

    @property
    def login(self) -> str:
        return f"{self.slug}[bot]"

    @property
    def bot_email(self) -> str:
        return f"{self.bot_user_id}+{self.login}@users.noreply.github.com"

    def check_jwt(self, token: str, now: float) -> str | None:
        """None when GitHub would accept this JWT; otherwise GitHub's 401 message."""
        public = serialization.load_pem_private_key(self.private_key.encode(), None).public_key()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                public,  # type: ignore[arg-type]
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "require": ["iat", "exp", "iss"]},
            )
        except jwt.PyJWTError:
            return UNDECODABLE
        if str(claims["iss"]) != str(self.app_id):
            return UNDECODABLE
        iat, exp = claims["iat"], claims["exp"]
        if not isinstance(iat, int) or iat > now + 1:
            return ISSUED_LATER
        if not isinstance(exp, int) or exp <= now:
            return EXPIRED
        if exp - iat > MAX_JWT_LIFETIME or exp > now + MAX_JWT_LIFETIME:
            return TOO_LONG
        return None


@dataclass
class IssuedToken:
    token: str
    expires_at: float
    repositories: tuple[str, ...]


class TokenBook:
    """Installation tokens the fake minted, and when each expires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.issued: list[IssuedToken] = []

    def mint(self, now: float, repositories: tuple[str, ...]) -> IssuedToken:
        token = IssuedToken("ghs_" + secrets.token_urlsafe(27), now + TOKEN_LIFETIME, repositories)
        with self._lock:
            self.issued.append(token)
        return token

    def valid(self, token: str, now: float) -> bool:
        with self._lock:
            return any(t.token == token and now < t.expires_at for t in self.issued)

    def known(self, token: str) -> bool:
        with self._lock:
            return any(t.token == token for t in self.issued)


__all__ = ["FakeApp", "FakeClock", "IssuedToken", "TokenBook"]

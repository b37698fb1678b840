"""The fake GitHub's App and Git Data side is as strict as GitHub (github-notes §7)."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from tests.conftest import Repo
from tests.fakes.github_app import EXPIRED, TOKEN_LIFETIME, TOO_LONG, UNDECODABLE, FakeApp, FakeClock

HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "t"}


@pytest.fixture
def world(repo: Repo, make_fake_github):  # type: ignore[no-untyped-def]
    app, clock = FakeApp(), FakeClock()
    return app, clock, make_fake_github(origin_path=repo.origin, app=app, clock=clock)


def signed(app: FakeApp, key: str | None = None, at: float | None = None, **claims: object) -> str:
    now = int(time.time() if at is None else at)
    payload = {"iat": now - 60, "exp": now + 540, "iss": str(app.app_id), **claims}
    return jwt.encode(payload, key or app.private_key, algorithm="RS256")


def call(gh, method: str, path: str, token: str, **kwargs):  # type: ignore[no-untyped-def]
    headers = {**HEADERS, "Authorization": f"Bearer {token}"}
    return httpx.request(method, gh.url + path, headers=headers, **kwargs)


def test_jwts_are_checked_like_github(world) -> None:  # type: ignore[no-untyped-def]
    app, _clock, gh = world
    now = int(time.time())
    assert call(gh, "GET", "/repos/acme/metrics/installation", signed(app)).status_code == 200
    cases = [
        (signed(app, exp=now + 3600), TOO_LONG),
        (signed(app, iat=now - 700, exp=now - 100), EXPIRED),
        (signed(app, iss="1"), UNDECODABLE),
        (signed(app, key=FakeApp(_key_index=5).private_key), UNDECODABLE),  # another App's key
        (gh.token, UNDECODABLE),  # not a JWT at all
    ]
    for token, message in cases:
        answer = call(gh, "GET", "/repos/acme/metrics/installation", token)
        assert (answer.status_code, answer.json()["message"]) == (401, message)


def test_installation_tokens_expire_on_the_test_clock(world) -> None:  # type: ignore[no-untyped-def]
    app, clock, gh = world
    minted = call(
        gh,
        "POST",
        f"/app/installations/{app.installation_id}/access_tokens",
        signed(app),
        json={"repositories": ["metrics"]},
    )
    assert minted.status_code == 201
    token = minted.json()["token"]
    assert call(gh, "GET", "/repos/acme/metrics", token).status_code == 200
    clock.advance(TOKEN_LIFETIME)
    assert call(gh, "GET", "/repos/acme/metrics", token).status_code == 401
    assert call(gh, "GET", "/repos/acme/metrics/installation", signed(app)).status_code == 401  # JWT too
    other = call(
        gh,
        "POST",
        f"/app/installations/{app.installation_id}/access_tokens",
        signed(app, at=clock()),
        json={"repositories": ["x"]},
    )
    assert other.status_code == 422, other.text


def test_a_commit_with_a_custom_author_is_unsigned(world, repo: Repo) -> None:  # type: ignore[no-untyped-def]
    app, _clock, gh = world
    token = call(
        gh, "POST", f"/app/installations/{app.installation_id}/access_tokens", signed(app), json={}
    ).json()["token"]
    head = repo.git("rev-parse", "HEAD")
    tree = repo.git("rev-parse", "HEAD^{tree}")
    plain = call(
        gh,
        "POST",
        "/repos/acme/metrics/git/commits",
        token,
        json={"message": "m", "tree": tree, "parents": [head]},
    )
    custom = call(
        gh,
        "POST",
        "/repos/acme/metrics/git/commits",
        token,
        json={"message": "m", "tree": tree, "parents": [head], "author": {"name": "Bot", "email": "b@x"}},
    )
    assert plain.json()["verification"]["verified"] is True
    assert plain.json()["author"]["email"] == app.bot_email
    assert plain.json()["committer"]["email"] == "noreply@github.com"
    assert custom.json()["verification"] == {
        "verified": False,
        "reason": "unsigned",
        "signature": None,
        "payload": None,
        "verified_at": None,
    }
    again = call(gh, "GET", f"/repos/acme/metrics/git/commits/{plain.json()['sha']}", token)
    assert again.json()["verification"]["verified"] is True

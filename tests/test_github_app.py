"""GitHub App authentication in-process, against the fake GitHub's App (JWT checked against
the App's public key; installation tokens that expire on a clock the test moves)."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from cekura_gitops.errors import GitHubAppError
from cekura_gitops.githubapp import AppCredentials, AppTokens, load_private_key
from tests.conftest import Repo
from tests.fakes.github_app import TOKEN_LIFETIME, FakeApp, FakeClock
from tests.github_app_fixtures import app, clock, env, gh, only, sync  # noqa: F401

GREETING = "caller_greeted_by_name_1562"
BRANCH = f"cekura-gitops/optimise/{GREETING}"


def test_the_jwt_is_rs256_backdated_60_s_and_lives_10_minutes(gh, app: FakeApp, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    tokens = AppTokens(AppCredentials(str(app.app_id), app.private_key), gh.url, "acme/metrics")
    try:
        signed = tokens._app_jwt()
        now = int(clock())
        public = serialization.load_pem_private_key(app.private_key.encode(), None).public_key()
        claims = jwt.decode(signed, public, algorithms=["RS256"], options={"verify_exp": False})  # type: ignore[arg-type]
        assert claims["iss"] == str(app.app_id)
        assert now - 61 <= claims["iat"] <= now - 59
        assert claims["exp"] - claims["iat"] == 600
        token = tokens.current()
        assert token.token.startswith("ghs_") and token.app_slug == app.slug
        assert gh.tokens.issued[0].repositories == ("metrics",)  # limited to this repository
        assert tokens.token() == token.token  # reused while it has more than 5 minutes left
        clock.advance(TOKEN_LIFETIME - 299)
        assert tokens.token() != token.token and tokens.minted == 2
    finally:
        tokens.close()


def test_a_sync_that_outlives_its_first_token_still_opens_its_pr(
    pulled: Repo, cli, env, gh, app: FakeApp, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from cekura_gitops.optimiser import Optimiser

    original = Optimiser.optimise

    def slow_run(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        outcome = original(self, *args, **kwargs)
        clock.advance(TOKEN_LIFETIME + 60)  # the optimiser took longer than a token lives
        return outcome

    monkeypatch.setattr(Optimiser, "optimise", slow_run)
    result = sync(cli, pulled, env)
    assert result.code == 0, result.err
    assert only(result)["status"] == "proposed"
    first, second = gh.tokens.issued[:2]
    [create] = [r for r in gh.requests if r.method == "POST" and r.path.endswith("/pulls")]
    assert create.at > first.expires_at  # the first token was dead by then
    assert create.actor == app.login and create.status == 201
    [pr] = [p for p in gh.pulls if p["head"]["ref"] == BRANCH]
    assert pr["user"]["login"] == app.login  # opened as the App: its PRs trigger workflows
    assert second.expires_at > create.at
    for token in (t.token for t in gh.tokens.issued):
        assert token not in result.out + result.err
    assert app.private_key.splitlines()[1] not in result.out + result.err
    config = (pulled.work / ".git" / "config").read_text()
    assert not any(t.token in config for t in gh.tokens.issued)


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("revoked", "CEKURA_GITOPS_APP_PRIVATE_KEY"),
        ("not-installed", "not installed on acme/metrics"),
        ("suspended", "suspended"),
        ("not-a-key", "CEKURA_GITOPS_APP_PRIVATE_KEY must be the App's private key"),
    ],
)
def test_app_failures_are_one_clear_line_and_exit_1(
    pulled: Repo, cli, env, gh, app: FakeApp, sandbox, setup: str, words: str
) -> None:  # type: ignore[no-untyped-def]
    if setup == "revoked":
        app.revoke_key()  # env still holds the old key
    elif setup == "not-installed":
        app.installed = False
    elif setup == "suspended":
        app.suspended = True
    else:
        env = {**env, "CEKURA_GITOPS_APP_PRIVATE_KEY": "/no/such/key.pem"}
    result = sync(cli, pulled, env)
    assert result.code == 1
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.err
    assert "Traceback" not in result.err
    assert sandbox.state.optimisations_started == {}  # failed before spending optimiser credits
    assert gh.tokens.issued == []


def test_github_token_still_works_without_an_app(pulled: Repo, cli, github_env, make_fake_github) -> None:  # type: ignore[no-untyped-def]
    result = cli("--json", "sync", "--metric", GREETING, cwd=pulled.work, env=github_env)
    assert result.code == 0, result.err
    assert only(result)["status"] == "proposed"


def test_the_key_may_be_a_file_or_escaped_one_line(tmp_path, app: FakeApp) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.pem"
    path.write_text(app.private_key)
    assert load_private_key(str(path)) == app.private_key.strip()
    assert load_private_key(app.private_key.strip().replace("\n", "\\n")) == app.private_key.strip()
    with pytest.raises(GitHubAppError) as info:
        load_private_key("-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----")
    assert "not a key" not in str(info.value)


def test_app_id_without_key_is_a_config_error(pulled: Repo, cli, cekura_env) -> None:  # type: ignore[no-untyped-def]
    result = cli("sync", cwd=pulled.work, env={**cekura_env, "CEKURA_GITOPS_APP_ID": "1"})
    assert result.code == 1 and "CEKURA_GITOPS_APP_PRIVATE_KEY is not set" in result.err


def test_doctor_names_the_app_and_its_permissions(pulled: Repo, cli, env, app: FakeApp) -> None:  # type: ignore[no-untyped-def]
    result = cli("--json", "doctor", cwd=pulled.work, env=env)
    checks = {c["name"]: c for c in result.json()["checks"]}  # type: ignore[union-attr]
    identity = checks["github identity"]
    assert identity["status"] == "ok"
    assert app.slug in identity["message"] and str(app.installation_id) in identity["message"]
    assert "contents: write" in identity["message"] and "pull_requests: write" in identity["message"]


def test_doctor_fails_on_a_revoked_key(pulled: Repo, cli, env, app: FakeApp) -> None:  # type: ignore[no-untyped-def]
    app.revoke_key()
    result = cli("--json", "doctor", cwd=pulled.work, env=env)
    assert result.code == 1
    checks = {c["name"]: c for c in result.json()["checks"]}  # type: ignore[union-attr]
    assert checks["github identity"]["status"] == "fail"
    assert "CEKURA_GITOPS_APP_ID" in checks["github identity"]["message"]


def test_git_uses_the_apps_current_token_through_its_credential_helper_only(
    pulled: Repo, cli, env, gh, app: FakeApp, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Fetches and pushes over HTTP authenticate with the App's token of the moment, handed
    to git by the credential helper: never in argv, the remote URL or .git/config."""
    import os
    import shutil

    from cekura_gitops.optimiser import Optimiser
    from tests.fakes.git_http import GitHTTPServer

    shim, log = tmp_path / "shim", tmp_path / "git-argv.log"
    shim.mkdir()
    (shim / "git").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{shutil.which("git")}" "$@"\n'
    )
    (shim / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    original = Optimiser.optimise

    def slow_run(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        outcome = original(self, *args, **kwargs)
        clock.advance(TOKEN_LIFETIME + 60)
        return outcome

    monkeypatch.setattr(Optimiser, "optimise", slow_run)
    with GitHTTPServer(pulled.origin.parent, accept=lambda p: gh.tokens.valid(p, clock())) as server:
        url = server.url(pulled.origin.name)
        pulled.git("remote", "set-url", "origin", url)
        # What actions/checkout persists: a header git would send instead of asking.
        server_url = url.rsplit("/", 1)[0]
        bogus = "AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46Z2hzX2JvZ3Vz"  # x-access-token:ghs_bogus
        pulled.git("config", f"http.{server_url}/.extraheader", bogus)
        result = sync(cli, pulled, {**env, "GITHUB_SERVER_URL": server_url})
    assert result.code == 0, result.err
    assert only(result)["status"] == "proposed"
    assert pulled.origin_ref(f"refs/heads/{BRANCH}") is not None
    first, second = gh.tokens.issued[:2]
    assert first.token in server.passwords  # fetched before the optimiser ran
    assert second.token in server.passwords  # pushed after it, with a renewed token
    assert None in server.passwords  # git asked only after GitHub's challenge
    assert "ghs_bogus" not in server.passwords  # the persisted header was dropped
    argv = log.read_text()
    assert "credential.helper" in argv
    config = (pulled.work / ".git" / "config").read_text()
    for token in (t.token for t in gh.tokens.issued):
        assert token not in argv and token not in config
    assert pulled.git("remote", "get-url", "origin") == url

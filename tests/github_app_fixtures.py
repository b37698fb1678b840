"""pytest fixtures for running the tool as a GitHub App against the fake GitHub.

    from tests.github_app_fixtures import app, clock, env, gh, only, sync  # noqa: F401

`gh` is the fake GitHub for acme/metrics over the `pulled` repository's origin, with the
fake App installed and a clock the test moves; `env` authenticates as that App (id and PEM
key, as the Action's inputs pass them) instead of GITHUB_TOKEN.
"""

from __future__ import annotations

from typing import Any

import pytest

from cekura_gitops import githubapp
from tests.conftest import GH_TOKEN, Repo
from tests.fakes.github_app import FakeApp, FakeClock

GREETING = "caller_greeted_by_name_1562"

__all__ = ["app", "clock", "env", "gh", "only", "sync"]


@pytest.fixture
def app() -> FakeApp:
    return FakeApp()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The fake GitHub's clock, which the tool's token renewal also reads."""
    fake_clock = FakeClock()
    monkeypatch.setattr(githubapp, "CLOCK", fake_clock)
    return fake_clock


@pytest.fixture
def gh(pulled: Repo, make_fake_github, app: FakeApp, clock: FakeClock):  # type: ignore[no-untyped-def]
    return make_fake_github(
        origin_path=pulled.origin, owner="acme", repo="metrics", token=GH_TOKEN, app=app, clock=clock
    )


@pytest.fixture
def env(cekura_env, gh, app: FakeApp) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The App instead of GITHUB_TOKEN: id and PEM key, as the Action inputs pass them."""
    return {
        **cekura_env,
        "CEKURA_GITOPS_APP_ID": str(app.app_id),
        "CEKURA_GITOPS_APP_PRIVATE_KEY": app.private_key,
        "GITHUB_REPOSITORY": "acme/metrics",
        "GITHUB_API_URL": gh.url,
        "CEKURA_GITOPS_GITHUB_WRITE_INTERVAL": "0",
    }


def sync(cli, repo: Repo, env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    """`--json sync --metric caller_greeted_by_name_1562 ARGS` in repo."""
    return cli("--json", "sync", "--metric", GREETING, *args, cwd=repo.work, env=env)


def only(result) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The one metric of a `--json sync` result."""
    [m] = result.json()["metrics"]
    return m  # type: ignore[no-any-return]

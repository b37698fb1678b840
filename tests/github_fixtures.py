"""pytest fixtures for the fake GitHub server; import them from tests/conftest.py.

    from tests.github_fixtures import fake_github, github_client, make_fake_github  # noqa: F401

Each fake is a started `FakeGitHub` on 127.0.0.1; at teardown it is stopped and its
`validation_errors` (OpenAPI violations by the client or the fake) must be empty. A test that
provokes a violation on purpose asserts on it and then clears the list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cekura_gitops.github import GitHubClient
from tests.fakes.github_server import FakeGitHub

__all__ = ["FakeGitHub", "fake_github", "github_client", "make_fake_github"]


def _stop_and_check(fakes: list[FakeGitHub]) -> None:
    for fake in fakes:
        fake.stop()
        if fake.unanswered:  # shown with a failing test's output; a killed client causes some
            print("fake GitHub: connections closed with a request unanswered:")
            print("\n".join(f"  {line}" for line in fake.unanswered))
    errors = [error for fake in fakes for error in fake.validation_errors]
    assert errors == [], "GitHub traffic violated the OpenAPI description:\n" + "\n".join(errors)


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    """A started fake for acme/metrics (default branch main, token ghs_test), no origin."""
    fake = FakeGitHub().start()
    try:
        yield fake
    finally:
        _stop_and_check([fake])


@pytest.fixture
def make_fake_github() -> Iterator[Callable[..., FakeGitHub]]:
    """Factory: `make_fake_github(origin_path=bare_repo, **FakeGitHub kwargs)`."""
    fakes: list[FakeGitHub] = []

    def make(origin_path: str | Path | None = None, **kwargs: Any) -> FakeGitHub:
        fake = FakeGitHub(origin_path=None if origin_path is None else str(origin_path), **kwargs)
        fakes.append(fake.start())
        return fake

    try:
        yield make
    finally:
        _stop_and_check(fakes)


@pytest.fixture
def github_client(fake_github: FakeGitHub) -> Iterator[GitHubClient]:
    """A client bound to `fake_github`, with write spacing off so tests stay fast."""
    with GitHubClient(
        fake_github.url,
        fake_github.token,
        fake_github.full_name,
        graphql_url=fake_github.graphql_url,
        min_write_interval=0.0,
        sleep=lambda _: None,
    ) as client:
        yield client

"""Shared fixtures: real git repositories with a bare origin, the sandbox, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.github_fixtures import fake_github, github_client, make_fake_github  # noqa: F401
from tests.sandbox_fixtures import cekura, sandbox  # noqa: F401

HUMAN = {
    "GIT_AUTHOR_NAME": "Ada Human",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Human",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
}


# Properties, not speed: on a loaded machine one example can take longer than Hypothesis's
# 200 ms deadline (and generating them its too_slow limit), and a deadline missed once and
# met on the replay fails the test as "flaky".
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run the full slow scenarios")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests (or parameter sets) marked `slow` run only with --run-slow: CI runs a sample."""
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: --run-slow runs it")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)


# Variables a developer's or CI's environment could leak into a test or its subprocesses.
LEAKY_ENV = (
    "CEKURA_API_KEY",
    "CEKURA_API_URL",
    "CEKURA_PROJECT_ID",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GITHUB_ACTIONS",
    "GITHUB_REPOSITORY",
    "GITHUB_API_URL",
    "GITHUB_GRAPHQL_URL",
    "GITHUB_EVENT_NAME",
    "GITHUB_EVENT_PATH",
    "GITHUB_REF",
    "GITHUB_OUTPUT",
    "GITHUB_STEP_SUMMARY",
    "GITHUB_RUN_ID",
    "CEKURA_GITOPS_CONCURRENCY",
    "CEKURA_GITOPS_METRICS_DIR",
    "CEKURA_GITOPS_OPTIMISER_TIMEOUT",
    "CEKURA_GITOPS_CRASH_AT",
    "CEKURA_GITOPS_ACTIONS_TOKEN",
    "CEKURA_GITOPS_HTTP_TIMEOUT",
    "CEKURA_GITOPS_HTTP_BACKOFF",
    "CEKURA_GITOPS_HTTP_DEADLINE",
    "CEKURA_GITOPS_GITHUB_WRITE_INTERVAL",
    "CEKURA_GITOPS_DEFAULT_BRANCH",
    "CEKURA_GITOPS_APP_ID",
    "CEKURA_GITOPS_APP_PRIVATE_KEY",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer or CI environment leaks into a test."""
    for name in LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    for key, value in HUMAN.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    (tmp_path / "gitconfig").write_text(
        "[init]\n\tdefaultBranch = main\n[user]\n\tname = Ada Human\n\temail = ada@example.com\n"
    )


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    import os

    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@dataclass
class Repo:
    """A working clone and its bare origin."""

    work: Path
    origin: Path

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        return git(self.work, *args, env=env)

    def origin_git(self, *args: str) -> str:
        return git(self.origin, *args)

    def write(self, rel: str, text: str) -> Path:
        path = self.work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def commit_all(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        return self.git("rev-parse", "HEAD")

    def push(self) -> None:
        self.git("push", "-q", "origin", "HEAD:main")

    def origin_ref(self, ref: str) -> str | None:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", ref], cwd=self.origin, capture_output=True, text=True
        )
        return done.stdout.strip() or None

    def origin_file(self, ref: str, path: str) -> str | None:
        done = subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=self.origin, capture_output=True, text=True
        )
        return done.stdout if done.returncode == 0 else None

    def fresh_clone(self, dest: Path) -> Repo:
        git(dest.parent, "clone", "-q", str(self.origin), str(dest))
        return Repo(dest, self.origin)

    def human_edit(self, branch: str, rel: str, dest: Path, text: str | None = None) -> str:
        """Ada Human, in a fresh clone at dest, commits on branch and pushes it, as people may
        on a bot's branch: rel gets text (default: its text plus a review line). Her sha."""
        human = self.fresh_clone(dest)
        human.git("checkout", "-q", branch)
        human.write(rel, (human.work / rel).read_text() + "# reviewed by Ada\n" if text is None else text)
        human.git("add", "-A")
        human.git("commit", "-qm", "Tweak wording", env=HUMAN)
        human.git("push", "-q", "origin", branch)
        return human.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """An empty working repo (branch main) with a bare origin (whose HEAD names main)."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "--initial-branch=main", str(origin))
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "--initial-branch=main", str(work))
    git(work, "remote", "add", "origin", str(origin))
    (work / "README.md").write_text("metrics repo\n")
    git(work, "add", "README.md")
    git(work, "commit", "-qm", "init")
    git(work, "push", "-q", "-u", "origin", "main")
    # No `remote set-head`: like a runner's checkout, the clone has no origin/HEAD, and
    # nothing in the tool may need one.
    return Repo(work, origin)


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(self.out)
        return loaded


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run `cekura-gitops ARGS` in-process, in `cwd`, with `env` set."""
    from cekura_gitops.cli import main

    def run(*args: str, cwd: Path, env: dict[str, str | None] | None = None) -> CliResult:
        monkeypatch.chdir(cwd)
        for key, value in (env or {}).items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def cekura_env(sandbox) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"CEKURA_API_URL": sandbox.url, "CEKURA_API_KEY": sandbox.api_key}


def run_subprocess(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "cekura_gitops", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def pulled(repo: Repo, cli, cekura_env) -> Iterator[Repo]:  # type: ignore[no-untyped-def]
    """A repo whose metrics/ was pulled from the sandbox's project 1376 and pushed."""
    result = cli("pull", "--project", "1376", cwd=repo.work, env=cekura_env)
    assert result.code == 0, result.err + result.out
    repo.commit_all("import metrics")
    repo.push()
    yield repo


GH_TOKEN = "ghs_fakeTokenForTests0123456789"


@pytest.fixture
def gh(pulled: Repo, make_fake_github):  # type: ignore[no-untyped-def]
    """A fake GitHub for acme/metrics whose branches are the pulled repo's origin."""
    return make_fake_github(origin_path=pulled.origin, owner="acme", repo="metrics", token=GH_TOKEN)


@pytest.fixture
def github_env(cekura_env, gh) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Environment for commands that talk to both the sandbox and the fake GitHub."""
    return {
        **cekura_env,
        "GITHUB_TOKEN": GH_TOKEN,
        "GITHUB_REPOSITORY": "acme/metrics",
        "GITHUB_API_URL": gh.url,
        "CEKURA_GITOPS_GITHUB_WRITE_INTERVAL": "0",
    }

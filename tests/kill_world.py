"""The world test_crash.py and test_interrupt.py kill and interrupt `sync` in.

- `world`: a private copy of the template origin, the sandbox and a fake GitHub over it,
  with fresh clones to re-run from and what must hold after any kill (`World.sound`).
- `uninterrupted_sync`: the end state a run reaches when nothing stops it, to compare with.
- `spawn`, `wait_for_claims_to_expire`: starting a sync to kill, and waiting out the claims
  a kill left behind.
- `sample`: CI runs a fixed sample of the cases; `--run-slow` runs them all.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cekura_gitops.optimiser import CLAIM_EXPIRY
from cekura_gitops.sandbox import Sandbox
from tests._hardening import (
    TOKEN,
    assert_no_pr_without_branch,
    assert_yaml_parses_everywhere,
    cekura_env,
    clean_environ,
    clone,
    end_state,
    fresh_repo,
    github_env,
    start_github,
    state,
)
from tests.conftest import CliResult, Repo
from tests.fakes.github_server import FakeGitHub

# The crash points of one metric's sync, in the order it passes them (crashpoints.py).
SYNC_POINTS = ("claimed", "started", "recorded", "polled", "branch-pushed", "published", "finished")


def sample(cases: Iterable[str], ci_sample: set[str]) -> list[Any]:
    """pytest params: those in ci_sample always run, the rest only with --run-slow."""
    return [pytest.param(c, id=c, marks=() if c in ci_sample else pytest.mark.slow) for c in cases]


# -- the uninterrupted runs to compare against ------------------------------------------


@contextlib.contextmanager
def serve(origin: Path) -> Iterator[tuple[Sandbox, FakeGitHub]]:
    """A sandbox and a fake GitHub over origin, for module-scoped set-up; both validated."""
    sandbox = Sandbox().start()
    gh = start_github(origin)
    try:
        yield sandbox, gh
    finally:
        gh.stop()
        sandbox.stop()
        assert gh.validation_errors == [] and sandbox.validation_errors == []


def cli_subprocess(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`cekura-gitops ARGS` in a child process with exactly env (no test's environment)."""
    return subprocess.run(
        [sys.executable, "-m", "cekura_gitops", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def uninterrupted_sync(
    template_origin: Path,
    root: Path,
    before: Callable[[Repo, Sandbox, dict[str, str]], None] | None = None,
) -> dict[str, Any]:
    """The end state of a `sync` nothing stops, in a fresh copy of the template under root
    (`before(repo, sandbox, env)` first changes the world, e.g. renames a metric)."""
    env = clean_environ(root / "gitconfig")
    repo = fresh_repo(template_origin, root / "r")
    with serve(repo.origin) as (sandbox, gh):
        if before is not None:
            before(repo, sandbox, env)
        done = cli_subprocess(["--json", "sync"], repo.work, {**env, **cekura_env(sandbox), **github_env(gh)})
        assert done.returncode == 0, done.stderr
        return end_state(repo.origin, gh, sandbox)


# -- per-test world -------------------------------------------------------------------------


class World:
    def __init__(
        self, repo: Repo, sandbox: Sandbox, gh: FakeGitHub, cli: Callable[..., CliResult], tmp: Path
    ):
        self.repo, self.sandbox, self.gh, self.cli, self.tmp = repo, sandbox, gh, cli, tmp
        self.env = {**cekura_env(sandbox), **github_env(gh)}
        self.main = repo.origin_ref("refs/heads/main")
        self._clones = 0

    def fresh(self) -> Repo:
        self._clones += 1
        return clone(self.repo.origin, self.tmp / f"clone{self._clones}")

    def rerun(self, *args: str, **extra: str) -> CliResult:
        result = self.cli("--json", *args, cwd=self.fresh().work, env={**self.env, **extra})
        assert "Traceback" not in result.err, result.err
        return result

    def started(self) -> dict[int, int]:
        return self.sandbox.state.optimisations_started

    def sound(self) -> None:
        """What must hold at any moment, killed or not."""
        assert_yaml_parses_everywhere(self.repo.origin)
        assert_no_pr_without_branch(self.gh, self.repo.origin)
        assert all(n <= 2 for n in self.started().values())
        assert self.repo.origin_ref("refs/heads/main") == self.main, "a human commit on main was lost"
        heads = [p["head"]["ref"] for p in self.gh.pulls if p["state"] == "open"]
        assert len(heads) == len(set(heads)), "two open PRs for one branch"


# A request whose sender was SIGKILLed between its headers and its body reaches the
# sandbox without a body; the sandbox validates it anyway (a real server would drop it at
# the HTTP layer): not the client's fault. Anything else stays a failure.
TRUNCATED_BY_KILL = "MissingRequiredRequestBody: Missing required request body"


@pytest.fixture
def world(template_origin: Path, tmp_path: Path, sandbox: Sandbox, make_fake_github, cli) -> Iterator[World]:  # type: ignore[no-untyped-def]
    repo = fresh_repo(template_origin, tmp_path / "r")
    gh = make_fake_github(origin_path=repo.origin, owner="acme", repo="metrics", token=TOKEN)
    yield World(repo, sandbox, gh, cli, tmp_path)
    truncated = [e for e in sandbox.validation_errors if e.endswith(TRUNCATED_BY_KILL)]
    for error in truncated:
        sandbox.validation_errors.remove(error)
    rejected = [r for r in sandbox.requests if r.status == 400]
    assert len(rejected) == len(truncated) and all(r.body is None for r in rejected), rejected
    # The fake GitHub says the same in its words, plus that its 400 reply is undocumented.
    for error in [e for e in gh.validation_errors if "MissingRequiredRequestBody" in e]:
        request = error.split(":", 1)[0].removeprefix("request ")
        gh.validation_errors.remove(error)
        reply = f"response {request} -> 400: ResponseNotFound"
        gh.validation_errors[:] = [e for e in gh.validation_errors if not e.startswith(reply)]


def spawn(world: World, args: list[str]) -> subprocess.Popen[str]:
    """`cekura-gitops ARGS` in the world's clone, in its own process group (as a terminal's
    foreground job: a Ctrl-C or kill of the group reaches its git children too)."""
    return subprocess.Popen(
        [sys.executable, "-m", "cekura_gitops", *args],
        cwd=world.repo.work,
        env={**os.environ, **world.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


# The re-run after a blocking kill runs with this optimiser timeout (CLAIM_EXPIRY times it
# is the claim's expiry). The new run's clock starts at its start POST, before its record
# is pushed: 1 s let a slow push on a loaded machine time the run out before its first poll.
RERUN_TIMEOUT_S = 3


def wait_for_claims_to_expire(world: World, timeout_s: float = RERUN_TIMEOUT_S) -> None:
    """Sleep until every claim without a run on origin has expired for a sync whose
    optimiser timeout is timeout_s (CEKURA_GITOPS_OPTIMISER_TIMEOUT)."""
    claims = [r["claimed_at"] for r in state(world.repo.origin)["runs"].values() if "progress_id" not in r]
    assert claims
    wait = max(claims) + CLAIM_EXPIRY * timeout_s + 0.05 - time.time()
    if wait > 0:
        time.sleep(wait)

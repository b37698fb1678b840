"""sync, plan and apply on working copies made exactly as actions/checkout makes them.

Every workspace here has no `refs/remotes/origin/HEAD`, usually one commit of history, and
the runner's GITHUB_* environment and event payload (tests/runner_checkout.py). CI runs a
sample of the (event, depth, default branch) matrix; `--run-slow` runs all of it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cekura_gitops.commands import apply as apply_command
from cekura_gitops.errors import GitOpsError
from cekura_gitops.gitrepo import GitRepo
from cekura_gitops.sandbox import Sandbox
from tests._hardening import (  # noqa: F401
    GREETING,
    IDS,
    SATISFACTION,
    TOKEN,
    cekura_env,
    github_env,
    template_origin,
)
from tests.conftest import CliResult
from tests.runner_checkout import (
    Checkout,
    Origin,
    actions_checkout,
    human_push,
    make_pull_merge_ref,
    origin_from,
)

GREETING_FILE = f"metrics/{GREETING}.yaml"
SATISFACTION_FILE = f"metrics/{SATISFACTION}.yaml"
STATE_REF = "refs/cekura-gitops/state"


def _tighten(text: str) -> str:
    assert "Score FALSE otherwise." in text
    return text.replace("Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")


def _simulate(text: str) -> str:
    assert "simulation_enabled: false" in text
    return text.replace("simulation_enabled: false", "simulation_enabled: true")


def run(cli: Any, checkout: Checkout, sandbox: Sandbox, *args: str) -> CliResult:
    """One workflow step: `cekura-gitops --json ARGS` in the workspace."""
    result: CliResult = cli(
        "--json", *args, cwd=checkout.work, env={**checkout.step_env(), **cekura_env(sandbox)}
    )
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    return result


def statuses(result: CliResult) -> dict[str, str]:
    return {m["slug"]: m["status"] for m in result.json()["metrics"]}  # type: ignore[union-attr]


def applied_marker(origin: Origin) -> str | None:
    text = origin.file(STATE_REF, "state.json")
    return json.loads(text).get("applied") if text else None


@pytest.fixture
def make_origin(template_origin: Path, tmp_path: Path) -> Callable[[str], Origin]:  # noqa: F811
    return lambda default: origin_from(template_origin, tmp_path / f"origin-{default}.git", default)


# -- break 1: the default branch never comes from origin/HEAD ---------------------------


@pytest.mark.parametrize("depth", [1, 0], ids=["depth-1", "full"])
def test_a_dropped_apply_run_is_caught_up_on_an_actions_checkout(
    make_origin: Callable[[str], Origin], tmp_path: Path, cli: Any, sandbox: Sandbox, depth: int
) -> None:
    """Push A's apply run is dropped (a concurrency group keeps one pending run); push B's
    run, in a workspace made by actions/checkout, deploys A's change as well as B's."""
    origin = make_origin("main")
    first = actions_checkout(origin, tmp_path / "run-0", event="push", depth=depth)
    assert statuses(run(cli, first, sandbox, "apply", "--base", f"{origin.tip()}")) == {}
    # The import commit is deployed; the run records it as applied (it never did without
    # origin/HEAD, so the next run fell back to its own push and lost A).
    assert applied_marker(origin) == origin.tip()

    a = human_push(origin, tmp_path, GREETING_FILE, _tighten, "push A")
    b = human_push(origin, tmp_path, SATISFACTION_FILE, _simulate, "push B")
    second = actions_checkout(origin, tmp_path / "run-2", event="push", depth=depth, sha=b, before=a)
    result = run(cli, second, sandbox, "apply")
    assert result.code == 0, result.err
    assert statuses(result) == {GREETING: "applied", SATISFACTION: "applied"}
    assert "Score FALSE otherwise, or if unsure." in sandbox.state.metric(IDS[GREETING])["description"]
    assert sandbox.state.metric(IDS[SATISFACTION])["simulation_enabled"] is True
    assert applied_marker(origin) == b


@pytest.mark.parametrize("default", ["master", "trunk"])
def test_the_default_branch_comes_from_the_remote_without_an_event(
    make_origin: Callable[[str], Origin], tmp_path: Path, cli: Any, sandbox: Sandbox, default: str
) -> None:
    """No payload and no origin/HEAD (a local run in an actions/checkout-made copy): the
    remote itself names its default branch; no `main`/`master` guess."""
    origin = make_origin(default)
    checkout = actions_checkout(origin, tmp_path / "run", event="push")
    for name in ("GITHUB_EVENT_PATH", "GITHUB_EVENT_NAME", "GITHUB_REF", "GITHUB_REF_NAME"):
        del checkout.env[name]
    result = run(cli, checkout, sandbox, "sync", "--no-pr", "--metric", GREETING)
    assert result.code == 0, result.err
    assert statuses(result) == {GREETING: "proposed"}
    branch = f"refs/heads/cekura-gitops/optimise/{GREETING}"
    assert origin.git("rev-parse", f"{branch}^") == origin.tip()


def test_no_answer_for_the_default_branch_is_one_clear_error(
    make_origin: Callable[[str], Origin], tmp_path: Path, cli: Any, sandbox: Sandbox
) -> None:
    origin = make_origin("trunk")
    checkout = actions_checkout(origin, tmp_path / "run", event="push")
    origin.git("symbolic-ref", "HEAD", "refs/heads/gone")  # HEAD names no branch now
    for name in ("GITHUB_EVENT_PATH", "GITHUB_EVENT_NAME", "GITHUB_REF", "GITHUB_REF_NAME"):
        del checkout.env[name]
    result = run(cli, checkout, sandbox, "sync", "--no-pr", "--metric", GREETING)
    assert result.code == 1
    assert "default branch" in result.err and "CEKURA_GITOPS_DEFAULT_BRANCH" in result.err
    assert sandbox.count("POST", r"/process_feedbacks/$") == 0
    (checkout.work / "cekura-gitops.yaml").write_text(
        (checkout.work / "cekura-gitops.yaml").read_text() + "git:\n  default_branch: trunk\n"
    )
    configured = run(cli, checkout, sandbox, "sync", "--no-pr", "--metric", GREETING)
    assert configured.code == 0, configured.err
    assert statuses(configured) == {GREETING: "proposed"}


def test_a_shallow_checkout_whose_history_cannot_be_fetched_says_fetch_depth(
    make_origin: Callable[[str], Origin], tmp_path: Path
) -> None:
    """Depth 1 and the remote will not serve more: one clear error, never an empty range."""
    origin = make_origin("main")
    after = human_push(origin, tmp_path, GREETING_FILE, _tighten, "tighten")
    checkout = actions_checkout(origin, tmp_path / "run", event="push", sha=after)
    checkout.git("remote", "set-url", "origin", str(tmp_path / "gone.git"))
    with pytest.raises(GitOpsError, match=r"shallow.*set `fetch-depth: 0` on actions/checkout"):
        apply_command._reach(GitRepo(checkout.work), "origin", after, None)


def test_a_shallow_checkout_without_a_remote_refuses_to_guess(
    make_origin: Callable[[str], Origin], tmp_path: Path, cli: Any, sandbox: Sandbox
) -> None:
    origin = make_origin("main")
    before = origin.tip()
    after = human_push(origin, tmp_path, GREETING_FILE, _tighten, "tighten")
    checkout = actions_checkout(origin, tmp_path / "run", event="push", sha=after, before=before)
    checkout.git("remote", "remove", "origin")
    result = run(cli, checkout, sandbox, "apply")
    assert result.code == 1
    [line] = [line for line in result.err.splitlines() if not line.startswith("::")]
    assert "shallow" in line and "fetch-depth: 0" in line
    assert sandbox.state.patches == []


@pytest.mark.parametrize("depth", [1, 0], ids=["depth-1", "full"])
def test_a_push_whose_old_tip_is_gone_is_refused_not_guessed(
    make_origin: Callable[[str], Origin], tmp_path: Path, cli: Any, sandbox: Sandbox, depth: int
) -> None:
    """A force push: the event's `before` exists nowhere any more. apply cannot tell what
    changed, so it applies nothing and says how to name the range."""
    origin = make_origin("main")
    after = human_push(origin, tmp_path, GREETING_FILE, _tighten, "tighten")
    checkout = actions_checkout(
        origin, tmp_path / "run", event="push", depth=depth, sha=after, before="1" * 40
    )
    result = run(cli, checkout, sandbox, "apply")
    assert result.code == 1
    [line] = [line for line in result.err.splitlines() if not line.startswith("::")]
    assert "1111111111" in line and "--base" in line
    assert sandbox.state.patches == []


@pytest.mark.parametrize("event", ["schedule", "workflow_dispatch"])
def test_scheduled_sync_opens_its_pull_request_against_the_default_branch(
    make_origin: Callable[[str], Origin],
    tmp_path: Path,
    cli: Any,
    sandbox: Sandbox,
    make_fake_github: Any,
    event: str,
) -> None:
    origin = make_origin("trunk")
    gh = make_fake_github(
        origin_path=origin.path, owner="acme", repo="metrics", token=TOKEN, default_branch="trunk"
    )
    checkout = actions_checkout(origin, tmp_path / "run", event=event)
    checkout.env.update(github_env(gh))
    result = run(cli, checkout, sandbox, "sync", "--metric", GREETING)
    assert result.code == 0, result.err
    assert statuses(result) == {GREETING: "proposed"}
    [pr] = gh.pulls
    assert (pr["base"]["ref"], pr["head"]["ref"]) == ("trunk", f"cekura-gitops/optimise/{GREETING}")
    assert origin.git("rev-parse", f"refs/heads/cekura-gitops/optimise/{GREETING}^") == origin.tip()


# -- the runner-faithful matrix ----------------------------------------------------------

EVENTS = [("push", 0), ("push", 1), ("pull_request", 1), ("schedule", 1)]
DEFAULTS = ["main", "master", "trunk"]
CI_SAMPLE = {
    ("push", 1, "trunk"),
    ("pull_request", 1, "master"),
    ("schedule", 1, "main"),
    ("push", 0, "main"),
}


def _cases() -> list[Any]:
    cases = []
    for event, depth in EVENTS:
        for default in DEFAULTS:
            marks = () if (event, depth, default) in CI_SAMPLE else (pytest.mark.slow,)
            cases.append(
                pytest.param(event, depth, default, id=f"{event}-depth{depth}-{default}", marks=marks)
            )
    return cases


@pytest.mark.parametrize(("event", "depth", "default"), _cases())
def test_sync_plan_apply_on_a_runner_workspace(
    make_origin: Callable[[str], Origin],
    tmp_path: Path,
    cli: Any,
    sandbox: Sandbox,
    event: str,
    depth: int,
    default: str,
) -> None:
    origin = make_origin(default)
    imported = origin.tip()
    if event == "pull_request":
        human_push(origin, tmp_path, GREETING_FILE, _tighten, "tighten", branch="tighten")
        make_pull_merge_ref(origin, tmp_path, "tighten", 7)
        checkout = actions_checkout(
            origin, tmp_path / "run", event=event, depth=depth, pull_number=7, pull_head="tighten"
        )
    elif event == "push":
        after = human_push(origin, tmp_path, GREETING_FILE, _tighten, "tighten")
        checkout = actions_checkout(
            origin, tmp_path / "run", event=event, depth=depth, sha=after, before=imported
        )
    else:
        human_push(origin, tmp_path, GREETING_FILE, _tighten, "tighten")
        checkout = actions_checkout(origin, tmp_path / "run", event=event, depth=depth)

    # plan: the workspace's files against live Cekura.
    planned = run(cli, checkout, sandbox, "plan", "--detailed-exitcode")
    assert planned.code == 2, planned.err
    assert statuses(planned)[GREETING] != "in-sync"

    # apply: the change reaches Cekura (a pull request only previews it).
    preview = event == "pull_request"
    applied = run(cli, checkout, sandbox, "apply", *(["--dry-run"] if preview else []))
    assert applied.code == 0, applied.err
    assert list(statuses(applied)) == [GREETING]
    live = sandbox.state.metric(IDS[GREETING])["description"]
    assert ("or if unsure" in live) is not preview
    assert applied_marker(origin) == (None if preview else origin.tip())

    # sync: proposals are cut from the default branch's tip, whatever the event checked out.
    synced = run(cli, checkout, sandbox, "sync", "--no-pr", "--metric", SATISFACTION)
    assert synced.code == 0, synced.err
    assert statuses(synced) == {SATISFACTION: "proposed"}
    branch = f"refs/heads/cekura-gitops/optimise/{SATISFACTION}"
    assert origin.git("rev-parse", f"{branch}^") == origin.tip()
    assert origin.git("log", "-1", "--format=%ae", branch) == "cekura-gitops@users.noreply.github.com"

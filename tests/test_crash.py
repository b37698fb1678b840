"""Crash consistency: SIGKILL `sync` and `apply` anywhere, re-run from a fresh clone, converge.

Every crash point of `cekura_gitops/crashpoints.py`, qualified by each metric's slug, plus
kills by timing (mid-poll, and mid-push of a bot branch or of the state ref, held open by
a pre-receive hook on origin). After each kill:

- what is already there is sound: every metric file on every branch parses, no PR lacks
  its branch, no metric was optimised twice, origin's `main` (the humans' commits) is
  untouched;
- a re-run from a fresh clone of origin reaches the end state of an uninterrupted run:
  the same bot branches with the same file contents, the same PRs, the same live
  metrics, an empty `runs` in the state ref, and no second optimisation. A kill between
  the start POST and recording its progress id (`claimed`, `started`, mid-push of the
  record) leaves a claim that blocks (`in-flight`) until it expires; the test then
  shortens the expiry (`CEKURA_GITOPS_OPTIMISER_TIMEOUT`) and shows exactly one more start.

A point kill takes down every metric in flight, wherever it is: the re-run must cope with
all of it (other metrics caught between start and record block too, and are shown to
converge the same way). Push kills run one metric, so its pushes come in a known order.
CI runs a fixed sample; `--run-slow` runs every point.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests._hardening import (
    GREETING,
    IDS,
    REFUND,
    SATISFACTION,
    SLUGS,
    cekura_env,
    clean_environ,
    end_state,
    fresh_repo,
    live_fields,
    state,
    statuses,
    template_origin,  # noqa: F401 (fixture)
)
from tests.conftest import Repo, run_subprocess
from tests.kill_world import (  # noqa: F401 (fixtures)
    RERUN_TIMEOUT_S,
    SYNC_POINTS,
    World,
    cli_subprocess,
    sample,
    serve,
    spawn,
    uninterrupted_sync,
    wait_for_claims_to_expire,
    world,
)

APPLY_POINTS = ("patched", "verified")
# A kill here leaves a claim without a progress id: it blocks until it expires.
BLOCKING = {"claimed", "started", "push-record"}

CI_SAMPLE = {
    f"started:{GREETING}",
    f"recorded:{SATISFACTION}",
    f"branch-pushed:{GREETING}",
    f"published:{REFUND}",
    "patched:caller_greeted_by_name_1562",
    "mid-poll",
    "push-branch",
}

SYNC_CASES = [f"{point}:{slug}" for point in SYNC_POINTS for slug in SLUGS]
APPLY_CASES = [f"{point}:{slug}" for point in APPLY_POINTS for slug in (GREETING, SATISFACTION)]
TIMED_CASES = ["mid-poll", "push-claim", "push-record", "push-branch"]


# -- the uninterrupted runs to compare against ------------------------------------------


@pytest.fixture(scope="module")
def sync_baseline(template_origin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = uninterrupted_sync(template_origin, tmp_path_factory.mktemp("sync-baseline"))
    assert result["pr_count"] == 3 and len(result["branches"]) == 3 and result["runs"] == {}
    return result


@pytest.fixture(scope="module")
def apply_baseline(template_origin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("apply-baseline")
    env = clean_environ(root / "gitconfig")
    repo = fresh_repo(template_origin, root / "r")
    _two_changes(repo, env)
    with serve(repo.origin) as (sandbox, _gh):
        done = cli_subprocess(["--json", "apply"], repo.work, {**env, **cekura_env(sandbox)})
        assert done.returncode == 0, done.stderr
        return live_fields(sandbox)


NEW_DESCRIPTION = "Score FALSE otherwise, or if unsure."


def _two_changes(repo: Repo, env: dict[str, str] | None = None) -> None:
    """A merge touching two metrics: 1562's description and 1563's simulation flag."""
    for rel, old, new in (
        (f"metrics/{GREETING}.yaml", "Score FALSE otherwise.", NEW_DESCRIPTION),
        (f"metrics/{SATISFACTION}.yaml", "simulation_enabled: false", "simulation_enabled: true"),
    ):
        path = repo.work / rel
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))
    for args in (
        ["add", "-A"],
        ["commit", "-qm", "merge: two metric changes"],
        ["push", "-q", "origin", "HEAD:main"],
    ):
        subprocess.run(["git", *args], cwd=repo.work, env=env, check=True, capture_output=True)


def _killed(world: World, args: list[str], crash_at: str) -> None:
    done = run_subprocess(args, world.repo.work, {**world.env, "CEKURA_GITOPS_CRASH_AT": crash_at})
    assert done.returncode == -signal.SIGKILL, f"not killed at {crash_at}: {done.returncode}\n{done.stderr}"


def _converge_sync(world: World, baseline: dict[str, Any], must_block: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Re-run from fresh clones until converged; compare with the uninterrupted run."""
    world.sound()
    first = world.rerun("sync")
    assert first.code == 0, first.out
    got = statuses(first.json())
    blocked = {slug for slug, status in got.items() if status == "in-flight"}
    runs = state(world.repo.origin)["runs"]
    for slug in blocked:
        # Only our claim without a progress id blocks: a run may exist; only expiry tells.
        record = runs.get(IDS[slug])
        assert record is not None and "progress_id" not in record, (slug, runs)
    assert must_block <= blocked, (must_block, got)
    started = world.started()
    for slug in set(SLUGS) - blocked:
        assert started.get(IDS[slug]) == 1, f"{slug}: {started}: a second optimisation"
    if blocked:
        before = {slug: started.get(IDS[slug], 0) for slug in blocked}
        assert all(n <= 1 for n in before.values())
        world.sound()
        wait_for_claims_to_expire(world)
        second = world.rerun("sync", CEKURA_GITOPS_OPTIMISER_TIMEOUT=f"{RERUN_TIMEOUT_S}s")
        assert second.code == 0, second.out
        for slug in blocked:
            assert statuses(second.json())[slug] == "proposed"
            assert world.started()[IDS[slug]] == before[slug] + 1, "exactly one more start"
    assert "in-flight" not in statuses(world.rerun("sync").json()).values()
    world.sound()
    assert end_state(world.repo.origin, world.gh, world.sandbox) == baseline


@pytest.mark.parametrize("case", sample(SYNC_CASES, CI_SAMPLE))
def test_sync_killed_at_a_crash_point(case: str, world: World, sync_baseline: dict[str, Any]) -> None:
    point, slug = case.split(":")
    _killed(world, ["sync"], case)  # all three metrics in flight; the kill takes them all
    assert world.started().get(IDS[slug], 0) == (0 if point == "claimed" else 1)
    _converge_sync(world, sync_baseline, {slug} if point in BLOCKING else set())


@pytest.mark.parametrize("case", sample(APPLY_CASES, CI_SAMPLE))
def test_apply_killed_at_a_crash_point(case: str, world: World, apply_baseline: dict[str, Any]) -> None:
    point, slug = case.split(":")
    _two_changes(world.repo)
    world.main = world.repo.origin_ref("refs/heads/main")
    _killed(world, ["--concurrency", "1", "apply"], case)
    world.sound()
    rerun = world.rerun("apply")
    assert rerun.code == 0, rerun.out
    got = statuses(rerun.json())
    assert got[slug] == "in-sync"  # the killed run's PATCH landed: nothing to redo
    assert live_fields(world.sandbox) == apply_baseline
    for metric_id in (1562, 1563):
        bodies = [b for mid, b in world.sandbox.state.patches if mid == metric_id]
        assert len(bodies) == 1, f"metric {metric_id} PATCHed {len(bodies)} times"
    again = world.rerun("apply")  # converged: nothing left to do (or nothing in range)
    assert set(statuses(again.json()).values()) <= {"in-sync"}, (again.out, again.err)
    assert len(world.sandbox.state.patches) == 2


# -- kills by timing --------------------------------------------------------------------------

HOOK = """#!/bin/sh
# Hold the Nth matching push open until the test kills the pusher (or 10 s pass).
while read old new ref; do
  case "$ref" in
    {pattern})
      n=$(cat "{counter}" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "{counter}"
      if [ "$n" -eq {nth} ]; then
        touch "{marker}"; i=0
        while [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
      fi;;
  esac
done
exit 0
"""


def _kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool], limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    try:
        while not ready():
            assert proc.poll() is None, f"exited before the kill: {proc.communicate()[1]}"
            assert time.monotonic() < deadline, "the moment to kill never came"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("case", sample(TIMED_CASES, CI_SAMPLE))
def test_sync_killed_by_timing(case: str, world: World, sync_baseline: dict[str, Any]) -> None:
    origin = world.repo.origin
    if case == "mid-poll":
        for metric_id in IDS.values():  # all three are polling when the kill comes
            world.sandbox.state.set_optimiser_seconds(metric_id, 30)
        proc = spawn(world, ["sync"])

        def ready() -> bool:
            runs = state(origin)["runs"]
            recorded = len(runs) == 3 and all("progress_id" in r for r in runs.values())
            return recorded and world.sandbox.count("GET", r"process_feedbacks_progress") >= 3

        _kill_when(proc, ready)
        assert world.sandbox.count("GET", r"process_feedbacks_progress") >= 1
        world.sandbox.state.finish_optimisations()
        _converge_sync(world, sync_baseline)
        return
    # Hold a push to origin open inside a pre-receive hook, and kill the pusher there.
    pattern, nth, point = {
        "push-claim": ("refs/cekura-gitops/state", 1, "none"),  # never lands: nothing claimed
        "push-record": ("refs/cekura-gitops/state", 2, "push-record"),  # started, not recorded
        "push-branch": (f"refs/heads/cekura-gitops/optimise/{GREETING}", 1, "branch-pushed"),
    }[case]
    marker, counter = world.tmp / "hook-held", world.tmp / "hook-count"
    hook = origin / "hooks" / "pre-receive"
    hook.write_text(HOOK.format(pattern=pattern, nth=nth, marker=marker, counter=counter))
    hook.chmod(0o755)
    proc = spawn(world, ["sync", "--metric", GREETING])  # one metric: its pushes in order
    _kill_when(proc, marker.exists)
    hook.unlink()
    if case == "push-claim":
        assert state(origin)["runs"] == {} and world.started() == {}  # nothing happened
    if case == "push-branch":
        assert world.repo.origin_ref(f"refs/heads/cekura-gitops/optimise/{GREETING}") is None
        assert state(origin)["runs"][IDS[GREETING]]["progress_id"]
    _converge_sync(world, sync_baseline, {GREETING} if point in BLOCKING else set())

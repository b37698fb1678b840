"""Concurrent runs: two `sync` (or two `apply`) processes at once, each in its own fresh
clone of the same origin, against the same Cekura sandbox (and the same fake GitHub).

- sync: at most one optimisation per metric, ever; for each metric one process proposes
  and the other reports `in-flight` (it found the winner's claim); one PR per metric;
  every metric file parses; the state ref ends with no runs.
- apply: no two PATCHes with different values; both exit cleanly (one may find the
  metrics already in sync).

Each scenario repeats a few rounds (fresh origin and sandbox each time) to shake races out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cekura_gitops.sandbox import Sandbox
from tests._hardening import (  # noqa: F401
    GREETING,
    IDS,
    SATISFACTION,
    SLUGS,
    TOKEN,
    assert_no_pr_without_branch,
    assert_yaml_parses_everywhere,
    cekura_env,
    clone,
    end_runs_once_both_decided,
    fresh_repo,
    github_env,
    open_pr_heads,
    state,
    template_origin,
)
from tests.conftest import Repo

ROUNDS = 3


def _start(args: list[str], repo: Repo, env: dict[str, str], err: Path) -> subprocess.Popen[str]:
    with err.open("w") as stderr:  # a file, so that it can be read while the process runs
        return subprocess.Popen(
            [sys.executable, "-m", "cekura_gitops", "--json", *args],
            cwd=repo.work,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )


def _both(
    args: list[str],
    a: Repo,
    b: Repo,
    env: dict[str, str],
    meanwhile: Callable[[list[subprocess.Popen[str]], list[Path]], None] | None = None,
) -> list[tuple[int, dict[str, Any], str]]:
    """Start two processes at once; (exit code, JSON report, stderr) of each."""
    errs = [a.work.with_name(f"{a.work.name}.err"), b.work.with_name(f"{b.work.name}.err")]
    procs = [_start(args, a, env, errs[0]), _start(args, b, env, errs[1])]
    if meanwhile is not None:
        meanwhile(procs, errs)
    results = []
    for proc, path in zip(procs, errs, strict=True):
        out, _ = proc.communicate(timeout=60)
        err = path.read_text()
        assert "Traceback" not in err, err
        results.append((proc.returncode, json.loads(out) if out.strip() else {}, err))
    return results


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_syncs_at_once_start_one_optimisation_per_metric(
    round_: int, template_origin: Path, tmp_path: Path, make_fake_github
) -> None:  # type: ignore[no-untyped-def]
    repo = fresh_repo(template_origin, tmp_path / "r")
    gh = make_fake_github(origin_path=repo.origin, owner="acme", repo="metrics", token=TOKEN)
    # Runs held until both processes have claimed, found or taken over each, however late a
    # loaded machine starts the second one.
    with Sandbox(optimiser_seconds=600.0) as sandbox:
        env = {**cekura_env(sandbox), **github_env(gh)}
        a, b = clone(repo.origin, tmp_path / "a"), clone(repo.origin, tmp_path / "b")
        results = _both(
            ["sync"],
            a,
            b,
            env,
            lambda procs, errs: end_runs_once_both_decided(sandbox, repo.origin, procs, errs),
        )
        started = sandbox.state.optimisations_started
        assert sandbox.validation_errors == []

    assert started == {i: 1 for i in IDS.values()}, started  # never a second optimisation
    for code, _, err in results:
        assert code == 0, err
    per_metric: dict[str, list[str]] = {slug: [] for slug in SLUGS}
    for _, doc, _ in results:
        for m in doc["metrics"]:
            per_metric[m["slug"]].append(m["status"])
    for slug, got in per_metric.items():
        assert sorted(got) == ["in-flight", "proposed"], (slug, got, [r[2] for r in results])
    assert open_pr_heads(gh) == sorted(f"cekura-gitops/optimise/{s}" for s in SLUGS)
    assert len(gh.pulls) == 3
    assert_no_pr_without_branch(gh, repo.origin)
    assert_yaml_parses_everywhere(repo.origin)
    assert state(repo.origin)["runs"] == {}


@pytest.mark.parametrize("round_", range(2))
def test_two_applies_at_once_never_patch_different_values(
    round_: int, template_origin: Path, tmp_path: Path
) -> None:
    repo = fresh_repo(template_origin, tmp_path / "r")
    for rel, old, new in (
        (f"metrics/{GREETING}.yaml", "Score FALSE otherwise.", "Score FALSE otherwise, or if unsure."),
        (f"metrics/{SATISFACTION}.yaml", "simulation_enabled: false", "simulation_enabled: true"),
    ):
        path = repo.work / rel
        path.write_text(path.read_text().replace(old, new, 1))
    repo.commit_all("merge: two metric changes")
    repo.push()
    with Sandbox() as sandbox:
        a, b = clone(repo.origin, tmp_path / "a"), clone(repo.origin, tmp_path / "b")
        started = time.monotonic()
        results = _both(["apply"], a, b, cekura_env(sandbox))
        elapsed = time.monotonic() - started
        patches = sandbox.state.patches
        live = {i: sandbox.state.metric(i) for i in (1562, 1563)}
        assert sandbox.validation_errors == []
    for code, doc, err in results:
        assert code == 0, (doc, err)
        assert {m["status"] for m in doc["metrics"]} <= {"applied", "in-sync"}, doc
    for metric_id in (1562, 1563):
        bodies = {json.dumps(b, sort_keys=True) for mid, b in patches if mid == metric_id}
        assert len(bodies) == 1, f"metric {metric_id}: PATCHes with different values: {bodies}"
    assert "or if unsure." in live[1562]["description"] and live[1563]["simulation_enabled"] is True
    assert elapsed < 30

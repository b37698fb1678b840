"""Lint action.yml and the workflows offline: schemas, zizmor, and the rules we hold ourselves to."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.action.harness import load_yaml

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
COPIED_WORKFLOWS = ("optimise.yml", "plan.yml", "apply.yml", "sharded-optimise.yml")


def _tool(name: str) -> str:
    """The tool next to the running interpreter (the dev venv), else on PATH, else skip."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install '.[test]' provides it)")
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def _steps(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, step) for every step of an action or of every job of a workflow."""
    if "runs" in doc:
        for i, step in enumerate(doc["runs"].get("steps") or []):
            yield f"runs.steps[{i}]", step
    for job_id, job in (doc.get("jobs") or {}).items():
        for i, step in enumerate(job.get("steps") or []):
            yield f"jobs.{job_id}.steps[{i}]", step


def _all_files() -> list[Path]:
    return [ACTION, *WORKFLOWS]


def test_the_expected_workflows_exist() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", *COPIED_WORKFLOWS} <= names


def test_action_matches_the_actions_schema() -> None:
    done = _run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(ACTION)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflows_match_the_workflows_schema() -> None:
    done = _run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)]
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing_medium_or_worse() -> None:
    done = _run([_tool("zizmor"), "--offline", "--min-severity", "medium", "--format", "plain", "."])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", _all_files(), ids=lambda p: p.name)
def test_no_expression_inside_run(path: Path) -> None:
    for where, step in _steps(load_yaml(path)):
        if "run" in step:
            assert "${{" not in str(step["run"]), f"{path.name} {where}: map the value through env:"


@pytest.mark.parametrize("path", _all_files(), ids=lambda p: p.name)
def test_every_remote_uses_is_pinned_to_a_full_sha(path: Path) -> None:
    uses = [step["uses"] for _, step in _steps(load_yaml(path)) if "uses" in step]
    for ref in uses:
        if ref.startswith("./"):
            continue
        assert PINNED.match(ref), f"{path.name}: {ref} is not pinned to a 40-hex commit sha"
    text = path.read_text()
    for line in text.splitlines():
        if re.search(r"^\s*(-\s*)?uses:\s*[^.\s]", line):
            assert re.search(r"@[0-9a-f]{40}\s+#\s*v\d", line), (
                f"{path.name}: pin without a # vX comment: {line}"
            )


def test_plan_runs_on_pull_request_never_pull_request_target() -> None:
    plan = load_yaml(ROOT / ".github" / "workflows" / "plan.yml")
    assert "pull_request_target" not in plan["on"]
    assert "pull_request" in plan["on"]


@pytest.mark.parametrize("name", COPIED_WORKFLOWS)
def test_cekura_workflows_skip_cleanly_without_configuration(name: str) -> None:
    doc = load_yaml(ROOT / ".github" / "workflows" / name)
    for job_id, job in doc["jobs"].items():
        assert "vars.CEKURA_ENABLED == 'true'" in str(job.get("if", "")), f"{name}: job {job_id}"
    assert doc.get("permissions") == {}, f"{name}: no workflow-wide permissions; grant them per job"


def test_ci_runs_the_checks_with_read_only_permissions() -> None:
    doc = load_yaml(ROOT / ".github" / "workflows" / "ci.yml")
    assert doc["permissions"] == {"contents": "read"}
    job = next(iter(doc["jobs"].values()))
    assert "if" not in job
    assert any(step.get("run") == "bash .ci/run" for step in job["steps"])

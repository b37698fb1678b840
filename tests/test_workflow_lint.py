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


# Every action we reference, looked up in the action's own repository: tag -> commit, and the
# runtime in that commit's action.yml. A `uses:` must name one of these commits, with its tag
# in a comment. Add a new one only after reading its action.yml at that commit.
KNOWN_PINS = {
    ("actions/checkout", "3d3c42e5aac5ba805825da76410c181273ba90b1"): "v7.0.1",  # node24
    ("actions/checkout", "d23441a48e516b6c34aea4fa41551a30e30af803"): "v6.1.0",  # node24
    ("actions/setup-python", "5fda3b95a4ea91299a34e894583c3862153e4b97"): "v7.0.0",  # node24
    ("actions/setup-python", "ece7cb06caefa5fff74198d8649806c4678c61a1"): "v6.3.0",  # node24
    ("actions/create-github-app-token", "1b10c78c7865c340bc4f6099eb2f838309f1e8c3"): "v3.1.1",  # node24
    ("actions/cache", "27d5ce7f107fe9357f9df03efb73ab90386fccae"): "v5.0.5",  # node24
    ("actions/upload-artifact", "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f"): "v7.0.0",  # node24
    ("actions/download-artifact", "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c"): "v8.0.1",  # node24
    ("pypa/gh-action-pypi-publish", "81e9d935c883d0b210363ab89cf05f3894778450"): "v1.8.14",  # docker
}
# Node 20 releases this project used before; GitHub's runners removed Node 20 on 2026-09-16.
NODE20_PINS = {
    "11bd71901bbe5b1630ceea73d27597364c9af683": "actions/checkout v4.2.2",
    "a26af69be951a213d495a4c3e4e4022e16d87065": "actions/setup-python v5.6.0",
    "d72941d797fd3113feb6b93fd0dec494b13a2547": "actions/create-github-app-token v1.12.0",
}
USES_LINE = re.compile(r"^\s*(?:#\s*)?(?:-\s*)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")


def pin_problems(name: str, text: str) -> list[str]:
    """Every `uses:` line (commented-out ones too, users uncomment them) that is not a known pin."""
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        match = USES_LINE.match(line)
        if not match or match["ref"].startswith("./"):
            continue
        ref, rest = match["ref"], match["rest"]
        action, _, sha = ref.partition("@")
        where = f"{name}:{number}: {ref}"
        if sha in NODE20_PINS:
            problems.append(f"{where} is {NODE20_PINS[sha]}, a Node 20 release")
        elif not re.fullmatch(r"[0-9a-f]{40}", sha):
            problems.append(f"{where} is not pinned to a full 40-hex commit sha")
        elif (action, sha) not in KNOWN_PINS:
            problems.append(f"{where} is not a commit we looked up (see KNOWN_PINS)")
        elif not re.fullmatch(rf"\s*#\s*{re.escape(KNOWN_PINS[action, sha])}\b.*", rest):
            problems.append(f"{where} needs the comment '# {KNOWN_PINS[action, sha]}'")
    return problems


def _documents() -> list[Path]:
    return [*_all_files(), ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", _documents(), ids=lambda p: p.name)
def test_every_uses_is_a_known_node24_pin(path: Path) -> None:
    assert pin_problems(path.name, path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "line",
    [
        "      uses: actions/checkout@v7",
        "      uses: actions/checkout@main",
        "      uses: actions/checkout@3d3c42e",
        "      uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2",
        "      #   uses: actions/create-github-app-token@d72941d797fd3113feb6b93fd0dec494b13a2547 # v1.12.0",
        "      uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1",
        "      uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v6.1.0",
        "    - uses: evil/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1",
    ],
)
def test_the_pin_check_catches(line: str) -> None:
    assert len(pin_problems("x.yml", line)) == 1


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


def test_plan_runs_in_merge_queues_without_a_paths_filter() -> None:
    plan = load_yaml(ROOT / ".github" / "workflows" / "plan.yml")
    assert "merge_group" in plan["on"]
    assert not (plan["on"]["merge_group"] or {}).get("paths")
    steps = plan["jobs"]["plan"]["steps"]
    gated = [s for s in steps if s.get("uses") == "./"]
    assert gated and all(s["if"] == "steps.changes.outputs.changed != 'false'" for s in gated)

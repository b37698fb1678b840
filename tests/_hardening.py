"""Helpers shared by the hardening suites (test_faults, test_crash, test_concurrency).

- `template_origin`: one bare origin per session holding the three metrics of project 1376
  (pulled from a sandbox) plus `cekura-gitops.yaml` with `min_feedback: 0`, so every seeded
  metric is optimised. Each test gets its own copy (`fresh_repo`), which is much cheaper
  than pulling again.
- End-state helpers: what a run leaves on origin, on the fake GitHub and in the sandbox,
  in a form two runs can be compared by.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from cekura_gitops import metric_files
from cekura_gitops.sandbox import Sandbox
from tests.conftest import HUMAN, LEAKY_ENV, Repo, git
from tests.fakes.github_server import FakeGitHub

GREETING = "caller_greeted_by_name_1562"
SATISFACTION = "customer_satisfaction_1563"
REFUND = "refund_policy_code_1564"
SLUGS = (GREETING, SATISFACTION, REFUND)
IDS = {GREETING: 1562, SATISFACTION: 1563, REFUND: 1564}
STATE_REF = "refs/cekura-gitops/state"
TOKEN = "ghs_hardeningToken0123456789"
CONFIG = "optimiser:\n  min_feedback: 0\n"
# Retries in milliseconds, not seconds (settings.py: CEKURA_GITOPS_HTTP_BACKOFF).
FAST = {"CEKURA_GITOPS_HTTP_BACKOFF": "0.01", "CEKURA_GITOPS_GITHUB_WRITE_INTERVAL": "0"}

_LEAKY = LEAKY_ENV


def clean_environ(gitconfig: Path) -> dict[str, str]:
    """os.environ without leaky variables, with the test git identity (for session fixtures)."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY}
    env.update(HUMAN)
    env["GIT_CONFIG_GLOBAL"] = str(gitconfig)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    gitconfig.write_text(
        "[init]\n\tdefaultBranch = main\n[user]\n\tname = Ada Human\n\temail = ada@example.com\n"
    )
    return env


@pytest.fixture(scope="session")
def template_origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare origin: README, metrics/ pulled from a fresh sandbox, and CONFIG, on main."""
    root = tmp_path_factory.mktemp("template")
    env = clean_environ(root / "gitconfig")

    def run(cwd: Path, *args: str) -> None:
        subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)

    origin, work = root / "origin.git", root / "work"
    run(root, "git", "init", "-q", "--bare", "--initial-branch=main", str(origin))
    run(root, "git", "init", "-q", "--initial-branch=main", str(work))
    (work / "README.md").write_text("metrics repo\n")
    (work / "cekura-gitops.yaml").write_text(CONFIG)
    with Sandbox() as sb:
        done = subprocess.run(
            [sys.executable, "-m", "cekura_gitops", "pull", "--project", "1376"],
            cwd=work,
            env={**env, "CEKURA_API_URL": sb.url, "CEKURA_API_KEY": sb.api_key},
            capture_output=True,
            text=True,
        )
    assert done.returncode == 0, done.stderr
    assert sorted(p.stem for p in (work / "metrics").glob("*.yaml")) == sorted(SLUGS)
    run(work, "git", "add", "-A")
    run(work, "git", "commit", "-qm", "import metrics")
    run(work, "git", "push", "-q", str(origin), "HEAD:main")
    return origin


def fresh_repo(template: Path, dest: Path) -> Repo:
    """A private copy of the template origin and a fresh clone of it (remote HEAD set)."""
    dest.mkdir(parents=True, exist_ok=True)
    origin = dest / "origin.git"
    shutil.copytree(template, origin)
    return clone(origin, dest / "work")


def clone(origin: Path, dest: Path) -> Repo:
    git(dest.parent, "clone", "-q", str(origin), str(dest))
    return Repo(dest, origin)


def cekura_env(sandbox: Sandbox) -> dict[str, str]:
    return {"CEKURA_API_URL": sandbox.url, "CEKURA_API_KEY": sandbox.api_key, **FAST}


def github_env(gh: FakeGitHub) -> dict[str, str]:
    return {
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": gh.full_name,
        "GITHUB_API_URL": gh.url,
        "GITHUB_GRAPHQL_URL": gh.graphql_url,
    }


def start_github(origin: Path) -> FakeGitHub:
    return FakeGitHub(origin_path=str(origin), owner="acme", repo="metrics", token=TOKEN).start()


# -- reading what a run left behind ------------------------------------------------------


def origin_git(origin: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=origin, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def refs(origin: Path, prefix: str = "refs/") -> dict[str, str]:
    out = origin_git(origin, "for-each-ref", "--format=%(refname) %(objectname)", prefix)
    return dict(tuple(line.split(" ", 1)) for line in out.splitlines() if line)  # type: ignore[misc]


def bot_branches(origin: Path) -> dict[str, str]:
    """refs/heads/cekura-gitops/... -> tip sha."""
    return {k: v for k, v in refs(origin, "refs/heads/cekura-gitops/").items()}


def state(origin: Path) -> dict[str, Any]:
    """origin's state.json, its `runs` and `last` lists as mappings by metric id."""
    text = origin_git(origin, "show", f"{STATE_REF}:state.json")
    return by_metric_id(json.loads(text) if text else {})


def run_owners(origin: Path, owners: dict[int, set[str]], seen: set[str]) -> None:
    """Add to `owners` every owner the state ref's history recorded a run (with its progress
    id) for, reading only the commits not in `seen` (a poll reads each commit once)."""
    for sha in origin_git(origin, "rev-list", STATE_REF).split():
        if sha in seen:
            continue
        seen.add(sha)
        doc = by_metric_id(json.loads(origin_git(origin, "show", f"{sha}:state.json")))
        for metric_id, record in doc["runs"].items():
            if "progress_id" in record:
                owners.setdefault(metric_id, set()).add(record["owner"])


def by_metric_id(doc: dict[str, Any]) -> dict[str, Any]:
    """A state.json document with `runs` and `last` keyed by metric id (int), as the code
    reads them (version 2 stores them as lists: see statestore.VERSION)."""
    assert doc.get("version", 2) == 2, doc
    return {
        **doc,
        "runs": {int(r["metric_id"]): r for r in doc.get("runs", [])},
        "last": {int(r["metric_id"]): r for r in doc.get("last", [])},
    }


def metric_texts(origin: Path, ref: str) -> dict[str, str]:
    """metrics/*.yaml at ref, by path."""
    names = origin_git(origin, "ls-tree", "--name-only", f"{ref}:metrics")
    return {
        f"metrics/{n}": origin_git(origin, "show", f"{ref}:metrics/{n}") + "\n" for n in names.splitlines()
    }


def assert_yaml_parses_everywhere(origin: Path) -> None:
    """Every metric file on every branch of origin is a valid metric file."""
    for ref in refs(origin, "refs/heads/"):
        for path, text in metric_texts(origin, ref).items():
            stem = Path(path).stem
            metric_files.parse_metric(text, f"{ref}:{path}", file_stem=stem)  # raises if corrupt
    assert_branch_files_whole(origin)


def assert_branch_files_whole(origin: Path) -> None:
    """A bot branch's metric file is main's file with some fields changed: same metric, and
    not a key lost (a truncated or half-written file would lose some)."""
    main = metric_texts(origin, "refs/heads/main")
    for ref in bot_branches(origin):
        for path, text in metric_texts(origin, ref).items():
            if path not in main:
                continue
            ours = metric_files.parse_metric(text, path, file_stem=Path(path).stem).metric
            base = metric_files.parse_metric(main[path], path, file_stem=Path(path).stem).metric
            assert (ours.id, ours.slug, ours.project) == (base.id, base.slug, base.project), path
            assert set(base.fields) <= set(ours.fields), (
                f"{ref}:{path} lost {set(base.fields) - set(ours.fields)}"
            )


def assert_no_pr_without_branch(gh: FakeGitHub, origin: Path) -> None:
    heads = {ref.removeprefix("refs/heads/") for ref in refs(origin, "refs/heads/")}
    for pr in gh.pulls:
        if pr["state"] == "open":
            assert pr["head"]["ref"] in heads, f"PR #{pr['number']} has no branch"


def open_pr_heads(gh: FakeGitHub) -> list[str]:
    return sorted(p["head"]["ref"] for p in gh.pulls if p["state"] == "open")


LIVE_FIELDS = (
    "name",
    "description",
    "type",
    "eval_type",
    "evaluation_trigger",
    "trigger_type",
    "evaluation_trigger_prompt",
    "custom_code",
    "observability_enabled",
    "simulation_enabled",
)


def live_fields(sandbox: Sandbox) -> dict[int, dict[str, Any]]:
    return {i: {k: sandbox.state.metric(i).get(k) for k in LIVE_FIELDS} for i in IDS.values()}


def end_state(origin: Path, gh: FakeGitHub | None, sandbox: Sandbox) -> dict[str, Any]:
    """What two runs that converged must agree on (shas and timestamps excluded)."""
    branches = {ref: metric_texts(origin, ref) for ref in bot_branches(origin)}
    st = state(origin)
    return {
        "main": metric_texts(origin, "refs/heads/main"),
        "branches": branches,
        "prs": open_pr_heads(gh) if gh is not None else None,
        "pr_count": len(gh.pulls) if gh is not None else None,
        "live": live_fields(sandbox),
        "runs": st.get("runs", {}),
        "last": sorted(st.get("last", {})),
    }


def statuses(doc: Mapping[str, Any]) -> dict[str, str]:
    return {m["slug"]: m["status"] for m in doc["metrics"]}


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text, text


def end_runs_once_both_decided(
    sandbox: Sandbox, origin: Path, procs: Sequence[subprocess.Popen[str]], errs: Sequence[Path]
) -> None:
    """With every optimisation held running, wait until each of two concurrent syncs has
    decided about each metric, then end the runs.

    A loaded machine can start the second sync seconds late: were the first one's runs over
    by then, it would take a run over while the first publishes it (both publish it), or
    find nothing left to do. A metric is decided once its record names a run and the sync
    not holding it took it over or said it is in flight (on stderr, in `errs`). Owners are
    read from the state ref's whole history: a takeover can follow the record it takes over
    faster than any poll of the tip would see both.
    """
    owners: dict[int, set[str]] = {}
    seen: set[str] = set()
    deadline = time.monotonic() + 90
    while True:
        runs = state(origin).get("runs", {})
        run_owners(origin, owners, seen)
        said = [path.read_text() for path in errs]
        undecided = []
        for slug, metric_id in IDS.items():
            record = runs.get(metric_id)
            if record is None or "progress_id" not in record:
                undecided.append(slug)
                continue
            others = [t for p, t in zip(procs, said, strict=True) if f" pid {p.pid} " not in record["owner"]]
            if len(owners.get(metric_id, set())) < 2 and not any(f"{slug}: in-flight" in t for t in others):
                undecided.append(slug)
        if not undecided:
            break
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
            for p in procs:
                p.kill()
            raise AssertionError(
                f"undecided: {undecided}; stderr: {said}; sandbox errors: {sandbox.server_errors}"
            )
        time.sleep(0.2)
    sandbox.state.finish_optimisations()

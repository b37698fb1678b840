"""The workflows `init` writes, run in a repository that holds only metrics, with the Action
taken from another directory (as the runner downloads `OWNER/cekura-gitops@SHA`)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cekura_gitops.sandbox import Sandbox
from tests.action.harness import REPO_ROOT, pull_request_event, push_event
from tests.action.workflow import WorkflowJob, merge_group_event
from tests.conftest import Repo
from tests.fakes.github_server import FakeGitHub

SHA = "0123456789abcdef0123456789abcdef01234567"
ACTION = f"acme/cekura-gitops@{SHA}"
GREETING = "metrics/caller_greeted_by_name_1562.yaml"
ON = {"CEKURA_ENABLED": "true"}


@pytest.fixture
def action_dir(tmp_path: Path) -> Path:
    """Where the runner would unpack the Action: _actions/acme/cekura-gitops/<sha>."""
    target = tmp_path / "_actions" / "acme" / "cekura-gitops" / SHA
    target.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "action.yml", target)
    shutil.copy(REPO_ROOT / "pyproject.toml", target)
    shutil.copytree(
        REPO_ROOT / "cekura_gitops", target / "cekura_gitops", ignore=shutil.ignore_patterns("__pycache__")
    )
    return target


@pytest.fixture
def metrics_repo(repo: Repo, cli) -> Repo:
    """A repository of metric files and the workflows init wrote: no action, no package."""
    shutil.copytree(REPO_ROOT / "metrics", repo.work / "metrics")
    result = cli("init", "--action", ACTION, cwd=repo.work)
    assert result.code == 0, result.err
    repo.commit_all("metrics and workflows")
    repo.push()
    assert not any((repo.work / name).exists() for name in ("action.yml", "pyproject.toml", "cekura_gitops"))
    return repo


def _job(repo: Repo, name: str, job: str, tmp: Path, action_dir: Path, **kwargs: object) -> WorkflowJob:
    return WorkflowJob(
        repo.work / ".github" / "workflows" / name, job, repo.work, tmp, action_dir=action_dir, **kwargs
    )


def _enabled_job(
    repo: Repo, name: str, job: str, tmp: Path, action_dir: Path, sandbox: Sandbox, **kwargs: object
) -> WorkflowJob:
    """A job of an init-written workflow with Cekura switched on and pointed at the sandbox."""
    return _job(
        repo,
        name,
        job,
        tmp,
        action_dir,
        vars=ON,
        secrets={"CEKURA_API_KEY": sandbox.api_key},
        action_inputs={"cekura-api-url": sandbox.url},
        **kwargs,
    )


def _stricter_greeting(repo: Repo) -> None:
    path = repo.work / GREETING
    path.write_text(path.read_text().replace("Score FALSE otherwise.", "Score FALSE otherwise. Be strict."))


def _installed_from(job: WorkflowJob, action_dir: Path) -> None:
    installs = [i for run in job.action_runs for i in run.pip_installs]
    assert installs, "the Action never installed the tool"
    for args in installs:
        assert args[-1] == str(action_dir)


def test_optimise_workflow_opens_a_pull_request(
    metrics_repo: Repo,
    action_dir: Path,
    tmp_path: Path,
    sandbox: Sandbox,
    make_fake_github: Callable[..., FakeGitHub],
) -> None:
    fake = make_fake_github(origin_path=metrics_repo.origin)
    job = _enabled_job(
        metrics_repo,
        "cekura-optimise.yml",
        "sync",
        tmp_path / "runner",
        action_dir,
        sandbox,
        token=fake.token,
        api_url=fake.url,
        env={"GITHUB_GRAPHQL_URL": fake.graphql_url},
    )
    result = job.run(event_name="schedule", event={"schedule": "17 6 * * 1"})
    assert result.ok, result.describe()
    assert result.step("app-token").outcome == "skipped"  # no App configured: GITHUB_TOKEN
    assert result.step("sync").outputs["changed"] == "1"
    assert len(fake.pulls) == 1
    _installed_from(job, action_dir)


def test_plan_workflow_comments_on_a_pull_request(
    metrics_repo: Repo, action_dir: Path, tmp_path: Path, sandbox: Sandbox
) -> None:
    _stricter_greeting(metrics_repo)
    with FakeGitHub() as fake:
        pr = fake.add_pull(head="feature")
        job = _enabled_job(
            metrics_repo,
            "cekura-plan.yml",
            "plan",
            tmp_path / "runner",
            action_dir,
            sandbox,
            token=fake.token,
            api_url=fake.url,
        )
        result = job.run(event_name="pull_request", event=pull_request_event(pr["number"]))
        fake.stop()
        comments = fake.comments_on(pr["number"])
    assert result.ok, result.describe()
    assert result.step("changes").outcome == "skipped"  # only merge groups are compared
    assert result.step("plan").outputs["changed"] == "1"
    assert len(comments) == 1 and "caller_greeted_by_name_1562" in comments[0]["body"]
    # validate, then plan: one environment for the job.
    assert [len(run.pip_installs) for run in job.action_runs] == [1, 0]
    _installed_from(job, action_dir)


def test_plan_in_a_merge_queue_says_nothing_to_plan_quickly(
    metrics_repo: Repo, action_dir: Path, tmp_path: Path
) -> None:
    base = metrics_repo.git("rev-parse", "HEAD")
    metrics_repo.write("README.md", "docs only\n")
    head = metrics_repo.commit_all("docs")
    job = _job(metrics_repo, "cekura-plan.yml", "plan", tmp_path / "runner", action_dir, vars=ON)
    started = time.monotonic()
    result = job.run(event_name="merge_group", event=merge_group_event(base, head))
    elapsed = time.monotonic() - started
    assert result.ok, result.describe()
    assert "Nothing to plan" in result.summary
    assert job.action_runs == []  # neither Python nor the tool was set up
    assert elapsed < 30  # generous on a loaded machine; the point is that nothing ran

    changed = metrics_repo.work / GREETING
    changed.write_text(changed.read_text().replace("eval_type: binary", "eval_type: bogus"))
    bad = metrics_repo.commit_all("break a metric")
    failed = job.run(event_name="merge_group", event=merge_group_event(base, bad))
    assert not failed.ok
    assert failed.step("changes").outputs["changed"] == "true"
    assert any(e.properties.get("file") == GREETING for e in failed.annotations("error"))


def test_apply_workflow_applies_a_merged_change(
    metrics_repo: Repo, action_dir: Path, tmp_path: Path, sandbox: Sandbox
) -> None:
    before = metrics_repo.git("rev-parse", "HEAD")
    _stricter_greeting(metrics_repo)
    after = metrics_repo.commit_all("stricter greeting")
    metrics_repo.push()
    job = _enabled_job(metrics_repo, "cekura-apply.yml", "apply", tmp_path / "runner", action_dir, sandbox)
    result = job.run(event_name="push", event=push_event(before, after))
    assert result.ok, result.describe()
    statuses = {m["slug"]: m["status"] for m in json.loads(result.step("apply").outputs["result"])}
    assert statuses == {"caller_greeted_by_name_1562": "applied"}
    assert "Be strict." in sandbox.state.metric(1562)["description"]
    _installed_from(job, action_dir)


def test_the_workflows_skip_until_cekura_is_enabled(
    metrics_repo: Repo, action_dir: Path, tmp_path: Path
) -> None:
    for name, job_id in (("cekura-optimise.yml", "sync"), ("cekura-apply.yml", "apply")):
        job = _job(metrics_repo, name, job_id, tmp_path / name, action_dir)
        assert not job.runs_on("schedule", {})
    plan = _job(metrics_repo, "cekura-plan.yml", "plan", tmp_path / "plan", action_dir)
    assert not plan.runs_on("pull_request", pull_request_event(3))
    assert plan.runs_on("pull_request", pull_request_event(3, fork=True))  # forks plan offline


def test_the_sharded_example_counts_metrics_with_the_action(metrics_repo: Repo, tmp_path: Path) -> None:
    workflow = REPO_ROOT / ".github" / "workflows" / "sharded-optimise.yml"
    job = WorkflowJob(
        workflow, "shards", metrics_repo.work, tmp_path / "runner", action_dir=REPO_ROOT, vars=ON
    )
    result = job.run(event_name="workflow_dispatch", event={"inputs": {}})
    assert result.ok, result.describe()
    count = len(list((metrics_repo.work / "metrics").glob("*.yaml")))
    n = min(count, 4)
    assert result.step("list").outputs["count"] == str(count)
    assert json.loads(result.step("shards").outputs["shards"]) == [f"{k}/{n}" for k in range(1, n + 1)]

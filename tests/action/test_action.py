"""action.yml end to end: the runner contract (harness), the Cekura sandbox, a fake GitHub, git."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cekura_gitops.sandbox import Sandbox
from tests.action.harness import (
    REPO_ROOT,
    ActionHarness,
    ActionRun,
    Evaluator,
    HarnessError,
    load_action,
    parse_file_command,
    pull_request_event,
    push_event,
    workflow_commands,
)
from tests.conftest import Repo
from tests.fakes.github_server import FakeGitHub

GREETING = "metrics/caller_greeted_by_name_1562.yaml"
KEY_HINT = "CEKURA_API_KEY is empty. Is the secret set, and is this a fork pull request?"


@pytest.fixture
def workspace(repo: Repo) -> Repo:
    """A checkout holding a copy of this project's metrics/, pushed to its bare origin."""
    shutil.copytree(REPO_ROOT / "metrics", repo.work / "metrics")
    repo.commit_all("import metrics")
    repo.push()
    return repo


@pytest.fixture
def harness(workspace: Repo, tmp_path: Path) -> ActionHarness:
    return ActionHarness(workspace.work, tmp_path / "runner")


def _with_sandbox(sandbox: Sandbox, **inputs: str) -> dict[str, str]:
    return {"cekura-api-key": sandbox.api_key, "cekura-api-url": sandbox.url, **inputs}


# -- the action file and the harness itself ------------------------------------------------


def test_action_declares_the_documented_interface() -> None:
    action = load_action(REPO_ROOT / "action.yml")
    inputs = action["inputs"]
    assert inputs["command"]["required"] is True
    assert inputs["github-token"]["default"] == "${{ github.token }}"
    assert {k: v.get("default") for k, v in inputs.items() if k not in ("command", "github-token")} == {
        "cekura-api-key": "",
        "github-app-id": "",
        "github-app-private-key": "",
        "cekura-api-url": "https://api.cekura.ai",
        "metrics-dir": "",
        "metrics": "",
        "python-version": "3.12",
        "version": "",
        "shard": "",
        "dry-run": "false",
        "force": "false",
    }
    assert set(action["outputs"]) >= {"changed", "pull-requests", "conflicts", "result"}
    steps = action["runs"]["steps"]
    assert steps[0]["uses"].startswith("actions/setup-python@")
    run_step = next(s for s in steps if s.get("id") == "run")
    assert run_step["env"]["GITHUB_TOKEN"] == "${{ inputs.github-token }}"
    assert run_step["env"]["CEKURA_GITOPS_APP_ID"] == "${{ inputs.github-app-id }}"
    assert run_step["env"]["CEKURA_GITOPS_APP_PRIVATE_KEY"] == "${{ inputs.github-app-private-key }}"
    assert run_step["run"].rstrip().splitlines()[-1].strip() == 'exec "$CG_CLI" "${args[@]}"'
    assert run_step["env"]["CG_CLI"] == "${{ steps.venv.outputs.dir }}/bin/cekura-gitops"
    mapped = [s for s in steps if "GITHUB_TOKEN" in (s.get("env") or {})]
    assert mapped == [run_step], "GITHUB_TOKEN must reach exactly the CLI step, via the input"


def test_harness_refuses_expressions_inside_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "action.yml").write_text(
        "name: bad\ndescription: bad\ninputs:\n  x:\n    description: x\nruns:\n  using: composite\n"
        "  steps:\n    - shell: bash\n      run: echo ${{ inputs.x }}\n"
    )
    with pytest.raises(HarnessError, match="inside run"):
        ActionHarness(tmp_path, tmp_path / "runner", action_dir=bad)


def test_harness_file_commands_and_expressions() -> None:
    text = "a=1\nmulti<<EOF_x\nline 1\nline=2\nEOF_x\n\nb=x=y\n"
    assert parse_file_command(text) == {"a": "1", "multi": "line 1\nline=2", "b": "x=y"}
    with pytest.raises(HarnessError, match="delimiter"):
        parse_file_command("m<<END\nno end\n")
    ev = Evaluator(
        {
            "inputs": {"dry-run": "false", "empty": ""},
            "github": {"token": "t0k", "event_name": "push"},
            "steps": {"run": {"outputs": {"pull-requests": "[1]"}}},
        }
    )
    assert ev.interpolate("${{ inputs.empty || github.token }}") == "t0k"
    assert ev.interpolate("x-${{ steps.run.outputs.pull-requests }}-${{ steps.nope.outputs.x }}") == "x-[1]-"
    assert ev.condition("github.event_name == 'PUSH' && inputs.dry-run != 'true'") is True
    assert ev.condition("${{ failure() }}") is False
    assert ev.evaluate("fromJSON(steps.run.outputs.pull-requests)[0]") == 1
    commands = workflow_commands(
        "::add-mask::s3cr3t\n::stop-commands::tok\n::error::not a command\n::tok::\n"
        "::error file=a%2Cb.yaml,line=3::bad%0Aline\n"
    )
    assert [(c.name, c.properties, c.message) for c in commands] == [
        ("add-mask", {}, "s3cr3t"),
        ("error", {"file": "a,b.yaml", "line": "3"}, "bad\nline"),
    ]


def test_validate_installs_from_the_action_path_into_its_own_venv(harness: ActionHarness) -> None:
    result = harness.run({"command": "validate"})
    assert result.ok, result.describe()
    (python, py_with), (cache, cache_with) = result.uses
    assert python == "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97"
    assert py_with == {"python-version": "3.12", "update-environment": "false"}
    assert cache == "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae"
    venv = Path(cache_with["path"])
    assert venv.parent == harness.runner_temp / "cekura-gitops"
    assert cache_with["key"].startswith("cekura-gitops-Linux-X64-py")
    # Installed from the action's directory, with the venv's own interpreter.
    assert result.pip_installs == [
        ["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet", str(REPO_ROOT)]
    ]
    assert result.pip_pythons == [str(venv / "bin" / "python")]
    assert result.step("run").env["CG_CLI"] == str(venv / "bin" / "cekura-gitops")
    assert result.annotations("error") == []


CACHE = "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae"


def _cache_key(run: ActionRun) -> str:
    return dict(run.uses)[CACHE]["key"]


def test_the_venv_is_made_once_per_job_and_keyed_on_the_source(harness: ActionHarness) -> None:
    first = harness.run({"command": "validate"})
    second = harness.run({"command": "list"})
    assert first.ok and second.ok, second.describe()
    assert second.pip_installs == []  # a later step of the same job reuses the environment
    assert [u for u, _ in second.uses if u.startswith("actions/cache@")] == []  # no second save
    released = harness.run({"command": "validate", "version": "1.0.0"})
    assert released.ok, released.describe()
    assert released.pip_installs[0][-1] == "cekura-gitops==1.0.0"
    keys = [
        dict(r.uses)["actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae"]["key"]
        for r in (first, released)
    ]
    assert "-src-" in keys[0] and "-pypi-1.0.0-" in keys[1]


@pytest.mark.parametrize("version", ["--index-url=http://evil", "1.0; rm -rf /", "latest"])
def test_a_version_that_is_not_a_release_number_is_refused(harness: ActionHarness, version: str) -> None:
    result = harness.run({"command": "validate", "version": version})
    assert not result.ok
    assert result.failed_step is not None and result.failed_step.returncode == 64
    assert result.pip_installs == []


def test_the_source_key_changes_with_the_code(workspace: Repo, tmp_path: Path) -> None:
    action = tmp_path / "action"
    shutil.copytree(
        REPO_ROOT, action, ignore=shutil.ignore_patterns(".git", "*.egg-info", "__pycache__", "tests")
    )
    before = ActionHarness(workspace.work, tmp_path / "r1", action_dir=action).run({"command": "list"})
    (action / "cekura_gitops" / "schemas" / "metric.schema.json").write_text("{}")
    after = ActionHarness(workspace.work, tmp_path / "r2", action_dir=action).run({"command": "list"})
    assert before.ok and after.ok, after.describe()
    assert _cache_key(before) != _cache_key(after)


def test_validate_broken_metric_fails_with_annotation(harness: ActionHarness, workspace: Repo) -> None:
    path = workspace.work / GREETING
    path.write_text(path.read_text().replace("eval_type: binary", "eval_type: bogus"))
    result = harness.run({"command": "validate"})
    assert not result.ok
    failed = result.failed_step
    assert failed is not None and failed.id == "run" and failed.returncode == 1
    errors = result.annotations("error")
    assert errors, result.describe()
    assert any(e.properties.get("file") == GREETING and e.properties.get("line") for e in errors)
    assert f"::error file={GREETING},line=" in result.stdout


# -- plan ----------------------------------------------------------------------------------


def test_plan_with_sandbox_renders_markdown(harness: ActionHarness, sandbox: Sandbox) -> None:
    result = harness.run(_with_sandbox(sandbox, command="plan"))
    assert result.ok, result.describe()
    assert "### cekura-gitops plan" in result.stdout
    assert "| `caller_greeted_by_name_1562` | in sync |" in result.stdout
    assert sandbox.count("GET", r"/metrics/") >= 1


def test_plan_writes_outputs(harness: ActionHarness, workspace: Repo, sandbox: Sandbox) -> None:
    path = workspace.work / GREETING
    path.write_text(path.read_text().replace("Score FALSE otherwise.", "Score FALSE otherwise. Be strict."))
    result = harness.run(_with_sandbox(sandbox, command="plan"))
    assert result.ok, result.describe()
    assert result.outputs["changed"] == "1"
    statuses = {m["slug"]: m["status"] for m in json.loads(result.outputs["result"])}
    assert statuses["caller_greeted_by_name_1562"] == "changed"


def test_plan_on_fork_pull_request_runs_offline_and_degrades_comment(workspace: Repo, tmp_path: Path) -> None:
    with FakeGitHub() as fake:
        pr = fake.add_pull(head="feature")
        # A fork's GITHUB_TOKEN is read-only: GitHub answers 403 to any write.
        for method in ("POST", "PATCH"):
            fake.faults.add(method, r"/issues/", status=403, times=20)
        harness = ActionHarness(workspace.work, tmp_path / "runner", token=fake.token, api_url=fake.url)
        event = pull_request_event(pr["number"], fork=True)
        result = harness.run({"command": "plan"}, event_name="pull_request", event=event)
        fake.stop()
        assert fake.validation_errors == []
    assert result.ok, result.describe()
    assert "plan ran offline" in result.stdout
    assert "plan ran offline" in result.summary
    assert result.annotations("error") == []
    assert any("could not post the plan comment" in w.message for w in result.annotations("warning"))
    assert fake.count("POST", r"/issues/\d+/comments") >= 1
    assert fake.comments == []


def test_plan_on_pull_request_posts_one_sticky_comment(
    workspace: Repo, tmp_path: Path, sandbox: Sandbox
) -> None:
    with FakeGitHub() as fake:
        pr = fake.add_pull(head="feature")
        harness = ActionHarness(workspace.work, tmp_path / "runner", token=fake.token, api_url=fake.url)
        event = pull_request_event(pr["number"])
        for _ in range(2):
            result = harness.run(
                _with_sandbox(sandbox, command="plan"), event_name="pull_request", event=event
            )
            assert result.ok, result.describe()
        fake.stop()
        assert fake.validation_errors == []
        comments = fake.comments_on(pr["number"])
    assert len(comments) == 1
    assert "cekura-gitops plan" in comments[0]["body"]


# -- sync ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["sync", "apply"])
def test_empty_key_fails_with_the_fork_hint(harness: ActionHarness, command: str) -> None:
    result = harness.run({"command": command}, event_name="pull_request", event=pull_request_event(3))
    assert not result.ok
    failed = result.failed_step
    assert failed is not None and failed.id == "run" and failed.returncode == 1
    assert [KEY_HINT in e.message for e in result.annotations("error")] == [True]
    assert "add-mask" not in result.stdout  # the CLI never started


def test_sync_pushes_proposal_branch_and_reports(
    harness: ActionHarness, workspace: Repo, sandbox: Sandbox
) -> None:
    # No GITHUB_REPOSITORY: branches are pushed, no pull requests are opened (and it says so).
    result = harness.run(_with_sandbox(sandbox, command="sync"), env={"GITHUB_REPOSITORY": ""})
    assert result.ok, result.describe()
    assert result.outputs["changed"] == "1"
    assert result.outputs["pull-requests"] == "[]"
    statuses = {m["slug"]: m["status"] for m in json.loads(result.outputs["result"])}
    assert statuses["caller_greeted_by_name_1562"] == "proposed"
    assert "| metric | status | score | pull request | detail |" in result.summary
    assert workspace.origin_ref("refs/heads/cekura-gitops/optimise/caller_greeted_by_name_1562")


def test_sync_opens_a_pull_request_on_github(
    workspace: Repo, tmp_path: Path, sandbox: Sandbox, make_fake_github: Callable[..., FakeGitHub]
) -> None:
    fake = make_fake_github(origin_path=workspace.origin)
    harness = ActionHarness(
        workspace.work,
        tmp_path / "runner",
        token=fake.token,
        api_url=fake.url,
        env={"GITHUB_GRAPHQL_URL": fake.graphql_url},
    )
    result = harness.run(
        _with_sandbox(sandbox, command="sync"), event_name="schedule", event={"schedule": "17 6 * * 1"}
    )
    assert result.ok, result.describe()
    assert result.outputs["changed"] == "1"
    urls = json.loads(result.outputs["pull-requests"])
    assert len(urls) == 1 and len(fake.pulls) == 1
    assert fake.pulls[0]["head"]["ref"] == "cekura-gitops/optimise/caller_greeted_by_name_1562"
    assert urls[0] in result.summary


# -- apply ---------------------------------------------------------------------------------


def _edit_and_commit(workspace: Repo, extra: str = " Be strict.") -> tuple[str, str]:
    before = workspace.git("rev-parse", "HEAD")
    path = workspace.work / GREETING
    path.write_text(path.read_text().replace("Score FALSE otherwise.", f"Score FALSE otherwise.{extra}"))
    after = workspace.commit_all("stricter greeting")
    workspace.push()
    return before, after


def test_apply_on_push_updates_the_live_metric(
    harness: ActionHarness, workspace: Repo, sandbox: Sandbox
) -> None:
    before, after = _edit_and_commit(workspace)
    # Another commit on top: apply must use the event's before..after, not HEAD~1..HEAD.
    workspace.write("README.md", "docs only\n")
    workspace.commit_all("docs")
    result = harness.run(
        _with_sandbox(sandbox, command="apply"), event_name="push", event=push_event(before, after)
    )
    assert result.ok, result.describe()
    assert result.outputs["conflicts"] == "[]"
    statuses = {m["slug"]: m["status"] for m in json.loads(result.outputs["result"])}
    assert statuses == {"caller_greeted_by_name_1562": "applied"}
    assert "### cekura-gitops apply" in result.summary
    assert "Score FALSE otherwise. Be strict." in sandbox.state.metric(1562)["description"]


def test_apply_dry_run_changes_nothing(harness: ActionHarness, workspace: Repo, sandbox: Sandbox) -> None:
    before, after = _edit_and_commit(workspace)
    result = harness.run(
        _with_sandbox(sandbox, command="apply", **{"dry-run": "true"}),
        event_name="push",
        event=push_event(before, after),
    )
    assert result.ok, result.describe()
    assert "(dry run)" in result.summary
    assert "Be strict." not in sandbox.state.metric(1562)["description"]
    assert sandbox.count("PATCH", r"/metrics/") == 0


# -- secrets and hostile inputs --------------------------------------------------------------


def test_secrets_are_masked_first_and_never_printed(workspace: Repo, tmp_path: Path) -> None:
    key, token = "ck_live_SECRETkey_4f1d9a", "ghs_SECRETtoken_8c2e71"
    sandbox = Sandbox(api_key=key).start()
    try:
        harness = ActionHarness(workspace.work, tmp_path / "runner", token=token)
        result = harness.run({"command": "plan", "cekura-api-key": key, "cekura-api-url": sandbox.url})
    finally:
        sandbox.stop()
    assert sandbox.validation_errors == []
    assert result.ok, result.describe()
    # The CLI masks on stderr (stdout may carry a --json document; the runner reads both),
    # before it prints anything else.
    err_lines = [line for line in result.stderr.splitlines() if not line.startswith("harness:")]
    masks = [line for line in err_lines if line.startswith("::add-mask::")]
    assert err_lines[: len(masks)] == masks, "something was printed before the masks"
    for secret in (key, token):
        assert f"::add-mask::{secret}" in masks, f"{secret} was never masked"
        assert all(line == f"::add-mask::{secret}" for line in err_lines if secret in line)
        assert secret not in result.stdout
        assert secret not in result.summary
        assert all(secret not in value for value in result.outputs.values())
    assert set(result.masks) >= {key, token}


@pytest.mark.parametrize(
    ("inputs", "expect"),
    [
        ({"command": "plan", "metrics": 'a;touch {pwned} "$(id)"\n`id`'}, "no metric file for a;touch"),
        ({"command": "validate; touch {pwned}"}, "input command must be one of"),
        ({"command": "sync", "shard": "1/2;touch {pwned}"}, "Invalid value for '--shard'"),
        ({"command": "validate", "metrics-dir": "metrics$(touch {pwned})"}, "metrics$(touch"),
    ],
)
def test_shell_metacharacters_in_inputs_never_execute(
    harness: ActionHarness, sandbox: Sandbox, tmp_path: Path, inputs: dict[str, str], expect: str
) -> None:
    pwned = tmp_path / "pwned"
    given = {k: v.replace("{pwned}", str(pwned)) for k, v in inputs.items()}
    result = harness.run(_with_sandbox(sandbox, **given))
    assert not result.ok
    assert not pwned.exists()
    text = result.stdout + result.stderr
    assert "uid=" not in text
    assert expect in text, result.describe()
    if "metrics" in inputs:
        assert '"$(id)"' in text and "`id`" in text  # passed through literally, as metric names


def test_list_with_shard_and_unknown_command(harness: ActionHarness) -> None:
    result = harness.run({"command": "list", "shard": "1/1"})
    assert result.ok, result.describe()
    assert "caller_greeted_by_name_1562" in result.stdout + result.stderr
    bad = harness.run({"command": "destroy"})
    assert not bad.ok and bad.failed_step is not None and bad.failed_step.returncode == 64


def test_without_metrics_dir_the_config_file_names_the_folder(workspace: Repo, tmp_path: Path) -> None:
    (workspace.work / "metrics").rename(workspace.work / "prompts")
    (workspace.work / "cekura-gitops.yaml").write_text("metrics_dir: prompts\n")
    result = ActionHarness(workspace.work, tmp_path / "runner").run({"command": "list"})
    assert result.ok, result.describe()
    assert "prompts/caller_greeted_by_name_1562.yaml" in result.stdout

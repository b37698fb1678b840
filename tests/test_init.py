"""`cekura-gitops init`: the workflows it writes for a repository, and what it never does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cekura_gitops import _build, release, scaffold
from cekura_gitops.release import ActionRef
from tests.action.harness import load_yaml
from tests.conftest import Repo, git
from tests.fakes.github_server import FakeGitHub
from tests.test_workflow_lint import pin_problems

ACTION = "acme/cekura-gitops@0123456789abcdef0123456789abcdef01234567"
WORKFLOWS = [f".github/workflows/{name}" for name in scaffold.WORKFLOW_FILES]
ALL_FILES = [*WORKFLOWS, "cekura-gitops.yaml"]


def _repo_with_default(tmp_path: Path, branch: str) -> Repo:
    """A clone of a bare origin whose default branch is `branch`, with no origin/HEAD."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", f"--initial-branch={branch}", str(origin))
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", f"--initial-branch={branch}", str(work))
    git(work, "remote", "add", "origin", str(origin))
    (work / "README.md").write_text("metrics\n")
    git(work, "add", "README.md")
    git(work, "commit", "-qm", "init")
    git(work, "push", "-q", "origin", branch)
    return Repo(work, origin)


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install '.[test]' provides it)")
    return found


@pytest.mark.parametrize("branch", ["main", "trunk"])
def test_init_writes_workflows_the_linters_accept_and_a_second_run_changes_nothing(
    tmp_path: Path, cli, branch: str
) -> None:
    repo = _repo_with_default(tmp_path, branch)
    # A stale local idea of the default: init must ask the remote, never trust origin/HEAD.
    git(repo.work, "update-ref", "refs/remotes/origin/stale", "HEAD")
    git(repo.work, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/stale")
    first = cli("--json", "init", "--action", ACTION, cwd=repo.work)
    assert first.code == 0, first.err
    doc = first.json()
    assert doc["files"] == [{"path": p, "status": "created"} for p in ALL_FILES]
    assert doc["branch"] == branch

    paths = [str(repo.work / p) for p in WORKFLOWS]
    schema = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    zizmor = subprocess.run(
        [_tool("zizmor"), "--offline", "--format", "plain", str(repo.work)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert zizmor.returncode == 0, zizmor.stdout + zizmor.stderr

    apply = load_yaml(repo.work / WORKFLOWS[2])
    assert apply["on"]["push"] == {"branches": [branch], "paths": ["metrics/**"]}
    plan = load_yaml(repo.work / WORKFLOWS[1])
    assert plan["on"]["pull_request"]["branches"] == [branch]
    assert "merge_group" in plan["on"]
    optimise = load_yaml(repo.work / WORKFLOWS[0])
    assert optimise["on"]["schedule"][0]["cron"].endswith("* * 1")  # weekly
    for doc_ in (apply, plan, optimise):
        assert doc_["permissions"] == {}
        assert doc_["concurrency"]["group"].startswith("cekura-gitops-")
        for job in doc_["jobs"].values():
            assert "vars.CEKURA_ENABLED == 'true'" in job["if"]
            assert "write-all" not in str(job["permissions"])
            used = [s["uses"] for s in job["steps"] if "cekura-gitops" in s.get("uses", "")]
            assert used and set(used) == {ACTION}

    before = {p: (repo.work / p).read_bytes() for p in ALL_FILES}
    second = cli("init", "--action", ACTION, cwd=repo.work)
    assert second.code == 0, second.err
    assert "Nothing to do" in second.out
    assert "Next steps" not in second.out
    assert {p: (repo.work / p).read_bytes() for p in ALL_FILES} == before
    again = cli("--json", "init", "--action", ACTION, cwd=repo.work).json()
    assert {f["status"] for f in again["files"]} == {"unchanged"}


def test_init_ends_with_the_next_steps(repo: Repo, cli) -> None:
    result = cli("init", "--action", ACTION, cwd=repo.work)
    assert result.code == 0, result.err
    steps = result.out.split("Next steps:")[1]
    for needed in (
        "CEKURA_API_KEY",
        "CEKURA_ENABLED",
        "CEKURA_GITOPS_APP_ID",
        "CEKURA_GITOPS_APP_PRIVATE_KEY",
    ):
        assert needed in steps
    assert "cekura-gitops pull --project" in steps  # no metrics yet


def test_a_differing_workflow_is_never_overwritten_without_force(repo: Repo, cli) -> None:
    plan = repo.write(WORKFLOWS[1], "name: ours\n")
    config = repo.write("cekura-gitops.yaml", "concurrency: 4\n")
    result = cli("--json", "init", "--action", ACTION, cwd=repo.work)
    assert result.code == 1
    statuses = {f["path"]: f["status"] for f in result.json()["files"]}
    assert statuses == {
        WORKFLOWS[0]: "created",
        WORKFLOWS[1]: "exists",
        WORKFLOWS[2]: "created",
        "cekura-gitops.yaml": "exists",
    }
    assert WORKFLOWS[1] in result.err and "--force" in result.err
    assert plan.read_text() == "name: ours\n"

    forced = cli("--json", "init", "--action", ACTION, "--force", cwd=repo.work)
    assert forced.code == 0, forced.err
    statuses = {f["path"]: f["status"] for f in forced.json()["files"]}
    assert statuses[WORKFLOWS[1]] == "overwritten"
    assert statuses["cekura-gitops.yaml"] == "exists"  # a human's config: even --force leaves it
    assert config.read_text() == "concurrency: 4\n"
    assert "merge_group" in plan.read_text()


def test_dry_run_prints_and_writes_nothing(repo: Repo, cli) -> None:
    result = cli("init", "--action", ACTION, "--dry-run", cwd=repo.work)
    assert result.code == 0, result.err
    assert f"uses: {ACTION}" in result.out
    assert not (repo.work / ".github").exists() and not (repo.work / "cekura-gitops.yaml").exists()
    doc = cli("--json", "init", "--action", ACTION, "--dry-run", cwd=repo.work).json()
    assert doc["dry_run"] is True
    assert [f["status"] for f in doc["files"]] == ["created"] * 4
    assert all(f"uses: {ACTION}" in f["content"] for f in doc["files"][:3])
    assert not (repo.work / ".github").exists()


def test_a_development_install_asks_for_action(repo: Repo, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_build, "ACTION_COMMIT", None)
    result = cli("init", cwd=repo.work)
    assert result.code == 64
    assert "--action" in result.err
    assert not (repo.work / ".github").exists()


def test_a_release_writes_the_commit_it_was_built_from(
    repo: Repo, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = "89abcdef0123456789abcdef0123456789abcdef"
    monkeypatch.setattr(_build, "ACTION_REPOSITORY", "acme/cekura-gitops")
    monkeypatch.setattr(_build, "ACTION_COMMIT", sha)
    result = cli("init", cwd=repo.work)
    assert result.code == 0, result.err
    text = (repo.work / WORKFLOWS[0]).read_text()
    assert f"uses: acme/cekura-gitops@{sha} # v{release.__version__}" in text


@pytest.mark.parametrize("bad", ["cekura-gitops", "acme/cekura-gitops", "acme/x@v1;rm -rf /", "@v1"])
def test_a_malformed_action_is_a_usage_error(repo: Repo, cli, bad: str) -> None:
    result = cli("init", "--action", bad, cwd=repo.work)
    assert result.code == 64
    assert not (repo.work / ".github").exists()


def test_a_tag_is_written_as_given_with_a_warning(repo: Repo, cli) -> None:
    result = cli("init", "--action", "acme/cekura-gitops@v1", cwd=repo.work)
    assert result.code == 0, result.err
    assert "uses: acme/cekura-gitops@v1\n" in (repo.work / WORKFLOWS[2]).read_text()
    assert "not a commit SHA" in result.err


def test_metrics_dir_and_config_schema_line(repo: Repo, cli) -> None:
    result = cli("--metrics-dir", "prompts/cekura", "init", "--action", ACTION, cwd=repo.work)
    assert result.code == 0, result.err
    apply = load_yaml(repo.work / WORKFLOWS[2])
    assert apply["on"]["push"]["paths"] == ["prompts/cekura/**"]
    step = next(s for s in apply["jobs"]["apply"]["steps"] if s.get("id") == "apply")
    assert step["with"]["metrics-dir"] == "prompts/cekura"
    config = (repo.work / "cekura-gitops.yaml").read_text()
    assert config.splitlines()[0] == f"# yaml-language-server: $schema={release.schema_url('config')}"
    # The config it writes is valid, and makes the CLI find the folder without the flag.
    listed = cli("--json", "list", cwd=repo.work)
    assert listed.code == 1 and "prompts/cekura" in listed.err  # the folder does not exist yet


def test_a_metrics_dir_a_workflow_cannot_hold_is_refused(repo: Repo, cli) -> None:
    result = cli("--metrics-dir", "my metrics", "init", "--action", ACTION, cwd=repo.work)
    assert result.code == 1
    assert "metrics folder" in result.err
    assert not (repo.work / ".github").exists()


def test_default_branch_from_the_github_api_when_the_remote_names_none(
    tmp_path: Path, cli, make_fake_github: Callable[..., FakeGitHub]
) -> None:
    origin = tmp_path / "empty.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(origin), str(work))
    fake = make_fake_github(default_branch="develop")
    env = {"GITHUB_TOKEN": fake.token, "GITHUB_REPOSITORY": "acme/metrics", "GITHUB_API_URL": fake.url}
    result = cli("--json", "init", "--action", ACTION, cwd=work, env=env)
    assert result.code == 0, result.err
    assert result.json()["branch"] == "develop"
    assert load_yaml(work / WORKFLOWS[2])["on"]["push"]["branches"] == ["develop"]


def test_without_a_remote_the_checked_out_branch_and_else_branch_is_needed(tmp_path: Path, cli) -> None:
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "--initial-branch=prompts", str(work))
    local = cli("--json", "init", "--action", ACTION, "--dry-run", cwd=work)
    assert local.code == 0 and local.json()["branch"] == "prompts", local.err
    git(work, "commit", "-q", "--allow-empty", "-m", "one")
    git(work, "checkout", "-q", "--detach")
    result = cli("init", "--action", ACTION, cwd=work)
    assert result.code == 1
    assert "--branch" in result.err
    assert not (work / ".github").exists()
    ok = cli("--json", "init", "--action", ACTION, "--branch", "release", cwd=work)
    assert ok.code == 0 and ok.json()["branch"] == "release"


def test_init_pull_imports_the_metrics_in_the_same_step(repo: Repo, cli, cekura_env) -> None:
    result = cli(
        "--json", "init", "--action", ACTION, "--pull", "--project", "1376", cwd=repo.work, env=cekura_env
    )
    assert result.code == 0, result.err
    doc = result.json()
    assert [f["status"] for f in doc["files"]] == ["created"] * 4
    created = [m for m in doc["metrics"] if m["status"] == "created"]
    assert created
    text = (repo.work / created[0]["path"]).read_text()
    assert text.splitlines()[0] == f"# yaml-language-server: $schema={release.schema_url('metric')}"
    assert cli("validate", cwd=repo.work).code == 0


def test_pull_needs_a_project(repo: Repo, cli) -> None:
    result = cli("init", "--action", ACTION, "--pull", cwd=repo.work)
    assert result.code == 64 and "--project" in result.err


def test_what_init_writes_pins_every_action_to_a_known_node24_commit() -> None:
    built = ActionRef("acme/cekura-gitops", "0123456789abcdef0123456789abcdef01234567", "v1.0.0")
    files = scaffold.render(scaffold.Scaffold("main", "metrics", built))
    problems = []
    for path, text in files.items():
        # Our own Action is checked for its form; every other one against the known pins.
        own = text.replace(built.uses, "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1")
        problems += pin_problems(path, own)
        assert "@@" not in text, f"{path}: a placeholder was left"
    assert problems == []
    assert json.loads(json.dumps(files))  # plain text, for --json --dry-run


def _workflow_checks(cli, repo: Repo) -> list[tuple[str, str]]:
    result = cli("--json", "doctor", cwd=repo.work)
    return [(c["status"], c["message"]) for c in result.json()["checks"] if c["name"] == "workflows"]


def test_doctor_checks_what_init_wrote(repo: Repo, cli) -> None:
    assert cli("init", "--action", ACTION, cwd=repo.work).code == 0
    assert [s for s, _ in _workflow_checks(cli, repo)] == ["ok"]

    apply = repo.work / WORKFLOWS[2]
    apply.write_text(apply.read_text().replace('branches: ["main"]', 'branches: ["master"]'))
    plan = repo.work / WORKFLOWS[1]
    plan.write_text(plan.read_text().replace(ACTION, "acme/cekura-gitops@v1"))
    (repo.work / WORKFLOWS[0]).unlink()
    checks = _workflow_checks(cli, repo)
    assert ("fail", f"{WORKFLOWS[0]} is missing") in checks
    assert any(s == "fail" and "not to the default branch 'main'" in m for s, m in checks)
    assert any(s == "warn" and "not a commit SHA" in m for s, m in checks)


def test_doctor_without_init_workflows_points_at_init(repo: Repo, cli) -> None:
    checks = cli("--json", "doctor", cwd=repo.work).json()["checks"]
    workflows = [c for c in checks if c["name"] == "workflows"]
    assert workflows and workflows[0]["status"] == "warn"
    assert "cekura-gitops init" in workflows[0]["fix"]


def test_pull_adds_the_schema_line_only_to_files_it_creates(pulled: Repo, cli, cekura_env, sandbox) -> None:
    files = sorted((pulled.work / "metrics").glob("*.yaml"))
    line = f"# yaml-language-server: $schema={release.schema_url('metric')}"
    assert files and all(f.read_text().splitlines()[0] == line for f in files)
    # A human's own line (or none) is kept when pull refreshes the file.
    greeting = pulled.work / "metrics" / "caller_greeted_by_name_1562.yaml"
    body = greeting.read_text().split("\n", 1)[1]
    greeting.write_text("# yaml-language-server: $schema=./schema.json\n" + body)
    others = [f for f in files if f != greeting]
    others[0].write_text(others[0].read_text().split("\n", 1)[1])
    pulled.commit_all("my schema lines")
    sandbox.state.dashboard_edit(1562, name="Greeted by name?")
    result = cli("pull", cwd=pulled.work, env=cekura_env)
    assert result.code == 0, result.err
    assert greeting.read_text().startswith("# yaml-language-server: $schema=./schema.json\n")
    assert "name: Greeted by name?" in greeting.read_text()
    assert not others[0].read_text().startswith("# yaml-language-server")

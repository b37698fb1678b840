"""pull and plan against the loopback sandbox, in real git repositories."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Repo

GREETING = "metrics/caller_greeted_by_name_1562.yaml"


def test_pull_into_empty_repo_then_plan_is_in_sync(repo: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    result = cli("pull", "--project", "1376", cwd=repo.work, env=cekura_env)
    assert result.code == 0, result.err
    files = sorted(p.name for p in (repo.work / "metrics").iterdir())
    assert files == [
        "caller_greeted_by_name_1562.yaml",
        "customer_satisfaction_1563.yaml",
        "refund_policy_code_1564.yaml",
    ]
    code = (repo.work / "metrics/refund_policy_code_1564.yaml").read_text()
    assert "custom_code: |" in code  # the list hides custom_code: pull fetched the detail
    assert "_result" in code
    repo.commit_all("import")

    assert cli("validate", cwd=repo.work).code == 0
    plan = cli("plan", "--json", "--detailed-exitcode", cwd=repo.work, env=cekura_env)
    assert plan.code == 0, plan.err
    statuses = {m["slug"]: m["status"] for m in plan.json()["metrics"]}  # type: ignore[index]
    assert statuses == {
        "caller_greeted_by_name_1562": "in-sync",
        "customer_satisfaction_1563": "in-sync",
        "refund_policy_code_1564": "in-sync",
    }


def test_plan_uses_one_list_per_project_and_details_only_for_code(
    pulled: Repo, cli, cekura_env, sandbox
) -> None:  # type: ignore[no-untyped-def]
    before = len(sandbox.requests)
    assert cli("plan", cwd=pulled.work, env=cekura_env).code == 0
    requests = sandbox.requests[before:]
    lists = [r for r in requests if r.path == "/test_framework/v2/metrics/"]
    details = [r for r in requests if r.path.startswith("/test_framework/v2/metrics/15")]
    assert len(lists) == 1 and lists[0].query.get("project_id") == "1376"
    assert [r.path for r in details] == ["/test_framework/v2/metrics/1564/"]


def test_edit_shows_exactly_that_diff(pulled: Repo, cli, cekura_env) -> None:  # type: ignore[no-untyped-def]
    path = pulled.work / GREETING
    text = path.read_text()
    first_line = text.split("description: |-\n", 1)[1].splitlines()[0]
    path.write_text(text.replace(first_line, first_line + " Be strict."))
    result = cli("plan", "--detailed-exitcode", cwd=pulled.work, env=cekura_env)
    assert result.code == 2
    assert "caller_greeted_by_name_1562: changed" in result.out
    assert f"-{first_line.strip()}" in result.out.replace("-  ", "-")
    assert f"+{first_line.strip()} Be strict." in result.out.replace("+  ", "+")
    assert "customer_satisfaction_1563: in sync" in result.out

    md = cli("plan", "--format", "markdown", cwd=pulled.work, env=cekura_env)
    assert md.code == 0 and "### cekura-gitops plan" in md.out and "```diff" in md.out


def test_plan_reports_missing_live_and_unmanaged(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.add_metric(
        project=1376, name="Hold music check", eval_type="binary", type="llm_judge", description="x"
    )
    pulled.write(
        "metrics/new_metric.yaml",
        "slug: new_metric\nproject: 1376\nname: New\ntype: llm_judge\neval_type: binary\ndescription: hi\n",
    )
    result = cli("plan", "--json", cwd=pulled.work, env=cekura_env)
    statuses = {m["slug"]: m["status"] for m in result.json()["metrics"]}  # type: ignore[index]
    assert statuses["new_metric"] == "missing-live"
    assert [s for s, v in statuses.items() if v == "unmanaged"] == [
        s for s in statuses if s.startswith("hold_music_check")
    ]


def test_pull_refreshes_only_differing_fields_and_keeps_comments(
    pulled: Repo, cli, cekura_env, sandbox
) -> None:  # type: ignore[no-untyped-def]
    path = pulled.work / GREETING
    path.write_text("# A human comment\n" + path.read_text().replace("\nname:", "\n\n# spacing kept\nname:"))
    pulled.commit_all("comment")
    sandbox.state.dashboard_edit(1562, name="Greeted by name?")
    before = path.read_text()
    result = cli("pull", "--project", "1376", cwd=pulled.work, env=cekura_env)
    assert result.code == 0, result.out + result.err
    after = path.read_text()
    assert after == before.replace("name: Was the caller greeted by name", "name: Greeted by name?") or (
        [line for line in after.splitlines() if line not in before.splitlines()] == ["name: Greeted by name?"]
    )
    assert "# A human comment" in after and "# spacing kept" in after
    assert "updated" in result.out and "(name)" in result.out


def test_pull_refuses_to_overwrite_uncommitted_edits(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    path = pulled.work / GREETING
    path.write_text(path.read_text() + "# local edit\n")
    sandbox.state.dashboard_edit(1562, name="Changed live")
    result = cli("pull", "--project", "1376", cwd=pulled.work, env=cekura_env)
    assert result.code == 1
    assert "skipped-dirty" in result.out
    assert path.read_text().endswith("# local edit\n") and "Changed live" not in path.read_text()
    forced = cli("pull", "--project", "1376", "--force", cwd=pulled.work, env=cekura_env)
    assert forced.code == 0 and "name: Changed live" in path.read_text()


def test_pull_outside_git_never_overwrites_a_file_without_force(
    tmp_path: Path, cli, cekura_env, sandbox
) -> None:  # type: ignore[no-untyped-def]
    plain = tmp_path / "plain"  # no git: nothing tells a local edit from an older pull
    plain.mkdir()
    env = {**cekura_env, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    assert cli("pull", "--project", "1376", cwd=plain, env=env).code == 0
    path = plain / GREETING
    path.write_text(path.read_text() + "# local edit\n")
    sandbox.state.dashboard_edit(1562, name="Changed live")
    result = cli("--json", "pull", "--project", "1376", cwd=plain, env=env)
    assert result.code == 1
    by_path = {m["path"]: m for m in result.json()["metrics"]}  # type: ignore[attr-defined]
    assert by_path[GREETING]["status"] == "skipped-dirty"
    assert "not in a git repository" in by_path[GREETING]["detail"]
    assert path.read_text().endswith("# local edit\n") and "Changed live" not in path.read_text()
    forced = cli("pull", "--project", "1376", "--force", cwd=plain, env=env)
    assert forced.code == 0 and "name: Changed live" in path.read_text()


def test_pull_of_an_unknown_project_says_so(repo: Repo, cli, cekura_env) -> None:  # type: ignore[no-untyped-def]
    result = cli("pull", "--project", "9999", cwd=repo.work, env=cekura_env)
    assert result.code == 1
    assert "no project 9999" in result.err and "1376 Support bot" in result.err
    assert not (repo.work / "metrics").exists()


def test_pull_of_an_unknown_slug_names_it(repo: Repo, cli, cekura_env) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "--json", "pull", "--metric", "no_such_metric", "--metric", "1563", cwd=repo.work, env=cekura_env
    )
    assert result.code == 1
    by_slug = {m["slug"]: m for m in result.json()["metrics"]}  # type: ignore[attr-defined]
    assert by_slug["no_such_metric"]["status"] == "error"
    assert "no live metric with slug 'no_such_metric'" in by_slug["no_such_metric"]["detail"]
    assert by_slug["customer_satisfaction_1563"]["status"] == "created"  # the others are pulled
    unknown_id = cli("pull", "--metric", "99999", cwd=repo.work, env=cekura_env)
    assert unknown_id.code == 1 and "no live metric with id '99999'" in unknown_id.out


def test_pull_refuses_to_write_a_file_validate_would_refuse(repo: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.dashboard_edit(1562, description="x" * (1024 * 1024 + 1))
    result = cli("--json", "pull", "--project", "1376", cwd=repo.work, env=cekura_env)
    assert result.code == 1
    by_slug = {m["slug"]: m for m in result.json()["metrics"]}  # type: ignore[attr-defined]
    greeting = by_slug["caller_greeted_by_name_1562"]
    assert greeting["status"] == "error" and "limited to 1 MiB" in greeting["detail"]
    assert not (repo.work / GREETING).exists()
    assert cli("validate", cwd=repo.work).code == 0  # what was written is valid


def test_pull_single_metric_by_slug(repo: Repo, cli, cekura_env) -> None:  # type: ignore[no-untyped-def]
    result = cli("pull", "--metric", "customer_satisfaction_1563", cwd=repo.work, env=cekura_env)
    assert result.code == 0
    assert [p.name for p in (repo.work / "metrics").iterdir()] == ["customer_satisfaction_1563.yaml"]


def test_missing_key_is_a_clear_error(pulled: Repo, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("plan", cwd=pulled.work, env={"CEKURA_API_KEY": None})
    assert result.code == 1
    assert "CEKURA_API_KEY is not set" in result.err
    assert "Traceback" not in result.err


def test_wrong_key_names_the_operation_without_leaking(pulled: Repo, cli, sandbox) -> None:  # type: ignore[no-untyped-def]
    secret = "sk-live-THIS-IS-SECRET-123"
    result = cli("plan", cwd=pulled.work, env={"CEKURA_API_URL": sandbox.url, "CEKURA_API_KEY": secret})
    assert result.code == 1
    assert "401" in result.err and "list metrics" in result.err
    assert secret not in result.err + result.out


def test_dead_api_is_a_clear_error(pulled: Repo, cli) -> None:  # type: ignore[no-untyped-def]
    env = {"CEKURA_API_URL": "http://127.0.0.1:9", "CEKURA_API_KEY": "k" * 10}
    result = cli("plan", cwd=pulled.work, env=env)
    assert result.code == 1
    assert "no response" in result.err and "Traceback" not in result.err


def test_offline_plan_on_fork_pull_request(pulled: Repo, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("plan", cwd=pulled.work, env={"GITHUB_EVENT_NAME": "pull_request", "CEKURA_API_KEY": None})
    assert result.code == 0
    assert "plan ran offline" in result.err

"""doctor: each check passing and failing, against the sandbox, the fake GitHub and real git."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import Repo

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "ghs_doctorTokenForTests012345"


def checks(result) -> dict[str, dict]:  # type: ignore[no-untyped-def,type-arg]
    return {c["name"]: c for c in result.json()["checks"]}


def with_workflows(repo: Repo) -> None:
    shutil.copytree(ROOT / ".github" / "workflows", repo.work / ".github" / "workflows")


def test_healthy_setup_passes(pulled: Repo, cli, cekura_env, make_fake_github) -> None:  # type: ignore[no-untyped-def]
    with_workflows(pulled)
    gh = make_fake_github(origin_path=pulled.origin, owner="acme", repo="metrics", token=TOKEN)
    env = {**cekura_env, "GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "acme/metrics", "GITHUB_API_URL": gh.url}
    result = cli("--json", "doctor", cwd=pulled.work, env=env)
    assert result.code == 0, result.out
    got = checks(result)
    assert {name: c["status"] for name, c in got.items()} == {
        "config": "ok",
        "metric files": "ok",
        "workflows": "ok",
        "git": "ok",
        "cekura key": "ok",
        "live metrics": "ok",
        "cekura schedules": "ok",
        "github identity": "ok",
        "github": "ok",
    }
    assert "1376 Support bot" in got["cekura key"]["message"]
    human = cli("doctor", cwd=pulled.work, env=env)
    assert "ok    cekura key: works" in human.out and "0 failed" in human.out


def test_each_failure_is_explained(pulled: Repo, cli, sandbox) -> None:  # type: ignore[no-untyped-def]
    env = {"CEKURA_API_URL": sandbox.url, "CEKURA_API_KEY": "wrong-key-123"}
    result = cli("--json", "doctor", cwd=pulled.work, env=env)
    assert result.code == 1
    got = checks(result)
    assert got["cekura key"]["status"] == "fail" and "401" in got["cekura key"]["message"]
    assert got["workflows"]["status"] == "warn" and got["github"]["status"] == "warn"
    assert all(c["fix"] for c in got.values() if c["status"] != "ok")


def test_no_key(pulled: Repo, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("--json", "doctor", cwd=pulled.work, env={"CEKURA_API_KEY": None})
    assert result.code == 1
    assert checks(result)["cekura key"]["message"] == "CEKURA_API_KEY is not set"


def test_missing_live_metric_and_invalid_files(pulled: Repo, cli, cekura_env) -> None:  # type: ignore[no-untyped-def]
    path = pulled.work / "metrics/customer_satisfaction_1563.yaml"
    path.write_text(path.read_text().replace("id: 1563", "id: 9999"))
    result = cli("--json", "doctor", cwd=pulled.work, env=cekura_env)
    assert result.code == 1
    assert "customer_satisfaction_1563" in checks(result)["live metrics"]["message"]
    path.write_text("slug: [broken\n")
    invalid = cli("--json", "doctor", cwd=pulled.work, env=cekura_env)
    assert checks(invalid)["metric files"]["status"] == "fail"


def test_an_invalid_file_is_not_counted_as_zero_existing_metrics(pulled: Repo, cli, cekura_env) -> None:  # type: ignore[no-untyped-def]
    (pulled.work / "metrics/customer_satisfaction_1563.yaml").write_text("slug: [broken\n")
    got = checks(cli("--json", "doctor", cwd=pulled.work, env=cekura_env))
    assert got["metric files"]["status"] == "fail"
    for name in ("live metrics", "cekura schedules"):
        assert got[name]["status"] == "warn" and "not checked" in got[name]["message"], got[name]
    assert "all 0" not in got["live metrics"]["message"]


def test_an_empty_metrics_folder_is_a_warning_not_zero_valid_files(repo: Repo, cli, cekura_env) -> None:  # type: ignore[no-untyped-def]
    (repo.work / "metrics").mkdir()
    got = checks(cli("--json", "doctor", cwd=repo.work, env=cekura_env))
    assert got["metric files"]["status"] == "warn" and "pull --project" in got["metric files"]["fix"]
    assert got["live metrics"]["message"] == "no managed metrics to look up"


def test_the_config_check_says_whether_there_is_a_config_file(pulled: Repo, cli, cekura_env) -> None:  # type: ignore[no-untyped-def]
    absent = checks(cli("--json", "doctor", cwd=pulled.work, env=cekura_env))["config"]
    assert absent["status"] == "ok" and "no cekura-gitops.yaml" in absent["message"]
    pulled.write("cekura-gitops.yaml", "concurrency: 4\n")
    present = checks(cli("--json", "doctor", cwd=pulled.work, env=cekura_env))["config"]
    assert present["status"] == "ok" and "cekura-gitops.yaml and environment are valid" in present["message"]


def test_a_broken_config_fails_its_check_and_the_others_still_run(pulled: Repo, cli, cekura_env) -> None:  # type: ignore[no-untyped-def]
    pulled.write("cekura-gitops.yaml", "concurency: 4\n")  # a typo
    result = cli("--json", "doctor", cwd=pulled.work, env=cekura_env)
    assert result.code == 1
    got = checks(result)
    assert got["config"]["status"] == "fail"
    assert "cekura-gitops.yaml:1:1: unknown field 'concurency'" in got["config"]["message"]
    assert got["metric files"]["status"] == "ok" and got["cekura key"]["status"] == "ok"
    assert got["live metrics"]["status"] == "ok"


def test_an_unreachable_api_is_not_blamed_on_the_key(pulled: Repo, cli) -> None:  # type: ignore[no-untyped-def]
    env = {
        "CEKURA_API_URL": "http://127.0.0.1:9",
        "CEKURA_API_KEY": "k" * 10,
        "CEKURA_GITOPS_HTTP_BACKOFF": "0",
    }
    got = checks(cli("--json", "doctor", cwd=pulled.work, env=env))["cekura key"]
    assert got["status"] == "fail"
    assert "unreachable" in got["message"] and "http://127.0.0.1:9" in got["message"]
    assert "CEKURA_API_URL" in got["fix"] and "key" not in got["fix"]


def test_cekura_schedule_auto_applying_to_a_managed_metric_fails(
    pulled: Repo, cli, cekura_env, sandbox
) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.add_cron_job(1376, [1562], name="Nightly auto-improve", auto_apply=True)
    result = cli("--json", "doctor", cwd=pulled.work, env=cekura_env)
    assert result.code == 1
    check = checks(result)["cekura schedules"]
    assert check["status"] == "fail"
    assert "Nightly auto-improve (caller_greeted_by_name_1562)" in check["message"]
    assert "read-only" in check["fix"]


def test_actions_token_is_flagged(pulled: Repo, cli, cekura_env, make_fake_github) -> None:  # type: ignore[no-untyped-def]
    gh = make_fake_github(origin_path=pulled.origin, owner="acme", repo="metrics", token=TOKEN)
    env = {
        **cekura_env,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": "acme/metrics",
        "GITHUB_API_URL": gh.url,
        "GITHUB_ACTIONS": "true",
        "CEKURA_GITOPS_ACTIONS_TOKEN": TOKEN,
    }
    result = cli("--json", "doctor", cwd=pulled.work, env=env)
    check = checks(result)["github token"]
    assert check["status"] == "warn" and "GitHub App token" in check["fix"]
    printed = [line for line in (result.out + result.err).splitlines() if not line.startswith("::add-mask::")]
    assert not [line for line in printed if TOKEN in line]


def test_read_only_token_fails(pulled: Repo, cli, cekura_env, make_fake_github) -> None:  # type: ignore[no-untyped-def]
    gh = make_fake_github(
        origin_path=pulled.origin, owner="acme", repo="metrics", token=TOKEN, can_push=False
    )
    env = {**cekura_env, "GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "acme/metrics", "GITHUB_API_URL": gh.url}
    result = cli("--json", "doctor", cwd=pulled.work, env=env)
    assert result.code == 1
    assert checks(result)["github"]["message"] == "acme/metrics: the token cannot push"

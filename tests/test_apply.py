"""apply against the loopback sandbox with real git: the three-way guard and its reports."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from cekura_gitops.sandbox import Fault
from tests.conftest import Repo, run_subprocess

GREETING_FILE = "metrics/caller_greeted_by_name_1562.yaml"
SATISFACTION_FILE = "metrics/customer_satisfaction_1563.yaml"


def edit(repo: Repo, rel: str, old: str, new: str) -> None:
    path = repo.work / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def apply(cli, repo: Repo, env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return cli("--json", "apply", *args, cwd=repo.work, env=env)


def by_slug(result) -> dict[str, dict]:  # type: ignore[no-untyped-def,type-arg]
    return {m["slug"]: m for m in result.json()["metrics"]}


def patches_of(sandbox, metric_id: int) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return [body for mid, body in sandbox.state.patches if mid == metric_id]


def test_applies_exactly_the_changed_field_and_converges(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    edit(pulled, GREETING_FILE, "Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")
    edit(pulled, GREETING_FILE, "simulation_enabled: true", "simulation_enabled: false")
    pulled.commit_all("stricter greeting")
    result = apply(cli, pulled, cekura_env)
    assert result.code == 0, result.err
    m = by_slug(result)["caller_greeted_by_name_1562"]
    assert m["status"] == "applied" and m["fields"] == ["description", "simulation_enabled"]
    [body] = patches_of(sandbox, 1562)
    assert set(body) == {"description", "simulation_enabled"}
    assert body["simulation_enabled"] is False
    assert "Score FALSE otherwise, or if unsure." in sandbox.state.metric(1562)["description"]
    # traced: the live history version is named after the commit
    head = pulled.git("rev-parse", "HEAD")
    assert sandbox.count("PATCH", r"/history/edit/$") == 1
    assert any(
        r.body and r.body.get("version_name") == f"git {head[:12]}"
        for r in sandbox.requests
        if r.path.endswith("/history/edit/")
    )
    again = apply(cli, pulled, cekura_env)
    assert by_slug(again)["caller_greeted_by_name_1562"]["status"] == "in-sync"
    assert len(patches_of(sandbox, 1562)) == 1


def test_conflict_refuses_then_force_applies(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.dashboard_edit(1562, description="Dashboard version.")
    edit(pulled, GREETING_FILE, "Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")
    pulled.commit_all("git version")
    refused = apply(cli, pulled, cekura_env)
    assert refused.code == 1
    m = by_slug(refused)["caller_greeted_by_name_1562"]
    assert m["status"] == "conflict" and "--force" in m["detail"]
    assert (
        "base/description" in m["diff"]
        and "live/description" in m["diff"]
        and "head/description" in m["diff"]
    )
    assert patches_of(sandbox, 1562) == []
    forced = apply(cli, pulled, cekura_env, "--force")
    assert forced.code == 0
    assert by_slug(forced)["caller_greeted_by_name_1562"]["status"] == "applied"
    assert "Score FALSE otherwise, or if unsure." in sandbox.state.metric(1562)["description"]


def test_already_live_is_in_sync(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.dashboard_edit(1563, name="Satisfied customer")
    edit(pulled, SATISFACTION_FILE, "name: Customer satisfaction", "name: Satisfied customer")
    pulled.commit_all("accept dashboard rename")
    result = apply(cli, pulled, cekura_env)
    assert result.code == 0
    assert by_slug(result)["customer_satisfaction_1563"]["status"] == "in-sync"
    assert patches_of(sandbox, 1563) == []


def test_dry_run_writes_nothing_and_matches_the_real_plan(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    edit(pulled, GREETING_FILE, "Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")
    pulled.write(
        "metrics/hold_music.yaml",
        "slug: hold_music\nproject: 1376\nname: Hold music mentioned\ntype: llm_judge\neval_type: binary\n"
        "description: Score TRUE if the agent warns before putting the caller on hold.\n"
        "evaluation_trigger: always\n",
    )
    pulled.commit_all("change")
    dry = apply(cli, pulled, cekura_env, "--dry-run")
    assert dry.code == 0
    assert sandbox.state.patches == [] and len(sandbox.state.metric_ids()) == 4
    # What would happen, never reported as done: not "applied", not "created".
    assert dry.json()["summary"] == {"would-apply": 1, "would-create": 1}
    text = cli("apply", "--dry-run", cwd=pulled.work, env=cekura_env)
    assert "caller_greeted_by_name_1562: would apply (description)" in text.out
    assert "hold_music: would create" in text.out
    assert "applied" not in text.out and "created" not in text.out
    real = apply(cli, pulled, cekura_env)
    assert real.json()["summary"] == {"applied": 1, "created": 1}
    done = {"would-apply": "applied", "would-create": "created"}
    strip = {"dry_run", "detail", "id"}
    assert [
        {k: (done[v] if k == "status" else v) for k, v in m.items() if k not in strip}
        for m in dry.json()["metrics"]
    ] == [{k: v for k, v in m.items() if k not in strip} for m in real.json()["metrics"]]


def test_a_metrics_folder_in_neither_commit_is_an_error(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    edit(pulled, GREETING_FILE, "Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")
    pulled.commit_all("change")
    result = cli("apply", "--metrics-dir", "metricz", cwd=pulled.work, env=cekura_env)
    assert result.code == 1
    assert "no metrics folder 'metricz'" in result.err and "--metrics-dir" in result.err
    assert sandbox.state.patches == []


@pytest.mark.parametrize("command", [["apply"], ["apply", "--dry-run"], ["plan"], ["sync", "--no-pr"]])
@pytest.mark.parametrize("json_mode", [False, True])
def test_an_unknown_metric_is_an_error_naming_it(  # type: ignore[no-untyped-def]
    pulled: Repo, cli, cekura_env, sandbox, command: list[str], json_mode: bool
) -> None:
    """A typo in --metric must not select nothing and exit 0: every command taking --metric
    says what was typed and the closest known slug, exits 1 and sends nothing."""
    edit(pulled, GREETING_FILE, "Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")
    pulled.commit_all("change")
    typo = "caller_greeted_by_nam"
    flags = ["--json"] if json_mode else []
    sent = len(sandbox.requests)
    result = cli(*flags, *command, "--metric", typo, cwd=pulled.work, env=cekura_env)
    assert result.code == 1
    assert typo in result.err and "caller_greeted_by_name_1562" in result.err
    assert "cekura-gitops list" in result.err
    assert result.out == ""  # --json: one error on stderr, no half document on stdout
    assert len(sandbox.requests) == sent


def test_apply_metric_by_id_and_an_unknown_id(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    edit(pulled, GREETING_FILE, "Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")
    pulled.commit_all("change")
    unknown = apply(cli, pulled, cekura_env, "--metric", "1526")
    assert unknown.code == 1 and "1526" in unknown.err and unknown.out == ""
    assert sandbox.state.patches == []
    # A known metric whose file did not change is no error: nothing of it to apply.
    unchanged = apply(cli, pulled, cekura_env, "--metric", "1563")
    assert unchanged.code == 0 and unchanged.json()["metrics"] == []
    by_id = apply(cli, pulled, cekura_env, "--metric", "1562")
    assert by_id.code == 0 and by_slug(by_id)["caller_greeted_by_name_1562"]["status"] == "applied"


def test_apply_metric_names_a_metric_the_range_deletes(pulled: Repo, cli, cekura_env) -> None:  # type: ignore[no-untyped-def]
    pulled.git("rm", "-q", SATISFACTION_FILE)
    pulled.commit_all("stop managing satisfaction")
    result = apply(cli, pulled, cekura_env, "--metric", "customer_satisfaction_1563")
    assert result.code in (0, 1), result.err
    assert "no metric file for" not in result.err
    assert [m["slug"] for m in result.json()["metrics"]] == ["customer_satisfaction_1563"]


def test_new_file_creates_the_metric(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    pulled.write(
        "metrics/hold_music.yaml",
        "slug: hold_music\nproject: 1376\nname: Hold music mentioned\ntype: llm_judge\neval_type: binary\n"
        "description: Score TRUE if the agent warns before putting the caller on hold.\n"
        "evaluation_trigger: always\n",
    )
    pulled.commit_all("new metric")
    result = apply(cli, pulled, cekura_env)
    assert result.code == 0, result.out
    m = by_slug(result)["hold_music"]
    assert m["status"] == "created" and "add `id:" in m["detail"]
    created = [x for x in sandbox.state.metric_ids() if x not in (1562, 1563, 1564, 1601)]
    assert len(created) == 1 and sandbox.state.metric(created[0])["name"] == "Hold music mentioned"


def test_deleted_file_is_reported_not_deleted(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    (pulled.work / SATISFACTION_FILE).unlink()
    pulled.commit_all("stop managing satisfaction")
    result = apply(cli, pulled, cekura_env)
    assert result.code == 0
    assert by_slug(result)["customer_satisfaction_1563"]["status"] == "deleted"
    assert 1563 in sandbox.state.metric_ids()
    assert sandbox.count("DELETE", ".") == 0


def test_rename_with_edit_applies(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    pulled.git("mv", SATISFACTION_FILE, "metrics/old_name.yaml")
    pulled.git("mv", "metrics/old_name.yaml", SATISFACTION_FILE.replace(".yaml", ".yml"))
    edit(
        pulled,
        SATISFACTION_FILE.replace(".yaml", ".yml"),
        "simulation_enabled: false",
        "simulation_enabled: true",
    )
    pulled.commit_all("rename to .yml and enable simulation")
    result = apply(cli, pulled, cekura_env)
    assert result.code == 0, result.out
    assert by_slug(result)["customer_satisfaction_1563"]["status"] == "applied"
    assert patches_of(sandbox, 1563) == [{"simulation_enabled": True}]


def test_one_failure_does_not_stop_the_others(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    edit(pulled, GREETING_FILE, "Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")
    edit(pulled, SATISFACTION_FILE, "simulation_enabled: false", "simulation_enabled: true")
    pulled.commit_all("two changes")
    sandbox.faults.add(Fault("PATCH", r"/metrics/1562/$", kind="status", status=500, times=None))
    result = apply(cli, pulled, cekura_env)
    assert result.code == 1
    got = by_slug(result)
    assert got["caller_greeted_by_name_1562"]["status"] == "error"
    assert "HTTP 500" in got["caller_greeted_by_name_1562"]["detail"]
    assert got["customer_satisfaction_1563"]["status"] == "applied"
    assert sandbox.count("PATCH", r"/metrics/1562/$") == 5  # retried (idempotent), then gave up
    sandbox.faults.clear()
    retry = apply(cli, pulled, cekura_env)
    assert retry.code == 0
    assert by_slug(retry)["customer_satisfaction_1563"]["status"] == "in-sync"


def test_push_event_range_and_actions_outputs(pulled: Repo, cli, cekura_env, sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = pulled.git("rev-parse", "HEAD")
    edit(pulled, GREETING_FILE, "Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")
    pulled.commit_all("one")
    edit(pulled, SATISFACTION_FILE, "simulation_enabled: false", "simulation_enabled: true")
    after = pulled.commit_all("two")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"before": before, "after": after}))
    out, summary = tmp_path / "out", tmp_path / "summary"
    env = {
        **cekura_env,
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    result = apply(cli, pulled, env)
    assert result.code == 0
    assert {m["status"] for m in result.json()["metrics"]} == {"applied"}  # both commits of the push
    assert "applied=2\n" in out.read_text() and "conflicts=[]\n" in out.read_text()
    assert "### cekura-gitops apply" in summary.read_text()


def test_killed_after_patch_reruns_to_the_same_end(pulled: Repo, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    edit(pulled, GREETING_FILE, "Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")
    pulled.commit_all("change")
    env = {**cekura_env, "CEKURA_GITOPS_CRASH_AT": "patched"}
    killed = run_subprocess(["apply"], pulled.work, env)
    assert killed.returncode == -signal.SIGKILL
    rerun = run_subprocess(["--json", "apply"], pulled.work, cekura_env)
    assert rerun.returncode == 0
    assert json.loads(rerun.stdout)["metrics"][0]["status"] == "in-sync"
    assert len(patches_of(sandbox, 1562)) == 1


def test_a_dropped_apply_run_is_caught_up_by_the_next(
    pulled: Repo, cli, cekura_env, sandbox, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # The import commit is applied (all in-sync), which records it as applied.
    first = apply(cli, pulled, cekura_env)
    assert {m["status"] for m in first.json()["metrics"]} == {"in-sync"}
    imported = pulled.git("rev-parse", "HEAD")
    state = json.loads(pulled.origin_file("refs/cekura-gitops/state", "state.json") or "{}")
    assert state["applied"] == imported

    edit(pulled, GREETING_FILE, "Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")
    a = pulled.commit_all("push A")
    pulled.push()
    edit(pulled, SATISFACTION_FILE, "simulation_enabled: false", "simulation_enabled: true")
    b = pulled.commit_all("push B")
    pulled.push()
    pulled.git("fetch", "-q", "origin")
    # Push A's run never happened (GitHub dropped it from the concurrency group); B's runs.
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"before": a, "after": b}))
    env = {**cekura_env, "GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(event)}
    result = apply(cli, pulled, env)
    assert result.code == 0
    assert {m["slug"]: m["status"] for m in result.json()["metrics"]} == {
        "caller_greeted_by_name_1562": "applied",
        "customer_satisfaction_1563": "applied",
    }
    assert "since the last applied commit" in result.err
    state = json.loads(pulled.origin_file("refs/cekura-gitops/state", "state.json") or "{}")
    assert state["applied"] == b


def test_rescore_after_apply_is_opt_in(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    edit(pulled, GREETING_FILE, "Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")
    pulled.commit_all("change")
    assert apply(cli, pulled, cekura_env, "--dry-run").code == 0
    off = apply(cli, pulled, cekura_env, "--base", "HEAD~1")
    assert off.code == 0 and sandbox.count("POST", r"/run_reviews/$") == 0
    pulled.write("cekura-gitops.yaml", "apply: {rescore: true}\n")
    edit(pulled, GREETING_FILE, "or if unsure.", "or when unsure.")
    pulled.commit_all("change again, with re-scoring on")
    on = apply(cli, pulled, cekura_env)
    m = by_slug(on)["caller_greeted_by_name_1562"]
    assert m["status"] == "applied" and "re-scoring the Lab's reviews" in m["detail"]
    assert sandbox.count("POST", r"/run_reviews/$") == 1
    [req] = [r for r in sandbox.requests if r.path.endswith("/run_reviews/")]
    assert req.body == {"skip_save": False}


def test_apply_takes_at_most_four_requests_per_metric(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    # GET (guard), PATCH (its answer verifies), one history page (verifies again, and names
    # the version to label), the label: no separate verify GET, no second history read.
    edit(pulled, GREETING_FILE, "Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")
    pulled.commit_all("stricter greeting")
    before = len(sandbox.requests)
    result = apply(cli, pulled, cekura_env)
    assert result.code == 0 and by_slug(result)["caller_greeted_by_name_1562"]["status"] == "applied"
    made = [(r.method, r.path) for r in sandbox.requests[before:]]
    assert len(made) <= 4, made
    assert sandbox.count("PATCH", r"/history/edit/$") == 1

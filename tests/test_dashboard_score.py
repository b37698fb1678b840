"""The dashboard issue and notifications; plan --score. Sandbox + fake GitHub + real git."""

from __future__ import annotations

import pytest

from cekura_gitops import dashboard, prbody
from tests.conftest import GH_TOKEN, Repo

GREETING = "caller_greeted_by_name_1562"
GREETING_FILE = f"metrics/{GREETING}.yaml"
TOKEN = GH_TOKEN


@pytest.fixture
def env(github_env) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {**github_env, "GITHUB_EVENT_NAME": "schedule", "GITHUB_RUN_ID": "42"}


def dashboards(gh) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return [i for i in gh.issues if i["title"] == dashboard.TITLE]


def test_dashboard_created_once_then_updated_in_place(pulled: Repo, cli, env, gh, sandbox) -> None:  # type: ignore[no-untyped-def]
    assert cli("sync", cwd=pulled.work, env=env).code == 0
    [issue] = dashboards(gh)
    assert [label["name"] for label in issue["labels"]] == [dashboard.LABEL]
    body = issue["body"]
    assert "Last run: `sync`" in body and "(trigger: schedule)" in body and "/actions/runs/42" in body
    assert f"| `{GREETING}` | proposed | 5/7 → 7/7 |" in body
    assert "| `customer_satisfaction_1563` | not-enough-feedback |" in body
    rows = prbody.read_machine(body)["rows"]
    assert set(rows) == {GREETING, "customer_satisfaction_1563", "refund_policy_code_1564"}

    # apply on the merged proposal updates the same issue; sync rows stay.
    pulled.git("fetch", "-q", "origin")
    pulled.git("merge", "-q", "--no-ff", f"origin/cekura-gitops/optimise/{GREETING}", "-m", "merge")
    pulled.push()
    assert cli("apply", cwd=pulled.work, env=env).code == 0
    [issue] = dashboards(gh)
    assert "Last run: `apply`" in issue["body"]
    assert f"| `{GREETING}` | proposed | 5/7 → 7/7 | " in issue["body"]
    assert "| applied |" in issue["body"]
    assert gh.count("POST", r"/issues$") == 1


def test_human_text_on_the_dashboard_survives(pulled: Repo, cli, env, gh) -> None:  # type: ignore[no-untyped-def]
    assert cli("sync", cwd=pulled.work, env=env).code == 0
    [issue] = dashboards(gh)
    from cekura_gitops.github import GitHubClient

    with GitHubClient(gh.url, TOKEN, "acme/metrics", min_write_interval=0) as client:
        client.update_issue(issue["number"], body=issue["body"] + "\n\nOwner: the QA team.")
    assert cli("sync", "--force", "--metric", GREETING, cwd=pulled.work, env=env).code == 0
    [issue] = dashboards(gh)
    assert "Owner: the QA team." in issue["body"]


@pytest.mark.parametrize(
    ("on", "fail", "comments"),
    [
        ("failure", False, 0),
        ("failure", True, 1),
        ("success", False, 1),
        ("never", True, 0),
        ("both", False, 1),
    ],
)
def test_notify_mentions_per_setting(
    pulled: Repo, cli, env, gh, sandbox, on: str, fail: bool, comments: int
) -> None:  # type: ignore[no-untyped-def]
    from cekura_gitops.sandbox import OptimiserOutcome

    pulled.write("cekura-gitops.yaml", f"notify: {{on: {on}, mention: '@acme/qa'}}\n")
    pulled.commit_all("notify")
    pulled.push()
    if fail:
        sandbox.state.set_optimiser_outcome(1562, OptimiserOutcome(status="error", error="model overloaded"))
    result = cli("sync", "--metric", GREETING, cwd=pulled.work, env=env)
    assert result.code == (1 if fail else 0)
    [issue] = dashboards(gh)
    notes = gh.comments_on(issue["number"])
    assert len(notes) == comments
    if comments:
        assert "@acme/qa" in notes[0]["body"]
        assert ("failed" if fail else "succeeded") in notes[0]["body"]


def test_plan_score_shows_both_scores_without_saving(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    path = pulled.work / GREETING_FILE
    feedback = [r["feedback"] for r in sandbox.state.metric(1562)["reviews"] if r["feedback"]]
    addition = "".join(f"\n  {line}" for line in feedback)
    text = path.read_text()
    marker = "a first name or a full name does."
    path.write_text(text.replace(marker, marker + "\n" + addition, 1))
    before = sandbox.state.metric(1562)
    result = cli("--json", "plan", "--score", cwd=pulled.work, env=cekura_env)
    assert result.code == 0, result.err
    scored = {m["slug"]: m.get("score") for m in result.json()["metrics"]}
    assert scored[GREETING] == {"live": "5/7", "repo": "7/7"}
    assert scored["customer_satisfaction_1563"] is None  # unchanged: not scored (billed)
    assert sandbox.count("POST", r"/run_reviews/$") == 2
    assert all(r.body.get("skip_save") is True for r in sandbox.requests if r.path.endswith("/run_reviews/"))
    assert sandbox.state.metric(1562) == before
    md = cli("plan", "--score", "--format", "markdown", cwd=pulled.work, env=cekura_env)
    assert "Score: live 5/7 → repo 7/7" in md.out

"""sync with pull requests: the sandbox, the fake GitHub server and real git together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cekura_gitops import prbody
from cekura_gitops.sandbox import OptimiserOutcome
from tests.conftest import GH_TOKEN, Repo

GREETING = "caller_greeted_by_name_1562"
GREETING_FILE = f"metrics/{GREETING}.yaml"
BRANCH = f"cekura-gitops/optimise/{GREETING}"
TOKEN = GH_TOKEN


@pytest.fixture
def env(github_env) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return github_env  # type: ignore[no-any-return]


def sync(cli, repo: Repo, env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return cli("--json", "sync", *args, cwd=repo.work, env=env)


def only(result) -> dict:  # type: ignore[no-untyped-def,type-arg]
    [m] = result.json()["metrics"]
    return m  # type: ignore[no-any-return]


def open_prs(gh, branch: str = BRANCH) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return [p for p in gh.pulls if p["head"]["ref"] == branch and p["state"] == "open"]


def test_proposal_opens_one_pr_with_scores_diff_and_machine_block(
    pulled: Repo, cli, env, gh, sandbox
) -> None:  # type: ignore[no-untyped-def]
    pulled.write("cekura-gitops.yaml", "pull_requests: {labels: [metrics], reviewers: [ada]}\n")
    pulled.commit_all("config")
    pulled.push()
    result = sync(cli, pulled, env, "--metric", GREETING)
    assert result.code == 0, result.err
    m = only(result)
    assert m["status"] == "proposed"
    [pr] = open_prs(gh)
    assert m["pull_request"] == pr["html_url"]
    body = pr["body"]
    assert "| score on the Lab's labelled reviews | 5/7 | 7/7 |" in body
    assert "```diff" in body and "+Guidance from reviewed calls:" in body
    assert "/metrics/1562)" in body
    machine = prbody.read_machine(body)
    assert machine["metric_id"] == 1562 and machine["slug"] == GREETING and machine["proposal"]
    assert pr["base"]["ref"] == "main"
    assert gh.labels_added and gh.reviewers_requested
    assert "GITHUB_TOKEN" in result.err  # opened by github-actions[bot]: warned


def test_new_proposal_updates_the_same_pr_and_keeps_human_text(pulled: Repo, cli, env, gh, sandbox) -> None:  # type: ignore[no-untyped-def]
    assert only(sync(cli, pulled, env, "--metric", GREETING))["status"] == "proposed"
    [pr] = open_prs(gh)
    from cekura_gitops.github import GitHubClient

    with GitHubClient(gh.url, TOKEN, "acme/metrics", min_write_interval=0) as client:
        client.update_pull(pr["number"], body=pr["body"] + "\n\nReviewer note: check with legal.")
    sandbox.state.add_review(1562, True, False, feedback="A nickname the caller offered counts.")
    result = sync(cli, pulled, env, "--metric", GREETING)
    assert only(result)["status"] == "updated"
    [again] = open_prs(gh)
    assert again["number"] == pr["number"]
    assert "nickname the caller offered" in again["body"]
    assert "Reviewer note: check with legal." in again["body"]
    assert gh.count("POST", r"/pulls$") == 1


def test_ambiguous_create_is_not_resent(pulled: Repo, cli, env, gh) -> None:  # type: ignore[no-untyped-def]
    gh.faults.add("POST", r"/pulls$", status=502, when="after")
    result = sync(cli, pulled, env, "--metric", GREETING)
    assert only(result)["status"] == "proposed", result.out
    assert len(open_prs(gh)) == 1
    assert gh.count("POST", r"/pulls$") == 1


def test_human_commit_stops_the_bot(pulled: Repo, cli, env, gh, sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert only(sync(cli, pulled, env, "--metric", GREETING))["status"] == "proposed"
    pulled.human_edit(BRANCH, GREETING_FILE, tmp_path / "human")
    tip = pulled.origin_ref(f"refs/heads/{BRANCH}")

    sandbox.state.add_review(1562, True, False, feedback="New label.")
    for _ in range(2):
        result = sync(cli, pulled, env, "--metric", GREETING)
        assert only(result)["status"] == "skipped-edited"
        assert "ada@example.com" in only(result)["detail"]
        sandbox.state.add_review(1562, True, False, feedback="Another label.")
    assert pulled.origin_ref(f"refs/heads/{BRANCH}") == tip
    [pr] = open_prs(gh)
    notes = [c for c in gh.comments_on(pr["number"]) if prbody.HUMAN_EDIT_MARKER in c["body"]]
    assert len(notes) == 1 and "hand the branch back" in notes[0]["body"]


def test_rejected_proposal_is_not_reproposed(pulled: Repo, cli, env, gh, sandbox) -> None:  # type: ignore[no-untyped-def]
    assert only(sync(cli, pulled, env, "--metric", GREETING))["status"] == "proposed"
    [pr] = open_prs(gh)
    gh.close_pull(pr["number"], merged=False)
    rerun = sync(cli, pulled, env, "--metric", GREETING, "--force")
    assert only(rerun)["status"] == "rejected"
    assert open_prs(gh) == []
    sandbox.state.add_review(1562, True, False, feedback="A fresh label changes the proposal.")
    fresh = sync(cli, pulled, env, "--metric", GREETING)
    assert only(fresh)["status"] == "proposed"
    assert len(open_prs(gh)) == 1


# 1.2 MB: validate, plan and apply refuse metric files over 1 MiB.
HUGE = "Score TRUE only if the agent greets the caller by name.\n" + "Guidance line.\n" * 80_000


def test_a_proposal_validate_would_refuse_is_not_proposed(pulled: Repo, cli, env, gh, sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.set_optimiser_outcome(1562, OptimiserOutcome(description=HUGE))
    result = sync(cli, pulled, env, "--metric", GREETING)
    assert result.code == 0, result.err
    m = only(result)
    assert m["status"] == "invalid-proposal"
    assert GREETING_FILE in m["detail"] and "limited to 1 MiB" in m["detail"]
    assert m["old_score"] and m["new_score"]  # the run's scores are still reported
    assert pulled.origin_ref(f"refs/heads/{BRANCH}") is None and gh.pulls == []
    # The run counts as used: the same labels do not start it again.
    again = sync(cli, pulled, env, "--metric", GREETING)
    assert only(again)["status"] == "no-new-feedback"
    assert sandbox.count("POST", r"/process_feedbacks/$") == 1


def test_live_values_validate_would_refuse_get_no_drift_pr(pulled: Repo, cli, env, gh, sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.dashboard_edit(1562, description=HUGE)
    result = sync(cli, pulled, env, "--metric", GREETING)
    assert result.code == 0, result.err
    m = only(result)
    assert m["status"] == "drift" and "no drift PR" in m["detail"] and "limited to 1 MiB" in m["detail"]
    assert pulled.origin_ref(f"refs/heads/cekura-gitops/drift/{GREETING}") is None and gh.pulls == []


def test_drift_opens_a_drift_pr(pulled: Repo, cli, env, gh, sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.dashboard_edit(1562, description="Edited in the dashboard.")
    result = sync(cli, pulled, env, "--metric", GREETING)
    m = only(result)
    assert m["status"] == "drift"
    drift_branch = f"cekura-gitops/drift/{GREETING}"
    [pr] = open_prs(gh, drift_branch)
    assert "apply --force" in pr["body"] and "dashboard edit" in pr["body"]
    text = pulled.origin_file(f"refs/heads/{drift_branch}", GREETING_FILE) or ""
    assert "description: Edited in the dashboard." in text
    assert sandbox.count("POST", r"/process_feedbacks/$") == 0


def test_caps_skip_and_report(pulled: Repo, cli, env, gh, sandbox) -> None:  # type: ignore[no-untyped-def]
    pulled.write("cekura-gitops.yaml", "optimiser: {min_feedback: 0}\npull_requests: {max_new_per_run: 1}\n")
    pulled.commit_all("caps")
    pulled.push()
    result = sync(cli, pulled, env)
    got = sorted(m["status"] for m in result.json()["metrics"])
    assert got == ["proposed", "skipped-cap", "skipped-cap"]
    assert len([p for p in gh.pulls if p["state"] == "open"]) == 1
    assert result.code == 0


def test_auto_apply_enables_auto_merge_but_not_for_critical(pulled: Repo, cli, env, gh, sandbox) -> None:  # type: ignore[no-untyped-def]
    path = pulled.work / GREETING_FILE
    path.write_text(path.read_text() + "optimiser:\n  auto_apply: true\n")
    code_path = pulled.work / "metrics/refund_policy_code_1564.yaml"
    code_path.write_text(
        code_path.read_text() + "optimiser:\n  auto_apply: true\n  critical: true\n  min_feedback: 0\n"
    )
    pulled.commit_all("auto-apply")
    pulled.push()
    result = sync(cli, pulled, env, "--metric", GREETING, "--metric", "refund_policy_code_1564")
    statuses = {m["slug"]: m["status"] for m in result.json()["metrics"]}
    assert statuses == {GREETING: "proposed", "refund_policy_code_1564": "proposed"}
    greeting_pr = open_prs(gh)[0]
    assert gh.auto_merge_enabled == [greeting_pr["node_id"]]
    assert "auto_apply refused for a critical metric" in result.err


def test_no_token_pushes_branch_and_says_so(pulled: Repo, cli, cekura_env) -> None:  # type: ignore[no-untyped-def]
    result = sync(cli, pulled, cekura_env, "--metric", GREETING)
    assert only(result)["status"] == "proposed"
    assert "no pull requests are opened" in result.err
    assert pulled.origin_ref(f"refs/heads/{BRANCH}")


def test_plan_comment_is_sticky(pulled: Repo, cli, env, gh, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pr = gh.add_pull(head="feature", base="main", title="Edit prompt")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": pr["number"]}}))
    full = {**env, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)}
    for _ in range(2):
        result = cli("plan", "--format", "markdown", "--comment", cwd=pulled.work, env=full)
        assert result.code == 0, result.err
    comments = gh.comments_on(pr["number"])
    assert len(comments) == 1 and "### cekura-gitops plan" in comments[0]["body"]


def test_plan_comment_ignores_a_planted_marker(pulled: Repo, cli, env, gh, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cekura_gitops.pullrequests import PLAN_MARKER

    pr = gh.add_pull(head="feature", base="main", title="Edit prompt")
    planted = gh.add_comment(
        pr["number"], f"{PLAN_MARKER}\nFake plan: nothing changes.", user_login="mallory"
    )
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": pr["number"]}}))
    full = {**env, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)}
    assert cli("plan", "--format", "markdown", "--comment", cwd=pulled.work, env=full).code == 0
    comments = gh.comments_on(pr["number"])
    assert [c["body"] for c in comments if c["id"] == planted["id"]] == [planted["body"]]
    assert len(comments) == 2


def test_one_sync_builds_one_github_client(pulled: Repo, cli, env, gh, sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The pull request and the dashboard issue go through the one client sync builds."""
    from cekura_gitops.githubaccess import GitHubAccess

    built = []
    build = GitHubAccess.client

    def counting(self, **kwargs):  # type: ignore[no-untyped-def]
        built.append(build(self, **kwargs))
        return built[-1]

    monkeypatch.setattr(GitHubAccess, "client", counting)
    result = sync(cli, pulled, env, "--metric", GREETING)
    assert only(result)["status"] == "proposed"
    assert len(open_prs(gh)) == 1 and len(gh.issues) == 1  # the PR and the dashboard issue
    assert len(built) == 1

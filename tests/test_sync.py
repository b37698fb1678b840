"""sync against the loopback sandbox with real git: statuses, shapes, concurrency, state."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from cekura_gitops.sandbox import Fault, OptimiserOutcome
from tests._hardening import by_metric_id
from tests.conftest import Repo, run_subprocess

GREETING = "caller_greeted_by_name_1562"
GREETING_FILE = f"metrics/{GREETING}.yaml"
BRANCH = f"refs/heads/cekura-gitops/optimise/{GREETING}"
START = r"/process_feedbacks/$"
# Lower the first-run threshold so every seeded metric may be optimised.
CONFIG = "optimiser:\n  min_feedback: 0\n"


def sync(cli, repo: Repo, env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return cli("--json", "sync", "--no-pr", *args, cwd=repo.work, env=env)


def statuses(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {m["slug"]: m["status"] for m in result.json()["metrics"]}


def state(repo: Repo) -> dict:  # type: ignore[type-arg]
    text = repo.origin_file("refs/cekura-gitops/state", "state.json")
    return by_metric_id(json.loads(text) if text else {})


def test_proposal_lands_on_its_branch_touching_only_changed_lines(
    pulled: Repo, cli, cekura_env, sandbox
) -> None:  # type: ignore[no-untyped-def]
    pulled.write(
        GREETING_FILE, "# Legal asked for the caller's name.\n" + (pulled.work / GREETING_FILE).read_text()
    )
    pulled.commit_all("comment")
    pulled.push()
    result = sync(cli, pulled, cekura_env, "--metric", GREETING)
    assert result.code == 0, result.err
    [m] = result.json()["metrics"]
    assert m["status"] == "proposed" and m["old_score"] == "5/7" and m["new_score"] == "7/7"
    assert m["fields"] == ["description"]
    assert sandbox.count("POST", START) == 1

    diff = pulled.origin_git("diff", "main", BRANCH)
    added = [line for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert removed == []  # the description grows; nothing else is rewritten
    assert "+  Guidance from reviewed calls:" in added
    assert all(line.startswith("+  ") or line == "+" for line in added)
    message = pulled.origin_git("log", "-1", "--format=%s%n%ae", BRANCH)
    assert message == f"optimise({GREETING}): 5/7 → 7/7\ncekura-gitops@users.noreply.github.com"
    assert state(pulled)["runs"] == {}
    assert state(pulled)["last"][1562]["outcome"] == "proposed"


def test_rerun_with_same_proposal_makes_no_new_commit(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    assert sync(cli, pulled, cekura_env, "--metric", GREETING).code == 0
    tip = pulled.origin_ref(BRANCH)
    again = sync(cli, pulled, cekura_env, "--metric", GREETING)
    assert statuses(again) == {GREETING: "no-new-feedback"}
    assert sandbox.count("POST", START) == 1  # gated: no optimiser call at all
    forced = sync(cli, pulled, cekura_env, "--metric", GREETING, "--force")
    assert statuses(forced) == {GREETING: "proposed"}
    assert sandbox.count("POST", START) == 2
    assert pulled.origin_ref(BRANCH) == tip


def test_new_labels_rewrite_the_branch(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    assert sync(cli, pulled, cekura_env, "--metric", GREETING).code == 0
    tip = pulled.origin_ref(BRANCH)
    sandbox.state.add_review(1562, True, False, feedback="A nickname the caller offered counts as a name.")
    result = sync(cli, pulled, cekura_env, "--metric", GREETING)
    assert statuses(result) == {GREETING: "updated"}
    assert pulled.origin_ref(BRANCH) != tip
    assert "nickname" in (pulled.origin_file(BRANCH, GREETING_FILE) or "")


@pytest.mark.parametrize("shape", ["flat", "envelope"])
def test_both_progress_shapes(pulled: Repo, cli, cekura_env, sandbox, shape: str) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.set_progress_shape(1562, shape)
    # Long enough that the first poll (0.4 s in) lands before the end even on a loaded machine.
    sandbox.state.set_optimiser_seconds(1562, 3.0)
    result = sync(cli, pulled, cekura_env, "--metric", GREETING)
    assert statuses(result) == {GREETING: "proposed"}
    assert sandbox.count("GET", r"process_feedbacks_progress") >= 2  # saw pending first


@pytest.mark.parametrize(
    ("outcome", "status", "detail"),
    [
        (OptimiserOutcome(old=(5, 7), new=(5, 7)), "not-improved", "no better"),
        (OptimiserOutcome(old=(5, 7), new=(4, 7)), "not-improved", "regressed"),
        (OptimiserOutcome(status="error", error="model overloaded"), "error", "model overloaded"),
    ],
)
def test_guard_and_failures(
    pulled: Repo, cli, cekura_env, sandbox, outcome, status: str, detail: str
) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.set_optimiser_outcome(1562, outcome)
    result = sync(cli, pulled, cekura_env, "--metric", GREETING)
    [m] = result.json()["metrics"]
    assert (m["status"], detail in m["detail"]) == (status, True)
    assert result.code == (1 if status == "error" else 0)
    assert pulled.origin_ref(BRANCH) is None


def test_identical_proposal_is_no_change(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    live = sandbox.state.metric(1562)
    sandbox.state.set_optimiser_outcome(1562, OptimiserOutcome(description=live["description"], new=(7, 7)))
    result = sync(cli, pulled, cekura_env, "--metric", GREETING)
    assert statuses(result) == {GREETING: "no-change"}


def test_custom_code_proposal_switches_type(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    code = "_result = 'name' in data['transcript']\n_explanation = 'checked'\n"
    sandbox.state.set_optimiser_outcome(
        1562, OptimiserOutcome(custom_code=code, type="custom_code", new=(7, 7))
    )
    result = sync(cli, pulled, cekura_env, "--metric", GREETING)
    [m] = result.json()["metrics"]
    assert m["status"] == "proposed" and "type" in m["fields"] and "custom_code" in m["fields"]
    text = pulled.origin_file(BRANCH, GREETING_FILE) or ""
    assert "type: custom_code" in text and "custom_code: |\n  _result = 'name'" in text


def test_drift_is_reported_and_not_optimised(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.dashboard_edit(1562, description="Edited in the dashboard.")
    result = sync(cli, pulled, cekura_env, "--metric", GREETING)
    [m] = result.json()["metrics"]
    assert m["status"] == "drift" and m["fields"] == ["description"]
    assert sandbox.count("POST", START) == 0
    assert result.code == 0


def test_feedback_gating(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    result = sync(cli, pulled, cekura_env)
    got = statuses(result)
    assert got["customer_satisfaction_1563"] == "not-enough-feedback"  # 3 labels < 6
    assert got["refund_policy_code_1564"] == "not-enough-feedback"
    assert got[GREETING] == "proposed"
    assert sandbox.state.optimisations_started == {1562: 1}
    forced = sync(cli, pulled, cekura_env, "--metric", "customer_satisfaction_1563", "--force")
    assert statuses(forced) == {"customer_satisfaction_1563": "proposed"}


def test_runs_are_concurrent(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    pulled.write("cekura-gitops.yaml", CONFIG)
    pulled.commit_all("config")
    pulled.push()
    for metric_id in (1562, 1563, 1564):
        sandbox.state.set_optimiser_seconds(metric_id, 1.0)
    result = sync(cli, pulled, cekura_env)
    assert set(statuses(result).values()) == {"proposed"}
    assert sandbox.state.max_concurrent_optimisations == 3
    assert sandbox.state.optimisations_started == {1562: 1, 1563: 1, 1564: 1}


def test_other_runs_claim_means_in_flight(pulled: Repo, cli, cekura_env, sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A start POST that may have reached Cekura (502 after it was processed) is never resent.
    sandbox.faults.add(Fault("POST", START, kind="status", status=502, when="after"))
    first = sync(cli, pulled, cekura_env, "--metric", GREETING)
    [m] = first.json()["metrics"]
    assert m["status"] == "error" and "not resent" in m["detail"]
    assert first.code == 1
    assert sandbox.state.optimisations_started == {1562: 1}
    clone = pulled.fresh_clone(tmp_path / "clone")
    second = sync(cli, clone, cekura_env, "--metric", GREETING)
    assert statuses(second) == {GREETING: "in-flight"}
    [m] = second.json()["metrics"]
    assert "no run recorded" in m["detail"] and "expires at" in m["detail"]
    assert sandbox.state.optimisations_started == {1562: 1}


def test_timeout_cancels_and_clears(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.set_optimiser_seconds(1562, 60)
    env = {**cekura_env, "CEKURA_GITOPS_OPTIMISER_TIMEOUT": "1s"}
    result = sync(cli, pulled, env, "--metric", GREETING)
    [m] = result.json()["metrics"]
    assert m["status"] == "error" and "no result after 1 s" in m["detail"]
    assert sandbox.count("POST", r"process_feedbacks_cancel/$") == 1
    assert state(pulled)["runs"] == {}


def test_killed_after_start_resumes_without_second_post(
    pulled: Repo, cekura_env, sandbox, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sandbox.state.set_optimiser_seconds(1562, 1.0)
    env = {**cekura_env, "CEKURA_GITOPS_CRASH_AT": f"recorded:{GREETING}"}
    killed = run_subprocess(["sync", "--no-pr", "--metric", GREETING], pulled.work, env)
    assert killed.returncode == -signal.SIGKILL
    assert sandbox.state.optimisations_started == {1562: 1}
    assert state(pulled)["runs"][1562]["progress_id"]

    clone = pulled.fresh_clone(tmp_path / "fresh")
    resumed = run_subprocess(["--json", "sync", "--no-pr", "--metric", GREETING], clone.work, cekura_env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["metrics"][0]["status"] == "proposed"
    assert sandbox.state.optimisations_started == {1562: 1}
    assert pulled.origin_ref(BRANCH) is not None
    assert state(pulled)["runs"] == {}


def test_no_push_keeps_branches_local(pulled: Repo, cli, cekura_env, sandbox) -> None:  # type: ignore[no-untyped-def]
    result = cli("--json", "sync", "--no-push", "--metric", GREETING, cwd=pulled.work, env=cekura_env)
    assert statuses(result) == {GREETING: "proposed"}
    assert pulled.origin_ref(BRANCH) is None
    assert pulled.git("rev-parse", "--verify", BRANCH)


def test_sync_without_remote_needs_no_push(tmp_path: Path, cli, cekura_env) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import git

    work = tmp_path / "solo"
    git(tmp_path, "init", "-q", "--initial-branch=main", str(work))
    assert cli("pull", "--project", "1376", cwd=work, env=cekura_env).code == 0
    git(work, "add", "-A")
    git(work, "commit", "-qm", "import")
    refused = cli("sync", "--no-pr", cwd=work, env=cekura_env)
    assert refused.code == 1 and "--no-push" in refused.err
    ok = cli("--json", "sync", "--no-push", "--metric", GREETING, cwd=work, env=cekura_env)
    assert statuses(ok) == {GREETING: "proposed"}


REJECT_HOOK = """#!/bin/sh
# Decline pushes number {first}..{last} to the state ref (1 is the claim, 2 the record).
while read old new ref; do
  if [ "$ref" = "refs/cekura-gitops/state" ]; then
    n=$(cat "{counter}" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "{counter}"
    if [ "$n" -ge {first} ] && [ "$n" -le {last} ]; then echo "declined $n" >&2; exit 1; fi
  fi
done
exit 0
"""


@pytest.mark.parametrize("failures", [1, 3], ids=["retried", "followed-anyway"])
def test_a_failed_record_push_never_abandons_the_run(
    pulled: Repo, cli, cekura_env, sandbox, tmp_path: Path, failures: int
) -> None:  # type: ignore[no-untyped-def]
    # Ctrl-C kills git children with the process group, so the push recording a run's
    # progress id can fail. Pushed again; if it keeps failing, the run is still followed.
    hook = pulled.origin / "hooks" / "pre-receive"
    hook.write_text(REJECT_HOOK.format(first=2, last=1 + failures, counter=tmp_path / "n"))
    hook.chmod(0o755)
    result = sync(cli, pulled, cekura_env, "--metric", GREETING)
    assert statuses(result) == {GREETING: "proposed"}, result.out
    assert sandbox.state.optimisations_started == {1562: 1}
    assert state(pulled)["runs"] == {}
    assert state(pulled)["last"][1562]["outcome"] == "proposed"

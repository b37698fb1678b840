"""The Cekura sandbox, exercised over real HTTP with plain httpx (not CekuraClient).

The client has its own tests; here the sandbox is the subject: its state, its optimiser,
its faults, and its OpenAPI validation of every request.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openapi_core import OpenAPI

from cekura_gitops.sandbox import Fault, OptimiserOutcome, Sandbox
from cekura_gitops.sandbox.seed import GREETING_DESCRIPTION, REFUND_CODE
from cekura_gitops.sandbox.validation import (
    SPEC_PATH,
    OpenAPIRequest,
    OpenAPIResponse,
    response_violations,
)

METRICS = "/test_framework/v2/metrics/"
START = "/test_framework/metric-reviews/process_feedbacks/"
PROGRESS = "/test_framework/metric-reviews/process_feedbacks_progress/"
CANCEL = "/test_framework/metric-reviews/process_feedbacks_cancel/"
GREETING_FEEDBACK = [
    "The agent used the caller's name only when saying goodbye; that is after the first 3 "
    "turns, so score FALSE.",
    'Reading the name back to confirm it ("Is that Jon with an h?") is not a greeting; '
    "score FALSE unless the agent greets the caller by name.",
]


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    headers = {"X-CEKURA-API-KEY": sandbox.api_key}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=5.0) as client:
        yield client


def start(http: httpx.Client, metric_id: int, test_set_ids: list[int] | None = None) -> str:
    body: dict[str, Any] = {"metric_id": metric_id}
    if test_set_ids is not None:
        body["test_set_ids"] = test_set_ids
    response = http.post(START, json=body)
    assert response.status_code == 200, response.text
    progress_id: str = response.json()["progress_id"]
    return progress_id


def progress(http: httpx.Client, progress_id: str) -> dict[str, Any]:
    response = http.get(PROGRESS, params={"progress_id": progress_id})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- metrics -------------------------------------------------------------------------------


def test_list_is_scoped_by_project_and_hides_custom_code(http: httpx.Client) -> None:
    support = http.get(METRICS, params={"project_id": 1376}).json()
    billing = http.get(METRICS, params={"project_id": 2001}).json()
    everything = http.get(METRICS).json()

    assert [m["slug"] for m in support] == [
        "caller_greeted_by_name_1562",
        "customer_satisfaction_1563",
        "refund_policy_code_1564",
    ]
    assert [m["id"] for m in billing] == [1601]
    assert len(everything) == 4
    assert all("custom_code" not in m and "reviews" not in m for m in everything)

    detail = http.get(f"{METRICS}1564/").json()
    assert detail["custom_code"] == REFUND_CODE
    assert detail["type"] == "custom_code"
    assert len(detail["reviews"]) == 3


def test_get_by_slug_and_slug_filter(http: httpx.Client) -> None:
    by_slug = http.get(f"{METRICS}caller_greeted_by_name_1562/").json()
    assert by_slug["id"] == 1562
    assert by_slug["description"] == GREETING_DESCRIPTION
    assert by_slug["evaluation_trigger"] == "custom"
    assert by_slug["trigger_type"] == "llm_judge"
    assert by_slug["agents"] == [42]
    reviews = by_slug["reviews"]
    assert len(reviews) == 7
    assert sum(r["actual_value"] == r["expected_value"] for r in reviews) == 5
    assert {r["test_set"]["id"] for r in reviews} == {456, 789}

    filtered = http.get(METRICS, params={"slug": "customer_satisfaction_1563"}).json()
    assert [m["id"] for m in filtered] == [1563]


def test_unknown_metric_is_404(http: httpx.Client) -> None:
    response = http.get(f"{METRICS}99999/")
    assert response.status_code == 404
    assert "detail" in response.json()


def test_path_without_trailing_slash_is_404_and_a_violation(sandbox: Sandbox, http: httpx.Client) -> None:
    assert http.get(f"{METRICS}1562").status_code == 404
    assert len(sandbox.validation_errors) == 1
    assert "PathNotFound" in sandbox.validation_errors[0]
    sandbox.validation_errors.clear()


def test_patch_applies_and_appends_history(sandbox: Sandbox, http: httpx.Client) -> None:
    response = http.patch(f"{METRICS}1562/", json={"description": "Be strict.", "agents": [42, 43]})

    assert response.status_code == 200
    assert response.json()["description"] == "Be strict."
    assert http.get(f"{METRICS}1562/").json()["agents"] == [42, 43]
    assert sandbox.state.patches == [(1562, {"description": "Be strict.", "agents": [42, 43]})]
    history = http.get(f"{METRICS}1562/history/").json()
    assert history["count"] == 2
    newest, oldest = history["results"]
    assert (newest["history_type"], newest["history_user"]["name"]) == ("~", "api")
    assert newest["description"] == "Be strict."
    assert (oldest["history_type"], oldest["history_user"]["name"]) == ("+", "dashboard")
    assert oldest["description"] == GREETING_DESCRIPTION


def test_patch_rejects_read_only_and_unknown_fields(sandbox: Sandbox, http: httpx.Client) -> None:
    response = http.patch(f"{METRICS}1562/", json={"function_name": "x", "is_critical": True})

    assert response.status_code == 400
    assert response.json() == {
        "function_name": ["This field is read-only."],
        "is_critical": ["Unknown field."],
    }
    assert sandbox.state.patches == []
    assert sandbox.validation_errors == []  # valid per the OpenAPI; Cekura-side rule


def test_history_pages_follow_next(sandbox: Sandbox, http: httpx.Client) -> None:
    for n in range(4):
        sandbox.state.dashboard_edit(1563, description=f"edit {n}")

    first = http.get(f"{METRICS}1563/history/", params={"page_size": 2}).json()
    assert first["count"] == 5
    assert first["previous"] is None
    assert [r["description"] for r in first["results"]] == ["edit 3", "edit 2"]
    assert first["next"].startswith(sandbox.url)
    second = http.get(first["next"]).json()
    assert [r["description"] for r in second["results"]] == ["edit 1", "edit 0"]
    last = http.get(second["next"]).json()
    assert last["next"] is None
    assert [r["history_type"] for r in last["results"]] == ["+"]


def test_dashboard_edit_is_a_human_change(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.state.dashboard_edit(1562, evaluation_trigger="always")

    assert http.get(f"{METRICS}1562/").json()["evaluation_trigger"] == "always"
    newest = http.get(f"{METRICS}1562/history/").json()["results"][0]
    assert newest["history_user"]["name"] == "dashboard"
    assert newest["history_type"] == "~"
    assert sandbox.state.patches == []  # not an API write


def test_history_edit_names_a_version(http: httpx.Client) -> None:
    row = http.get(f"{METRICS}1562/history/").json()["results"][0]
    response = http.patch(
        f"{METRICS}1562/history/edit/",
        json={"history_id": row["history_id"], "version_name": "git 1a2b3c4"},
    )
    assert response.status_code == 200
    again = http.get(f"{METRICS}1562/history/").json()["results"][0]
    assert again["version_name"] == "git 1a2b3c4"


def test_create_metric_assigns_id_slug_and_history(http: httpx.Client) -> None:
    body = {
        "project": 1376,
        "name": "Hold time announced",
        "type": "llm_judge",
        "eval_type": "binary",
        "description": "Score TRUE if ...",
    }
    response = http.post(METRICS, json=body)

    assert response.status_code == 201
    created = response.json()
    assert created["slug"] == f"hold_time_announced_{created['id']}"
    assert created["reviews"] == []
    history = http.get(f"{METRICS}{created['id']}/history/").json()["results"]
    assert [(r["history_type"], r["history_user"]["name"]) for r in history] == [("+", "api")]


# -- optimiser ----------------------------------------------------------------------------


def test_optimiser_envelope_lifecycle_and_proposal(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.state.set_optimiser_seconds(1562, 60)
    progress_id = start(http, 1562, [456, 789])

    assert progress(http, progress_id) == {"status": "in_progress", "output": None}
    sandbox.state.finish_optimisations()
    done = progress(http, progress_id)

    assert done["status"] == "success"
    out = done["output"]
    expected = (
        GREETING_DESCRIPTION
        + "\n\nGuidance from reviewed calls:\n"
        + "\n".join(f"- {f}" for f in GREETING_FEEDBACK)
    )
    assert out["improved_metric_description"] == expected
    assert out["improved_trigger_kind"] == "llm_judge"
    assert out["improved_evaluation_trigger"] == (
        "Only evaluate calls where the caller's name is known to the agent."
    )
    assert (out["type"], out["custom_code"]) == ("llm_judge", "")
    assert out["old_score"] == {"num_correct": 5, "num_total": 7, "score": 0.714}
    assert out["new_score"] == {"num_correct": 7, "num_total": 7, "score": 1.0}
    assert out["meta_harness"]["num_correct"] == 7
    assert len(out["review_results"]) == 7
    # The optimiser saves nothing.
    assert http.get(f"{METRICS}1562/").json()["description"] == GREETING_DESCRIPTION


def test_optimiser_flat_shape(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.state.set_progress_shape(1562, "flat")
    sandbox.state.set_optimiser_seconds(1562, 60)
    progress_id = start(http, 1562)

    pending = progress(http, progress_id)
    assert pending == {
        "status": "processing",
        "improved_metric_description": "",
        "improved_evaluation_trigger": "",
    }
    sandbox.state.finish_optimisations()
    done = progress(http, progress_id)
    assert done["status"] == "completed"
    assert "output" not in done
    assert done["new_score"]["num_correct"] == 7
    assert done["improved_metric_description"].endswith(GREETING_FEEDBACK[1])


def test_optimiser_respects_test_set_ids(http: httpx.Client) -> None:
    out = progress(http, start(http, 1562, [456]))["output"]

    assert out["old_score"]["num_total"] == 4
    assert (out["old_score"]["num_correct"], out["new_score"]["num_correct"]) == (3, 4)
    assert GREETING_FEEDBACK[0] in out["improved_metric_description"]
    assert GREETING_FEEDBACK[1] not in out["improved_metric_description"]


def test_no_new_labels_means_no_change(sandbox: Sandbox, http: httpx.Client) -> None:
    proposal = progress(http, start(http, 1562))["output"]["improved_metric_description"]
    http.patch(f"{METRICS}1562/", json={"description": proposal})

    again = progress(http, start(http, 1562))["output"]

    assert again["improved_metric_description"] == proposal
    assert again["old_score"] == again["new_score"] == {"num_correct": 7, "num_total": 7, "score": 1.0}

    # A new label with feedback is new information: it changes the proposal.
    sandbox.state.add_review(1562, False, True, "Nicknames the caller did not offer are not ok.")
    third = progress(http, start(http, 1562))["output"]
    assert third["improved_metric_description"].endswith("- Nicknames the caller did not offer are not ok.")
    assert (third["old_score"]["num_correct"], third["new_score"]["num_correct"]) == (7, 8)


def test_custom_code_metric_gets_improved_code(http: httpx.Client) -> None:
    out = progress(http, start(http, 1564))["output"]

    assert out["type"] == "custom_code"
    assert out["improved_trigger_kind"] == "always"
    assert out["improved_evaluation_trigger"] == "always"
    assert out["custom_code"].startswith(REFUND_CODE)
    assert out["custom_code"].endswith(
        "# Guidance from reviewed calls:\n"
        '# - "Within a month" is not the 30-day window; the agent must say 30 days.\n'
    )
    assert out["meta_harness"]["optimized_code"] == out["custom_code"]
    assert (out["old_score"]["num_correct"], out["new_score"]["num_correct"]) == (2, 3)


def test_unlabelled_reviews_are_ignored(http: httpx.Client) -> None:
    out = progress(http, start(http, 1563))["output"]
    assert out["old_score"]["num_total"] == 3  # the Lab holds 4 reviews, 3 labelled


def test_no_reviews_ends_in_error(http: httpx.Client) -> None:
    body = progress(http, start(http, 1601, [123456]))
    assert body["status"] == "error"
    assert "label" in body["error"]


def test_forced_outcome(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.state.set_optimiser_outcome(1562, OptimiserOutcome(new=(4, 7), summary="Worse."))
    out = progress(http, start(http, 1562))["output"]
    assert out["new_score"] == {"num_correct": 4, "num_total": 7, "score": 0.571}
    assert out["old_score"]["num_correct"] == 5  # not forced: the default
    assert out["optimization_summary"] == "Worse."

    sandbox.state.set_optimiser_outcome(1562, OptimiserOutcome(status="error", error="LLM down"))
    failed = progress(http, start(http, 1562))
    assert failed == {"status": "error", "output": None, "error": "LLM down"}


def test_cancel(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.state.set_optimiser_seconds(1562, 60)
    running = start(http, 1562)
    response = http.post(CANCEL, json={"progress_id": running})
    assert response.json() == {"progress_id": running, "status": "cancelled"}
    assert progress(http, running) == {"status": "cancelled", "output": None}

    sandbox.state.set_optimiser_seconds(1562, 0)
    finished = start(http, 1562)
    assert http.post(CANCEL, json={"progress_id": finished}).json()["status"] == "success"
    assert progress(http, finished)["status"] == "success"

    assert http.post(CANCEL, json={"progress_id": "nope"}).status_code == 404
    assert http.get(PROGRESS, params={"progress_id": "nope"}).status_code == 404


def test_counters_measure_overlap(sandbox: Sandbox, http: httpx.Client) -> None:
    for _ in range(3):
        start(http, 1563)  # optimiser_seconds=0: each ends as it starts
    assert sandbox.state.max_concurrent_optimisations == 1

    sandbox.state.optimiser_seconds = 60
    start(http, 1562)
    start(http, 1562)
    start(http, 1564)
    assert sandbox.state.max_concurrent_optimisations == 3
    assert sandbox.state.optimisations_started == {1562: 2, 1563: 3, 1564: 1}

    sandbox.state.finish_optimisations()
    start(http, 1564)
    assert sandbox.state.max_concurrent_optimisations == 3
    statuses = [r["status"] for r in sandbox.state.optimisations(1564)]
    assert statuses == ["success", "running"]


def test_progress_retry_after_hint(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.state.progress_retry_after = 2.5
    sandbox.state.set_optimiser_seconds(1562, 60)
    progress_id = start(http, 1562)
    response = http.get(PROGRESS, params={"progress_id": progress_id})
    assert response.headers["Retry-After"] == "2.5"
    sandbox.state.finish_optimisations()
    response = http.get(PROGRESS, params={"progress_id": progress_id})
    assert "Retry-After" not in response.headers


# -- run_reviews --------------------------------------------------------------------------


def run_reviews(http: httpx.Client, metric_id: int, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(f"{METRICS}{metric_id}/run_reviews/", json=body)
    assert response.status_code == 200, response.text
    result = http.get(
        f"{METRICS}run_reviews_progress/", params={"progress_id": response.json()["progress_id"]}
    )
    payload: dict[str, Any] = result.json()
    return payload


def test_run_reviews_scores_overrides_without_saving(sandbox: Sandbox, http: httpx.Client) -> None:
    before = sandbox.state.metric(1562)
    improved = GREETING_DESCRIPTION + "\n" + "\n".join(GREETING_FEEDBACK)

    live = run_reviews(http, 1562, {"skip_save": True})
    proposed = run_reviews(http, 1562, {"description": improved, "skip_save": True})

    live_results = live["output"].pop("review_results")
    proposed_results = proposed["output"].pop("review_results")
    assert live == {
        "status": "completed",
        "output": {"score": 0.714, "num_correct": 5, "num_total": 7},
    }
    assert proposed["output"] == {"score": 1.0, "num_correct": 7, "num_total": 7}
    # Per-review verdicts (ReviewResult rows): the live prompt keeps the Lab's verdicts,
    # the improved one gets every labelled review right.
    labels = {r["id"]: r["expected_value"] for r in before["reviews"]}
    lab = {r["id"]: r["actual_value"] for r in before["reviews"]}
    assert {r["review_id"]: r["actual_value"] for r in live_results} == lab
    assert {r["review_id"]: r["actual_value"] for r in proposed_results} == labels
    assert all(r["success"] and set(r) >= {"review_id", "test_set_id"} for r in proposed_results)
    assert sandbox.state.metric(1562) == before  # metric and reviews untouched
    assert len(http.get(f"{METRICS}1562/history/").json()["results"]) == 1


def test_run_reviews_without_skip_save_saves_results_not_the_metric(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    improved = GREETING_DESCRIPTION + "\n" + "\n".join(GREETING_FEEDBACK)
    run_reviews(http, 1562, {"description": improved, "skip_save": False})

    after = sandbox.state.metric(1562)
    assert after["description"] == GREETING_DESCRIPTION
    assert all(r["actual_value"] == r["expected_value"] for r in after["reviews"])


# -- auth, validation, misc ---------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-CEKURA-API-KEY": "wrong"}])
def test_auth_required(sandbox: Sandbox, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=sandbox.url, headers=headers) as client:
        response = client.get(METRICS)
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_invalid_requests_are_caught_by_openapi_validation(sandbox: Sandbox, http: httpx.Client) -> None:
    missing = http.post(START, json={"test_set_ids": [456]})
    bad_enum = http.patch(f"{METRICS}1562/", json={"evaluation_trigger": "sometimes"})

    assert missing.status_code == 400
    assert "request does not match Cekura's OpenAPI" in missing.json()["detail"]
    assert bad_enum.status_code == 400
    assert len(sandbox.validation_errors) == 2
    # What each violation names, not how openapi-core/jsonschema word it.
    assert "metric_id" in sandbox.validation_errors[0]
    assert "'sometimes'" in sandbox.validation_errors[1]
    assert sandbox.state.optimisations_started == {}
    assert sandbox.state.patches == []
    sandbox.validation_errors.clear()


def test_cron_jobs_and_projects(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.state.add_cron_job(1376, [1562], auto_apply=True)
    jobs = http.get("/schedules/v1/metric-optimiser-cron-jobs/").json()
    assert [(j["metrics"], j["auto_apply"]) for j in jobs] == [([1563], False), ([1562], True)]
    projects = http.get("/user/v1/projects/").json()
    assert [(p["id"], p["name"]) for p in projects] == [
        (1376, "Support bot"),
        (2001, "Billing assistant"),
    ]


def test_requests_are_recorded_before_the_reply(sandbox: Sandbox, http: httpx.Client) -> None:
    http.get(METRICS, params={"project_id": 1376})
    http.patch(f"{METRICS}1563/", json={"sampling_enabled": True})

    recorded = sandbox.requests
    assert [(r.method, r.path, r.status) for r in recorded] == [
        ("GET", METRICS, 200),
        ("PATCH", f"{METRICS}1563/", 200),
    ]
    assert recorded[0].query == {"project_id": "1376"}
    assert recorded[1].body == {"sampling_enabled": True}
    assert sandbox.count("PATCH", r"/v2/metrics/\d+/$") == 1
    assert sandbox.count("GET", r"/v2/metrics/\d+/$") == 0


def test_sandbox_checks_its_own_replies(sandbox: Sandbox, http: httpx.Client) -> None:
    # A dashboard edit bypasses the API's checks, so the sandbox can be made to emit a
    # metric Cekura's schema forbids; the reply check must notice.
    sandbox.state.dashboard_edit(1562, eval_type="sometimes")
    assert http.get(f"{METRICS}1562/").status_code == 200
    assert len(sandbox.validation_errors) == 1
    assert sandbox.validation_errors[0].startswith("response GET /test_framework/v2/metrics/")
    assert "'sometimes'" in sandbox.validation_errors[0]
    sandbox.validation_errors.clear()


def test_response_validation_flags_wrong_replies() -> None:
    request = OpenAPIRequest("GET", f"{METRICS}1/", [], [("X-CEKURA-API-KEY", "k")], None)
    headers = [("Content-Type", "application/json")]
    wrong = OpenAPIResponse(200, headers, json.dumps({"id": 1}).encode())
    problems = response_violations(request, wrong)
    assert len(problems) == 1
    assert "'name'" in problems[0].message


def test_vendored_subset_is_a_valid_openapi_document() -> None:
    OpenAPI.from_file_path(str(SPEC_PATH)).check_spec()


def test_sandboxes_are_isolated() -> None:
    with Sandbox(seed=False) as empty, Sandbox() as seeded:
        assert empty.url != seeded.url
        assert empty.state.metric_ids() == []
        assert seeded.state.metric_ids() == [1562, 1563, 1564, 1601]


def test_module_entry_point_serves_until_interrupted() -> None:
    # A shell starts background jobs with SIGINT ignored, and a child inherits that (Python
    # then installs no KeyboardInterrupt handler): give the sandbox a terminal's default.
    proc = subprocess.Popen(
        [sys.executable, "-m", "cekura_gitops.sandbox", "--api-key", "k1"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, headers={"X-CEKURA-API-KEY": "k1"}) as client:
            assert client.get(f"{METRICS}1562/").json()["id"] == 1562
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# -- faults -------------------------------------------------------------------------------


def test_fault_status_with_retry_after_then_recovers(sandbox: Sandbox, http: httpx.Client) -> None:
    fault = sandbox.faults.add(
        Fault(method="GET", path=r"/v2/metrics/\d+/$", status=503, times=2, retry_after=3)
    )
    first, second, third = (http.get(f"{METRICS}1562/") for _ in range(3))

    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.headers["Retry-After"] == "3"
    assert first.json() == {"detail": "Injected fault: HTTP 503."}
    assert sandbox.faults.fired(fault) == 2
    assert http.get(METRICS).status_code == 200  # the list path does not match


def test_fault_after_skips_first_matches(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.faults.add(Fault(method="*", path="/user/v1/", status=500, after=1, times=None))
    statuses = [http.get("/user/v1/projects/").status_code for _ in range(3)]
    assert statuses == [200, 500, 500]
    sandbox.faults.clear()
    assert http.get("/user/v1/projects/").status_code == 200


def test_fault_when_after_processes_then_fails(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.faults.add(Fault(method="POST", path="process_feedbacks/$", status=502, when="after"))
    response = http.post(START, json={"metric_id": 1562})
    assert response.status_code == 502
    assert sandbox.state.optimisations_started == {1562: 1}  # it did start

    sandbox.faults.add(Fault(method="POST", path="process_feedbacks/$", status=502))
    assert http.post(START, json={"metric_id": 1562}).status_code == 502
    assert sandbox.state.optimisations_started == {1562: 1}  # "before": it did not


def test_fault_hang_trips_client_timeout(sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault(method="GET", path="/user/v1/projects/", kind="hang", seconds=0.5))
    headers = {"X-CEKURA-API-KEY": sandbox.api_key}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=0.15) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get("/user/v1/projects/")
        # The fault fired once; a loaded machine may take longer than 0.15 s to serve it.
        assert client.get("/user/v1/projects/", timeout=30).status_code == 200


def test_fault_latency_slows_but_serves(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.faults.add(Fault(method="GET", path="/user/", kind="latency", seconds=0.2))
    began = time.monotonic()
    response = http.get("/user/v1/projects/")
    assert response.status_code == 200
    assert time.monotonic() - began >= 0.2


def test_fault_drop_closes_without_answer(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.faults.add(Fault(method="PATCH", path="/v2/metrics/", kind="drop", when="after"))
    with pytest.raises(httpx.RemoteProtocolError):
        http.patch(f"{METRICS}1563/", json={"sampling_enabled": True})
    assert sandbox.requests[-1].status == 0
    assert sandbox.state.metric(1563)["sampling_enabled"] is True  # applied, then dropped
    assert http.get(f"{METRICS}1563/").status_code == 200  # a fresh connection works


def test_fault_non_json_and_missing_fields(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.faults.add(Fault(method="GET", path="/v2/metrics/1562/$", kind="non_json"))
    sandbox.faults.add(Fault(method="GET", path="/v2/metrics/1563/$", kind="missing_fields"))
    sandbox.faults.add(
        Fault(method="GET", path="/v2/metrics/1564/$", kind="missing_fields", body={"name": "x"})
    )

    text = http.get(f"{METRICS}1562/")
    assert (text.status_code, text.headers["Content-Type"]) == (200, "text/html")
    with pytest.raises(ValueError):
        text.json()
    assert http.get(f"{METRICS}1563/").json() == {}
    assert http.get(f"{METRICS}1564/").json() == {"name": "x"}


def test_optimiser_cap_queues_runs_in_start_order() -> None:
    # Cekura may queue optimisations: with a cap of 2, a third run waits for a slot.
    from cekura_gitops.sandbox.seed import seed as seed_state
    from cekura_gitops.sandbox.state import SandboxState

    now = [0.0]
    state = SandboxState(optimiser_seconds=10.0, optimiser_cap=2, clock=lambda: now[0])
    seed_state(state)
    metric = state.metric_ids()[0]
    ids = [state.api_start_optimiser({"metric_id": metric})["progress_id"] for _ in range(3)]
    now[0] = 15.0
    running = [state.api_optimiser_progress(p)[1] for p in ids]
    assert running == [False, False, True]  # the third began at 10 s, when a slot freed
    now[0] = 20.0
    assert state.api_optimiser_progress(ids[2])[1] is False
    uncapped = SandboxState(optimiser_seconds=10.0, clock=lambda: now[0])
    seed_state(uncapped)
    now[0] = 0.0
    ids = [uncapped.api_start_optimiser({"metric_id": metric})["progress_id"] for _ in range(3)]
    now[0] = 10.0
    assert [uncapped.api_optimiser_progress(p)[1] for p in ids] == [False, False, False]


def test_a_failure_of_the_sandbox_itself_is_a_500_and_recorded(
    sandbox: Sandbox, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dropped connection would read to a client as "the request may have been processed";
    # a real server answers its own bug, so the sandbox does too, and says so to the test.
    def broken(*_args: Any) -> Any:
        raise ZeroDivisionError("route bug")

    monkeypatch.setattr("cekura_gitops.sandbox.server.dispatch", broken)
    reply = http.post("/test_framework/metric-reviews/process_feedbacks/", json={"metric_id": 1562})

    assert reply.status_code == 500
    assert "ZeroDivisionError: route bug" in reply.json()["detail"]
    assert len(sandbox.server_errors) == 1
    assert sandbox.server_errors[0].startswith("POST /test_framework/metric-reviews/process_feedbacks/")
    assert "ZeroDivisionError: route bug" in sandbox.server_errors[0]
    monkeypatch.undo()
    assert http.get(f"{METRICS}1562/").status_code == 200  # a new connection, served as before
    sandbox.server_errors.clear()

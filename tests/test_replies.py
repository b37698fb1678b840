"""Cekura's replies become typed records where they arrive; the JSON they carry stays as served."""

from __future__ import annotations

from typing import Any

import httpx

from cekura_gitops.cekura import CekuraClient, LiveMetric, ProgressReply, RescoreReport
from cekura_gitops.evidence import LabReview
from cekura_gitops.progress import ProgressState
from cekura_gitops.scores import Score

METRIC: dict[str, Any] = {
    "id": 1562,
    "slug": "greeting",
    "name": "Greeting",
    "project": 1376,
    "description": "Score TRUE if ...",
    "agents": [7, 8],
    "reviews": [
        {"id": 11, "test_set": {"id": 5, "name": "calls"}, "expected_value": True, "actual_value": False},
        {"id": "not an id", "expected_value": True},
    ],
}


def _client(reply: Any) -> CekuraClient:
    return CekuraClient(
        "http://cekura.test", "k", transport=httpx.MockTransport(lambda _: httpx.Response(200, json=reply))
    )


def test_a_live_metric_is_typed_once_and_still_equals_its_json() -> None:
    with _client(METRIC) as client:
        live = client.get_metric(1562)
    assert isinstance(live, LiveMetric)
    assert (live.id, live.slug, live.name, live.project) == (1562, "greeting", "Greeting", 1376)
    assert live.reviews == (LabReview(11, 5, "calls", True, False, ""),)
    # As served, for the label fingerprint: the item without an id too.
    assert live.review_items == tuple(METRIC["reviews"])
    assert live == METRIC and dict(live) == METRIC
    assert (live.value("agents"), live.value("prompt")) == ([7, 8], None)


def test_a_list_item_has_no_reviews_and_no_optional_identity() -> None:
    with _client([{"id": 3}]) as client:
        [live] = client.list_metrics()
    assert (live.id, live.slug, live.name, live.project, live.reviews, live.review_items) == (
        3,
        None,
        None,
        None,
        (),
        (),
    )


def test_a_rescore_report_reads_score_and_verdicts_under_output_or_at_the_top() -> None:
    nested = {"status": "Completed", "output": {"num_correct": 7, "num_total": 9, "review_results": []}}
    with _client(nested) as client:
        report = client.run_reviews_progress("r-1")
    assert isinstance(report, RescoreReport)
    assert (report.status, report.done, report.failed) == ("completed", True, False)
    assert (report.score, report.review_results) == (Score(7, 9, None), ())
    assert report["output"]["num_correct"] == 7
    top = RescoreReport.parse({"status": "error", "message": "quota", "score": 0.5})
    assert (top.failed, top.error, top.message, top.score) == (True, "", "quota", Score(None, None, 0.5))
    assert RescoreReport.parse({"status": "running"}).review_results is None


def test_an_optimiser_poll_is_parsed_once_into_progress() -> None:
    reply = ProgressReply(body={"status": "success", "improved_metric_description": "d"}, retry_after=None)
    assert reply.progress.state is ProgressState.SUCCEEDED
    assert reply.progress.proposal is not None and reply.progress.proposal.description == "d"
    assert (
        ProgressReply(body={"status": "in_progress"}, retry_after=1.0).progress.state is ProgressState.PENDING
    )

"""CekuraClient: narrow MockTransport tests, then integration against the sandbox."""

from __future__ import annotations

import email.utils
import json
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from cekura_gitops import __version__
from cekura_gitops.cekura import CekuraClient, ProgressReply
from cekura_gitops.errors import CekuraAPIError
from cekura_gitops.sandbox import Fault, Sandbox
from tests.deadport import DEAD_URL

BASE = "https://api.cekura.test"
KEY = "ck_live_S3CRET-do-not-leak"
METRIC = {"id": 1562, "slug": "caller_greeted_by_name_1562", "name": "x", "eval_type": "binary"}
START = "/test_framework/metric-reviews/process_feedbacks/"

Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """A monotonic clock that only moves when the client sleeps (or `advance=False`)."""

    def __init__(self, *, advance: bool = True) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.advance = advance
        self.log: list[tuple[str, Any]] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.log.append(("sleep", seconds))
        if self.advance:
            self.now += seconds


class Script:
    """A MockTransport handler that plays queued answers and records what it was sent."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer

    @property
    def calls(self) -> int:
        return len(self.requests)


def ok(body: Any, status: int = 200, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, json=body, headers=headers)


def client_for(handler: Handler, fake: FakeTime | None = None, **kwargs: Any) -> CekuraClient:
    fake = fake or FakeTime()
    return CekuraClient(
        BASE,
        KEY,
        transport=httpx.MockTransport(handler),
        sleep=fake.sleep,
        clock=fake.clock,
        **kwargs,
    )


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def run(script: Script, call: Callable[[CekuraClient], Any], fake: FakeTime | None = None, **kw: Any) -> Any:
    with client_for(script, fake, **kw) as client:
        return call(client)


def error_of(script: Script, call: Callable[[CekuraClient], Any], **kw: Any) -> CekuraAPIError:
    with pytest.raises(CekuraAPIError) as info:
        run(script, call, **kw)
    return info.value


# -- happy paths ---------------------------------------------------------------------------


def test_headers_and_trailing_slash() -> None:
    script = Script(ok([METRIC]))
    assert run(script, lambda c: c.list_metrics(1376)) == [METRIC]

    sent = script.requests[0]
    assert sent.method == "GET"
    assert sent.url.path == "/test_framework/v2/metrics/"
    assert dict(sent.url.params) == {"project_id": "1376"}
    assert sent.headers["X-CEKURA-API-KEY"] == KEY
    assert sent.headers["User-Agent"] == f"cekura-gitops/{__version__}"
    assert sent.headers["Accept"] == "application/json"
    assert "Authorization" not in sent.headers


def test_list_metrics_without_project_sends_no_filter() -> None:
    script = Script(ok([]))
    run(script, lambda c: c.list_metrics())
    assert script.requests[0].url.query == b""


def test_get_metric_by_id_and_slug() -> None:
    script = Script(ok(METRIC))
    run(script, lambda c: (c.get_metric(1562), c.get_metric("a b/c")))
    assert [r.url.raw_path for r in script.requests] == [
        b"/test_framework/v2/metrics/1562/",
        b"/test_framework/v2/metrics/a%20b%2Fc/",
    ]


def test_create_and_patch_send_json() -> None:
    script = Script(ok(METRIC, 201), ok(METRIC))
    run(script, lambda c: (c.create_metric({"name": "x"}), c.patch_metric(1562, {"agents": [1]})))
    create, patch = script.requests
    assert (create.method, create.url.path) == ("POST", "/test_framework/v2/metrics/")
    assert json.loads(create.content) == {"name": "x"}
    assert (patch.method, patch.url.path) == ("PATCH", "/test_framework/v2/metrics/1562/")
    assert json.loads(patch.content) == {"agents": [1]}
    assert patch.headers["Content-Type"] == "application/json"


def test_history_follows_next_against_our_own_host() -> None:
    path = "/test_framework/v2/metrics/7/history/"

    def pages(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        # A proxy that rewrites links to its internal host must not receive our key.
        nxt = f"http://internal:8000{path}?page={page + 1}" if page < 3 else None
        return ok(
            {
                "count": 5,
                "next": nxt,
                "previous": None,
                "results": [{"history_id": page * 10 + i} for i in range(2 if page < 3 else 1)],
            }
        )

    script = Script(pages)
    rows = run(script, lambda c: c.history(7))

    assert [r["history_id"] for r in rows] == [10, 11, 20, 21, 30]
    assert {r.url.host for r in script.requests} == {"api.cekura.test"}
    assert [r.url.params.get("page") for r in script.requests] == [None, "2", "3"]


def test_history_limit_stops_early() -> None:
    page = {
        "count": 9,
        "next": f"{BASE}/test_framework/v2/metrics/7/history/?page=2",
        "previous": None,
        "results": [{"history_id": 1}, {"history_id": 2}],
    }
    script = Script(ok(page))
    rows = run(script, lambda c: c.history(7, limit=1))
    assert rows == [{"history_id": 1}]
    assert script.calls == 1
    assert script.requests[0].url.params["page_size"] == "1"


def test_history_rejects_a_next_link_to_another_path() -> None:
    page = {
        "count": 2,
        "next": f"{BASE}/user/v1/projects/?page=2",
        "previous": None,
        "results": [{"history_id": 1}],
    }
    err = error_of(Script(ok(page)), lambda c: c.history(7))
    assert "unexpected response" in err.detail


def test_edit_history_and_cancel_bodies() -> None:
    script = Script(ok({}))
    with client_for(script) as client:
        client.edit_history(7, 99, "git abc")
        client.cancel_optimiser("p-1")
    edit, cancel = script.requests
    assert (edit.method, edit.url.path) == ("PATCH", "/test_framework/v2/metrics/7/history/edit/")
    assert json.loads(edit.content) == {"history_id": 99, "version_name": "git abc"}
    assert (cancel.method, cancel.url.path) == (
        "POST",
        "/test_framework/metric-reviews/process_feedbacks_cancel/",
    )
    assert json.loads(cancel.content) == {"progress_id": "p-1"}


def test_start_optimiser_and_progress() -> None:
    script = Script(
        ok({"progress_id": "p-1"}),
        ok({"progress_id": "p-2"}),
        ok({"status": "in_progress", "output": None}, retry_after="20"),
    )
    first, second, reply = run(
        script,
        lambda c: (c.start_optimiser(7, [456, 789]), c.start_optimiser(7, None), c.optimiser_progress("p-1")),
    )
    assert (first, second) == ("p-1", "p-2")
    assert json.loads(script.requests[0].content) == {"metric_id": 7, "test_set_ids": [456, 789]}
    assert json.loads(script.requests[1].content) == {"metric_id": 7}
    poll = script.requests[2]
    assert poll.url.path == "/test_framework/metric-reviews/process_feedbacks_progress/"
    assert dict(poll.url.params) == {"progress_id": "p-1"}
    assert reply == ProgressReply(body={"status": "in_progress", "output": None}, retry_after=20.0)


def test_run_reviews_and_progress() -> None:
    script = Script(ok({"progress_id": "r-1"}), ok({"status": "completed", "output": {}}))
    pid, body = run(
        script,
        lambda c: (c.run_reviews(7, {"description": "d"}), c.run_reviews_progress("r-1")),
    )
    assert (pid, body) == ("r-1", {"status": "completed", "output": {}})
    post, poll = script.requests
    assert post.url.path == "/test_framework/v2/metrics/7/run_reviews/"
    assert json.loads(post.content) == {"description": "d", "skip_save": True}
    assert poll.url.path == "/test_framework/v2/metrics/run_reviews_progress/"


def test_cron_jobs_accept_plain_and_paginated_and_projects() -> None:
    job = {"id": 1, "project": 1376, "metrics": [1562], "crontab_expression": "0 3 * * 1"}
    paged = {"count": 1, "next": None, "previous": None, "results": [job]}
    script = Script(ok([job]), ok(paged), ok([{"id": 1376, "name": "Support bot"}]))
    plain, pages, projects = run(
        script, lambda c: (c.list_cron_jobs(), c.list_cron_jobs(), c.list_projects())
    )
    assert plain == pages == [job]
    assert projects == [{"id": 1376, "name": "Support bot"}]
    assert [r.url.path for r in script.requests] == [
        "/schedules/v1/metric-optimiser-cron-jobs/",
        "/schedules/v1/metric-optimiser-cron-jobs/",
        "/user/v1/projects/",
    ]


def test_request_count_and_repr() -> None:
    script = Script(httpx.Response(503), ok(METRIC))
    with client_for(script) as client:
        client.get_metric(1)
        assert client.request_count == 2
        assert KEY not in repr(client)
        assert BASE in repr(client)


# -- retries -------------------------------------------------------------------------------


def test_429_honours_retry_after_seconds(fake: FakeTime) -> None:
    script = Script(ok({}, 429, retry_after="7"), ok(METRIC))
    run(script, lambda c: c.get_metric(1), fake, backoff_base=0.1)
    assert script.calls == 2
    assert fake.sleeps[0] == 7.0


def test_429_honours_retry_after_http_date(fake: FakeTime) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=12)
    header = email.utils.format_datetime(when, usegmt=True)
    script = Script(ok({}, 429, retry_after=header), ok(METRIC))
    run(script, lambda c: c.get_metric(1), fake, backoff_base=0.1)
    assert 10.0 <= fake.sleeps[0] <= 12.0


def test_retry_after_is_capped(fake: FakeTime) -> None:
    script = Script(ok({}, 429, retry_after="3600"), ok(METRIC))
    run(script, lambda c: c.get_metric(1), fake, backoff_cap=4.0)
    assert fake.sleeps == [4.0]


def test_429_without_retry_after_backs_off_exponentially(fake: FakeTime) -> None:
    script = Script(ok({}, 429), ok({}, 429), ok({}, 429), ok(METRIC))
    run(script, lambda c: c.get_metric(1), fake, backoff_base=1.0, backoff_cap=3.0)
    assert script.calls == 4
    assert len(fake.sleeps) == 3
    for sleep, ceiling in zip(fake.sleeps, [1.0, 2.0, 3.0], strict=True):
        assert 0.0 <= sleep <= ceiling


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    script = Script(httpx.Response(status), httpx.Response(status), ok(METRIC))
    assert run(script, lambda c: c.get_metric(1)) == METRIC
    assert script.calls == 3


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.ReadTimeout("slow read"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_transport_errors_are_retried_for_gets(exc: Exception) -> None:
    script = Script(exc, ok(METRIC))
    assert run(script, lambda c: c.get_metric(1)) == METRIC
    assert script.calls == 2


def test_persistent_503_gives_up_after_max_attempts(fake: FakeTime) -> None:
    script = Script(ok({"detail": "Service Unavailable"}, 503))
    err = error_of(script, lambda c: c.list_metrics(), fake=fake, max_attempts=4)
    assert err.status == 503
    assert err.detail == "Service Unavailable"
    assert err.ambiguous is False  # a GET changes nothing
    assert script.calls == 4
    assert len(fake.sleeps) == 3


def test_persistent_connection_failure_has_no_status() -> None:
    script = Script(httpx.ConnectError("refused"))
    err = error_of(script, lambda c: c.get_metric(1), max_attempts=3)
    assert (err.status, err.ambiguous, script.calls) == (None, False, 3)
    assert "CEKURA_API_URL" in err.detail


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            401,
            {"detail": "Invalid API key."},
            "Invalid API key. (check CEKURA_API_KEY; is it scoped to this project?)",
        ),
        (403, {"detail": "Forbidden."}, "Forbidden. (check CEKURA_API_KEY; is it scoped to this project?)"),
        (404, {"detail": "Not found."}, "the metric or resource does not exist (Not found.)"),
        (
            400,
            {"evaluation_trigger": ['"sometimes" is not a valid choice.'], "name": ["a", "b"]},
            'evaluation_trigger: "sometimes" is not a valid choice., name: a; b',
        ),
    ],
)
def test_client_errors_are_not_retried_and_read_well(status: int, body: Any, expected: str) -> None:
    script = Script(ok(body, status))
    err = error_of(script, lambda c: c.patch_metric(1, {}))
    # Never retried; a 403 checks the key once (list projects) to tell a wrong key from a
    # metric outside the key's project (tests/test_hostile.py).
    check = [("GET", "/user/v1/projects/")] if status == 403 else []
    assert [(r.method, r.url.path) for r in script.requests] == [
        ("PATCH", "/test_framework/v2/metrics/1/"),
        *check,
    ]
    assert (err.status, err.detail, err.ambiguous) == (status, expected, False)
    assert (
        str(err) == f"Cekura patch metric (PATCH /test_framework/v2/metrics/1/) failed: "
        f"HTTP {status}: {expected}"
    )


def test_long_error_bodies_are_cut() -> None:
    script = Script(httpx.Response(400, text="x" * 5000))
    err = error_of(script, lambda c: c.get_metric(1))
    assert len(err.detail) == 300


def test_redirects_are_not_followed() -> None:
    script = Script(httpx.Response(301, headers={"Location": f"{BASE}/elsewhere/"}))
    err = error_of(script, lambda c: c.patch_metric(1, {"name": "n"}))
    assert script.calls == 1
    assert err.status == 301
    assert "redirect" in err.detail


def test_patch_is_retried_on_5xx() -> None:
    script = Script(httpx.Response(502), ok(METRIC))
    assert run(script, lambda c: c.patch_metric(1, {"name": "n"})) == METRIC
    assert script.calls == 2
    assert script.requests[0].content == script.requests[1].content


def test_patch_that_keeps_failing_is_ambiguous() -> None:
    script = Script(httpx.Response(500))
    err = error_of(script, lambda c: c.patch_metric(1, {"name": "n"}), max_attempts=2)
    assert (err.status, err.ambiguous, script.calls) == (500, True, 2)


# -- the optimiser start is never resent blindly -------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500),
        httpx.Response(502),
        httpx.ReadTimeout("slow"),
        httpx.WriteTimeout("slow"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("reset"),
        httpx.Response(200, text="<html>oops</html>"),
        ok({"status": "queued"}),
        ok(["p-1"]),
    ],
    ids=["500", "502", "read-timeout", "write-timeout", "dropped", "reset", "html", "no-progress-id", "list"],
)
def test_start_is_not_resent_after_it_may_have_arrived(answer: Any) -> None:
    script = Script(answer, ok({"progress_id": "second"}))
    err = error_of(script, lambda c: c.start_optimiser(7, None))
    assert script.calls == 1
    assert err.ambiguous is True
    assert err.operation == "start optimiser"


@pytest.mark.parametrize(
    "first",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), ok({}, 429)],
    ids=["refused", "connect-timeout", "429"],
)
def test_start_is_resent_when_it_certainly_did_not_arrive(first: Any) -> None:
    script = Script(first, ok({"progress_id": "p-1"}))
    assert run(script, lambda c: c.start_optimiser(7, None)) == "p-1"
    assert script.calls == 2


def test_start_rejected_with_400_is_not_ambiguous() -> None:
    script = Script(ok({"metric_id": ["Invalid pk."]}, 400))
    err = error_of(script, lambda c: c.start_optimiser(7, None))
    assert (err.status, err.ambiguous, script.calls) == (400, False, 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.create_metric({"name": "x"}),
        lambda c: c.run_reviews(7, {}),
    ],
    ids=["create", "run_reviews"],
)
def test_other_non_idempotent_posts_are_not_resent(call: Callable[[CekuraClient], Any]) -> None:
    script = Script(httpx.Response(503), ok(METRIC, 201))
    err = error_of(script, call)
    assert (err.status, err.ambiguous, script.calls) == (503, True, 1)


# -- shapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "body"),
    [
        (lambda c: c.list_metrics(), {"results": []}),
        (lambda c: c.list_metrics(), [{"name": "no id"}]),
        (lambda c: c.get_metric(1), [METRIC]),
        (lambda c: c.get_metric(1), {"name": "no id"}),
        (lambda c: c.history(1), {"count": 1}),
        (lambda c: c.optimiser_progress("p"), ["done"]),
    ],
    ids=[
        "list-as-dict",
        "list-without-id",
        "detail-as-list",
        "detail-without-id",
        "history-without-results",
        "progress-as-list",
    ],
)
def test_wrong_shapes_are_clear_errors(call: Callable[[CekuraClient], Any], body: Any) -> None:
    err = error_of(Script(ok(body)), call)
    assert err.status == 200
    assert err.detail.startswith("unexpected response: ")


def test_non_json_body_is_a_clear_error() -> None:
    err = error_of(Script(httpx.Response(200, text="<html>proxy</html>")), lambda c: c.get_metric(1))
    assert (err.status, err.ambiguous) == (200, False)
    assert err.detail == "unexpected response: not JSON: <html>proxy</html>"


# -- secrets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        ok({"detail": f"Invalid key {KEY}"}, 401),
        ok({"detail": f"boom for {KEY}"}, 500),
        httpx.ConnectError(f"cannot reach {BASE}"),
        httpx.ReadTimeout("timed out"),
        httpx.Response(200, text=f"<html>{KEY}</html>"),
    ],
    ids=["401-echo", "500-echo", "connect", "timeout", "html-echo"],
)
def test_the_key_never_reaches_error_text(answer: Any) -> None:
    err = error_of(Script(answer), lambda c: c.start_optimiser(7, [1]), max_attempts=2)
    rendered = [
        str(err),
        repr(err),
        repr(err.args),
        "".join(traceback.format_exception(type(err), err, err.__traceback__)),
    ]
    assert all(KEY not in text for text in rendered)


# -- global backoff -------------------------------------------------------------------------


def test_a_429_pauses_every_thread_of_the_client() -> None:
    fake = FakeTime(advance=False)  # time stands still: the pause never runs out by itself
    answers = [ok({}, 429, retry_after="5"), ok([])]

    def handler(request: httpx.Request) -> httpx.Response:
        fake.log.append(("send", request.url.path))
        if request.url.path == "/test_framework/v2/metrics/":
            return answers.pop(0)
        return ok(METRIC)

    with client_for(handler, fake, backoff_base=0.01) as client:
        client.list_metrics()
        fake.log.clear()
        other = threading.Thread(target=client.get_metric, args=(1562,))
        other.start()
        other.join()

    assert fake.log == [("sleep", 5.0), ("send", "/test_framework/v2/metrics/1562/")]


def test_the_pause_ends_when_retry_after_has_passed() -> None:
    fake = FakeTime(advance=True)
    script = Script(ok({}, 429, retry_after="5"), ok(METRIC))
    with client_for(script, fake, backoff_base=0.01) as client:
        client.get_metric(1)
        fake.sleeps.clear()
        client.get_metric(2)
    assert fake.sleeps == []


def test_requests_that_waited_for_the_key_go_out_together_once_it_is_accepted() -> None:
    """Until the key has worked, requests wait at a gate; once the first one is answered,
    the waiting ones go out side by side (they used to pass the gate one at a time, each
    holding it for a whole round trip, and without looking at a pause begun meanwhile)."""
    first_in, release_first = threading.Event(), threading.Event()
    together = threading.Barrier(2, timeout=5)
    overlapped: list[bool] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/1/"):
            first_in.set()
            release_first.wait(10)
        else:
            try:
                together.wait()  # both later requests in flight at once
                overlapped.append(True)
            except threading.BrokenBarrierError:
                overlapped.append(False)
        return ok(METRIC)

    with CekuraClient(BASE, KEY, transport=httpx.MockTransport(handler)) as client:
        threads = [threading.Thread(target=client.get_metric, args=(i,)) for i in (1, 2, 3)]
        threads[0].start()
        assert first_in.wait(10)
        for t in threads[1:]:
            t.start()
        time.sleep(0.5)  # the two later requests reach the gate while the first is out
        release_first.set()
        for t in threads:
            t.join(30)
    assert overlapped == [True, True]


# -- against the sandbox --------------------------------------------------------------------


def test_full_round_trip_against_the_sandbox(sandbox: Sandbox, cekura: CekuraClient) -> None:
    sandbox.state.set_optimiser_seconds(1562, 60)
    listed = cekura.list_metrics(1376)
    assert [m["id"] for m in listed] == [1562, 1563, 1564]
    detail = cekura.get_metric("refund_policy_code_1564")
    assert detail["custom_code"].startswith("transcript = ")

    patched = cekura.patch_metric(1563, {"simulation_enabled": True})
    assert patched["simulation_enabled"] is True
    history = cekura.history(1563)
    assert [r["history_type"] for r in history] == ["~", "+"]
    cekura.edit_history(1563, history[0]["history_id"], "git 0123abc")
    assert cekura.history(1563, limit=1)[0]["version_name"] == "git 0123abc"

    progress_id = cekura.start_optimiser(1562, [456, 789])
    assert cekura.optimiser_progress(progress_id).body["status"] == "in_progress"
    sandbox.state.finish_optimisations()
    done = cekura.optimiser_progress(progress_id).body
    assert done["output"]["new_score"]["num_correct"] == 7
    cekura.cancel_optimiser(progress_id)

    rescore = cekura.run_reviews(1562, {"description": done["output"]["improved_metric_description"]})
    assert cekura.run_reviews_progress(rescore)["output"]["num_correct"] == 7
    assert len(cekura.list_cron_jobs()) == 1
    assert [p["id"] for p in cekura.list_projects()] == [1376, 2001]
    assert cekura.request_count == len(sandbox.requests)


def test_one_client_serves_many_threads(sandbox: Sandbox, cekura: CekuraClient) -> None:
    errors: list[BaseException] = []

    def worker(metric_id: int) -> None:
        try:
            for _ in range(10):
                assert cekura.get_metric(metric_id)["id"] == metric_id
        except BaseException as exc:  # surfaced below; a thread cannot fail the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(m,)) for m in (1562, 1563, 1564, 1601) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cekura.request_count == len(sandbox.requests) == 80


def test_flat_progress_shape_via_client(sandbox: Sandbox, cekura: CekuraClient) -> None:
    sandbox.state.set_progress_shape(1564, "flat")
    body = cekura.optimiser_progress(cekura.start_optimiser(1564, None)).body
    assert body["status"] == "completed"
    assert body["type"] == "custom_code"


def test_history_pagination_against_the_sandbox(sandbox: Sandbox, cekura: CekuraClient) -> None:
    for n in range(25):
        sandbox.state.dashboard_edit(1562, description=f"v{n}")
    rows = cekura.history(1562)
    assert len(rows) == 26
    assert rows[0]["description"] == "v24"
    assert sandbox.count("GET", "/history/$") == 3  # DRF's default 10 per page


def test_retries_ride_out_a_deploy(sandbox: Sandbox, cekura: CekuraClient) -> None:
    sandbox.faults.add(Fault(method="GET", path=r"/v2/metrics/\d+/$", status=503, times=2))
    assert cekura.get_metric(1562)["id"] == 1562
    assert sandbox.count("GET", r"/v2/metrics/1562/$") == 3


def test_ambiguous_start_is_not_resent(sandbox: Sandbox, cekura: CekuraClient) -> None:
    sandbox.faults.add(Fault(method="POST", path="process_feedbacks/$", status=502, when="after"))
    with pytest.raises(CekuraAPIError) as info:
        cekura.start_optimiser(1562, None)
    assert info.value.ambiguous is True
    assert info.value.status == 502
    assert sandbox.state.optimisations_started == {1562: 1}
    assert sandbox.count("POST", "process_feedbacks/$") == 1


def test_429_retry_after_is_honoured(sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault(method="GET", path="/user/", status=429, retry_after=0.3))
    with CekuraClient(sandbox.url, sandbox.api_key, backoff_base=0.01, backoff_cap=2) as client:
        began = time.monotonic()
        assert len(client.list_projects()) == 2
        assert time.monotonic() - began >= 0.3
    assert sandbox.count("GET", "/user/") == 2


def test_dropped_get_is_retried(sandbox: Sandbox, cekura: CekuraClient) -> None:
    sandbox.faults.add(Fault(method="GET", path=r"/v2/metrics/$", kind="drop"))
    assert len(cekura.list_metrics()) == 4
    assert [r.status for r in sandbox.requests] == [0, 200]


def test_dropped_start_is_ambiguous(sandbox: Sandbox, cekura: CekuraClient) -> None:
    sandbox.faults.add(Fault(method="POST", path="process_feedbacks/$", kind="drop", when="after"))
    with pytest.raises(CekuraAPIError) as info:
        cekura.start_optimiser(1562, None)
    assert (info.value.ambiguous, info.value.status) == (True, None)
    assert sandbox.state.optimisations_started == {1562: 1}


def test_a_kept_alive_connection_closing_never_crosses_a_write_that_is_not_resent(
    sandbox: Sandbox, cekura: CekuraClient
) -> None:
    # Cekura's idle timer closes kept-alive connections whenever it likes; here, as each
    # request arrives on one. On a reused connection the start would be dropped unread,
    # and a dropped start may have been processed: never resent, the metric left waiting
    # out its claim. Writes that are never resent get a connection of their own.
    sandbox.faults.add(Fault(method="*", path=".*", kind="idle_close", times=None))
    assert cekura.get_metric(1562)["id"] == 1562  # opens the connection the pool keeps
    progress_id = cekura.start_optimiser(1562, None)
    hold = {"name": "Hold", "project": 1376, "eval_type": "binary", "description": "d"}
    assert cekura.create_metric(hold)["id"]
    assert cekura.get_metric(1562)["id"] == 1562  # a read rides the close out: resent
    assert sandbox.state.optimisations_started == {1562: 1}
    assert progress_id
    statuses = [(r.method, r.status) for r in sandbox.requests]
    assert statuses == [("GET", 200), ("POST", 200), ("POST", 201), ("GET", 0), ("GET", 200)]


def test_the_idle_close_fault_spares_a_new_connection(sandbox: Sandbox) -> None:
    fault = sandbox.faults.add(Fault(method="GET", path=r"/v2/metrics/1562/$", kind="idle_close"))
    with CekuraClient(sandbox.url, sandbox.api_key) as first:
        first.get_metric(1562)
    assert sandbox.faults.fired(fault) == 0  # a connection's first request passes
    with pytest.raises(ValueError, match="before"):
        Fault(method="GET", path=".*", kind="idle_close", when="after")


@pytest.fixture
def impatient(sandbox: Sandbox) -> Iterator[CekuraClient]:
    with CekuraClient(
        sandbox.url, sandbox.api_key, timeout=0.3, backoff_base=0.01, backoff_cap=0.05
    ) as client:
        yield client


def test_hung_get_times_out_and_is_retried(sandbox: Sandbox) -> None:
    # The retry must be served within the same read timeout: 0.3 s is too tight for a
    # loaded machine, so this client waits 2 s (and the hang outlasts that).
    sandbox.faults.add(Fault(method="GET", path=r"/v2/metrics/1562/$", kind="hang", seconds=30))
    with CekuraClient(
        sandbox.url, sandbox.api_key, timeout=2.0, backoff_base=0.01, backoff_cap=0.05
    ) as client:
        assert client.get_metric(1562)["id"] == 1562
        assert client.request_count == 2


def test_hung_start_is_ambiguous_and_not_resent(sandbox: Sandbox, impatient: CekuraClient) -> None:
    sandbox.faults.add(Fault(method="POST", path="process_feedbacks/$", kind="hang", seconds=0.6))
    with pytest.raises(CekuraAPIError) as info:
        impatient.start_optimiser(1562, None)
    assert info.value.ambiguous is True
    assert "read timeout" in info.value.detail
    assert impatient.request_count == 1
    deadline = time.monotonic() + 5
    while not sandbox.state.optimisations_started and time.monotonic() < deadline:
        time.sleep(0.02)
    # The server got it after all, and got it exactly once.
    assert sandbox.state.optimisations_started == {1562: 1}


def test_unreachable_server() -> None:
    client = CekuraClient(DEAD_URL, KEY, max_attempts=2, backoff_base=0.001)
    with client, pytest.raises(CekuraAPIError) as info:
        client.start_optimiser(1, None)
    assert (info.value.status, info.value.ambiguous) == (None, False)
    assert client.request_count == 2


def test_wrong_key_against_the_sandbox(sandbox: Sandbox) -> None:
    client = CekuraClient(sandbox.url, "not-the-key")
    with client, pytest.raises(CekuraAPIError) as info:
        client.list_metrics()
    assert info.value.status == 401
    assert "CEKURA_API_KEY" in info.value.detail
    assert "not-the-key" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("  ", None),
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 60.0),  # now = 40 s past the epoch
        ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),  # already past
        ("Thu, 01 Jan 1970 00:01:40 -0000", None),  # no zone: malformed
        ("soon", None),
    ],
)
def test_retry_after_is_parsed_once_for_both_clients(value: str | None, expected: float | None) -> None:
    from cekura_gitops.retryafter import parse_retry_after

    assert parse_retry_after(value, now=40.0) == expected

"""CekuraClient: the few Cekura REST operations cekura-gitops needs, over one httpx.Client.

httpx is confined to this module (and the shared `httpio`): every failure leaves it as a
`CekuraAPIError` built from the operation, method, path, status and a short body excerpt,
never from headers. Every piece of the server's text is redacted (`redaction.Redactor`:
the key, its encodings and its fragments) *before* it is cut to an excerpt, so not even a
fragment of the API key reaches messages, reprs or tracebacks.

Hostile replies (`httpio`): each request has an overall deadline, bodies have a size
limit, and JSON a nesting limit; a reply broken in any of these ways is the server's
fault, a `CekuraAPIError` naming the endpoint.

A refused key stops everything: until one request has been answered with something other
than 401/403, requests go out one at a time. A 401 then marks the key refused; a 403 (or a
later 401) is checked with one request any valid key may make (list projects), and marks
the key refused only if that is refused too: a project-scoped key may be refused one
metric and not others. Once refused, every request of this client fails at once with
`CekuraKeyRefused`, unsent.

Retry policy (reference/cekura-api.md §8-9):

- Idempotent calls (GETs, PATCH of a metric with its full desired field values, history
  edit, optimiser cancel) retry on 408/429/500/502/503/504, connection errors and timeouts,
  with exponential backoff and full jitter, never sooner than the server's `Retry-After`.
- Non-idempotent POSTs (optimiser start, run_reviews, create) are resent only when it is
  certain the server never processed them: the connection could not be made, or the
  server answered 429 (rejected before processing). Any failure after the request may
  have been received raises `CekuraAPIError(ambiguous=True)`: resending the optimiser
  start would launch a second concurrent optimisation.
- A 429 carrying `Retry-After` pauses *every* request of this client until then, since
  one client serves all worker threads and the rate limit is per key, not per metric.
"""

from __future__ import annotations

import json as jsonlib
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

from cekura_gitops import __version__, httpio
from cekura_gitops.errors import CekuraAPIError, CekuraKeyRefused
from cekura_gitops.progress import Progress, parse_progress
from cekura_gitops.redaction import Redactor, excerpt
from cekura_gitops.replies import LiveMetric, RescoreReport
from cekura_gitops.retryafter import parse_retry_after

__all__ = ["CekuraClient", "LiveMetric", "ProgressReply", "RescoreReport"]

METRICS = "/test_framework/v2/metrics/"
REVIEWS = "/test_framework/metric-reviews/"
CRON_JOBS = "/schedules/v1/metric-optimiser-cron-jobs/"
PROJECTS = "/user/v1/projects/"

# Statuses worth another try for idempotent calls: the server or a proxy was busy or
# restarting (a Cekura deploy), not a verdict on the request itself.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})
# DRF pagination loops are a server bug; stop instead of spinning forever.
MAX_PAGES = 1000
# A metric's fields the tool reads, by JSON type: a reply with another type is refused at
# the door (exit 1, naming the endpoint) instead of failing deep inside a command.
METRIC_STRINGS = (
    "slug",
    "name",
    "type",
    "eval_type",
    "description",
    "prompt",
    "custom_code",
    "evaluation_trigger",
    "trigger_type",
    "evaluation_trigger_prompt",
    "evaluation_trigger_custom_code",
)
METRIC_LISTS = ("enum_values", "agents", "reviews")


@dataclass(frozen=True)
class ProgressReply:
    """One optimiser progress poll: the JSON body, the server's polling hint, if any, and
    the body read as `Progress` (either documented shape), parsed once, here."""

    body: dict[str, Any]
    retry_after: float | None
    progress: Progress = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "progress", parse_progress(self.body))


@dataclass(frozen=True)
class _Reply:
    status: int
    body: Any
    headers: httpx.Headers
    redact: Redactor


class CekuraClient:
    """Typed access to Cekura's metric, optimiser and re-scoring endpoints.

    Thread-safe: worker threads share one instance (and so one connection pool, one
    request counter and one global rate-limit pause). Use as a context manager, or call
    `close()`.

    `sleep` and `clock` are injectable so tests can run retries without waiting; `clock`
    must be monotonic.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        deadline: float = httpio.DEFAULT_DEADLINE,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._base_url = base_url.rstrip("/")
        self._redact = Redactor([api_key])
        self._deadline = deadline
        # Held while the key is unproven, so that a wrong key costs one request, not one
        # per worker thread; `_refused` then answers every later request unsent.
        self._auth_gate = threading.Lock()
        self._key_ok = False
        self._key_checked = False  # a check of the key (after a 401/403) found it valid
        self._refused: tuple[str, str, str, int, str] | None = None
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random()
        self._lock = threading.Lock()
        self._pause_until = 0.0
        self._request_count = 0
        self._http = httpx.Client(
            base_url=self._base_url,
            transport=transport or httpio.transport(),
            timeout=timeout,
            # Redirects are refused: httpx turns a redirected POST into a bodiless GET
            # (the official SDK's bug, cekura-api.md §8); we always send the trailing slash.
            follow_redirects=False,
            headers={
                "X-CEKURA-API-KEY": api_key,
                "User-Agent": f"cekura-gitops/{__version__}",
                "Accept": "application/json",
            },
        )

    def __repr__(self) -> str:
        return f"CekuraClient(base_url={self._base_url!r})"

    def __enter__(self) -> CekuraClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def request_count(self) -> int:
        """How many HTTP requests were sent, retries included."""
        with self._lock:
            return self._request_count

    # -- metrics -------------------------------------------------------------------------

    def list_metrics(self, project_id: int | None = None) -> list[LiveMetric]:
        """Every metric (list view: no `custom_code`, no `reviews`), optionally one project's."""
        params = {"project_id": str(project_id)} if project_id is not None else None
        reply = self._request("list metrics", "GET", METRICS, params=params, retry=True)
        items = _expect_list(reply, "list metrics", "GET", METRICS)
        return [_expect_metric(item, reply, "list metrics", "GET", METRICS) for item in items]

    def get_metric(self, id_or_slug: int | str) -> LiveMetric:
        """The metric detail (carries `custom_code` and the Lab's `reviews`)."""
        path = f"{METRICS}{quote(str(id_or_slug), safe='')}/"
        reply = self._request("get metric", "GET", path, retry=True)
        return _expect_metric(reply.body, reply, "get metric", "GET", path)

    def create_metric(self, body: dict[str, Any]) -> LiveMetric:
        """Create a metric; a failure after sending is ambiguous (it may exist now)."""
        reply = self._request("create metric", "POST", METRICS, json=body, retry=False)
        return _expect_metric(reply.body, reply, "create metric", "POST", METRICS)

    def patch_metric(self, metric_id: int, body: dict[str, Any]) -> LiveMetric:
        """PATCH fields; retried, since the body holds their full desired values."""
        path = f"{METRICS}{int(metric_id)}/"
        reply = self._request("patch metric", "PATCH", path, json=body, retry=True)
        return _expect_metric(reply.body, reply, "patch metric", "PATCH", path)

    def history(self, metric_id: int, *, limit: int | None = None) -> list[dict[str, Any]]:
        """History rows, newest first, following DRF `next` links (up to `limit` rows)."""
        path = f"{METRICS}{int(metric_id)}/history/"
        params: dict[str, str] | None = None
        if limit is not None:
            params = {"page_size": str(max(1, min(limit, 100)))}
        rows = self._paginate("metric history", path, params, limit=limit)
        return rows if limit is None else rows[:limit]

    def edit_history(self, metric_id: int, history_id: int, version_name: str) -> None:
        """Name a history version (e.g. the git commit that was applied)."""
        path = f"{METRICS}{int(metric_id)}/history/edit/"
        body = {"history_id": history_id, "version_name": version_name}
        self._request("edit history", "PATCH", path, json=body, retry=True)

    # -- optimiser -----------------------------------------------------------------------

    def start_optimiser(self, metric_id: int, test_set_ids: Sequence[int] | None) -> str:
        """Start an optimisation and return its progress_id. Never resent blindly."""
        path = f"{REVIEWS}process_feedbacks/"
        body: dict[str, Any] = {"metric_id": metric_id}
        if test_set_ids is not None:
            body["test_set_ids"] = list(test_set_ids)
        reply = self._request("start optimiser", "POST", path, json=body, retry=False)
        return _expect_progress_id(reply, "start optimiser", "POST", path)

    def optimiser_progress(self, progress_id: str) -> ProgressReply:
        """One poll of an optimisation; the body is either documented shape (flat/envelope)."""
        path = f"{REVIEWS}process_feedbacks_progress/"
        reply = self._request(
            "optimiser progress", "GET", path, params={"progress_id": progress_id}, retry=True
        )
        body = _expect_dict(reply, "optimiser progress", "GET", path)
        hint = parse_retry_after(reply.headers.get("Retry-After"), time.time())
        return ProgressReply(body=body, retry_after=hint)

    def cancel_optimiser(self, progress_id: str) -> None:
        """Cancel an optimisation (idempotent: cancelling twice is harmless)."""
        path = f"{REVIEWS}process_feedbacks_cancel/"
        body = {"progress_id": progress_id}
        self._request("cancel optimiser", "POST", path, json=body, retry=True)

    # -- re-scoring ----------------------------------------------------------------------

    def run_reviews(self, metric_id: int, overrides: Mapping[str, Any], *, skip_save: bool = True) -> str:
        """Re-score the Lab's reviews with unsaved `overrides`; returns a progress_id."""
        path = f"{METRICS}{int(metric_id)}/run_reviews/"
        body = {**overrides, "skip_save": skip_save}
        reply = self._request("run reviews", "POST", path, json=body, retry=False)
        return _expect_progress_id(reply, "run reviews", "POST", path)

    def run_reviews_progress(self, progress_id: str) -> RescoreReport:
        """One poll of a re-scoring run (undocumented shape: read leniently, `RescoreReport`)."""
        path = f"{METRICS}run_reviews_progress/"
        reply = self._request(
            "run reviews progress", "GET", path, params={"progress_id": progress_id}, retry=True
        )
        return RescoreReport.parse(_expect_dict(reply, "run reviews progress", "GET", path))

    # -- other ---------------------------------------------------------------------------

    def list_cron_jobs(self) -> list[dict[str, Any]]:
        """Cekura's own metric-optimiser schedules (plain array or DRF pages)."""
        return self._paginate("list cron jobs", CRON_JOBS, None, limit=None)

    def list_projects(self) -> list[dict[str, Any]]:
        """Projects the key can see."""
        return self._paginate("list projects", PROJECTS, None, limit=None)

    # -- plumbing ------------------------------------------------------------------------

    def _paginate(
        self, operation: str, path: str, params: dict[str, str] | None, *, limit: int | None
    ) -> list[dict[str, Any]]:
        """GET a plain array, or DRF pages `{count, next, previous, results}` via `next`.

        `next` is an absolute URL; only its path and query are reused against our own
        base URL, so a misconfigured proxy (http vs https, internal host) can neither
        break paging nor receive the API key.
        """
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        current_path, current_params = path, params
        for _ in range(MAX_PAGES):
            reply = self._request(operation, "GET", current_path, params=current_params, retry=True)
            if isinstance(reply.body, list):
                return _expect_list(reply, operation, "GET", path)
            page = _expect_dict(reply, operation, "GET", path)
            results = page.get("results")
            if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
                raise _unexpected(reply, operation, "GET", path, "no `results` list", page)
            rows.extend(results)
            next_url = page.get("next")
            if not next_url or (limit is not None and len(rows) >= limit):
                return rows
            if not isinstance(next_url, str) or next_url in seen:
                raise _unexpected(reply, operation, "GET", path, "bad `next` link", page)
            seen.add(next_url)
            parts = urlsplit(next_url)
            if parts.path != urlsplit(self._base_url + path).path:
                raise _unexpected(reply, operation, "GET", path, "foreign `next`", page)
            current_path, current_params = path, _query_dict(parts.query)
        raise CekuraAPIError(operation, "GET", path, None, f"more than {MAX_PAGES} pages")

    def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        retry: bool,
    ) -> _Reply:
        """Send one logical request; map every failure to CekuraAPIError.

        `retry=False` still resends when the request certainly did not take effect
        (no connection, or 429); everything else after sending is `ambiguous` for writes.
        """
        # A GET cannot have "taken effect", so it is never ambiguous.
        is_write = method != "GET"
        attempt = 0
        while True:
            attempt += 1
            last_try = attempt >= self._max_attempts
            self._wait_for_global_pause()
            try:
                response = self._send(operation, method, path, params, json, fresh=is_write and not retry)
            except httpio.ReplyError as err:
                # Too slow or too large: the server did receive the request. Not retried:
                # a server that trickles once will trickle again, and each try costs the
                # whole deadline.
                detail = err.message + ("; it may have been processed" if is_write else "")
                raise self._error(operation, method, path, err.status, detail, is_write) from None
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
                # No connection was made, so the server never saw the request.
                if not last_try:
                    self._sleep(self._backoff(attempt, None))
                    continue
                detail = f"could not connect ({_transport_kind(err)}); check CEKURA_API_URL"
                raise self._error(operation, method, path, None, detail, False) from err
            except httpx.RequestError as err:
                # Sent (at least partly) but no usable answer: the server may have acted.
                if retry and not last_try:
                    self._sleep(self._backoff(attempt, None))
                    continue
                detail = f"{_transport_kind(err)} after sending the request"
                if is_write:
                    detail += "; it may have been processed"
                raise self._error(operation, method, path, None, detail, is_write) from err

            status = response.status
            if status == 429 or (retry and status in RETRYABLE_STATUSES):
                retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                if status == 429 and retry_after is not None:
                    self._pause_all(retry_after)
                if not last_try:
                    self._sleep(self._backoff(attempt, retry_after))
                    continue
            if status >= 300:
                detail = _status_detail(response, self._redact)
                ambiguous = is_write and status >= 500
                raise self._error(operation, method, path, status, detail, ambiguous)
            return self._reply(operation, method, path, response, is_write)

    def _reply(
        self, operation: str, method: str, path: str, response: httpio.Reply, is_write: bool
    ) -> _Reply:
        """A 2xx answer's body, parsed and scrubbed of the key."""
        status = response.status
        if status == 204 or not response.content:
            return _Reply(status, None, response.headers, self._redact)
        try:
            # A 2xx echoing the key (a prompt, an optimiser error) would otherwise reach
            # files, pull requests and summaries, possibly cut mid-key.
            body = self._redact.scrub(response.json())
        except httpio.ReplyError as err:
            # The server answered 2xx, so a write took effect: ambiguous for writes.
            detail = f"unexpected response: {err.message}: {excerpt(response.text, self._redact, 80)}"
            raise self._error(operation, method, path, status, detail, is_write) from None
        return _Reply(status, body, response.headers, self._redact)

    def _send(
        self,
        operation: str,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json: Any,
        *,
        fresh: bool,
    ) -> httpio.Reply:
        """One attempt; one at a time until the key has worked, none once it was refused.

        `fresh`: a write never resent goes out on a connection of its own, so that no
        kept-alive connection's close can cross it and leave it ambiguous (httpio._Transport).
        """
        self._raise_if_refused(operation, method, path)
        if not self._key_ok:
            with self._auth_gate:
                self._raise_if_refused(operation, method, path)
                if not self._key_ok:
                    reply = self._receive(method, path, params, json, fresh=fresh)
                    if reply.status not in AUTH_STATUSES and reply.status not in RETRYABLE_STATUSES:
                        self._key_ok = True  # answered on its merits: the key was accepted
                    return self._checked(operation, method, path, reply)
            # The key was accepted while this request waited at the gate: it goes out
            # alongside the others, not one at a time, and after a pause that began meanwhile.
            self._wait_for_global_pause()
        return self._checked(operation, method, path, self._receive(method, path, params, json, fresh=fresh))

    def _receive(
        self, method: str, path: str, params: Mapping[str, str] | None, json: Any, *, fresh: bool = False
    ) -> httpio.Reply:
        with self._lock:
            self._request_count += 1
        return httpio.receive(
            self._http, method, path, deadline=self._deadline, params=params, json_body=json, fresh=fresh
        )

    def _checked(self, operation: str, method: str, path: str, reply: httpio.Reply) -> httpio.Reply:
        """Refuse the key for good on a 401 before it ever worked, or on a 401/403 that a check
        of the key (one GET of the projects it can see) confirms; otherwise the 401/403 is
        this request's own (a metric outside the key's project)."""
        if reply.status not in AUTH_STATUSES:
            return reply
        if reply.status == 401 and not self._key_ok:
            refused = True  # DRF: 401 is authentication failed, never a permission
        elif reply.status == 403 and self._key_checked:
            refused = False  # the key is known to work: this resource is off limits
        else:
            refused = self._key_refused_by_check()
        if refused:
            detail = _status_detail(reply, self._redact)
            with self._lock:
                self._refused = self._refused or (operation, method, path, reply.status, detail)
            self._raise_if_refused(operation, method, path)
        return reply

    def _key_refused_by_check(self) -> bool:
        """True if Cekura refuses the key on a request any valid key may make."""
        try:
            probe = self._receive("GET", PROJECTS, None, None)
        except (httpx.HTTPError, httpio.ReplyError):
            return False  # no verdict: leave the original failure to the caller
        if probe.status in AUTH_STATUSES:
            return True
        if probe.status < 300:
            self._key_ok = self._key_checked = True
        return False

    def _raise_if_refused(self, operation: str, method: str, path: str) -> None:
        with self._lock:
            refused = self._refused
        if refused is not None:
            raise CekuraKeyRefused(*refused)

    def _error(
        self,
        operation: str,
        method: str,
        path: str,
        status: int | None,
        detail: str,
        ambiguous: bool,
    ) -> CekuraAPIError:
        # Details are redacted before they are cut; this catches anything built otherwise.
        detail = self._redact(detail)
        return CekuraAPIError(operation, method, path, status, detail, ambiguous=ambiguous)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential delay, never below the (capped) Retry-After."""
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1))
        delay = self._random.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._backoff_cap))
        return delay

    def _pause_all(self, seconds: float) -> None:
        until = self._clock() + min(seconds, self._backoff_cap)
        with self._lock:
            self._pause_until = max(self._pause_until, until)

    def _wait_for_global_pause(self) -> None:
        with self._lock:
            remaining = self._pause_until - self._clock()
        if remaining > 0:
            self._sleep(remaining)


# -- response shapes ---------------------------------------------------------------------


def _expect_dict(reply: _Reply, operation: str, method: str, path: str) -> dict[str, Any]:
    if not isinstance(reply.body, dict):
        raise _unexpected(reply, operation, method, path, "expected an object", reply.body)
    return reply.body


def _expect_list(reply: _Reply, operation: str, method: str, path: str) -> list[dict[str, Any]]:
    body = reply.body
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise _unexpected(reply, operation, method, path, "expected an array", body)
    return body


def _expect_metric(body: Any, reply: _Reply, operation: str, method: str, path: str) -> LiveMetric:
    if not isinstance(body, dict) or not isinstance(body.get("id"), int) or isinstance(body["id"], bool):
        raise _unexpected(reply, operation, method, path, "expected a metric with an id", body)
    bad = [k for k in METRIC_STRINGS if body.get(k) is not None and not isinstance(body[k], str)]
    bad += [k for k in METRIC_LISTS if body.get(k) is not None and not isinstance(body[k], list)]
    if isinstance(body.get("reviews"), list) and not all(isinstance(r, dict) for r in body["reviews"]):
        bad.append("reviews[]")
    if body.get("project") is not None and (not isinstance(body["project"], int) or body["project"] is True):
        bad.append("project")
    if bad:
        raise _unexpected(reply, operation, method, path, f"wrong type for {', '.join(bad)}", body)
    return LiveMetric.parse(body)


def _expect_progress_id(reply: _Reply, operation: str, method: str, path: str) -> str:
    body = reply.body
    progress_id = body.get("progress_id") if isinstance(body, dict) else None
    if not isinstance(progress_id, str) or not progress_id:
        # The server accepted the request (2xx) but we cannot track it: ambiguous.
        raise CekuraAPIError(
            operation,
            method,
            path,
            reply.status,
            f"unexpected response: no progress_id in {excerpt(_dumps(body), reply.redact)}",
            ambiguous=True,
        )
    return progress_id


def _unexpected(
    reply: _Reply, operation: str, method: str, path: str, what: str, body: Any
) -> CekuraAPIError:
    detail = f"unexpected response: {what}, got {excerpt(_dumps(body), reply.redact)}"
    return CekuraAPIError(operation, method, path, reply.status, detail, ambiguous=method != "GET")


# -- helpers -----------------------------------------------------------------------------


def _status_detail(response: httpio.Reply, redact: Redactor) -> str:
    status = response.status
    body = _render_error_body(response, redact)
    if status in (401, 403):
        return f"{body or 'not authorised'} (check CEKURA_API_KEY; is it scoped to this project?)"
    if status == 404:
        return f"the metric or resource does not exist ({body or 'not found'})"
    if 300 <= status < 400:
        where = excerpt(response.headers.get("Location", "?"), redact)
        return f"unexpected redirect to {where}; check CEKURA_API_URL"
    if status == 429:
        return f"rate limited; gave up after retrying ({body or 'too many requests'})"
    return body or excerpt(response.reason, redact) or "no detail"


def _render_error_body(response: httpio.Reply, redact: Redactor) -> str:
    """DRF errors, readably: `{"detail": m}` -> m; `{"f": ["m"]}` -> `f: m`. Redacted, then cut."""
    try:
        data = response.json()
    except httpio.ReplyError:
        return excerpt(response.text, redact)
    if isinstance(data, dict):
        if isinstance(data.get("detail"), str) and len(data) == 1:
            return excerpt(data["detail"], redact)
        parts = []
        for key, value in data.items():
            if isinstance(value, list):
                value = "; ".join(_dumps(v) if isinstance(v, (dict, list)) else str(v) for v in value)
            elif isinstance(value, dict):
                value = _dumps(value)
            parts.append(f"{key}: {value}")
        return excerpt(", ".join(parts), redact)
    if isinstance(data, list):
        return excerpt("; ".join(str(v) for v in data), redact)
    return excerpt(str(data), redact)


def _transport_kind(err: httpx.RequestError) -> str:
    """A name for the failure; httpx messages never hold headers, but keep them short."""
    kinds: list[tuple[type[httpx.RequestError], str]] = [
        (httpx.ConnectTimeout, "connect timeout"),
        (httpx.ConnectError, "connection refused or unreachable"),
        (httpx.PoolTimeout, "connection pool timeout"),
        (httpx.ReadTimeout, "read timeout"),
        (httpx.WriteTimeout, "write timeout"),
        (httpx.RemoteProtocolError, "connection dropped by the server"),
        (httpx.ReadError, "connection error while reading"),
        (httpx.WriteError, "connection error while sending"),
    ]
    for cls, kind in kinds:
        if isinstance(err, cls):
            return kind
    return type(err).__name__


def _query_dict(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


def _dumps(value: Any) -> str:
    try:
        return jsonlib.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)

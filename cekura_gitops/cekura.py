"""CekuraClient: the few Cekura REST operations cekura-gitops needs, over one httpx.Client.

httpx is confined to this module: every failure leaves it as a `CekuraAPIError` built from
the operation, method, path, status and a short body excerpt, never from headers, so the
API key cannot leak into messages, reprs or tracebacks.

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
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

from cekura_gitops import __version__
from cekura_gitops.errors import CekuraAPIError
from cekura_gitops.retryafter import parse_retry_after

__all__ = ["CekuraClient", "ProgressReply"]

METRICS = "/test_framework/v2/metrics/"
REVIEWS = "/test_framework/metric-reviews/"
CRON_JOBS = "/schedules/v1/metric-optimiser-cron-jobs/"
PROJECTS = "/user/v1/projects/"

# Statuses worth another try for idempotent calls: the server or a proxy was busy or
# restarting (a Cekura deploy), not a verdict on the request itself.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
DETAIL_LIMIT = 300
# DRF pagination loops are a server bug; stop instead of spinning forever.
MAX_PAGES = 1000


@dataclass(frozen=True)
class ProgressReply:
    """One optimiser progress poll: the JSON body and the server's polling hint, if any."""

    body: dict[str, Any]
    retry_after: float | None


@dataclass(frozen=True)
class _Reply:
    status: int
    body: Any
    headers: httpx.Headers


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
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
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
            transport=transport,
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

    def list_metrics(self, project_id: int | None = None) -> list[dict[str, Any]]:
        """Every metric (list view: no `custom_code`, no `reviews`), optionally one project's."""
        params = {"project_id": str(project_id)} if project_id is not None else None
        reply = self._request("list metrics", "GET", METRICS, params=params, retry=True)
        items = _expect_list(reply, "list metrics", "GET", METRICS)
        for item in items:
            _expect_metric(item, reply.status, "list metrics", "GET", METRICS)
        return items

    def get_metric(self, id_or_slug: int | str) -> dict[str, Any]:
        """The metric detail (carries `custom_code` and the Lab's `reviews`)."""
        path = f"{METRICS}{quote(str(id_or_slug), safe='')}/"
        reply = self._request("get metric", "GET", path, retry=True)
        return _expect_metric(reply.body, reply.status, "get metric", "GET", path)

    def create_metric(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a metric; a failure after sending is ambiguous (it may exist now)."""
        reply = self._request("create metric", "POST", METRICS, json=body, retry=False)
        return _expect_metric(reply.body, reply.status, "create metric", "POST", METRICS)

    def patch_metric(self, metric_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH fields; retried, since the body holds their full desired values."""
        path = f"{METRICS}{int(metric_id)}/"
        reply = self._request("patch metric", "PATCH", path, json=body, retry=True)
        return _expect_metric(reply.body, reply.status, "patch metric", "PATCH", path)

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

    def run_reviews_progress(self, progress_id: str) -> dict[str, Any]:
        """One poll of a re-scoring run (undocumented shape: returned as is)."""
        path = f"{METRICS}run_reviews_progress/"
        reply = self._request(
            "run reviews progress", "GET", path, params={"progress_id": progress_id}, retry=True
        )
        return _expect_dict(reply, "run reviews progress", "GET", path)

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
                raise _unexpected(operation, "GET", path, reply.status, "no `results` list", page)
            rows.extend(results)
            next_url = page.get("next")
            if not next_url or (limit is not None and len(rows) >= limit):
                return rows
            if not isinstance(next_url, str) or next_url in seen:
                raise _unexpected(operation, "GET", path, reply.status, "bad `next` link", page)
            seen.add(next_url)
            parts = urlsplit(next_url)
            if parts.path != urlsplit(self._base_url + path).path:
                raise _unexpected(operation, "GET", path, reply.status, "foreign `next`", page)
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
            with self._lock:
                self._request_count += 1
            try:
                response = self._http.request(method, path, params=params, json=json)
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

            status = response.status_code
            if status == 429 or (retry and status in RETRYABLE_STATUSES):
                retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                if status == 429 and retry_after is not None:
                    self._pause_all(retry_after)
                if not last_try:
                    self._sleep(self._backoff(attempt, retry_after))
                    continue
            if status >= 300:
                detail = _status_detail(response)
                ambiguous = is_write and status >= 500
                raise self._error(operation, method, path, status, detail, ambiguous)
            if status == 204 or not response.content:
                return _Reply(status, None, response.headers)
            try:
                body = response.json()
            except ValueError as err:
                detail = f"unexpected response: not JSON: {_excerpt(response.text)}"
                raise self._error(operation, method, path, status, detail, is_write) from err
            return _Reply(status, body, response.headers)

    def _error(
        self,
        operation: str,
        method: str,
        path: str,
        status: int | None,
        detail: str,
        ambiguous: bool,
    ) -> CekuraAPIError:
        # A server (or proxy) echoing request headers must not put the key in our message.
        if self._api_key:
            detail = detail.replace(self._api_key, "***")
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
        raise _unexpected(operation, method, path, reply.status, "expected an object", reply.body)
    return reply.body


def _expect_list(reply: _Reply, operation: str, method: str, path: str) -> list[dict[str, Any]]:
    body = reply.body
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise _unexpected(operation, method, path, reply.status, "expected an array", body)
    return body


def _expect_metric(body: Any, status: int, operation: str, method: str, path: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("id"), int):
        raise _unexpected(operation, method, path, status, "expected a metric with an id", body)
    return body


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
            f"unexpected response: no progress_id in {_excerpt(_dumps(body))}",
            ambiguous=True,
        )
    return progress_id


def _unexpected(
    operation: str, method: str, path: str, status: int | None, what: str, body: Any
) -> CekuraAPIError:
    detail = f"unexpected response: {what}, got {_excerpt(_dumps(body))}"
    return CekuraAPIError(operation, method, path, status, detail, ambiguous=method != "GET")


# -- helpers -----------------------------------------------------------------------------


def _status_detail(response: httpx.Response) -> str:
    status = response.status_code
    body = _render_error_body(response)
    if status in (401, 403):
        return f"{body or 'not authorised'} (check CEKURA_API_KEY; is it scoped to this project?)"
    if status == 404:
        return f"the metric or resource does not exist ({body or 'not found'})"
    if 300 <= status < 400:
        where = _excerpt(response.headers.get("Location", "?"))
        return f"unexpected redirect to {where}; check CEKURA_API_URL"
    if status == 429:
        return f"rate limited; gave up after retrying ({body or 'too many requests'})"
    return body or response.reason_phrase or "no detail"


def _render_error_body(response: httpx.Response) -> str:
    """DRF errors, readably: `{"detail": m}` -> m; `{"f": ["m"]}` -> `f: m`."""
    try:
        data = response.json()
    except ValueError:
        return _excerpt(" ".join(response.text.split()))
    if isinstance(data, dict):
        if isinstance(data.get("detail"), str) and len(data) == 1:
            return _excerpt(data["detail"])
        parts = []
        for key, value in data.items():
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value)
            parts.append(f"{key}: {value}")
        return _excerpt(", ".join(parts))
    if isinstance(data, list):
        return _excerpt("; ".join(str(v) for v in data))
    return _excerpt(str(data))


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


def _excerpt(text: str) -> str:
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"

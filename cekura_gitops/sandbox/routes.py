"""Map HTTP requests onto `SandboxState` operations, the way Cekura's URLs are laid out.

Only the paths cekura-gitops uses exist; every one ends in "/" (Cekura answers 404 to
paths without the trailing slash). Handlers see requests that already passed the API-key
check and OpenAPI validation, so they can trust types the description guarantees.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from cekura_gitops.sandbox.state import ApiError, SandboxState

__all__ = ["Incoming", "Reply", "dispatch"]


@dataclass(frozen=True)
class Incoming:
    """A received request, decoded."""

    method: str
    path: str
    query: Mapping[str, str]
    body: Any  # decoded JSON, or None
    base_url: str  # scheme://host:port as the client addressed us (for `next` links)


@dataclass(frozen=True)
class Reply:
    """What to answer. `validate=False` exempts a body the description cannot describe."""

    status: int
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    validate: bool = True


Handler = Callable[[SandboxState, Incoming, "re.Match[str]"], Reply]

_METRICS = "/test_framework/v2/metrics/"
_REVIEWS = "/test_framework/metric-reviews/"


def _list_metrics(state: SandboxState, req: Incoming, _: re.Match[str]) -> Reply:
    return Reply(200, state.api_list_metrics(req.query))


def _create_metric(state: SandboxState, req: Incoming, _: re.Match[str]) -> Reply:
    return Reply(201, state.api_create_metric(req.body or {}))


def _get_metric(state: SandboxState, req: Incoming, m: re.Match[str]) -> Reply:
    return Reply(200, state.api_get_metric(m["ref"]))


def _patch_metric(state: SandboxState, req: Incoming, m: re.Match[str]) -> Reply:
    if not m["ref"].isdigit():
        raise ApiError(404, {"detail": "No Metric matches the given query."})
    return Reply(200, state.api_patch_metric(int(m["ref"]), req.body or {}))


def _history(state: SandboxState, req: Incoming, m: re.Match[str]) -> Reply:
    page = int(req.query.get("page", "1"))
    page_size = max(1, min(int(req.query.get("page_size", "10")), 100))
    count, rows = state.api_history(int(m["id"]), page, page_size)
    url = f"{req.base_url}{req.path}"

    def link(number: int) -> str:
        return f"{url}?{urlencode({'page': number, 'page_size': page_size})}"

    return Reply(
        200,
        {
            "count": count,
            "next": link(page + 1) if page * page_size < count else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": rows,
        },
    )


def _edit_history(state: SandboxState, req: Incoming, m: re.Match[str]) -> Reply:
    return Reply(200, state.api_edit_history(int(m["id"]), req.body or {}))


def _start_optimiser(state: SandboxState, req: Incoming, _: re.Match[str]) -> Reply:
    return Reply(200, state.api_start_optimiser(req.body))


def _optimiser_progress(state: SandboxState, req: Incoming, _: re.Match[str]) -> Reply:
    body, running = state.api_optimiser_progress(req.query["progress_id"])
    headers: tuple[tuple[str, str], ...] = ()
    if running and state.progress_retry_after is not None:
        headers = (("Retry-After", f"{state.progress_retry_after:g}"),)
    # The envelope shape is Cekura's routine docs' form, which the OpenAPI (flat
    # ProcessFeedbacksResponse) does not describe: don't validate it against that.
    return Reply(200, body, headers, validate="output" not in body)


def _cancel_optimiser(state: SandboxState, req: Incoming, _: re.Match[str]) -> Reply:
    return Reply(200, state.api_cancel_optimiser(req.body))


def _run_reviews(state: SandboxState, req: Incoming, m: re.Match[str]) -> Reply:
    return Reply(200, state.api_run_reviews(int(m["id"]), req.body or {}))


def _run_reviews_progress(state: SandboxState, req: Incoming, _: re.Match[str]) -> Reply:
    return Reply(200, state.api_run_reviews_progress(req.query["progress_id"]))


def _cron_jobs(state: SandboxState, req: Incoming, _: re.Match[str]) -> Reply:
    return Reply(200, state.api_cron_jobs(req.query))


def _projects(state: SandboxState, req: Incoming, _: re.Match[str]) -> Reply:
    return Reply(200, state.api_projects(req.query))


# Order matters: the fixed `run_reviews_progress/` segment must win over `{id}/`.
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(f"{_METRICS}"), _list_metrics),
    ("POST", re.compile(f"{_METRICS}"), _create_metric),
    ("GET", re.compile(f"{_METRICS}run_reviews_progress/"), _run_reviews_progress),
    ("GET", re.compile(rf"{_METRICS}(?P<ref>[^/]+)/"), _get_metric),
    ("PATCH", re.compile(rf"{_METRICS}(?P<ref>[^/]+)/"), _patch_metric),
    ("GET", re.compile(rf"{_METRICS}(?P<id>\d+)/history/"), _history),
    ("PATCH", re.compile(rf"{_METRICS}(?P<id>\d+)/history/edit/"), _edit_history),
    ("POST", re.compile(rf"{_METRICS}(?P<id>\d+)/run_reviews/"), _run_reviews),
    ("POST", re.compile(f"{_REVIEWS}process_feedbacks/"), _start_optimiser),
    ("GET", re.compile(f"{_REVIEWS}process_feedbacks_progress/"), _optimiser_progress),
    ("POST", re.compile(f"{_REVIEWS}process_feedbacks_cancel/"), _cancel_optimiser),
    ("GET", re.compile("/schedules/v1/metric-optimiser-cron-jobs/"), _cron_jobs),
    ("GET", re.compile("/user/v1/projects/"), _projects),
]


def dispatch(state: SandboxState, request: Incoming) -> Reply:
    """Answer `request`: 404 for unknown paths, 405 for a known path's other methods."""
    path_known = False
    for method, pattern, handler in ROUTES:
        match = pattern.fullmatch(request.path)
        if match is None:
            continue
        path_known = True
        if method == request.method:
            try:
                return handler(state, request, match)
            except ApiError as err:
                return Reply(err.status, err.body)
    if path_known:
        return Reply(405, {"detail": f'Method "{request.method}" not allowed.'})
    return Reply(404, {"detail": "Not found."})

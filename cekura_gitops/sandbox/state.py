"""The sandbox's data: projects, metrics, Lab reviews, history, optimisations, cron jobs.

One `SandboxState` is shared by every server thread and by the test thread, so every
method takes the one lock and hands out copies. Two kinds of methods:

- test/demo helpers (`add_metric`, `dashboard_edit`, `add_review`, `set_optimiser_outcome`,
  counters), which act like a human in Cekura's UI;
- `api_*` operations, called by the HTTP routes, which raise `ApiError` with the status
  and DRF-style body Cekura would answer with.

Metrics are stored shaped like `MetricDetailSerializerV2` (without `reviews`, which live
apart and are joined on read). Optimisations end by time (`time.monotonic`), so nothing
ever blocks a server thread while a run is "in progress".
"""

from __future__ import annotations

import copy
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cekura_gitops.sandbox.fields import (
    API_USER,
    DASHBOARD_USER,
    HISTORY_FIELDS,
    METRIC_DEFAULTS,
    READ_ONLY_FIELDS,
    RUN_REVIEWS_OVERRIDES,
    STORED_WRITABLE_FIELDS,
    WRITE_ONLY_FIELDS,
)
from cekura_gitops.sandbox.optimiser import (
    OptimiserOutcome,
    ProgressShape,
    RunStatus,
    default_outcome,
    judged_text,
    merge_outcome,
    progress_payload,
    review_results,
    score,
)

__all__ = ["ApiError", "SandboxState"]


class ApiError(Exception):
    """An error answer: HTTP status plus a DRF-style JSON body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def _not_found(what: str) -> ApiError:
    return ApiError(404, {"detail": f"No {what} matches the given query."})


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "metric"


@dataclass
class _Optimisation:
    progress_id: str
    metric_id: int
    started_at: float
    ends_at: float
    shape: ProgressShape
    outcome: OptimiserOutcome
    cancelled_at: float | None = None

    def finished_at(self) -> float:
        if self.cancelled_at is not None:
            return min(self.ends_at, self.cancelled_at)
        return self.ends_at

    def status(self, now: float) -> RunStatus:
        if self.cancelled_at is not None and self.cancelled_at < self.ends_at:
            return "cancelled"
        if now < self.ends_at:
            return "running"
        return self.outcome.status


@dataclass
class _ReviewRun:
    metric_id: int
    ready_at: float
    num_correct: int
    num_total: int
    results: list[dict[str, Any]]


class SandboxState:
    """Everything the sandbox knows; thread-safe (one lock), hands out copies."""

    def __init__(
        self,
        *,
        optimiser_seconds: float = 0.0,
        progress_shape: ProgressShape = "envelope",
        clock: Callable[[], float] = time.monotonic,
        optimiser_cap: int | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.optimiser_seconds = optimiser_seconds
        # Cekura may queue optimisations: with a cap, at most this many run at once and the
        # rest wait in start order (first in, first out), reported as pending meanwhile.
        self.optimiser_cap = optimiser_cap
        self.progress_shape: ProgressShape = progress_shape
        self.run_reviews_seconds = 0.0
        # Re-score replies carry per-review results unless a test turns them off.
        self.run_reviews_results = True
        self._rescore_verdicts: dict[int, Any] = {}
        # When set, progress polls of a running optimisation carry `Retry-After: <this>`.
        self.progress_retry_after: float | None = None
        self._clock = clock
        self._projects: dict[int, dict[str, Any]] = {}
        self._metrics: dict[int, dict[str, Any]] = {}
        self._reviews: dict[int, list[dict[str, Any]]] = {}
        self._test_sets: dict[int, dict[str, Any]] = {}
        self._history: dict[int, list[dict[str, Any]]] = {}
        self._cron_jobs: list[dict[str, Any]] = []
        self._optimisations: dict[str, _Optimisation] = {}
        self._review_runs: dict[str, _ReviewRun] = {}
        self._outcomes: dict[int, OptimiserOutcome] = {}
        self._shapes: dict[int, ProgressShape] = {}
        self._seconds: dict[int, float] = {}
        self._started: dict[int, int] = {}
        self._max_concurrent = 0
        self._max_concurrent_per_metric: dict[int, int] = {}
        self._patches: list[tuple[int, dict[str, Any]]] = []
        self._next_metric_id = 1600
        self._next_review_id = 9001
        self._next_test_set_id = 900
        self._next_history_id = 1
        self._next_cron_id = 1

    # -- helpers for tests and the demo (a human in Cekura's UI) ------------------------

    def add_project(self, project_id: int, name: str) -> dict[str, Any]:
        with self.lock:
            project = {
                "id": project_id,
                "name": name,
                "organization": {"id": 12, "name": "Acme Health", "members": []},
                "timezone": "UTC",
                "is_deleted": False,
                "created_at": _now_iso(),
                "updated_at": _now_iso(),
            }
            self._projects[project_id] = project
            return copy.deepcopy(project)

    def add_metric(self, **fields: Any) -> dict[str, Any]:
        """Create a metric as a dashboard user would; returns its detail view."""
        with self.lock:
            return self._create_metric(fields, DASHBOARD_USER)

    def metric(self, id_or_slug: int | str) -> dict[str, Any]:
        """A copy of the metric's detail view (with `reviews`); KeyError if unknown."""
        with self.lock:
            return self._detail(self._find(id_or_slug))

    def metric_ids(self) -> list[int]:
        with self.lock:
            return sorted(self._metrics)

    def dashboard_edit(self, metric_id: int, **fields: Any) -> dict[str, Any]:
        """A human edit in the UI: changes fields and appends a "~" history row."""
        with self.lock:
            metric = self._find(metric_id)
            unknown = set(fields) - STORED_WRITABLE_FIELDS
            if unknown:
                raise KeyError(f"not editable: {sorted(unknown)}")
            metric.update(copy.deepcopy(fields))
            self._append_history(metric, "~", DASHBOARD_USER)
            return self._detail(metric)

    def add_review(
        self,
        metric_id: int,
        expected_value: Any,
        actual_value: Any,
        feedback: str = "",
        test_set_id: int | None = None,
        *,
        explanation: str = "",
        transcript: str = "",
        test_set_name: str | None = None,
    ) -> dict[str, Any]:
        """A Lab review (`MetricReviewDetail`); a new test set unless `test_set_id` is given."""
        with self.lock:
            metric = self._find(metric_id)
            test_set = self._test_set(test_set_id, metric, transcript, test_set_name)
            review = {
                "id": self._next_review_id,
                "test_set": copy.deepcopy(test_set),
                "metric": metric["id"],
                "expected_value": expected_value,
                "actual_value": actual_value,
                "explanation": explanation or f"Judged {actual_value!r}.",
                "feedback": feedback,
                "created_at": _now_iso(),
                "updated_at": _now_iso(),
            }
            self._next_review_id += 1
            self._reviews.setdefault(metric["id"], []).append(review)
            return copy.deepcopy(review)

    def edit_review(self, review_id: int, **fields: Any) -> dict[str, Any]:
        """A human relabels a review (`expected_value`, `feedback`, ...)."""
        with self.lock:
            for reviews in self._reviews.values():
                for review in reviews:
                    if review["id"] == review_id:
                        review.update(copy.deepcopy(fields))
                        review["updated_at"] = _now_iso()
                        return copy.deepcopy(review)
            raise KeyError(review_id)

    def set_optimiser_outcome(self, metric_id: int, outcome: OptimiserOutcome | None) -> None:
        """Force what later runs on this metric report (None: back to the default)."""
        with self.lock:
            if outcome is None:
                self._outcomes.pop(metric_id, None)
            else:
                self._outcomes[metric_id] = outcome

    def set_rescore_verdicts(self, verdicts: Mapping[int, Any]) -> None:
        """Force what run_reviews judges these reviews (review id -> verdict), whatever the prompt."""
        with self.lock:
            self._rescore_verdicts = dict(verdicts)

    def set_progress_shape(self, metric_id: int, shape: ProgressShape) -> None:
        with self.lock:
            self._shapes[metric_id] = shape

    def set_optimiser_seconds(self, metric_id: int, seconds: float) -> None:
        with self.lock:
            self._seconds[metric_id] = seconds

    def add_cron_job(
        self,
        project: int,
        metrics: Sequence[int],
        crontab_expression: str = "0 3 * * 1",
        *,
        name: str = "Weekly metric optimisation",
        auto_apply: bool = False,
        is_active: bool = True,
        timezone_name: str = "UTC",
        notify_on: str = "never",
        skip_evaluation: bool = False,
    ) -> dict[str, Any]:
        """A Cekura-side optimiser schedule (`MetricOptimiserCronJob`)."""
        with self.lock:
            job = {
                "id": self._next_cron_id,
                "project": project,
                "name": name,
                "metrics": list(metrics),
                "crontab_expression": crontab_expression,
                "timezone": timezone_name,
                "auto_apply": auto_apply,
                "skip_evaluation": skip_evaluation,
                "is_active": is_active,
                "notify_on": notify_on,
                "created_by": DASHBOARD_USER["id"],
                "created_via": "user",
                "created_at": _now_iso(),
                "updated_at": _now_iso(),
            }
            self._next_cron_id += 1
            self._cron_jobs.append(job)
            return copy.deepcopy(job)

    def finish_optimisations(self) -> None:
        """End every running optimisation now (so a test need not wait for the clock)."""
        with self.lock:
            now = self._clock()
            for run in self._optimisations.values():
                run.ends_at = min(run.ends_at, now)

    def optimisations(self, metric_id: int | None = None) -> list[dict[str, Any]]:
        """Runs started so far: progress_id, metric_id and status, in start order."""
        with self.lock:
            now = self._clock()
            return [
                {"progress_id": r.progress_id, "metric_id": r.metric_id, "status": r.status(now)}
                for r in self._optimisations.values()
                if metric_id is None or r.metric_id == metric_id
            ]

    @property
    def optimisations_started(self) -> dict[int, int]:
        """Start POSTs received, per metric id."""
        with self.lock:
            return dict(self._started)

    @property
    def max_concurrent_optimisations(self) -> int:
        """Most optimisations ever in flight at once (started, not yet ended by time)."""
        with self.lock:
            return self._max_concurrent

    @property
    def max_concurrent_per_metric(self) -> dict[int, int]:
        """Per metric id, the most of its optimisations ever in flight at once: the
        tool's promise is that no value exceeds 1, renames and interruptions included."""
        with self.lock:
            return dict(self._max_concurrent_per_metric)

    @property
    def patches(self) -> list[tuple[int, dict[str, Any]]]:
        """Every applied metric PATCH: (metric id, body)."""
        with self.lock:
            return copy.deepcopy(self._patches)

    # -- API operations ------------------------------------------------------------------

    def api_list_metrics(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        with self.lock:
            found = sorted(self._metrics.values(), key=lambda m: int(m["id"]))
            if "project_id" in query:
                found = [m for m in found if str(m["project"]) == query["project_id"]]
            if "slug" in query:
                found = [m for m in found if m["slug"] == query["slug"]]
            if "agent_id" in query:
                found = [m for m in found if int(query["agent_id"]) in m["agents"]]
            return [self._list_view(m) for m in found]

    def api_get_metric(self, ref: str) -> dict[str, Any]:
        with self.lock:
            try:
                return self._detail(self._find(int(ref) if ref.isdigit() else ref))
            except KeyError:
                raise _not_found("Metric") from None

    def api_create_metric(self, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            errors = self._field_errors(body)
            if body.get("project") is None:
                errors["project"] = ["This field is required."]
            if errors:
                raise ApiError(400, errors)
            fields = {k: v for k, v in body.items() if k in STORED_WRITABLE_FIELDS}
            return self._create_metric(fields, API_USER)

    def api_patch_metric(self, metric_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            try:
                metric = self._find(metric_id)
            except KeyError:
                raise _not_found("Metric") from None
            errors = self._field_errors(body, editing=metric_id)
            if errors:
                raise ApiError(400, errors)
            metric.update({k: copy.deepcopy(v) for k, v in body.items() if k in metric})
            self._patches.append((metric_id, copy.deepcopy(dict(body))))
            self._append_history(metric, "~", API_USER)
            return self._detail(metric)

    def api_history(self, metric_id: int, page: int, page_size: int) -> tuple[int, list[Any]]:
        """(count, rows of that page), newest first."""
        with self.lock:
            if metric_id not in self._metrics:
                raise _not_found("Metric")
            rows = list(reversed(self._history.get(metric_id, [])))
            start = (page - 1) * page_size
            if page < 1 or (start >= len(rows) and page != 1):
                raise ApiError(404, {"detail": "Invalid page."})
            return len(rows), copy.deepcopy(rows[start : start + page_size])

    def api_edit_history(self, metric_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            if metric_id not in self._metrics:
                raise _not_found("Metric")
            if "history_id" not in body:
                raise ApiError(400, {"history_id": ["This field is required."]})
            for row in self._history.get(metric_id, []):
                if row["history_id"] == body["history_id"]:
                    row["version_name"] = body.get("version_name")
                    return copy.deepcopy(row)
            raise _not_found("MetricHistory")

    def api_start_optimiser(self, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            metric_id = int(body["metric_id"])
            if metric_id not in self._metrics:
                raise ApiError(404, {"detail": "Metric not found."})
            metric = self._metrics[metric_id]
            reviews = self._reviews.get(metric_id, [])
            if body.get("test_set_ids") is not None:
                wanted = set(body["test_set_ids"])
                reviews = [r for r in reviews if r["test_set"]["id"] in wanted]
            outcome = merge_outcome(default_outcome(metric, reviews), self._outcomes.get(metric_id))
            now = self._clock()
            begins = self._slot_free_at(now)
            run = _Optimisation(
                progress_id=str(uuid.uuid4()),
                metric_id=metric_id,
                started_at=begins,
                ends_at=begins + self._seconds.get(metric_id, self.optimiser_seconds),
                shape=self._shapes.get(metric_id, self.progress_shape),
                outcome=outcome,
            )
            # Peaks of overlap happen at start times, so measuring there is exact.
            in_flight = 1 + sum(r.finished_at() > now for r in self._optimisations.values())
            self._max_concurrent = max(self._max_concurrent, in_flight)
            mine = 1 + sum(
                r.finished_at() > now for r in self._optimisations.values() if r.metric_id == metric_id
            )
            peak = self._max_concurrent_per_metric.get(metric_id, 0)
            self._max_concurrent_per_metric[metric_id] = max(peak, mine)
            self._optimisations[run.progress_id] = run
            self._started[metric_id] = self._started.get(metric_id, 0) + 1
            return {"progress_id": run.progress_id}

    def _slot_free_at(self, now: float) -> float:
        """When a run submitted now begins: at once, or (capped) when a slot frees up.

        Runs begin in submission order, so every earlier run has begun by then and the
        number still running only falls: the new run begins at the first end time after
        which fewer than `optimiser_cap` runs remain.
        """
        cap = self.optimiser_cap
        if cap is None:
            return now
        live = [r for r in self._optimisations.values() if r.finished_at() > now]
        earliest = max([now, *(r.started_at for r in live)])
        ends = sorted(r.finished_at() for r in live if r.finished_at() > earliest)
        if len(ends) < cap:
            return earliest
        return ends[len(ends) - cap]

    def api_optimiser_progress(self, progress_id: str) -> tuple[dict[str, Any], bool]:
        """(body, still running)."""
        with self.lock:
            run = self._optimisations.get(progress_id)
            if run is None:
                raise ApiError(404, {"detail": "Unknown progress_id."})
            status = run.status(self._clock())
            return progress_payload(run.shape, status, run.outcome), status == "running"

    def api_cancel_optimiser(self, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            progress_id = str(body["progress_id"])
            run = self._optimisations.get(progress_id)
            if run is None:
                raise ApiError(404, {"detail": "Unknown progress_id."})
            now = self._clock()
            if run.status(now) == "running":
                run.cancelled_at = now
            return {"progress_id": progress_id, "status": run.status(now)}

    def api_run_reviews(self, metric_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            try:
                metric = self._find(metric_id)
            except KeyError:
                raise _not_found("Metric") from None
            overrides = {k: v for k, v in body.items() if k in RUN_REVIEWS_OVERRIDES}
            reviews = self._reviews.get(metric_id, [])
            candidate = {**metric, **overrides}
            correct, total = score(reviews, judged_text(candidate))
            if not body.get("skip_save", False):
                # Saving results rewrites the Lab's actual values; the metric itself is
                # never changed by run_reviews.
                text = judged_text(candidate)
                for review in reviews:
                    if review["expected_value"] is not None and score([review], text)[0]:
                        self._set_actual(review, review["expected_value"])
            progress_id = str(uuid.uuid4())
            results = review_results(reviews, judged_text(candidate), self._rescore_verdicts)
            if self._rescore_verdicts:
                labels = {r["id"]: r["expected_value"] for r in reviews if r["expected_value"] is not None}
                correct = sum(
                    1
                    for x in results
                    if x["review_id"] in labels and x["actual_value"] == labels[x["review_id"]]
                )
            self._review_runs[progress_id] = _ReviewRun(
                metric_id, self._clock() + self.run_reviews_seconds, correct, total, results
            )
            return {"progress_id": progress_id}

    def api_run_reviews_progress(self, progress_id: str) -> dict[str, Any]:
        with self.lock:
            run = self._review_runs.get(progress_id)
            if run is None:
                raise ApiError(404, {"detail": "Unknown progress_id."})
            if self._clock() < run.ready_at:
                return {"status": "in_progress", "output": None}
            if run.num_total == 0:
                return {"status": "failed", "error": "No labelled reviews to run.", "output": None}
            output: dict[str, Any] = {
                "score": round(run.num_correct / run.num_total, 3),
                "num_correct": run.num_correct,
                "num_total": run.num_total,
            }
            if self.run_reviews_results:
                output["review_results"] = copy.deepcopy(run.results)
            return {"status": "completed", "output": output}

    def api_cron_jobs(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        with self.lock:
            jobs = self._cron_jobs
            if "project_id" in query:
                jobs = [j for j in jobs if str(j["project"]) == query["project_id"]]
            return copy.deepcopy(jobs)

    def api_projects(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        with self.lock:
            projects = sorted(self._projects.values(), key=lambda p: int(p["id"]))
            if "project_id" in query:
                projects = [p for p in projects if str(p["id"]) == query["project_id"]]
            return copy.deepcopy(projects)

    # -- internals (caller holds the lock) -----------------------------------------------

    def _find(self, id_or_slug: int | str) -> dict[str, Any]:
        if isinstance(id_or_slug, int):
            return self._metrics[id_or_slug]
        for metric in self._metrics.values():
            if metric["slug"] == id_or_slug:
                return metric
        raise KeyError(id_or_slug)

    def _detail(self, metric: dict[str, Any]) -> dict[str, Any]:
        detail = copy.deepcopy(metric)
        detail["reviews"] = copy.deepcopy(self._reviews.get(metric["id"], []))
        return detail

    def _list_view(self, metric: dict[str, Any]) -> dict[str, Any]:
        # MetricListSerializerV2: custom_code is write-only, reviews are not listed.
        view = {
            k: copy.deepcopy(v)
            for k, v in metric.items()
            if k not in ("custom_code", "pending_optimisation_proposal")
        }
        view["agent_names"] = ", ".join(f"Agent {a}" for a in metric["agents"])
        view["display_order"] = 0
        return view

    def _create_metric(self, fields: Mapping[str, Any], user: dict[str, Any]) -> dict[str, Any]:
        metric_id = int(fields.get("id") or self._next_metric_id)
        if metric_id in self._metrics:
            raise ValueError(f"metric {metric_id} exists")
        self._next_metric_id = max(self._next_metric_id, metric_id + 1)
        metric = copy.deepcopy(METRIC_DEFAULTS)
        metric.update(copy.deepcopy({k: v for k, v in fields.items() if k != "id"}))
        metric["id"] = metric_id
        if not metric["slug"]:
            metric["slug"] = f"{_snake(str(metric['name']))}_{metric_id}"
        self._metrics[metric_id] = metric
        self._append_history(metric, "+", user)
        return self._detail(metric)

    def _field_errors(self, body: Mapping[str, Any], *, editing: int | None = None) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        for key in body:
            if key in READ_ONLY_FIELDS:
                errors[key] = ["This field is read-only."]
            elif key not in STORED_WRITABLE_FIELDS and key not in WRITE_ONLY_FIELDS:
                errors[key] = ["Unknown field."]
        slug = body.get("slug")
        if slug and any(m["slug"] == slug and m["id"] != editing for m in self._metrics.values()):
            errors["slug"] = ["metric with this slug already exists."]
        return errors

    def _append_history(self, metric: dict[str, Any], kind: str, user: dict[str, Any]) -> None:
        row: dict[str, Any] = {
            "history_id": self._next_history_id,
            "history_date": _now_iso(),
            "history_type": kind,
            "history_change_reason": None,
            "history_user": dict(user),
            "version_id": None,
            "version_name": None,
            "agents_snapshot": list(metric["agents"]),
        }
        row.update({k: copy.deepcopy(metric[k]) for k in HISTORY_FIELDS if k in metric})
        self._next_history_id += 1
        self._history.setdefault(metric["id"], []).append(row)

    def _test_set(
        self, test_set_id: int | None, metric: dict[str, Any], transcript: str, name: str | None
    ) -> dict[str, Any]:
        if test_set_id is None:
            test_set_id = self._next_test_set_id
            self._next_test_set_id += 1
        if test_set_id not in self._test_sets:
            agents = metric["agents"] or [0]
            self._test_sets[test_set_id] = {
                "id": test_set_id,
                "agent": agents[0],
                "name": name or f"Lab calls #{test_set_id}",
                "transcript": transcript,
                "call_end_reason": "customer-ended-call",
                "source_model": "CallLog",
                "source_id": str(70000 + test_set_id),
                "created_at": _now_iso(),
                "updated_at": _now_iso(),
            }
        return self._test_sets[test_set_id]

    def _set_actual(self, review: dict[str, Any], value: Any) -> None:
        if review["actual_value"] != value:
            review["actual_value"] = value
            review["updated_at"] = _now_iso()

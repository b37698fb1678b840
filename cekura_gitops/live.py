"""Live metrics for a set of files: one list call per project, details only where needed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cekura_gitops.cekura import CekuraClient
from cekura_gitops.errors import CekuraAPIError
from cekura_gitops.metric_files import MetricFile
from cekura_gitops.pool import parallel_map
from cekura_gitops.replies import LiveMetric


@dataclass(frozen=True)
class LiveView:
    """Live metrics as one list call per project shows them, plus details where needed."""

    by_id: Mapping[int, LiveMetric]
    by_slug: Mapping[str, LiveMetric]
    listed_projects: frozenset[int | None]

    def find(self, f: MetricFile) -> LiveMetric | None:
        if f.metric.id is not None:
            return self.by_id.get(f.metric.id)
        return self.by_slug.get(f.metric.slug)


NEEDS_DETAIL = frozenset({"custom_code"})  # the list endpoint hides these (write-only there)


def fetch_live(
    client: CekuraClient,
    files: Sequence[MetricFile],
    *,
    concurrency: int,
    default_project: int | None = None,
) -> LiveView:
    """List each project once; GET details only for files managing list-hidden fields.

    The lists and the details needed whatever the lists say (files managing a field the
    list hides) go out together, at most `concurrency` at once; then the files the lists
    did not show (another project?) get their detail.
    """
    projects: set[int | None] = {f.metric.project for f in files}
    if default_project is not None:
        projects = {p if p is not None else default_project for p in projects} or {default_project}
    if not projects:
        projects = {default_project}
    ordered = sorted(projects, key=str)
    hidden = [f.metric.id for f in files if f.metric.id is not None and NEEDS_DETAIL & set(f.metric.fields)]

    def detail(metric_id: int) -> LiveMetric | None:
        try:
            return client.get_metric(metric_id)
        except CekuraAPIError as err:
            if err.status == 404:
                return None
            raise

    def fetch(job: tuple[bool, Any]) -> Any:
        is_list, key = job
        return client.list_metrics(project_id=key) if is_list else detail(key)

    # The lists first: the first request goes alone until the key is accepted, and a
    # refused key is reported for the list.
    results = parallel_map(fetch, [(True, p) for p in ordered] + [(False, i) for i in hidden], concurrency)
    by_id: dict[int, LiveMetric] = {m.id: m for rows in results[: len(ordered)] for m in rows}
    details: dict[int, LiveMetric | None] = dict(zip(hidden, results[len(ordered) :], strict=True))
    unseen = [
        f.metric.id
        for f in files
        if f.metric.id is not None and f.metric.id not in by_id and f.metric.id not in details
    ]
    details.update(zip(unseen, parallel_map(detail, unseen, concurrency), strict=True))
    for metric_id, found in details.items():
        if found is not None:
            by_id[metric_id] = found
        else:
            by_id.pop(metric_id, None)
    by_slug = {m.slug: m for m in by_id.values() if m.slug}
    return LiveView(by_id, by_slug, frozenset(projects))

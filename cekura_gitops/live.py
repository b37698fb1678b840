"""Live metrics for a set of files: one list call per project, details only where needed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
    """List each project once; GET details only for files managing list-hidden fields."""
    projects: set[int | None] = {f.metric.project for f in files}
    if default_project is not None:
        projects = {p if p is not None else default_project for p in projects} or {default_project}
    if not projects:
        projects = {default_project}
    listed: list[LiveMetric] = []
    for rows in parallel_map(
        lambda p: client.list_metrics(project_id=p), sorted(projects, key=str), concurrency
    ):
        listed.extend(rows)
    by_id = {m.id: m for m in listed}
    # Files whose metric the lists did not show (another project?) and files that manage
    # fields the list hides need the detail endpoint.
    want = [
        f.metric.id
        for f in files
        if f.metric.id is not None and (f.metric.id not in by_id or NEEDS_DETAIL & set(f.metric.fields))
    ]

    def detail(metric_id: int) -> LiveMetric | None:
        try:
            return client.get_metric(metric_id)
        except CekuraAPIError as err:
            if err.status == 404:
                return None
            raise

    for metric_id, found in zip(want, parallel_map(detail, want, concurrency), strict=True):
        if found is not None:
            by_id[metric_id] = found
        else:
            by_id.pop(metric_id, None)
    by_slug = {m.slug: m for m in by_id.values() if m.slug}
    return LiveView(by_id, by_slug, frozenset(projects))

"""Pure comparisons: repo vs live (plan) and the three-way guard (apply).

Live is a metric's JSON as Cekura serves it (`replies.LiveMetric` is one): field values
are compared as JSON values, never interpreted.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cekura_gitops.metric import Metric, live_value, normalise, thaw
from cekura_gitops.replies import JSONObject, JSONValue, LiveMetric


class PlanStatus(enum.Enum):
    IN_SYNC = "in-sync"
    CHANGED = "changed"
    MISSING_LIVE = "missing-live"
    UNMANAGED = "unmanaged"

    @property
    def human(self) -> str:
        return self.value.replace("-", " ")


@dataclass(frozen=True)
class FieldChange:
    """One managed field whose desired (repo) value differs from live."""

    name: str
    live: JSONValue  # as Cekura serves it
    desired: Any  # as the file holds it (lists as tuples)


@dataclass(frozen=True)
class MetricPlan:
    slug: str
    id: int | None
    path: str | None
    status: PlanStatus
    changes: tuple[FieldChange, ...] = ()
    name: str | None = None


def field_changes(metric: Metric, live: JSONObject) -> tuple[FieldChange, ...]:
    """Managed fields the file sets that differ from live, in file order."""
    return tuple(
        FieldChange(name, live.get(name), value)
        for name, value in metric.fields.items()
        if normalise(value) != live_value(live, name)
    )


def plan_metric(metric: Metric, path: str, live: JSONObject | None) -> MetricPlan:
    if live is None:
        return MetricPlan(metric.slug, metric.id, path, PlanStatus.MISSING_LIVE)
    changes = field_changes(metric, live)
    status = PlanStatus.CHANGED if changes else PlanStatus.IN_SYNC
    return MetricPlan(metric.slug, metric.id, path, status, changes)


def unmanaged(live: Sequence[LiveMetric], managed_ids: set[int], managed_slugs: set[str]) -> list[MetricPlan]:
    out = []
    for m in live:
        if m.id in managed_ids or str(m.slug) in managed_slugs:
            continue
        out.append(MetricPlan(m.slug or str(m.id), m.id, None, PlanStatus.UNMANAGED, name=m.name))
    return out


class GuardResult(enum.Enum):
    IN_SYNC = "in-sync"  # live already equals head
    APPLY = "apply"  # live equals base: safe to PATCH
    CONFLICT = "conflict"  # live is neither: changed behind git's back
    CREATE = "create"  # no live metric yet


def three_way(base: Metric | None, head: Metric, live: JSONObject | None) -> GuardResult:
    """Terraform-like guard: only move live from base to head, never from elsewhere."""
    if live is None:
        return GuardResult.CREATE
    if not field_changes(head, live):
        return GuardResult.IN_SYNC
    if base is not None and _equal_on(head, base, live):
        return GuardResult.APPLY
    return GuardResult.CONFLICT


def _equal_on(head: Metric, base: Metric, live: JSONObject) -> bool:
    """Live equals the base file on every field head manages (a field new in head: absent
    from base means unmanaged then, so any live value was acceptable)."""
    for name in head.fields:
        if name in base.fields and normalise(base.fields[name]) != live_value(live, name):
            return False
    return True


def patch_body(head: Metric, live: JSONObject) -> dict[str, Any]:
    """Minimal PATCH: only the managed fields that differ between live and head."""
    return {c.name: thaw(c.desired) for c in field_changes(head, live)}

"""changes: field change detection and its normalisation, plan statuses, the three-way guard."""

from __future__ import annotations

from typing import Any

import pytest

from cekura_gitops.changes import (
    FieldChange,
    GuardResult,
    PlanStatus,
    field_changes,
    patch_body,
    plan_metric,
    three_way,
    unmanaged,
)
from cekura_gitops.metric import Metric
from cekura_gitops.replies import LiveMetric


def metric(**fields: Any) -> Metric:
    return Metric.from_dict({"slug": "greets_caller", "id": 1562, "project": 7, **fields}, "metrics/g.yaml")


LIVE: dict[str, Any] = {
    "id": 1562,
    "slug": "greets_caller",
    "name": "Greets caller",
    "description": "Did the agent greet the caller?",
    "evaluation_trigger": "always",
    "agents": [3, 4],
    "prompt": None,
    "created_at": "2025-01-01T00:00:00Z",  # not a managed field
}


# --- field changes ----------------------------------------------------------------------------


def test_equal_managed_fields_make_no_change() -> None:
    m = metric(name="Greets caller", description="Did the agent greet the caller?", agents=[3, 4])
    assert field_changes(m, LIVE) == ()


@pytest.mark.parametrize(
    ("file_value", "live_value"),
    [
        ("line one\nline two\n", "line one\r\nline two\r\n"),  # CRLF from the web editor
        ("line one\nline two\n", "line one\rline two\r"),  # bare CR
        ([3, 4], (3, 4)),  # a YAML list and a JSON array
        ([["a", "b"]], [("a", "b")]),  # nested sequences
    ],
)
def test_normalisation_folds_line_endings_and_sequence_types(file_value: Any, live_value: Any) -> None:
    assert field_changes(metric(description=file_value), {**LIVE, "description": live_value}) == ()


def test_absent_and_null_live_values_are_the_same() -> None:
    assert field_changes(metric(prompt=None), LIVE) == ()  # live null
    assert field_changes(metric(custom_code=None), LIVE) == ()  # live absent
    assert field_changes(metric(custom_code=""), LIVE) == (FieldChange("custom_code", None, ""),)


def test_changes_list_only_fields_the_file_sets_in_file_order_with_both_values() -> None:
    m = Metric.from_dict(
        {"slug": "s", "agents": [3], "name": "Renamed", "description": "Did the agent greet the caller?"}
    )
    assert field_changes(m, LIVE) == (
        # from_dict keeps MANAGED_FIELDS order: name before agents
        FieldChange("name", "Greets caller", "Renamed"),
        FieldChange("agents", [3, 4], (3,)),
    )


def test_case_whitespace_and_order_are_significant() -> None:
    assert field_changes(metric(name="greets caller"), LIVE) != ()
    assert field_changes(metric(name="Greets caller "), LIVE) != ()
    assert field_changes(metric(agents=[4, 3]), LIVE) != ()


def test_fields_the_file_does_not_manage_are_ignored() -> None:
    m = Metric.from_dict({"slug": "s", "created_at": "yesterday", "name": "Greets caller"})
    assert "created_at" not in m.fields
    assert field_changes(m, LIVE) == ()


# --- plan ---------------------------------------------------------------------------------------


def test_plan_status_for_each_case() -> None:
    m = metric(name="Greets caller")
    assert plan_metric(m, "metrics/g.yaml", None).status is PlanStatus.MISSING_LIVE
    assert plan_metric(m, "metrics/g.yaml", LIVE).status is PlanStatus.IN_SYNC
    changed = plan_metric(metric(name="New"), "metrics/g.yaml", LIVE)
    assert changed.status is PlanStatus.CHANGED
    assert (changed.slug, changed.id, changed.path) == ("greets_caller", 1562, "metrics/g.yaml")
    assert [c.name for c in changed.changes] == ["name"]
    assert PlanStatus.MISSING_LIVE.human == "missing live"


def test_unmanaged_live_metrics_are_those_no_file_names_by_id_or_slug() -> None:
    live = [
        {"id": 1, "slug": "by_id", "name": "A"},
        {"id": 2, "slug": "by_slug", "name": "B"},
        {"id": 3, "slug": "orphan", "name": "C"},
        {"id": 4, "slug": None, "name": "D"},
    ]
    out = unmanaged([LiveMetric.parse(m) for m in live], managed_ids={1}, managed_slugs={"by_slug"})
    assert [(p.slug, p.id, p.path, p.status, p.name) for p in out] == [
        ("orphan", 3, None, PlanStatus.UNMANAGED, "C"),
        ("4", 4, None, PlanStatus.UNMANAGED, "D"),  # no slug: named by its id
    ]


# --- the three-way guard -------------------------------------------------------------------------


BASE = metric(description="v1", evaluation_trigger="always")
HEAD = metric(description="v2", evaluation_trigger="always")


def live(**overrides: Any) -> dict[str, Any]:
    return {**LIVE, "description": "v1", **overrides}


@pytest.mark.parametrize(
    ("base", "head", "live_metric", "expected"),
    [
        # No live metric yet.
        (BASE, HEAD, None, GuardResult.CREATE),
        # Live equals base: move it to head.
        (BASE, HEAD, live(), GuardResult.APPLY),
        # Live already equals head (applied before, or changed the same way): nothing to do.
        (BASE, HEAD, live(description="v2"), GuardResult.IN_SYNC),
        (None, HEAD, live(description="v2"), GuardResult.IN_SYNC),
        # Live is neither base nor head: changed behind git's back.
        (BASE, HEAD, live(description="edited in the dashboard"), GuardResult.CONFLICT),
        # Another managed field drifted, even though the edited one matches base.
        (BASE, HEAD, live(evaluation_trigger="custom"), GuardResult.CONFLICT),
        # No base file (a new file for an existing metric): never overwrite a differing live.
        (None, HEAD, live(), GuardResult.CONFLICT),
        # CRLF in live is not drift.
        (metric(description="a\nb"), metric(description="c"), live(description="a\r\nb"), GuardResult.APPLY),
    ],
)
def test_three_way_guard(base: Metric | None, head: Metric, live_metric: Any, expected: GuardResult) -> None:
    assert three_way(base, head, live_metric) is expected


def test_a_field_new_in_head_was_unmanaged_at_base_so_any_live_value_is_accepted() -> None:
    head = metric(description="v2", evaluation_trigger="always", prompt="now managed")
    assert three_way(BASE, head, live(prompt="whatever the dashboard had")) is GuardResult.APPLY


def test_a_field_dropped_from_head_is_not_guarded() -> None:
    head = metric(description="v2")  # no longer manages evaluation_trigger
    assert three_way(BASE, head, live(evaluation_trigger="custom")) is GuardResult.APPLY


# --- the PATCH body --------------------------------------------------------------------------


def test_patch_body_holds_only_differing_fields_as_json_values() -> None:
    head = metric(name="Greets caller", description="v2", agents=[3, 4, 5])
    body = patch_body(head, live())
    assert body == {"description": "v2", "agents": [3, 4, 5]}
    assert isinstance(body["agents"], list)  # JSON arrays, not the record's tuples
    assert patch_body(metric(name="Greets caller"), live()) == {}

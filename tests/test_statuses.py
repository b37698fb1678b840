"""Status vocabularies are enums; their JSON values never change (--json, PR bodies, the dashboard)."""

from __future__ import annotations

from cekura_gitops import dashboard
from cekura_gitops.statuses import ApplyStatus, PullStatus, SyncStatus


def test_json_values_are_the_documented_ones() -> None:
    assert [s.value for s in ApplyStatus] == [
        "applied",
        "in-sync",
        "conflict",
        "created",
        "deleted",
        "error",
        "would-apply",
        "would-create",
    ]
    assert [s.value for s in PullStatus] == ["created", "updated", "unchanged", "skipped-dirty", "error"]
    assert {s for s in SyncStatus if s.value in ("error", "proposed", "drift", "skipped-cap")} == {
        SyncStatus.ERROR,
        SyncStatus.PROPOSED,
        SyncStatus.DRIFT,
        SyncStatus.SKIPPED_CAP,
    }


def test_failures_and_text_verbs() -> None:
    assert {s for s in ApplyStatus if s.failed} == {ApplyStatus.CONFLICT, ApplyStatus.ERROR}
    assert {s for s in PullStatus if s.failed} == {PullStatus.SKIPPED_DIRTY, PullStatus.ERROR}
    assert (ApplyStatus.WOULD_APPLY.verb, ApplyStatus.IN_SYNC.verb) == ("would apply", "in-sync")


def test_the_dashboard_names_only_the_commands_statuses() -> None:
    values = {s.value for s in (*SyncStatus, *ApplyStatus)}
    assert dashboard.QUIET - {"—"} <= values
    assert all(isinstance(s, (SyncStatus, ApplyStatus)) for s in dashboard.NOTIFY)

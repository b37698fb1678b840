"""Cekura's metric field sets, as the sandbox stores, lists, patches and versions them.

Taken from the vendored OpenAPI subset's `MetricDetailSerializerV2`,
`PatchedMetricEditSerializerV2`, `MetricHistory` and `RunReviewsRequest` schemas.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "API_USER",
    "DASHBOARD_USER",
    "HISTORY_FIELDS",
    "METRIC_DEFAULTS",
    "READ_ONLY_FIELDS",
    "RUN_REVIEWS_OVERRIDES",
    "STORED_WRITABLE_FIELDS",
    "WRITE_ONLY_FIELDS",
]

# `history_user` is a UserInline object in Cekura's schema; these two tell the tool's
# own API writes apart from a human's edits in the dashboard.
DASHBOARD_USER: dict[str, Any] = {"id": 7, "name": "dashboard", "email": "dana@example.com"}
API_USER: dict[str, Any] = {"id": 8, "name": "api", "email": "api-key@example.com"}

METRIC_DEFAULTS: dict[str, Any] = {
    "slug": None,
    "project": None,
    "agents": [],
    "name": "",
    "description": "",
    "type": "llm_judge",
    "eval_type": "binary",
    "enum_values": [],
    "audio_enabled": False,
    "prompt": "",
    "evaluation_trigger": "always",
    "trigger_type": "llm_judge",
    "evaluation_trigger_prompt": "",
    "evaluation_trigger_custom_code": "",
    "priority_assignment_prompt": "",
    "configuration": {},
    "observability_enabled": True,
    "simulation_enabled": False,
    "sampling_enabled": False,
    "alert_enabled": False,
    "alert_type": "disabled",
    "alert_filters": None,
    "slack_workspace": None,
    "slack_channel_id": None,
    "significant_change_alert_status": "disabled",
    "significant_change_alert_direction": "",
    "function_name": None,
    "custom_code": "",
    "vocera_defined_metric_code": "",
    "window_size": 50,
    "std_multiplier": 2.0,
    "ewma_alpha": 0.1,
    "add_to_new_agents": False,
    "pending_optimisation_proposal": None,
}

# PatchedMetricEditSerializerV2 minus its read-only fields. Write-only ones (providers,
# DSPy programs, ...) are accepted and dropped: the detail view never shows them.
READ_ONLY_FIELDS = frozenset(
    {
        "id",
        "function_name",
        "vocera_defined_metric_code",
        "overall_score",
        "total_score",
        "knowledge_base_files",
    }
)
WRITE_ONLY_FIELDS = frozenset(
    {
        "agent",
        "assistant_id",
        "display_order",
        "kb_file_ids",
        "llm_provider",
        "relevance_llm_provider",
        "scenarios",
        "apply_to_all_agents",
        "add_to_rubric",
        "metric_description_program",
        "metric_description_variables",
        "evaluation_trigger_program",
        "evaluation_trigger_variables",
    }
)
STORED_WRITABLE_FIELDS = frozenset(METRIC_DEFAULTS) - READ_ONLY_FIELDS - {"pending_optimisation_proposal"}

# MetricHistory copies these metric fields into each row.
HISTORY_FIELDS = (
    "id",
    "slug",
    "project",
    "name",
    "description",
    "function_name",
    "type",
    "eval_type",
    "enum_values",
    "audio_enabled",
    "observability_enabled",
    "simulation_enabled",
    "sampling_enabled",
    "alert_enabled",
    "prompt",
    "evaluation_trigger",
    "trigger_type",
    "evaluation_trigger_prompt",
    "evaluation_trigger_custom_code",
    "priority_assignment_prompt",
    "configuration",
    "alert_type",
    "significant_change_alert_status",
    "significant_change_alert_direction",
    "window_size",
    "std_multiplier",
    "ewma_alpha",
    "add_to_new_agents",
    "alert_filters",
    "slack_workspace",
    "slack_channel_id",
    "custom_code",
    "vocera_defined_metric_code",
)

RUN_REVIEWS_OVERRIDES = frozenset(
    {
        "description",
        "type",
        "custom_code",
        "prompt",
        "evaluation_trigger",
        "evaluation_trigger_prompt",
        "trigger_type",
        "evaluation_trigger_custom_code",
    }
)

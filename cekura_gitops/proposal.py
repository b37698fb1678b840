"""The optimiser's proposal: both documented result shapes -> Proposal, the trigger
mapping onto metric fields, and the score guard. progress.py reads the poll around it.

Shapes (reference/cekura-api.md §3): flat (`improved_metric_description`, `old_score`, …
at the top level) and enveloped (`{"status", "output": {…, "meta_harness": {…}}}`).
Parser rules: prefer `custom_code`/`type` and `new_score`/`old_score`, fall back to
`meta_harness`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cekura_gitops.evidence import (
    LabelChange,
    ReviewResult,
    UnresolvedSample,
    parse_label_changes,
    parse_review_results,
    parse_unresolved,
)
from cekura_gitops.metric import Metric, normalise
from cekura_gitops.replies import JSONObject
from cekura_gitops.scores import Score


@dataclass(frozen=True)
class Proposal:
    description: str | None
    trigger_kind: str | None
    trigger: str | None
    custom_code: str | None
    type: str | None
    old_score: Score | None
    new_score: Score | None
    summary: str
    unresolved_samples: tuple[UnresolvedSample, ...] = ()
    review_results: tuple[ReviewResult, ...] = ()
    # Label changes nobody approved (cekura-api.md §3): never auto-merged.
    feedback_edits: tuple[LabelChange, ...] = ()
    unauthorized_label_changes: tuple[LabelChange, ...] = ()

    @property
    def label_changes(self) -> tuple[LabelChange, ...]:
        return self.feedback_edits + self.unauthorized_label_changes


def parse_proposal(data: Mapping[str, Any]) -> Proposal:
    meta = data.get("meta_harness") if isinstance(data.get("meta_harness"), Mapping) else {}
    assert isinstance(meta, Mapping)
    code = data.get("custom_code") or None
    kind = data.get("type") or None
    if not code and meta.get("optimized_code"):
        code = str(meta["optimized_code"])
        kind = meta.get("type") or "custom_code"
    new = Score.parse(data.get("new_score")) or Score.parse(meta)
    return Proposal(
        description=_str(data.get("improved_metric_description")),
        trigger_kind=_str(data.get("improved_trigger_kind")),
        trigger=_str(data.get("improved_evaluation_trigger")),
        custom_code=str(code) if code else None,
        type=str(kind) if kind else None,
        old_score=Score.parse(data.get("old_score")),
        new_score=new,
        summary=str(data.get("optimization_summary") or ""),
        unresolved_samples=parse_unresolved(data.get("unresolved_samples")),
        review_results=parse_review_results(data.get("review_results")),
        feedback_edits=parse_label_changes(data.get("feedback_edits"), "feedback_edit"),
        unauthorized_label_changes=parse_label_changes(
            data.get("unauthorized_label_changes"), "unauthorized"
        ),
    )


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v != "" else None


def proposed_values(proposal: Proposal) -> dict[str, Any]:
    """The metric fields a proposal sets (SPEC: trigger mapping by improved_trigger_kind)."""
    values: dict[str, Any] = {}
    if proposal.description is not None:
        values["description"] = proposal.description
    kind, trigger = proposal.trigger_kind, proposal.trigger
    if kind == "always" or (kind is None and trigger == "always"):
        values["evaluation_trigger"] = "always"
    elif kind == "llm_judge" and trigger is not None:
        values.update(
            evaluation_trigger="custom", trigger_type="llm_judge", evaluation_trigger_prompt=trigger
        )
    elif kind == "custom_code" and trigger is not None:
        values.update(
            evaluation_trigger="custom",
            trigger_type="custom_code",
            evaluation_trigger_custom_code=trigger,
        )
    if proposal.custom_code:
        values.update(type="custom_code", custom_code=proposal.custom_code)
    return values


def changes_for(metric: Metric, live: JSONObject, proposal: Proposal) -> dict[str, Any]:
    """Fields whose proposed value differs from what the metric has now (file, else live)."""
    changes = {}
    for name, value in proposed_values(proposal).items():
        current = metric.fields[name] if name in metric.fields else live.get(name)
        if normalise(current) != normalise(value):
            changes[name] = value
    return changes


class Verdict(enum.Enum):
    IMPROVED = "improved"
    TIED = "tied"
    REGRESSED = "regressed"
    UNSCORED = "unscored"


def judge(proposal: Proposal, min_improvement: float) -> Verdict:
    """Propose only when new beats old by more than min_improvement (0: strictly greater)."""
    old = proposal.old_score.value if proposal.old_score else None
    new = proposal.new_score.value if proposal.new_score else None
    if old is None or new is None:
        return Verdict.UNSCORED
    delta = new - old
    if delta > min_improvement + 1e-12:
        return Verdict.IMPROVED
    if delta < -1e-12:
        return Verdict.REGRESSED
    return Verdict.TIED

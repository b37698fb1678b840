"""A deterministic stand-in for Cekura's optimiser ("Auto Improve") and re-scoring.

Cekura documents its optimiser as "deterministic on a fixed set of annotations: no new
labels, no change" (reference/cekura-api.md §3). This fake keeps that property with a
rule simple enough for tests to predict:

- A review is *annotated* when its `expected_value` is set; only those are scored.
- A review counts as correct for a prompt text when `actual_value == expected_value`, or
  when its human `feedback` already appears (case- and whitespace-insensitively) in the
  text the metric judges with: the `description` of an LLM-judge metric, the
  `custom_code` of a Python metric.
- The proposal appends each missing feedback of a mismatched review (sorted by review id)
  under "Guidance from reviewed calls:". So old score = correct now, new score = correct
  with the proposal, and with no new feedback the text and the score stay the same.
- The trigger is kept as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "GUIDANCE_HEADER",
    "OptimiserOutcome",
    "ProgressShape",
    "RunStatus",
    "annotated",
    "default_outcome",
    "judged_text",
    "merge_outcome",
    "progress_payload",
    "review_results",
    "score",
]

GUIDANCE_HEADER = "Guidance from reviewed calls:"

TriggerKind = Literal["always", "llm_judge", "custom_code"]
ProgressShape = Literal["flat", "envelope"]
RunStatus = Literal["running", "success", "error", "cancelled"]


@dataclass(frozen=True)
class OptimiserOutcome:
    """What an optimisation run reports when it ends.

    Passed to `SandboxState.set_optimiser_outcome`, every field left as None is filled
    from the deterministic default for the metric, so a test forces only what it cares
    about (e.g. `OptimiserOutcome(new=(4, 7))` for a regression).
    """

    description: str | None = None
    trigger_kind: TriggerKind | None = None
    trigger: str | None = None
    custom_code: str | None = None
    type: str | None = None
    old: tuple[int, int] | None = None  # (num_correct, num_total)
    new: tuple[int, int] | None = None
    summary: str | None = None
    status: Literal["success", "error"] = "success"
    error: str = ""
    review_results: tuple[Mapping[str, Any], ...] = ()
    unresolved_samples: tuple[Mapping[str, Any], ...] = ()
    feedback_edits: tuple[Mapping[str, Any], ...] = ()
    unauthorized_label_changes: tuple[Mapping[str, Any], ...] = ()


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def annotated(reviews: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Reviews a human labelled (`expected_value` set), by review id."""
    return sorted((r for r in reviews if r.get("expected_value") is not None), key=lambda r: int(r["id"]))


def judged_text(metric: Mapping[str, Any]) -> str:
    """The text whose quality the reviews measure: code for Python metrics, else the prompt."""
    if metric.get("type") == "custom_code":
        return str(metric.get("custom_code") or "")
    return str(metric.get("description") or "")


def _is_correct(review: Mapping[str, Any], text: str) -> bool:
    if review.get("actual_value") == review.get("expected_value"):
        return True
    feedback = _norm(str(review.get("feedback") or ""))
    return bool(feedback) and feedback in _norm(text)


def score(reviews: Sequence[Mapping[str, Any]], text: str) -> tuple[int, int]:
    """(num_correct, num_total) of annotated `reviews` for a judged text."""
    used = annotated(reviews)
    return sum(_is_correct(r, text) for r in used), len(used)


def review_results(
    reviews: Sequence[Mapping[str, Any]], text: str, forced: Mapping[int, Any] | None = None
) -> list[dict[str, Any]]:
    """`ReviewResult` rows for every review, as `text` would judge them.

    A correct review gets its label as the verdict; any other keeps the Lab's verdict.
    `forced` (review id -> verdict) stands in for a judge that disagrees.
    """
    forced = forced or {}
    rows = []
    for r in sorted(reviews, key=lambda r: int(r["id"])):
        right = r.get("expected_value") is not None and _is_correct(r, text)
        verdict = r.get("expected_value") if right else r.get("actual_value")
        if int(r["id"]) in forced:
            verdict = forced[int(r["id"])]
        rows.append(
            {
                "review_id": r["id"],
                "test_set_id": r["test_set"]["id"],
                "actual_value": verdict,
                "explanation": f"Judged {verdict!r}.",
                "success": True,
                "error": None,
            }
        )
    return rows


def _add_guidance(text: str, lines: Sequence[str], *, code: bool) -> str:
    if not lines:
        return text
    prefix = "# " if code else ""
    header = prefix + GUIDANCE_HEADER
    bullets = "".join(f"\n{prefix}- {line}" for line in lines)
    if code:
        # Keep the file's final newline where it was, after the new comment block.
        body = text.rstrip("\n")
        tail = "\n" if text.endswith("\n") else ""
        section = bullets if header in body else f"\n\n{header}{bullets}"
        return f"{body}{section}{tail}"
    if header in text:
        return text + bullets
    return f"{text}\n\n{header}{bullets}" if text else f"{header}{bullets}"


def _trigger(metric: Mapping[str, Any]) -> tuple[TriggerKind, str]:
    # "automatic" has no improved_trigger_kind of its own; Cekura's enum only knows these.
    if metric.get("evaluation_trigger") != "custom":
        return "always", "always"
    if metric.get("trigger_type") == "custom_code":
        return "custom_code", str(metric.get("evaluation_trigger_custom_code") or "")
    return "llm_judge", str(metric.get("evaluation_trigger_prompt") or "")


def default_outcome(metric: Mapping[str, Any], reviews: Sequence[Mapping[str, Any]]) -> OptimiserOutcome:
    """The deterministic proposal for `metric` from `reviews` (see the module docstring)."""
    used = annotated(reviews)
    if not used:
        return OptimiserOutcome(
            status="error",
            error="No labelled reviews in the selected test sets: label calls in the Metric Lab.",
        )
    is_code = metric.get("type") == "custom_code"
    text = judged_text(metric)
    missing: list[str] = []
    for review in used:
        feedback = " ".join(str(review.get("feedback") or "").split())
        if feedback and not _is_correct(review, text) and feedback not in missing:
            missing.append(feedback)
    improved = _add_guidance(text, missing, code=is_code)
    old, new = score(used, text), score(used, improved)
    kind, trigger = _trigger(metric)
    if missing:
        summary = (
            f"Added guidance from {len(missing)} reviewed call(s); "
            f"{old[0]}/{old[1]} -> {new[0]}/{new[1]} correct."
        )
    else:
        summary = "No new feedback to incorporate; the metric is unchanged."
    results = tuple(review_results(used, improved))
    unresolved = tuple(
        {
            "review_id": r["id"],
            "test_set_id": r["test_set"]["id"],
            "verdict": "ambiguous label",
            "pass_rate": 0.0,
            "explanation": "No feedback says why the label differs from the verdict; "
            "add feedback to this review in the Lab.",
        }
        for r in used
        if not _is_correct(r, improved)
    )
    return OptimiserOutcome(
        description=str(metric.get("description") or "") if is_code else improved,
        trigger_kind=kind,
        trigger=trigger,
        custom_code=improved if is_code else "",
        type=str(metric.get("type") or "llm_judge"),
        old=old,
        new=new,
        summary=summary,
        review_results=results,
        unresolved_samples=unresolved,
    )


def merge_outcome(default: OptimiserOutcome, forced: OptimiserOutcome | None) -> OptimiserOutcome:
    """`forced`'s explicit fields over `default`'s (None and empty tuples mean "keep")."""
    if forced is None:
        return default
    changes = {
        f.name: getattr(forced, f.name)
        for f in dataclasses.fields(forced)
        if getattr(forced, f.name) not in (None, ())
    }
    return dataclasses.replace(default, **changes)


def _score_dict(pair: tuple[int, int] | None) -> dict[str, Any]:
    correct, total = pair or (0, 0)
    return {
        "num_correct": correct,
        "num_total": total,
        "score": round(correct / total, 3) if total else 0.0,
    }


def _proposal_fields(outcome: OptimiserOutcome) -> dict[str, Any]:
    new = _score_dict(outcome.new)
    fields: dict[str, Any] = {
        "improved_metric_description": outcome.description or "",
        "improved_evaluation_trigger": outcome.trigger or "",
        "improved_trigger_kind": outcome.trigger_kind or "always",
        "type": outcome.type or "llm_judge",
        "custom_code": outcome.custom_code or "",
        "optimization_summary": outcome.summary or "",
        "old_score": _score_dict(outcome.old),
        "new_score": new,
        "review_results": [dict(r) for r in outcome.review_results],
        "feedback_edits": [dict(e) for e in outcome.feedback_edits],
        "unauthorized_label_changes": [dict(c) for c in outcome.unauthorized_label_changes],
        "unresolved_samples": [dict(s) for s in outcome.unresolved_samples],
        "meta_harness": {
            "optimized_code": outcome.custom_code or "",
            "type": outcome.type or "llm_judge",
            **new,
        },
    }
    if outcome.trigger_kind in ("llm_judge", "custom_code"):
        fields["trigger_type"] = outcome.trigger_kind
    return fields


def progress_payload(shape: ProgressShape, status: RunStatus, outcome: OptimiserOutcome) -> dict[str, Any]:
    """A progress poll's body in one of the two documented shapes (cekura-api.md §3).

    Pending status names are undocumented; these are the ones Cekura's other pollers use.
    The flat shape always carries the two fields its schema requires.
    """
    if shape == "envelope":
        if status == "running":
            return {"status": "in_progress", "output": None}
        if status == "success":
            return {"status": "success", "output": _proposal_fields(outcome)}
        if status == "error":
            return {"status": "error", "output": None, "error": outcome.error}
        return {"status": "cancelled", "output": None}
    empty = {"improved_metric_description": "", "improved_evaluation_trigger": ""}
    if status == "running":
        return {"status": "processing", **empty}
    if status == "success":
        return {"status": "completed", **_proposal_fields(outcome)}
    if status == "error":
        return {"status": "failed", "error": outcome.error, **empty}
    return {"status": "cancelled", **empty}

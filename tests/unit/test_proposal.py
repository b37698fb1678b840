"""proposal: both progress shapes, the trigger mapping onto metric fields, the score guard."""

from __future__ import annotations

from typing import Any

import pytest

from cekura_gitops.metric import Metric
from cekura_gitops.progress import parse_progress
from cekura_gitops.proposal import Proposal, Verdict, changes_for, judge, proposed_values
from cekura_gitops.scores import Score

FLAT: dict[str, Any] = {
    "status": "success",
    "improved_metric_description": "Greet the caller by name.",
    "improved_evaluation_trigger": "always",
    "improved_trigger_kind": "always",
    "type": "llm_judge",
    "custom_code": "",
    "optimization_summary": "Tightened the wording.",
    "old_score": {"num_correct": 5, "num_total": 7, "score": 0.71},
    "new_score": {"num_correct": 7, "num_total": 7, "score": 1.0},
    "review_results": [{"review_id": 11, "test_set_id": 2, "actual_value": True, "success": True}],
    "feedback_edits": [{"review_id": 11, "old_expected_value": False, "new_expected_value": True}],
    "unauthorized_label_changes": [],
    "unresolved_samples": [{"review_id": 12, "verdict": "ambiguous", "explanation": "unclear"}],
}

ENVELOPED: dict[str, Any] = {
    "status": "completed",
    "output": {
        "improved_metric_description": "Greet the caller by name.",
        "improved_evaluation_trigger": "return True",
        "improved_trigger_kind": "custom_code",
        "custom_code": "",
        "old_score": {"num_correct": 5, "num_total": 7},
        "meta_harness": {
            "optimized_code": "def score(): ...",
            "num_correct": 6,
            "num_total": 7,
            "score": 0.86,
        },
    },
}


def state(body: dict[str, Any]) -> str:
    """The progress state's value (the enum's name is being changed; its values are not)."""
    return str(parse_progress(body).state.value)


# --- parsing the two shapes ----------------------------------------------------------------------


def test_flat_shape_success() -> None:
    progress = parse_progress(FLAT)
    assert (progress.state.value, progress.status, progress.error) == ("succeeded", "success", None)
    p = progress.proposal
    assert p is not None
    assert p.description == "Greet the caller by name."
    assert (p.trigger_kind, p.trigger) == ("always", "always")
    assert (p.custom_code, p.type) == (None, "llm_judge")  # an empty code is no code
    assert (str(p.old_score), str(p.new_score)) == ("5/7", "7/7")
    assert p.summary == "Tightened the wording."
    assert [r.review_id for r in p.review_results] == [11]
    assert [s.review_id for s in p.unresolved_samples] == [12]
    assert [c.kind for c in p.label_changes] == ["feedback_edit"]


def test_enveloped_shape_reads_output_and_falls_back_to_meta_harness() -> None:
    progress = parse_progress(ENVELOPED)
    assert progress.state.value == "succeeded"
    p = progress.proposal
    assert p is not None
    assert p.description == "Greet the caller by name."
    assert (p.trigger_kind, p.trigger) == ("custom_code", "return True")
    assert (p.custom_code, p.type) == ("def score(): ...", "custom_code")
    assert (str(p.old_score), str(p.new_score)) == ("5/7", "6/7")  # new_score from meta_harness


def test_top_level_code_and_score_win_over_meta_harness() -> None:
    body = {
        "status": "success",
        "output": {
            **ENVELOPED["output"],
            "custom_code": "top level",
            "type": "custom_code",
            "new_score": {"num_correct": 7, "num_total": 7},
        },
    }
    p = parse_progress(body).proposal
    assert p is not None
    assert (p.custom_code, str(p.new_score)) == ("top level", "7/7")


@pytest.mark.parametrize("status", ["error", "failed", "FAILURE", "cancelled", "canceled"])
def test_failure_statuses(status: str) -> None:
    progress = parse_progress({"status": status, "error": "x" * 900})
    assert progress.state.value == "failed" and progress.proposal is None
    assert progress.error == "x" * 500  # bounded: it ends up in a PR comment


def test_a_failure_without_an_error_names_its_status() -> None:
    assert parse_progress({"status": "failed"}).error == "failed"
    assert parse_progress({"status": "error", "message": "quota"}).error == "quota"
    assert parse_progress({"status": "error", "output": {"error": "inside"}}).error == "inside"


@pytest.mark.parametrize("status", ["queued", "processing", "in_progress", "paused", "", "weird"])
def test_anything_else_without_a_result_is_pending(status: str) -> None:
    assert state({"status": status}) == "pending"


def test_done_is_case_insensitive_and_no_status_with_a_result_is_done() -> None:
    assert state({**FLAT, "status": "SUCCESS"}) == "succeeded"
    unlabelled = {k: v for k, v in FLAT.items() if k != "status"}
    progress = parse_progress(unlabelled)
    assert (progress.state.value, progress.status) == ("succeeded", "completed")


def test_done_without_a_proposal_is_a_failure_not_a_crash() -> None:
    progress = parse_progress({"status": "success"})
    assert progress.state.value == "failed"
    assert progress.error is not None and "without a proposal" in progress.error
    assert state({"status": "success", "output": "not a mapping"}) == "failed"


def test_odd_values_never_raise() -> None:
    body = {
        "status": "success",
        "improved_metric_description": "d",
        "old_score": "7/7",
        "new_score": {"num_correct": True, "num_total": "x", "score": "0.5"},
        "review_results": "nope",
        "feedback_edits": [1, "two"],
        "unresolved_samples": None,
    }
    p = parse_progress(body).proposal
    assert p is not None
    assert p.old_score is None
    assert p.new_score == Score(None, None, 0.5)  # a bool is not a count
    assert p.review_results == () and p.unresolved_samples == ()
    assert len(p.label_changes) == 2


# --- the trigger mapping -------------------------------------------------------------------------------


def proposal(**kw: Any) -> Proposal:
    fields: dict[str, Any] = dict(
        description=None,
        trigger_kind=None,
        trigger=None,
        custom_code=None,
        type=None,
        old_score=Score(5, 7, None),
        new_score=Score(7, 7, None),
        summary="",
    )
    return Proposal(**{**fields, **kw})


@pytest.mark.parametrize(
    ("kind", "trigger", "fields"),
    [
        ("always", "ignored", {"evaluation_trigger": "always"}),
        (None, "always", {"evaluation_trigger": "always"}),
        (
            "llm_judge",
            "Only when the caller asks for a refund.",
            {
                "evaluation_trigger": "custom",
                "trigger_type": "llm_judge",
                "evaluation_trigger_prompt": "Only when the caller asks for a refund.",
            },
        ),
        (
            "custom_code",
            "return 'refund' in transcript",
            {
                "evaluation_trigger": "custom",
                "trigger_type": "custom_code",
                "evaluation_trigger_custom_code": "return 'refund' in transcript",
            },
        ),
        ("llm_judge", None, {}),  # a kind without its text changes nothing
        (None, "some prompt", {}),  # text without a kind is not guessed at
        ("unknown_kind", "x", {}),
    ],
)
def test_trigger_mapping(kind: str | None, trigger: str | None, fields: dict[str, Any]) -> None:
    assert proposed_values(proposal(trigger_kind=kind, trigger=trigger)) == fields


def test_description_and_code_map_onto_their_fields() -> None:
    values = proposed_values(proposal(description="New text.", custom_code="def f(): ...", type="llm_judge"))
    # Code switches the metric to custom_code, whatever type the proposal named.
    assert values == {"description": "New text.", "type": "custom_code", "custom_code": "def f(): ..."}


def test_changes_for_compares_with_the_file_first_then_live() -> None:
    m = Metric.from_dict({"slug": "s", "id": 1, "description": "Old text.\n"})
    live = {"description": "Something else", "evaluation_trigger": "always", "type": "llm_judge"}
    p = proposal(description="Old text.\r\n", trigger_kind="always", trigger="always", custom_code="c")
    # description equals the file's (line endings folded); the trigger equals live's.
    assert changes_for(m, live, p) == {"type": "custom_code", "custom_code": "c"}
    assert changes_for(m, live, proposal(description="New.")) == {"description": "New."}


# --- judging ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "min_improvement", "verdict"),
    [
        (Score(5, 7, None), Score(7, 7, None), 0.0, Verdict.IMPROVED),
        (Score(7, 7, None), Score(7, 7, None), 0.0, Verdict.TIED),
        (Score(6, 8, None), Score(3, 4, None), 0.0, Verdict.TIED),  # equal ratios
        (Score(7, 7, None), Score(6, 7, None), 0.0, Verdict.REGRESSED),
        (Score(None, None, 0.5), Score(None, None, 0.6), 0.1, Verdict.TIED),  # not *more* than 0.1
        (Score(None, None, 0.5), Score(None, None, 0.61), 0.1, Verdict.IMPROVED),
        (Score(None, None, 0.5), Score(None, None, 0.55), 0.1, Verdict.TIED),  # better, not enough
        (None, Score(7, 7, None), 0.0, Verdict.UNSCORED),
        (Score(5, 7, None), None, 0.0, Verdict.UNSCORED),
        (Score(None, 7, None), Score(7, 7, None), 0.0, Verdict.UNSCORED),
    ],
)
def test_judge(old: Score | None, new: Score | None, min_improvement: float, verdict: Verdict) -> None:
    assert judge(proposal(old_score=old, new_score=new), min_improvement) is verdict

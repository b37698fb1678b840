"""Per-call evidence for a proposal: which labelled reviews it fixes, breaks or leaves.

Typed records parsed once from Cekura's JSON (cekura-api.md §3, §5):

- `LabReview`: a Metric Lab review (`reviews[]` of the metric detail), with the human's
  label (`expected_value`) and the current prompt's verdict (`actual_value`);
- `ReviewResult`: one row of the optimiser's (or a re-score's) `review_results[]`, the
  proposal's verdict on a review;
- `LabelChange`: an item of `feedback_edits[]` or `unauthorized_label_changes[]`, a label
  the optimiser changed (or saw changed) without a person approving it;
- `UnresolvedSample`: an item of `unresolved_samples[]`.

The last three have no schema in Cekura's OpenAPI (`items: {}`), so they are read
leniently: known keys when present, the item's JSON otherwise. All of their text is
untrusted and is neutralised where it is rendered (`evidence_body.py`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Evidence",
    "Flip",
    "LabReview",
    "LabelChange",
    "ReviewEvidence",
    "ReviewResult",
    "UnresolvedSample",
    "classify",
    "labelled",
    "parse_label_changes",
    "parse_review_results",
    "parse_reviews",
    "parse_unresolved",
    "same_value",
]


@dataclass(frozen=True)
class LabReview:
    id: int
    test_set_id: int | None
    test_set_name: str
    expected: Any
    actual: Any
    explanation: str

    @property
    def is_labelled(self) -> bool:
        return self.expected is not None and self.expected != ""


@dataclass(frozen=True)
class ReviewResult:
    review_id: int
    test_set_id: int | None
    actual: Any
    explanation: str
    success: bool
    error: str


@dataclass(frozen=True)
class LabelChange:
    """A label change nobody approved; `kind` is `feedback_edit` or `unauthorized`."""

    kind: str
    review_id: int | None
    field: str  # "expected_value", "feedback", or "" when the item does not say
    before: Any
    after: Any
    note: str


@dataclass(frozen=True)
class UnresolvedSample:
    review_id: int | None
    verdict: str
    pass_rate: str
    explanation: str


class Flip(enum.Enum):
    FIXED = "fixed"
    BROKEN = "broken"
    STILL_WRONG = "still_wrong"
    STILL_RIGHT = "still_right"


@dataclass(frozen=True)
class ReviewEvidence:
    review: LabReview
    after: Any
    explanation: str
    flip: Flip


@dataclass(frozen=True)
class Evidence:
    """Every labelled review the proposal was scored on, classified."""

    rows: tuple[ReviewEvidence, ...]

    def count(self, flip: Flip) -> int:
        return sum(1 for r in self.rows if r.flip is flip)

    def of(self, *flips: Flip) -> list[ReviewEvidence]:
        return [r for r in self.rows if r.flip in flips]

    @property
    def broken(self) -> int:
        return self.count(Flip.BROKEN)

    @property
    def fixed(self) -> int:
        return self.count(Flip.FIXED)

    def to_json(self) -> dict[str, int]:
        return {flip.value: self.count(flip) for flip in Flip}


# -- parsing --------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def parse_reviews(raw: Any) -> tuple[LabReview, ...]:
    """The metric detail's `reviews[]` (items without an integer id are skipped)."""
    out = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, Mapping) or _int(item.get("id")) is None:
            continue
        test_set = item.get("test_set")
        ts_id = _int(test_set.get("id")) if isinstance(test_set, Mapping) else _int(test_set)
        name = test_set.get("name") if isinstance(test_set, Mapping) else None
        out.append(
            LabReview(
                id=int(item["id"]),
                test_set_id=ts_id,
                test_set_name=name if isinstance(name, str) else "",
                expected=item.get("expected_value"),
                actual=item.get("actual_value"),
                explanation=_text(item.get("explanation")),
            )
        )
    return tuple(out)


def labelled(reviews: Iterable[LabReview]) -> list[LabReview]:
    return [r for r in reviews if r.is_labelled]


def parse_review_results(raw: Any) -> tuple[ReviewResult, ...]:
    """`review_results[]` (ReviewResult in Cekura's OpenAPI); rows without a review id are skipped."""
    out = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, Mapping) or _int(item.get("review_id")) is None:
            continue
        success = item.get("success")
        out.append(
            ReviewResult(
                review_id=int(item["review_id"]),
                test_set_id=_int(item.get("test_set_id")),
                actual=item.get("actual_value"),
                explanation=_text(item.get("explanation")),
                # A row that does not say it failed counts as a verdict.
                success=success is not False and not item.get("error"),
                error=_text(item.get("error")),
            )
        )
    return tuple(out)


# Items have no schema: the keys a label change is likely to use, most specific first.
_LABEL_BEFORE = (
    "old_expected_value",
    "previous_expected_value",
    "old_value",
    "previous_value",
    "before",
    "from",
)
_LABEL_AFTER = ("new_expected_value", "expected_value", "new_value", "value", "after", "to")
_FEEDBACK_BEFORE = ("old_feedback", "previous_feedback")
_FEEDBACK_AFTER = ("new_feedback", "feedback")
_NOTE = ("reason", "explanation", "answer", "note", "message", "detail")
_IDS = ("review_id", "metric_review_id", "id")


def _first(item: Mapping[str, Any], keys: Sequence[str]) -> tuple[bool, Any]:
    for key in keys:
        if key in item:
            return True, item[key]
    return False, None


def _review_id(item: Mapping[str, Any]) -> int | None:
    for key in _IDS:
        found = _int(item.get(key))
        if found is not None:
            return found
    return None


def _label_change(item: Mapping[str, Any], kind: str) -> LabelChange:
    has_before, before = _first(item, _LABEL_BEFORE)
    has_after, after = _first(item, _LABEL_AFTER)
    what = "expected_value"
    if not (has_before or has_after):
        has_before, before = _first(item, _FEEDBACK_BEFORE)
        has_after, after = _first(item, _FEEDBACK_AFTER)
        what = "feedback" if has_before or has_after else ""
    has_note, note = _first(item, _NOTE)
    known = {*_IDS, *_LABEL_BEFORE, *_LABEL_AFTER, *_FEEDBACK_BEFORE, *_FEEDBACK_AFTER, *_NOTE}
    rest = {k: v for k, v in item.items() if k not in known}
    text = _text(note) if has_note else ""
    if rest or not (what or has_note):
        text = (text + " " if text else "") + _text(rest or dict(item))
    return LabelChange(kind, _review_id(item), what, before, after, text)


def parse_label_changes(raw: Any, kind: str) -> tuple[LabelChange, ...]:
    """`feedback_edits[]` or `unauthorized_label_changes[]` (items without a schema)."""
    return tuple(
        _label_change(item, kind)
        if isinstance(item, Mapping)
        else LabelChange(kind, None, "", None, None, _text(item))
        for item in (raw if isinstance(raw, list) else ())
    )


def parse_unresolved(raw: Any) -> tuple[UnresolvedSample, ...]:
    """`unresolved_samples[]`: each with a verdict, a pass rate and an explanation."""
    out = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, Mapping):
            out.append(UnresolvedSample(None, "", "", _text(item)))
            continue
        review_id = _review_id(item)
        _, verdict = _first(item, ("verdict", "category", "classification"))
        _, rate = _first(item, ("pass_rate", "observed_pass_rate"))
        has_note, note = _first(item, ("explanation", "reason", "message", "detail", "transcript"))
        out.append(
            UnresolvedSample(
                review_id,
                _text(verdict),
                _text(rate),
                _text(note) if has_note else _text(dict(item)),
            )
        )
    return tuple(out)


# -- classification -------------------------------------------------------------------------


def _norm(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip().casefold()
        if text in ("true", "false"):
            return text == "true"
        try:
            return float(text)
        except ValueError:
            return text
    return value


def same_value(a: Any, b: Any) -> bool:
    """A verdict equals a label (`True` and "TRUE", 1 and "1.0" are the same)."""
    if a is None or b is None:
        return False
    return bool(_norm(a) == _norm(b))


def classify(reviews: Sequence[LabReview], results: Sequence[ReviewResult]) -> Evidence:
    """Labelled reviews with a successful result, by what the proposal did to each.

    Before is the Lab's current verdict (`actual_value`); after is the proposal's. Reviews
    without a label, or without a verdict from the proposal, are not counted.
    """
    after = {r.review_id: r for r in results if r.success}
    rows = []
    for review in sorted(labelled(reviews), key=lambda r: r.id):
        result = after.get(review.id)
        if result is None:
            continue
        was = same_value(review.actual, review.expected)
        now = same_value(result.actual, review.expected)
        flip = {
            (False, True): Flip.FIXED,
            (True, False): Flip.BROKEN,
            (False, False): Flip.STILL_WRONG,
            (True, True): Flip.STILL_RIGHT,
        }[(was, now)]
        rows.append(ReviewEvidence(review, result.actual, result.explanation, flip))
    return Evidence(tuple(rows))

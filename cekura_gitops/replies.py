"""Cekura's replies as typed, frozen records, parsed once where the JSON arrives (`cekura.py`).

- `LiveMetric`: a metric as Cekura serves it (detail, list item, or a write's answer);
- `RescoreReport`: one poll of a re-scoring run (`run_reviews_progress`);
- the optimiser's progress poll is `cekura.ProgressReply`, whose `progress` is
  `progress.Progress` (both documented shapes, parsed by `progress.parse_progress`).

What the tool reads has a type here; what it only carries (the field values plan compares,
apply PATCHes and pull writes, a review as the label fingerprint hashes it) stays the
server's JSON, typed `JSONValue`. Each record is also a read-only mapping of that JSON, so it
equals the object it was parsed from.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, Union

from cekura_gitops.evidence import LabReview, ReviewResult, parse_review_results, parse_reviews
from cekura_gitops.scores import Score

__all__ = ["DONE", "FAILED", "JSONObject", "JSONValue", "LiveMetric", "RescoreReport"]

# A run's `status` (optimiser or re-score), lower-cased: finished well, or failed. Anything
# else (undocumented) is still pending.
DONE = frozenset({"success", "succeeded", "completed", "complete", "done"})
FAILED = frozenset({"error", "failed", "failure", "cancelled", "canceled"})

# A JSON value as `json.loads` returns it.
JSONValue: TypeAlias = Union[None, bool, int, float, str, list["JSONValue"], dict[str, "JSONValue"]]  # noqa: UP007
JSONObject: TypeAlias = Mapping[str, JSONValue]


class _JSONView(Mapping[str, JSONValue]):
    """Read-only mapping access to the reply a record was parsed from."""

    raw: JSONObject

    def __getitem__(self, key: str) -> JSONValue:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


@dataclass(frozen=True, eq=False)
class LiveMetric(_JSONView):
    """A live metric. `cekura.py` checked the types of the fields the tool reads before
    building it; `raw` is the whole object, field values as served."""

    id: int
    slug: str | None
    name: str | None
    project: int | None
    # The Lab's reviews (the detail view has them; a list item has none).
    reviews: tuple[LabReview, ...]
    # The same reviews as served: the label fingerprint hashes what the optimiser reads.
    review_items: tuple[JSONObject, ...]
    raw: JSONObject

    @classmethod
    def parse(cls, body: JSONObject) -> LiveMetric:
        items = body.get("reviews")
        review_items = tuple(r for r in items if isinstance(r, dict)) if isinstance(items, list) else ()
        metric_id, slug, name, project = (body.get(k) for k in ("id", "slug", "name", "project"))
        assert isinstance(metric_id, int)  # checked at the door (cekura._expect_metric)
        return cls(
            id=metric_id,
            slug=slug if isinstance(slug, str) else None,
            name=name if isinstance(name, str) else None,
            project=project if isinstance(project, int) and not isinstance(project, bool) else None,
            reviews=parse_reviews(items),
            review_items=review_items,
            raw=body,
        )

    def value(self, name: str) -> JSONValue:
        """A field's value as served (None when absent)."""
        return self.raw.get(name)


@dataclass(frozen=True, eq=False)
class RescoreReport(_JSONView):
    """One poll of a re-scoring run. Its shape is undocumented: `status`, a score as
    `score` or `num_correct/num_total`, and `review_results`, at the top level or under
    `output`."""

    status: str  # lower case; "" when the reply has none
    score: Score | None
    review_results: tuple[ReviewResult, ...] | None  # None: the reply has no such list
    error: str  # the reply's `error`, as text ("" when none)
    message: str  # the reply's `message`, as text ("" when none)
    raw: JSONObject

    @classmethod
    def parse(cls, body: JSONObject) -> RescoreReport:
        output = body.get("output")
        sources: tuple[Mapping[str, Any], ...] = (output if isinstance(output, dict) else {}, body)
        score = next((s for s in (Score.parse(src) for src in sources) if s is not None), None)
        results = next(
            (
                parse_review_results(src["review_results"])
                for src in sources
                if isinstance(src.get("review_results"), list)
            ),
            None,
        )
        return cls(
            status=str(body.get("status") or "").lower(),
            score=score,
            review_results=results,
            error=_text(body.get("error")),
            message=_text(body.get("message")),
            raw=body,
        )

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    @property
    def done(self) -> bool:
        return self.status in DONE


def _text(value: JSONValue) -> str:
    return str(value) if value else ""

"""The evidence parts of a proposal's pull request body, as Markdown.

- the warnings that open the body (a proposal that breaks a labelled review, or changed
  labels nobody approved, says so in its first line);
- the four counts and a table of every fixed and broken review (broken first), the rows
  past the first ~20 folded into `<details>`, all within a size budget;
- the label changes (what changed, on which review);
- the unresolved samples, folded, with their verdict and explanation.

Everything from Cekura here is untrusted: cells go through `markdown.cell`/`code_cell`,
which keep it on one line and inert (no pings, links, HTML or fences).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cekura_gitops import markdown
from cekura_gitops.evidence import Evidence, Flip, LabelChange, ReviewEvidence, UnresolvedSample

__all__ = ["LABEL", "evidence_section", "label_changes_section", "unresolved_section", "warnings"]

LABEL = "cekura-gitops:labels-changed"
VISIBLE_ROWS = 20
EXPLANATION_CHARS = 160
EVIDENCE_BUDGET = 16_000
LABELS_BUDGET = 8_000
UNRESOLVED_BUDGET = 6_000


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def warnings(evidence: Evidence | None, label_changes: Sequence[LabelChange]) -> list[str]:
    """The lines that open the body, most serious first (empty when all is well)."""
    lines = []
    if evidence is not None and evidence.broken:
        lines.append(
            f"⚠️ **This proposal breaks {_plural(evidence.broken, 'labelled review')}** that the "
            f"current prompt gets right (it fixes {evidence.fixed}): see *Evidence* below."
        )
    if label_changes:
        lines.append(
            f"⚠️ **The optimiser changed {_plural(len(label_changes), 'label')} without a person's "
            "approval**: check them under *Label changes* below. This pull request is labelled "
            f"{markdown.inline_code(LABEL)} and is never merged automatically."
        )
    return lines


def value(v: Any, limit: int = 60) -> str:
    """A label or verdict as a table cell."""
    if v is None:
        return "—"
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return markdown.code_cell(text)


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _row(r: ReviewEvidence) -> str:
    review = r.review
    test_set = _cut(review.test_set_name, 60)
    where = f"{markdown.cell(test_set)} (id {review.test_set_id})" if test_set else f"id {review.test_set_id}"
    if review.test_set_id is None:
        where = markdown.cell(test_set) if test_set else "—"
    return (
        f"| {review.id} | {r.flip.value} | {where} | {value(review.expected)} | {value(review.actual)} "
        f"| {value(r.after)} | {markdown.cell(_cut(r.explanation, EXPLANATION_CHARS))} |"
    )


HEADER = (
    "| review | verdict | test set | expected | before | after | the judge's explanation (after) |\n"
    "|---|---|---|---|---|---|---|"
)


def evidence_section(
    evidence: Evidence, metric_link: str, budget: int = EVIDENCE_BUDGET, *, title: str = "### Evidence"
) -> str:
    """Counts and the table of fixed and broken reviews (broken first)."""
    counts = (
        f"**{evidence.fixed}** fixed · **{evidence.broken}** broken · "
        f"**{evidence.count(Flip.STILL_WRONG)}** still wrong · "
        f"**{evidence.count(Flip.STILL_RIGHT)}** still right"
    )
    lines = [
        title,
        "",
        f"{counts} — of the {len(evidence.rows)} labelled reviews the proposal was scored on "
        "(before: the Lab's current verdict; after: the proposal's).",
    ]
    flipped = evidence.of(Flip.BROKEN) + evidence.of(Flip.FIXED)
    if not flipped:
        return "\n".join(lines)
    if metric_link:
        lines += ["", f"Reviews by id in {metric_link}."]
    rows = [_row(r) for r in flipped]
    shown, used = [], sum(len(line) + 1 for line in lines) + 2 * len(HEADER) + 200
    for row in rows:
        if used + len(row) + 1 > budget:
            break
        shown.append(row)
        used += len(row) + 1
    lines += ["", HEADER, *shown[:VISIBLE_ROWS]]
    folded = shown[VISIBLE_ROWS:]
    if folded:
        lines += [
            "",
            f"<details><summary>{len(folded)} more fixed or broken review(s)</summary>",
            "",
            HEADER,
            *folded,
            "",
            "</details>",
        ]
    if len(shown) < len(rows):
        lines += ["", f"_{len(rows) - len(shown)} more not listed (GitHub's body size limit)._"]
    return "\n".join(lines)


def label_changes_section(changes: Sequence[LabelChange], budget: int = LABELS_BUDGET) -> str:
    """What each unapproved label change did, on which review."""
    lines = [
        "### Label changes nobody approved",
        "",
        "The optimiser reports these changes to the labels it was scored against. A proposal "
        "tuned to labels it changed itself proves little: check each one in the Lab.",
        "",
        "| review | reported as | what changed | before | after | detail |",
        "|---|---|---|---|---|---|",
    ]
    used = sum(len(line) + 1 for line in lines) + 200
    for n, change in enumerate(changes):
        kind = "feedback edit" if change.kind == "feedback_edit" else "unauthorized change"
        review = str(change.review_id) if change.review_id is not None else "—"
        what = {"expected_value": "label", "feedback": "feedback"}.get(change.field, "—")
        limit = 200 if change.field == "feedback" else 60
        row = (
            f"| {review} | {kind} | {what} | {value(change.before, limit)} | {value(change.after, limit)} "
            f"| {markdown.cell(_cut(change.note, 200))} |"
        )
        if used + len(row) > budget:
            lines.append(f"\n_{len(changes) - n} more not listed (GitHub's body size limit)._")
            break
        lines.append(row)
        used += len(row) + 1
    return "\n".join(lines)


def unresolved_section(samples: Sequence[UnresolvedSample], budget: int = UNRESOLVED_BUDGET) -> str:
    """The samples the optimiser could not resolve, folded."""
    lines = [
        f"<details><summary>Unresolved samples ({len(samples)})</summary>",
        "",
        "| review | verdict | pass rate | explanation |",
        "|---|---|---|---|",
    ]
    used = sum(len(line) + 1 for line in lines) + 200
    for n, sample in enumerate(samples):
        review = str(sample.review_id) if sample.review_id is not None else "—"
        row = (
            f"| {review} | {markdown.cell(_cut(sample.verdict, 40)) or '—'} "
            f"| {markdown.cell(_cut(sample.pass_rate, 20)) or '—'} "
            f"| {markdown.cell(_cut(sample.explanation, 300))} |"
        )
        if used + len(row) > budget:
            lines.append(f"\n_{len(samples) - n} more not listed._")
            break
        lines.append(row)
        used += len(row) + 1
    return "\n".join([*lines, "", "</details>"])

"""Pull request bodies: the tool's section, its hidden machine block, and the human's part.

Only the text between the BEGIN and END markers belongs to the tool; anything a human
writes outside them survives every update. The machine block carries ids and hashes only
(never prompt text), so it can always be parsed back and cannot be broken out of.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cekura_gitops import diffs, evidence_body, markdown, scores
from cekura_gitops.evidence import Evidence, LabelChange, UnresolvedSample
from cekura_gitops.scores import Score

BEGIN = "<!-- cekura-gitops:begin -->"
END = "<!-- cekura-gitops:end -->"
MACHINE = re.compile(r"<!-- cekura-gitops (\{.*?\}) -->")
MAX_BODY = 65_536
MAX_SUMMARY = 8_000  # the optimiser's summary is untrusted and unbounded
HUMAN_EDIT_MARKER = "<!-- cekura-gitops:human-edit -->"


@dataclass(frozen=True)
class FieldDiff:
    name: str
    before: Any
    after: Any


def machine_block(data: Mapping[str, Any]) -> str:
    # "--" could end the HTML comment; JSON may spell "-" as \u002d instead.
    text = json.dumps(dict(data), sort_keys=True, separators=(",", ":")).replace("--", "-\\u002d")
    return f"<!-- cekura-gitops {text} -->"


def read_machine(body: str | None) -> dict[str, Any]:
    """The machine block of a PR body, or {} (a human may have removed it).

    The real block is the last one before the section's end: prompt text in the diffs
    above it may hold a look-alike.
    """
    text = body or ""
    end = text.rfind(END)
    matches = MACHINE.findall(text[:end] if end >= 0 else text)
    if not matches:
        return {}
    try:
        data = json.loads(matches[-1])
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def merge_body(existing: str | None, section: str) -> str:
    """Replace the tool's section in existing, keeping what a human wrote around it."""
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    if not existing:
        return block + "\n"
    # The last END: prompt text inside the section's diffs may contain the marker too.
    start, end = existing.find(BEGIN), existing.rfind(END)
    if start >= 0 and end > start:
        return existing[:start] + block + existing[end + len(END) :]
    return block + "\n\n" + existing


def _diff_blocks(fields: Sequence[FieldDiff], budget: int) -> str:
    parts = []
    for f in fields:
        diff = diffs.field_diff(f.name, f.before, f.after, old_label="a", new_label="b")
        parts.append((f.name, diff))
    out = []
    remaining = budget
    for name, diff in parts:
        if len(diff) + 200 > remaining:
            keep = max(0, remaining - 400)
            cut = diff[:keep].rsplit("\n", 1)[0] + "\n" if keep else ""
            note = (
                f"_Diff of {markdown.inline_code(name)} truncated to fit GitHub's body limit; "
                "see the branch._"
            )
            out.append(f"#### {markdown.inline_code(name)}\n\n{markdown.fence(cut, 'diff')}\n\n{note}")
            remaining = 0
            continue
        out.append(f"#### {markdown.inline_code(name)}\n\n{markdown.fence(diff, 'diff')}")
        remaining -= len(diff) + 200
    return "\n\n".join(out)


def proposal_section(
    *,
    slug: str,
    name: str,
    metric_id: int | None,
    dashboard_url: str,
    old_score: str | None,
    new_score: str | None,
    summary: str,
    unresolved: Sequence[UnresolvedSample],
    fields: Sequence[FieldDiff],
    machine: Mapping[str, Any],
    auto_merge_note: str = "",
    evidence: Evidence | None = None,
    label_changes: Sequence[LabelChange] = (),
    holdout: HoldoutScores | None = None,
    holdout_note: str = "",
) -> str:
    link = f"[open in Cekura]({dashboard_url}/metrics/{metric_id})" if metric_id else ""
    warnings = evidence_body.warnings(evidence, label_changes)
    head = [*(line + "\n" for line in warnings)]
    head += [
        f"## Cekura optimiser proposal for {markdown.inline_code(slug)}",
        "",
        f"**Metric:** {markdown.one_line(name)} (id {metric_id}) · {link}".rstrip(" ·"),
        "",
        *_scores_table(old_score, new_score, holdout),
        "",
    ]
    if holdout_note:
        head += [f"_Held-out guard: {markdown.one_line(holdout_note)}_", ""]
    metric_link = f"[the metric's Lab]({dashboard_url}/metrics/{metric_id})" if metric_id else ""
    if evidence is not None:
        head += [evidence_body.evidence_section(evidence, metric_link), ""]
    if holdout is not None and holdout.evidence is not None:
        title = "### Evidence on held-out reviews (the optimiser never saw them)"
        head += [evidence_body.evidence_section(holdout.evidence, "", title=title), ""]
    if label_changes:
        head += [evidence_body.label_changes_section(label_changes), ""]
    head += _quoted_summary(summary)
    tail = []
    if unresolved:
        tail += [evidence_body.unresolved_section(unresolved), ""]
    tail += [
        "---",
        "Merging applies this change to Cekura (`cekura-gitops apply` on the default branch). "
        "Closing without merging rejects it: the same proposal is not proposed again, though new "
        "labels in the Lab may produce a new one. To edit the proposal, push your own commits: the "
        "bot then leaves this branch to you.",
    ]
    if auto_merge_note:
        tail += ["", auto_merge_note]
    tail += ["", machine_block(machine)]
    fixed = "\n".join(head) + "\n### Changes\n\n" + "\n".join(tail)
    budget = MAX_BODY - len(fixed) - len(BEGIN) - len(END) - 2000
    return "\n".join(head) + "### Changes\n\n" + _diff_blocks(fields, budget) + "\n\n" + "\n".join(tail)


def _quoted_summary(summary: str) -> list[str]:
    """The optimiser's summary as a quote (cut at MAX_SUMMARY), or nothing."""
    summary = summary.strip()
    if len(summary) > MAX_SUMMARY:
        summary = summary[:MAX_SUMMARY] + " … (truncated)"
    if not summary:
        return []
    quoted = "\n".join("> " + line for line in markdown.prose(summary).splitlines())
    return ["### What the optimiser says", "", quoted, "", ""]


@dataclass(frozen=True)
class HoldoutScores:
    """The held-out guard's two scores and what the proposal did to those reviews."""

    old: Score
    new: Score
    evidence: Evidence | None = None


def _scores_table(old: str | None, new: str | None, holdout: HoldoutScores | None) -> list[str]:
    rows = [
        "| | baseline | proposed |",
        "|---|---|---|",
    ]
    if holdout is None:
        rows.append(f"| score on the Lab's labelled reviews | {old or '?'} | {new or '?'} |")
    else:
        rows += [
            f"| training reviews (the optimiser's score) | {old or '?'} | {new or '?'} |",
            f"| held-out reviews (never shown to the optimiser; the guard) | {scores.text(holdout.old)} "
            f"| {scores.text(holdout.new)} |",
        ]
    return rows


def drift_section(
    *,
    slug: str,
    metric_id: int | None,
    dashboard_url: str,
    base_branch: str,
    fields: Sequence[FieldDiff],
    machine: Mapping[str, Any],
) -> str:
    link = f"[the metric in Cekura]({dashboard_url}/metrics/{metric_id})" if metric_id else "the metric"
    head = [
        f"## Drift: {markdown.inline_code(slug)} was changed in Cekura",
        "",
        f"The live definition of {link} no longer matches {markdown.inline_code(base_branch)}. Someone (or "
        "something) changed it outside git: a dashboard edit, or Cekura's own auto-apply "
        "optimiser schedule. Until this is resolved, `sync` does not optimise this metric.",
        "",
        "This pull request brings the live values into git. Two ways to resolve it:",
        "",
        "1. **Accept the live version:** merge this pull request. (`apply` then finds live "
        "already equal to git and changes nothing.)",
        "2. **Restore git's version:** close this pull request and run "
        + markdown.inline_code(f"cekura-gitops apply --force --metric {slug}")
        + " (or re-run the apply workflow with force).",
        "",
        "### Live changes",
        "",
    ]
    tail = ["", machine_block(machine)]
    budget = MAX_BODY - len("\n".join(head + tail)) - 2000
    return "\n".join(head) + _diff_blocks(fields, budget) + "\n" + "\n".join(tail)


def human_edit_comment(branch: str, authors: Sequence[str]) -> str:
    who = ", ".join(markdown.inline_code(a) for a in sorted(set(authors)))
    return (
        f"{HUMAN_EDIT_MARKER}\n"
        f"cekura-gitops found commits by {who} on {markdown.inline_code(branch)}, so it will no "
        "longer update this branch: human edits win.\n\n"
        "To hand the branch back to the bot, delete it (or reset it to the bot's last commit); "
        "the next `sync` then rewrites it from the default branch."
    )

"""The "Cekura metrics dashboard" issue: one per repository, edited in place by sync/apply.

It replaces the summary emails of Cekura's own scheduler: the issue body always shows the
latest state of every managed metric, and — per `notify.on` — a run comment mentions the
configured people, which GitHub turns into notifications for the issue's watchers.
Per-metric rows live in the hidden machine block, so a run that touches a few metrics
keeps everyone else's row as it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cekura_gitops import markdown, prbody
from cekura_gitops.console import Console
from cekura_gitops.errors import GitHubAPIError
from cekura_gitops.githistory import ScorePoint
from cekura_gitops.github import GitHubClient, Issue
from cekura_gitops.scores import Score, pair
from cekura_gitops.statuses import ApplyStatus, SyncStatus

TITLE = "Cekura metrics dashboard"
LABEL = "cekura-gitops-dashboard"


@dataclass(frozen=True)
class Row:
    """What one command said about one metric."""

    slug: str
    status: SyncStatus | ApplyStatus
    old_score: Score | None = None
    new_score: Score | None = None
    pull_request: str = ""
    detail: str = ""

    @property
    def scores(self) -> str:
        if self.old_score is None and self.new_score is None:
            return ""
        return pair(self.old_score, self.new_score)


@dataclass(frozen=True)
class RunInfo:
    """The run the dashboard reports: what triggered it, its log, and whom to tell."""

    trigger: str  # the event's name, or "manual"
    url: str  # the Actions run's page, or ""
    notify_on: str
    mention: str = ""


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def publish(
    client: GitHubClient,
    console: Console,
    run: RunInfo,
    *,
    command: str,
    rows: Sequence[Row],
    managed: Sequence[str],
    failed: bool,
    history: Mapping[str, Sequence[ScorePoint]] | None = None,
) -> str | None:
    """Update the dashboard issue (best effort: a failure is a warning, never an error).

    `history` (merged proposals' scores per metric, rebuilt from git) is drawn as a chart
    and a table per metric.
    """
    try:
        return _publish(run, client, command, rows, managed, failed, history or {})
    except GitHubAPIError as err:
        console.warn(f"could not update the dashboard issue: {err}")
        return None


def _publish(
    info: RunInfo,
    client: GitHubClient,
    command: str,
    rows: Sequence[Row],
    managed: Sequence[str],
    failed: bool,
    history: Mapping[str, Sequence[ScorePoint]],
) -> str:
    issue = _find(client)
    state = prbody.read_machine(issue.body if issue else None)
    table: dict[str, dict[str, Any]] = {
        k: v for k, v in (state.get("rows") or {}).items() if k in managed and isinstance(v, dict)
    }
    now = _now()
    for row in rows:
        entry = table.setdefault(row.slug, {})
        entry[command] = {"status": row.status.value, "at": now, "detail": row.detail[:300]}
        if row.scores:
            entry["scores"] = row.scores
        if command == "sync":
            entry["pr"] = row.pull_request
    trigger = info.trigger
    run = {"command": command, "at": now, "trigger": trigger, "failed": failed, "url": info.url}
    history = {k: v for k, v in history.items() if k in managed}
    body = _body(issue.body if issue else None, table, run, rows, history)
    if issue is None:
        issue = client.create_issue(title=TITLE, body=body, labels=[LABEL])
    elif body != issue.body or issue.state != "open":
        issue = client.update_issue(issue.number, body=body, state="open")
    if _should_notify(info.notify_on, failed):
        mention = f" {info.mention}" if info.mention else ""
        outcome = "failed" if failed else "succeeded"
        lines = [f"`cekura-gitops {command}` {outcome} ({trigger}, {now}).{mention}"]
        lines += [
            f"- {markdown.inline_code(r.slug)}: {r.status.value}"
            + (f" — {markdown.one_line(r.detail[:200])}" if r.detail else "")
            for r in rows
            if r.status in NOTIFY
        ][:50]
        if run["url"]:
            lines.append(f"\n[Run log]({run['url']})")
        client.create_comment(issue.number, "\n".join(lines))
    return issue.html_url


# Ways to shrink the body, least loss first: (quiet rows, details kept, history drawn as).
_SHRINK = (
    (False, True, "charts"),
    (False, False, "charts"),
    (True, False, "charts"),
    (True, False, "tables"),
    (True, False, "none"),
)


def _body(
    existing: str | None,
    table: dict[str, dict[str, Any]],
    run: Mapping[str, Any],
    rows: Sequence[Row],
    history: Mapping[str, Sequence[ScorePoint]] | None = None,
) -> str:
    """The issue body, shrunk to fit GitHub's 65,536-character limit for large repositories."""
    for quiet, keep_details, drawn in _SHRINK:
        rows_json = table if keep_details else {k: _without_details(v) for k, v in table.items()}
        block = prbody.machine_block({"version": 1, "kind": "dashboard", "rows": rows_json, "last_run": run})
        text = _render(rows_json, run, rows, quiet=quiet)
        if history and drawn != "none":
            text += "\n\n" + history_section(history, charts=drawn == "charts")
        body = prbody.merge_body(existing, text + "\n\n" + block)
        if len(body) <= prbody.MAX_BODY - 1000:
            return body
    return body


def _without_details(entry: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(entry)
    for command in ("sync", "apply"):
        if isinstance(out.get(command), dict):
            out[command] = {k: v for k, v in out[command].items() if k != "detail"}
    return out


# Rows a shrunk body leaves out: nothing to act on. The table holds the statuses as stored
# in the issue (JSON strings, "—" for a command that never ran on the metric).
QUIET = frozenset(
    {
        *(
            s.value
            for s in (
                SyncStatus.NO_CHANGE,
                SyncStatus.NOT_IMPROVED,
                SyncStatus.NO_NEW_FEEDBACK,
                SyncStatus.NOT_ENOUGH_FEEDBACK,
                ApplyStatus.IN_SYNC,
            )
        ),
        "—",
    }
)
# Rows a run comment lists: what someone may want to look at.
NOTIFY = frozenset(
    {
        SyncStatus.ERROR,
        SyncStatus.PROPOSED,
        SyncStatus.UPDATED,
        SyncStatus.DRIFT,
        ApplyStatus.ERROR,
        ApplyStatus.CONFLICT,
        ApplyStatus.APPLIED,
    }
)


def _find(client: GitHubClient) -> Issue | None:
    for state in ("open", "all"):
        found = [i for i in client.list_issues(labels=[LABEL], state=state) if i.title == TITLE]
        if found:
            return sorted(found, key=lambda i: i.number)[0]
    return None


def _should_notify(on: str, failed: bool) -> bool:
    return on == "both" or (on == "failure" and failed) or (on == "success" and not failed)


def _render(
    table: Mapping[str, Mapping[str, Any]],
    run: Mapping[str, Any],
    rows: Sequence[Row],
    *,
    quiet: bool = False,
) -> str:
    outcome = "**failed**" if run["failed"] else "ok"
    link = f" · [run log]({run['url']})" if run["url"] else ""
    lines = [
        "## Cekura metrics dashboard",
        "",
        f"Last run: `{run['command']}` at {run['at']} (trigger: {markdown.one_line(str(run['trigger']))}) — "
        f"{outcome}{link}",
        "",
        "| metric | last sync | scores | pull request | last apply | note |",
        "|---|---|---|---|---|---|",
    ]
    omitted = 0
    for slug in sorted(table):
        entry = table[slug]
        sync, apply = entry.get("sync") or {}, entry.get("apply") or {}
        if quiet and sync.get("status", "—") in QUIET and apply.get("status", "—") in QUIET:
            omitted += 1
            continue
        note = (sync.get("detail") or apply.get("detail") or "")[:140]
        lines.append(
            f"| {markdown.code_cell(slug)} | {sync.get('status', '—')} "
            f"| {markdown.cell(entry.get('scores', ''))} | {entry.get('pr') or ''} "
            f"| {apply.get('status', '—')} | {markdown.cell(note)} |"
        )
    if omitted:
        lines += ["", f"_{omitted} metric(s) with nothing to act on are not listed (body size limit)._"]
    capped = [r.slug for r in rows if r.status is SyncStatus.SKIPPED_CAP]
    if capped:
        lines += [
            "",
            f"Skipped by pull request caps this run: {', '.join(markdown.inline_code(s) for s in capped)}",
        ]
    lines += [
        "",
        "_Edited in place by cekura-gitops on every sync and apply; text you add outside this "
        "section is kept._",
    ]
    return "\n".join(lines)


def _chart(slug: str, points: Sequence[ScorePoint]) -> str:
    """A Mermaid line chart: the score before the first merged proposal, then after each."""
    labels = ["before"]
    values = [ScorePoint.fraction(points[0].old)]
    for p in points:
        day = dt.datetime.fromtimestamp(p.at, dt.timezone.utc).strftime("%Y-%m-%d")
        label, n = day, 2
        while label in labels:
            label, n = f"{day} ({n})", n + 1
        labels.append(label)
        values.append(ScorePoint.fraction(p.new))
    shown = [(lab, round(100 * v, 1)) for lab, v in zip(labels, values, strict=True) if v is not None]
    axis = ", ".join(f'"{lab}"' for lab, _ in shown)
    line = ", ".join(f"{v:g}" for _, v in shown)
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'    title "{slug}"',  # slugs are [A-Za-z0-9_-] (schema): safe in quotes
            f"    x-axis [{axis}]",
            '    y-axis "score on labelled reviews (%)" 0 --> 100',
            f"    line [{line}]",
            "```",
        ]
    )


def _history_table(points: Sequence[ScorePoint]) -> str:
    rows = [
        "| merged | commit | score | held-out score |",
        "|---|---|---|---|",
    ]
    for p in points:
        day = dt.datetime.fromtimestamp(p.at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        held = f"{p.holdout_old} → {p.holdout_new}" if p.holdout_old and p.holdout_new else ""
        rows.append(f"| {day} | `{p.sha[:10]}` | {p.old} → {p.new} | {held} |")
    return "\n".join(rows)


def history_section(history: Mapping[str, Sequence[ScorePoint]], *, charts: bool = True) -> str:
    """Per metric: its merged proposals' scores over time, as a chart and a plain table."""
    if not history:
        return ""
    lines = [
        "### Score history of merged proposals",
        "",
        "_Rebuilt from the default branch's commits on every run (git is the record)._",
    ]
    for slug, points in sorted(history.items()):
        if not points:
            continue
        lines += ["", f"#### {markdown.inline_code(slug)}", ""]
        if charts:
            lines += [_chart(slug, points), ""]
        lines.append(_history_table(points))
    return "\n".join(lines)

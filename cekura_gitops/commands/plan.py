"""`cekura-gitops plan`: compare the repository with live Cekura, per metric and field."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from cekura_gitops import changes, diffs, markdown
from cekura_gitops.changes import MetricPlan, PlanStatus
from cekura_gitops.clients import cekura_client
from cekura_gitops.console import Console
from cekura_gitops.errors import EXIT_CHANGES
from cekura_gitops.live import fetch_live
from cekura_gitops.metricsdir import load_files
from cekura_gitops.selection import select
from cekura_gitops.settings import Settings

if TYPE_CHECKING:
    from cekura_gitops.scoring import PlanScore


def plan(
    settings: Settings,
    console: Console,
    *,
    selectors: Sequence[str] = (),
    detailed_exitcode: bool = False,
    fmt: str = "text",
    score: bool = False,
    offline: bool = False,
    comment: bool = False,
) -> int:
    """Compare every (or each named) metric file with live Cekura. Read-only."""
    files = select(load_files(settings), selectors)
    if offline or (not settings.cekura_api_key and settings.github_event_name == "pull_request"):
        text = _offline(settings, console, len(files), fmt, explicit=offline)
        if comment:
            _comment(settings, console, text)
        return 0
    with cekura_client(settings) as client:
        live = fetch_live(
            client, files, concurrency=settings.concurrency, default_project=settings.cekura_project
        )
        plans = [changes.plan_metric(f.metric, f.display, live.find(f)) for f in files]
        if not selectors:
            listed = [m for m in live.by_id.values() if m.project in live.listed_projects]
            plans += changes.unmanaged(
                listed,
                {f.metric.id for f in files if f.metric.id is not None},
                {f.metric.slug for f in files},
            )
        scores: dict[str, PlanScore] = {}
        if score:
            from cekura_gitops.scoring import score_changes

            scores = score_changes(client, files, plans, console)
    if settings.json_output:
        console.emit_json(
            {
                "metrics": [_plan_json(p, scores.get(p.slug)) for p in plans],
                "summary": _summary(plans),
            }
        )
    text = render_markdown(plans, scores)
    if fmt == "markdown":
        if settings.json_output:
            console.err(text)
        else:
            console.untrusted(text)
    elif not settings.json_output:
        render_text(console, plans, scores)
    pending = [p for p in plans if p.status in (PlanStatus.CHANGED, PlanStatus.MISSING_LIVE)]
    _actions_report(settings, plans, text)
    if comment:
        _comment(settings, console, text)
    return EXIT_CHANGES if detailed_exitcode and pending else 0


def _actions_report(settings: Settings, plans: Sequence[MetricPlan], text: str) -> None:
    from cekura_gitops import actions

    if settings.github_output:
        changed = sum(p.status in (PlanStatus.CHANGED, PlanStatus.MISSING_LIVE) for p in plans)
        actions.write_outputs(
            settings.github_output,
            {"changed": str(changed), "result": json.dumps([_plan_json(p, None) for p in plans])},
        )
    if settings.github_step_summary:
        actions.append_summary(settings.github_step_summary, text)


def _comment(settings: Settings, console: Console, text: str) -> None:
    """Post or update the one sticky plan comment on the pull request of this event."""
    from cekura_gitops import actions
    from cekura_gitops.clients import github_client
    from cekura_gitops.errors import GitHubAPIError
    from cekura_gitops.pullrequests import upsert_sticky_comment

    number = actions.pull_request_number(settings.github_event_path)
    if number is None or not settings.github_configured:
        console.warn(
            "--comment needs a pull_request event, GITHUB_TOKEN and GITHUB_REPOSITORY; not commenting"
        )
        return
    try:
        with github_client(settings) as client:
            url = upsert_sticky_comment(client, number, text)
        console.say(f"plan comment: {url}")
    except GitHubAPIError as err:
        # A fork's token is read-only: the plan itself still succeeded.
        console.warn(f"could not post the plan comment (a fork pull request's token is read-only?): {err}")


def _offline(settings: Settings, console: Console, count: int, fmt: str, *, explicit: bool) -> str:
    reason = "--offline" if explicit else "no CEKURA_API_KEY (fork pull requests get no secrets)"
    message = f"plan ran offline ({reason}): {count} metric file(s) valid; live comparison skipped."
    if settings.json_output:
        console.emit_json({"offline": True, "metrics": [], "summary": {"valid": count}})
    text = f"### cekura-gitops plan\n\n{message}\n"
    if fmt == "markdown":
        console.say(text)
    else:
        console.warn(message)
    if settings.github_step_summary:
        from cekura_gitops import actions

        actions.append_summary(settings.github_step_summary, text)
    return text


def _summary(plans: Sequence[MetricPlan]) -> dict[str, int]:
    counts = {s.value: 0 for s in PlanStatus}
    for p in plans:
        counts[p.status.value] += 1
    return counts


def _plan_json(p: MetricPlan, score: PlanScore | None) -> dict[str, object]:
    doc: dict[str, object] = {"slug": p.slug, "id": p.id, "status": p.status.value, "path": p.path}
    if p.changes:
        doc["changes"] = [
            {
                "field": c.name,
                "live": diffs.as_text(c.live) if not isinstance(c.live, bool) else c.live,
                "repo": diffs.as_text(c.desired) if not isinstance(c.desired, bool) else c.desired,
                "diff": diffs.field_diff(c.name, c.live, c.desired, old_label="live", new_label="repo"),
            }
            for c in p.changes
        ]
    if score is not None:
        doc["score"] = {"live": score.live_text, "repo": score.repo_text}
    return doc


def render_text(console: Console, plans: Sequence[MetricPlan], scores: Mapping[str, PlanScore]) -> None:
    for p in plans:
        where = f" ({p.path})" if p.path else ""
        console.say(f"{p.slug}: {p.status.human}{where}")
        for c in p.changes:
            console.untrusted(
                diffs.field_diff(c.name, c.live, c.desired, old_label="live", new_label="repo").rstrip("\n")
            )
        if p.slug in scores:
            console.say(f"  score: {scores[p.slug]}")
    counts = _summary(plans)
    console.say(
        f"\n{counts['changed']} changed, {counts['in-sync']} in sync, "
        f"{counts['missing-live']} missing live, {counts['unmanaged']} unmanaged."
    )
    if counts["changed"] or counts["missing-live"]:
        console.say("Merging these files to the default branch runs `cekura-gitops apply`.")


def render_markdown(plans: Sequence[MetricPlan], scores: Mapping[str, PlanScore] | None = None) -> str:
    scores = scores or {}
    counts = _summary(plans)
    lines = [
        "### cekura-gitops plan",
        "",
        f"**{counts['changed']}** changed · **{counts['in-sync']}** in sync · "
        f"**{counts['missing-live']}** missing live · **{counts['unmanaged']}** unmanaged",
        "",
        "| metric | status | fields |",
        "|---|---|---|",
    ]
    for p in plans:
        fields = ", ".join(c.name for c in p.changes) or "—"
        lines.append(f"| {markdown.code_cell(p.slug)} | {p.status.human} | {fields} |")
    for p in plans:
        if not p.changes:
            continue
        lines += [
            "",
            f"<details><summary>{markdown.one_line(p.slug)}: {len(p.changes)} field(s)</summary>",
            "",
        ]
        if p.slug in scores:
            lines += [f"Score: {markdown.one_line(str(scores[p.slug]))}", ""]
        for c in p.changes:
            diff = diffs.field_diff(c.name, c.live, c.desired, old_label="live", new_label="repo")
            lines += [markdown.fence(diff, "diff"), ""]
        lines.append("</details>")
    return "\n".join(lines) + "\n"

"""`cekura-gitops apply`: PATCH the metric changes between two commits, three-way guarded."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cekura_gitops import (
    actions,
    changes,
    crashpoints,
    dashboard,
    diffs,
    githistory,
    metric_files,
    selection,
    yamltext,
)
from cekura_gitops.cekura import CekuraClient
from cekura_gitops.changes import GuardResult
from cekura_gitops.clients import cekura_client, git_repo, github_client
from cekura_gitops.console import Console
from cekura_gitops.defaultbranch import default_branch
from cekura_gitops.errors import CekuraAPIError, ConfigError, GitError, GitOpsError, MetricValidationError
from cekura_gitops.gitrepo import FileChange, GitRepo, Identity
from cekura_gitops.metric import Metric, live_value, normalise, thaw
from cekura_gitops.metric_files import MetricFile
from cekura_gitops.metricsdir import metrics_folder
from cekura_gitops.pool import parallel_map
from cekura_gitops.replies import LiveMetric
from cekura_gitops.settings import Settings
from cekura_gitops.statestore import StateStore
from cekura_gitops.statuses import ApplyStatus


@dataclass(frozen=True)
class ApplyResult:
    slug: str
    id: int | None
    path: str
    status: ApplyStatus
    fields: tuple[str, ...] = ()
    detail: str = ""
    diff: str = ""
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "slug": self.slug,
            "id": self.id,
            "path": self.path,
            "status": self.status.value,
        }
        if self.fields:
            doc["fields"] = list(self.fields)
        if self.detail:
            doc["detail"] = self.detail
        if self.diff:
            doc["diff"] = self.diff
        if self.dry_run:
            doc["dry_run"] = True
        return doc


@dataclass(frozen=True)
class Job:
    """One changed metric file: its base and head versions."""

    change: FileChange
    base: MetricFile | None
    head: MetricFile | None
    head_sha: str


def apply(
    settings: Settings,
    console: Console,
    *,
    base: str | None = None,
    head: str | None = None,
    selectors: Sequence[str] = (),
    force: bool = False,
    dry_run: bool = False,
) -> int:
    """Apply what changed in the metrics folder between base and head."""
    repo = git_repo(settings)
    remote = settings.remote if repo.has_remote(settings.remote) else None
    store = StateStore(repo, remote, Identity(settings.author_name, settings.author_email))
    records = not dry_run and not selectors
    # Asked before anything is PATCHed: a marker that cannot be recorded must fail loudly.
    branch = default_branch(settings, repo, remote) if records and remote else None
    base, head, why = _range(settings, repo, store, remote, base, head)
    rel = metrics_folder(settings, repo)
    _require_folder(repo, rel, base, head)
    head_sha = repo.rev_parse(head) or head
    jobs, problems, known = _jobs(repo, base, head, rel, head_sha)
    if selectors:
        # Before anything is said or sent: a typo is an error, not "nothing changed".
        selection.require_known(selectors, known)
        jobs = [j for j in jobs if _named(j, selectors)]
    console.say(
        f"apply: {len(jobs)} changed metric file(s) in {base[:12]}..{head[:12]} ({why})"
        f"{' (dry run)' if dry_run else ''}"
    )
    results = [ApplyResult(p[0], None, p[0], ApplyStatus.ERROR, detail=p[1]) for p in problems]
    if jobs:
        with cekura_client(settings) as client:
            results += parallel_map(
                lambda j: _guarded(client, settings, j, force=force, dry_run=dry_run),
                jobs,
                settings.concurrency,
            )
    if records and not any(r.status.failed for r in results):
        _record_applied(console, repo, store, remote, branch, head_sha)
    code = report(settings, console, results, dry_run=dry_run)
    if not dry_run and results:
        _publish_dashboard(settings, console, results, repo, head, rel, failed=code != 0)
    return code


def _publish_dashboard(
    settings: Settings,
    console: Console,
    results: Sequence[ApplyResult],
    repo: GitRepo,
    head: str,
    rel: str,
    *,
    failed: bool,
) -> None:
    rows = [dashboard.Row(r.slug, r.status, detail=r.detail) for r in results]
    managed = _managed_slugs(settings, repo, head)
    history = githistory.score_history(repo, head, rel)
    if not settings.github_configured:
        return
    run = dashboard.RunInfo(
        trigger=settings.github_event_name or "manual",
        url=actions.run_url(settings.github_server_url, settings.github_repository, settings.github_run_id),
        notify_on=settings.notify_on,
        mention=settings.notify_mention,
    )
    with github_client(settings) as github:
        dashboard.publish(
            github, console, run, command="apply", rows=rows, managed=managed, failed=failed, history=history
        )


def _require_folder(repo: GitRepo, rel: str, base: str, head: str) -> None:
    """A metrics folder in neither commit is a typo (--metrics-dir), not "nothing changed"."""
    if not repo.tree_entries(head, rel) and not repo.tree_entries(base, rel):
        raise ConfigError(
            f"no metrics folder {rel!r} in git at {head[:12]} or {base[:12]}: check --metrics-dir "
            "(default: metrics) or metrics_dir in cekura-gitops.yaml"
        )


def _managed_slugs(settings: Settings, repo: GitRepo, head: str) -> list[str]:
    rel = metrics_folder(settings, repo)
    return [Path(p).stem for p in repo.list_files(head, rel) if p.endswith(metric_files.SUFFIXES)]


def _range(
    settings: Settings,
    repo: GitRepo,
    store: StateStore,
    remote: str | None,
    base: str | None,
    head: str | None,
) -> tuple[str, str, str]:
    """(base, head, why): --base, else the last fully applied commit, else the push, else HEAD~1."""
    event = (
        actions.push_range(settings.github_event_name, settings.github_event_path)
        if base is None or head is None
        else None
    )
    head = head or (event[1] if event else "HEAD")
    head_sha = repo.rev_parse(head)
    if head_sha is None:
        raise GitOpsError(f"unknown revision {head!r}: fetch full history (actions/checkout fetch-depth: 0)")
    why = "--base"
    if base is None:
        applied = store.load().applied
        if applied and _reach(repo, remote, head_sha, applied):
            base, why = applied, "since the last applied commit"
        elif event:
            base, why = event[0], "the push"
            _reach(repo, remote, head_sha, base)
        else:
            _reach(repo, remote, head_sha, None)
            base, why = repo.rev_parse(f"{head_sha}~1"), "the last commit"
            if base is None:
                raise GitOpsError(
                    f"{head} has no parent commit: pass --base REV (e.g. the commit before your metrics)"
                )
    else:
        _reach(repo, remote, head_sha, base)
    if repo.rev_parse(base) is None:
        hint = (
            "fetch full history (actions/checkout fetch-depth: 0)"
            if repo.is_shallow()
            else "it is not in this repository (rewritten by a force push?): pass --base REV"
        )
        raise GitOpsError(f"unknown revision {base!r}: {hint}")
    return base, head, why


def _reach(repo: GitRepo, remote: str | None, head: str, base: str | None) -> bool:
    """Whether base (None: head's parent) is an ancestor of head, fetching more history
    first when the clone is shallow (actions/checkout's default is one commit): a range
    whose base is missing would otherwise be misread, or apply nothing."""
    for step in (DEEPEN_FIRST, 0):
        if _connected(repo, head, base):
            return True
        if not repo.is_shallow():
            return False
        if remote is None:
            raise GitOpsError(
                "this checkout is shallow and has no remote to fetch its history from: "
                "set `fetch-depth: 0` on actions/checkout, or pass --base REV"
            )
        try:
            repo.deepen(remote, head, step)
        except GitError as err:
            raise GitOpsError(
                f"this checkout is shallow and fetching its history from {remote!r} failed ({err}): "
                "set `fetch-depth: 0` on actions/checkout"
            ) from None
    return _connected(repo, head, base)


DEEPEN_FIRST = 50  # commits: enough for a dropped apply run or two; else all history


def _connected(repo: GitRepo, head: str, base: str | None) -> bool:
    if base is None:
        return repo.rev_parse(f"{head}~1") is not None
    return repo.rev_parse(base) is not None and repo.is_ancestor(base, head)


def _record_applied(
    console: Console, repo: GitRepo, store: StateStore, remote: str | None, branch: str | None, sha: str
) -> None:
    """Remember how far apply got, if sha is on the default branch (best effort)."""
    if remote and (branch is None or not _on_branch(repo, remote, branch, sha)):
        return  # not deployed from the default branch: leave the marker alone
    try:
        store.update(
            lambda s: s if s.applied and repo.is_ancestor(sha, s.applied) else replace(s, applied=sha),
            f"applied {sha[:12]}",
        )
    except GitOpsError as err:
        console.warn(
            f"could not record the applied commit in the state ref ({err}); the next apply "
            "starts from its push instead"
        )


def _on_branch(repo: GitRepo, remote: str, branch: str, sha: str) -> bool:
    """sha is on the remote's branch (the local tracking ref first, else fetched fresh)."""
    tracking = f"refs/remotes/{remote}/{branch}"
    tip = repo.rev_parse(tracking)
    if tip is not None and repo.is_ancestor(sha, tip):
        return True
    tip = repo.fetch_optional(remote, f"refs/heads/{branch}", tracking)
    return tip is not None and repo.is_ancestor(sha, tip)


SYMLINK = "120000"


def _jobs(
    repo: GitRepo, base: str, head: str, rel: str, head_sha: str
) -> tuple[list[Job], list[tuple[str, str]], list[selection.MetricKey]]:
    """The changed metric files, the problems of those that cannot be applied, and every
    metric known at head or base (what `--metric` may name)."""
    changes = [
        c
        for c in repo.changed_files(base, head, rel)
        if any(p.endswith(metric_files.SUFFIXES) for p in (c.old_path, c.new_path) if p)
    ]
    modes = repo.tree_entries(head, rel)
    at_head = [p for p in modes if p.endswith(metric_files.SUFFIXES)]
    # One git process reads every version this run needs (one per file is slow at scale).
    specs = [f"{base}:{c.old_path}" for c in changes if c.old_path] + [f"{head}:{p}" for p in at_head]
    blobs = repo.read_blobs(specs)
    jobs: list[Job] = []
    problems: list[tuple[str, str]] = []
    changed_heads = {c.new_path for c in changes if c.new_path}
    for change in changes:
        try:
            old = (
                metric_files.parse_blob(
                    blobs.get(f"{base}:{change.old_path}"),
                    change.old_path,
                    file_stem=Path(change.old_path).stem,
                )
                if change.old_path
                else None
            )
        except MetricValidationError:
            old = None  # an invalid base is no guard; head decides and conflicts surface
        new_path = change.new_path
        if new_path and modes.get(new_path) == SYMLINK:
            problems.append((new_path, "is a symlink; commit the metric file itself"))
            continue
        try:
            new = (
                metric_files.parse_blob(
                    blobs.get(f"{head}:{new_path}"), new_path, file_stem=Path(new_path).stem
                )
                if new_path
                else None
            )
        except MetricValidationError as err:
            problems.append((new_path or "?", f"invalid at {head[:12]}: {err}"))
            continue
        jobs.append(Job(change, old, new, head_sha))
    identities = _identities(blobs, head, at_head)
    clashes = _duplicates(identities, changed_heads)
    if clashes:
        problems += [(path, message) for path, message in clashes]
        jobs = [j for j in jobs if not (j.change.new_path and j.change.new_path in dict(clashes))]
    return jobs, problems, _known(identities, at_head, jobs)


def _identities(
    blobs: Mapping[str, bytes | None], head: str, paths: Sequence[str]
) -> list[tuple[str, Mapping[str, Any]]]:
    """(path, YAML data) of every metric file at head that parses as YAML."""
    identities: list[tuple[str, Mapping[str, Any]]] = []
    for path in paths:
        try:
            identities.append(
                (path, yamltext.parse(yamltext.decode(blobs.get(f"{head}:{path}") or b"", path), path).data)
            )
        except MetricValidationError:
            continue
    return identities


def _known(
    identities: Sequence[tuple[str, Mapping[str, Any]]], at_head: Sequence[str], jobs: Sequence[Job]
) -> list[selection.MetricKey]:
    """Every metric `--metric` may name: the files at head (by file name too, should one not
    parse) and those the range deletes."""
    known: list[selection.MetricKey] = [(Path(p).stem, None) for p in at_head]
    for _, data in identities:
        slug, mid = data.get("slug"), data.get("id")
        if isinstance(slug, str):
            known.append((slug, mid if isinstance(mid, int) else None))
    known += [(j.base.metric.slug, j.base.metric.id) for j in jobs if j.base is not None]
    return known


def _duplicates(
    identities: Sequence[tuple[str, Mapping[str, Any]]], changed: set[str]
) -> list[tuple[str, str]]:
    """Changed files claiming an id or slug another file at head claims too (never PATCH one
    metric from two files)."""
    out = []
    for (key, value), claimants in metric_files.identity_claims(identities).items():
        where = [path for path, _ in claimants]
        if len(where) > 1:
            for path in where:
                if path in changed:
                    others = ", ".join(p for p in where if p != path)
                    out.append((path, f"duplicate {key} {value!r}: also in {others}; not applied"))
    return out


def _named(job: Job, selectors: Sequence[str]) -> bool:
    metric = job.head or job.base
    assert metric is not None
    return any(selection.names(s, metric.metric.slug, metric.metric.id) for s in selectors)


def _guarded(
    client: CekuraClient, settings: Settings, job: Job, *, force: bool, dry_run: bool
) -> ApplyResult:
    f = job.head or job.base
    assert f is not None
    try:
        return _apply_one(client, settings, job, force=force, dry_run=dry_run)
    except GitOpsError as err:
        if err.stops_run:  # a refused key: one line for the run, not one per metric
            raise
        return ApplyResult(
            f.metric.slug, f.metric.id, f.display, ApplyStatus.ERROR, detail=str(err), dry_run=dry_run
        )


def _apply_one(
    client: CekuraClient, settings: Settings, job: Job, *, force: bool, dry_run: bool
) -> ApplyResult:
    if job.head is None:
        assert job.base is not None
        m = job.base.metric
        return ApplyResult(
            m.slug,
            m.id,
            job.base.display,
            ApplyStatus.DELETED,
            detail="file deleted; the live metric is left as it is (delete it in Cekura if intended)",
            dry_run=dry_run,
        )
    head = job.head.metric
    base = job.base.metric if job.base else None
    display = job.head.display
    live = _live(client, head)
    guard = changes.three_way(base, head, live)
    if guard is GuardResult.CREATE:
        return _create(client, job.head, dry_run=dry_run)
    assert live is not None
    if guard is GuardResult.IN_SYNC:
        return ApplyResult(head.slug, head.id, display, ApplyStatus.IN_SYNC, dry_run=dry_run)
    body = changes.patch_body(head, live)
    three = _three_way_diff(base, head, live)
    if guard is GuardResult.CONFLICT and not force:
        return ApplyResult(
            head.slug,
            head.id,
            display,
            ApplyStatus.CONFLICT,
            tuple(body),
            diff=three,
            dry_run=dry_run,
            detail="live changed behind git's back (dashboard edit or Cekura's auto-apply cron?): "
            "merge a drift PR from `sync`, or re-run with --force to overwrite live",
        )
    if dry_run:
        return ApplyResult(
            head.slug,
            head.id,
            display,
            ApplyStatus.WOULD_APPLY,
            tuple(body),
            diff=three,
            dry_run=True,
            detail="forced over a conflict" if guard is GuardResult.CONFLICT else "",
        )
    return _patch(client, settings, job, live, body, three, forced=guard is GuardResult.CONFLICT)


def _patch(
    client: CekuraClient,
    settings: Settings,
    job: Job,
    live: LiveMetric,
    body: dict[str, Any],
    three: str,
    *,
    forced: bool,
) -> ApplyResult:
    """PATCH what differs, verify it, and name the new history version after the commit."""
    assert job.head is not None
    head, display = job.head.metric, job.head.display
    metric_id = head.id if head.id is not None else live.id
    after = client.patch_metric(metric_id, body)
    crashpoints.hit("patched", head.slug)
    # Verify on the PATCH answer (live as it stood after the write) and on the newest
    # history version read after it; that one page also says which version to name.
    newest, unread = _newest_version(client, metric_id)
    left = [c.name for c in changes.field_changes(head, after)]
    if newest is not None:
        left += [
            name
            for name, value in head.fields.items()
            if name in newest and name not in left and normalise(value) != live_value(newest, name)
        ]
    if left:
        return ApplyResult(
            head.slug,
            head.id,
            display,
            ApplyStatus.ERROR,
            tuple(body),
            dry_run=False,
            detail=f"verify failed: after PATCH, live still differs in {', '.join(left)}",
        )
    crashpoints.hit("verified", head.slug)
    traced = unread or _name_version(client, metric_id, newest, job.head_sha)
    notes = ["forced over a conflict"] if forced else []
    if traced:
        notes.append(traced)
    if settings.rescore_after_apply:
        notes.append(_rescore(client, metric_id))
    return ApplyResult(
        head.slug, head.id, display, ApplyStatus.APPLIED, tuple(body), diff=three, detail="; ".join(notes)
    )


def _rescore(client: CekuraClient, metric_id: int) -> str:
    """Re-run the Lab's reviews with the new definition (apply.rescore; billed by Cekura)."""
    try:
        progress_id = client.run_reviews(metric_id, {}, skip_save=False)
    except CekuraAPIError as err:
        return f"re-score not started: {err}"
    return f"re-scoring the Lab's reviews (progress {progress_id})"


def _live(client: CekuraClient, head: Metric) -> LiveMetric | None:
    try:
        return client.get_metric(head.id if head.id is not None else head.slug)
    except CekuraAPIError as err:
        if err.status == 404:
            return None
        raise


def _three_way_diff(base: Metric | None, head: Metric, live: LiveMetric) -> str:
    parts = []
    for name, desired in head.fields.items():
        current = live.value(name)
        if normalise(desired) == normalise(current):
            continue
        if base is not None and name in base.fields and normalise(base.fields[name]) != normalise(current):
            parts.append(
                diffs.field_diff(name, base.fields[name], current, old_label="base", new_label="live")
            )
        parts.append(diffs.field_diff(name, current, desired, old_label="live", new_label="head"))
    return "".join(parts)


def _create(client: CekuraClient, f: MetricFile, *, dry_run: bool) -> ApplyResult:
    m = f.metric
    if m.id is not None:
        return ApplyResult(
            m.slug,
            m.id,
            f.display,
            ApplyStatus.ERROR,
            dry_run=dry_run,
            detail=f"metric {m.id} does not exist in Cekura: remove `id` to create it anew",
        )
    body: dict[str, Any] = {k: thaw(v) for k, v in m.fields.items()}
    body["project"] = m.project
    body["slug"] = m.slug
    if dry_run:
        return ApplyResult(m.slug, None, f.display, ApplyStatus.WOULD_CREATE, tuple(body), dry_run=True)
    created = client.create_metric(body)
    new_id, new_slug = created.id, created.slug
    hint = f"add `id: {new_id}` to {f.display}"
    if new_slug and new_slug != m.slug:
        hint += f" and rename it to {new_slug}.yaml with `slug: {new_slug}`"
    return ApplyResult(
        m.slug,
        new_id,
        f.display,
        ApplyStatus.CREATED,
        tuple(body),
        detail=f"created as #{new_id}: {hint}, so later applies find it",
    )


def _newest_version(client: CekuraClient, metric_id: int) -> tuple[dict[str, Any] | None, str]:
    """The newest history version (one page), or None and why it could not be read."""
    try:
        rows = client.history(metric_id, limit=1)
    except CekuraAPIError as err:
        return None, f"applied, but the history version was not named after the commit: {err}"
    if not rows or rows[0].get("history_id") is None:
        return None, "applied, but Cekura listed no history version to name after the commit"
    return rows[0], ""


def _name_version(client: CekuraClient, metric_id: int, version: dict[str, Any] | None, sha: str) -> str:
    """Name the new live version after the commit, so Cekura's history points to git.

    Best effort (the PATCH itself was verified): a failure is reported, not fatal.
    """
    if version is None:
        return ""
    try:
        client.edit_history(metric_id, int(version["history_id"]), f"git {sha[:12]}")
    except CekuraAPIError as err:
        return f"applied, but the history version was not named after the commit: {err}"
    return ""


def report(settings: Settings, console: Console, results: Sequence[ApplyResult], *, dry_run: bool) -> int:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    if settings.json_output:
        console.emit_json(
            {
                "command": "apply",
                "dry_run": dry_run,
                "metrics": [r.to_json() for r in results],
                "summary": counts,
            }
        )
    else:
        for r in results:
            fields = f" ({', '.join(r.fields)})" if r.fields else ""
            console.say(f"{r.slug}: {r.status.verb}{fields}{' — ' + r.detail if r.detail else ''}")
            if r.diff and r.status in (ApplyStatus.CONFLICT, ApplyStatus.APPLIED, ApplyStatus.WOULD_APPLY):
                console.untrusted(r.diff.rstrip("\n"))
        console.say(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no metric files changed")
    _actions_report(settings, results, dry_run)
    return 1 if any(r.status.failed for r in results) else 0


def _actions_report(settings: Settings, results: Sequence[ApplyResult], dry_run: bool) -> None:
    from cekura_gitops import actions, markdown

    if settings.github_output:
        actions.write_outputs(
            settings.github_output,
            {
                "applied": str(sum(r.status is ApplyStatus.APPLIED for r in results)),
                "conflicts": json.dumps([r.slug for r in results if r.status is ApplyStatus.CONFLICT]),
                "errors": str(sum(r.status is ApplyStatus.ERROR for r in results)),
                "result": json.dumps([r.to_json() for r in results]),
            },
        )
    if settings.github_step_summary:
        rows = "\n".join(
            f"| {markdown.code_cell(r.slug)} | {r.status.value} | {', '.join(r.fields)} "
            f"| {markdown.cell(r.detail)} |"
            for r in results
        )
        title = "### cekura-gitops apply" + (" (dry run)" if dry_run else "")
        actions.append_summary(
            settings.github_step_summary,
            f"{title}\n\n| metric | status | fields | detail |\n|---|---|---|---|\n{rows}\n",
        )

"""`cekura-gitops pull`: import live metrics into metric files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cekura_gitops import metric_files, release
from cekura_gitops.cekura import CekuraClient
from cekura_gitops.clients import cekura_client
from cekura_gitops.console import Console
from cekura_gitops.errors import CekuraAPIError, ConfigError, GitError, MetricValidationError
from cekura_gitops.metric import MANAGED_FIELDS, normalise
from cekura_gitops.metric_files import MetricFile
from cekura_gitops.pool import parallel_map
from cekura_gitops.replies import LiveMetric
from cekura_gitops.settings import Settings
from cekura_gitops.statuses import PullStatus


@dataclass(frozen=True)
class PullResult:
    slug: str
    id: int | None
    path: str  # "" when no file is involved (a metric that does not exist live)
    status: PullStatus
    fields: tuple[str, ...] = ()
    detail: str = ""


def file_fields(live: LiveMetric) -> dict[str, Any]:
    """The fields a freshly pulled file manages: every meaningful managed field, as served."""
    out: dict[str, Any] = {"id": live.id, "slug": live["slug"]}
    if live.get("project") is not None:
        out["project"] = live["project"]
    kind = live.get("type")
    trigger = live.get("evaluation_trigger")
    for name in MANAGED_FIELDS:
        value = live.get(name)
        if value is None:
            continue
        if name == "custom_code" and kind != "custom_code":
            continue  # stale code of a judge metric is not part of its definition
        if name == "enum_values" and live.get("eval_type") != "enum":
            continue
        if name == "trigger_type" and trigger != "custom":
            continue
        if name in ("evaluation_trigger_prompt", "evaluation_trigger_custom_code") and (
            trigger != "custom" or not value
        ):
            continue
        if name == "prompt" and not value:
            continue
        out[name] = normalise(value) if isinstance(value, str) else value
    return out


def pull(
    settings: Settings,
    console: Console,
    *,
    project: int | None = None,
    selectors: Sequence[str] = (),
    force: bool = False,
) -> int:
    """Write live metrics into metrics/<slug>.yaml, rewriting only differing fields."""
    return _report(
        settings, console, pull_metrics(settings, project=project, selectors=selectors, force=force)
    )


def pull_metrics(
    settings: Settings,
    *,
    project: int | None = None,
    selectors: Sequence[str] = (),
    force: bool = False,
) -> list[PullResult]:
    """Pull without reporting (`init --pull` reports it in its own document)."""
    project = project or settings.cekura_project
    existing = _existing_files(settings)
    dirty = _dirty_paths(settings)
    missing: list[PullResult] = []
    with cekura_client(settings) as client:
        if selectors:
            wanted, missing = _by_selector(client, selectors, settings.concurrency)
        else:
            wanted = _by_project(client, settings, project, existing)
    index = _Index(settings, existing, dirty)
    return missing + [_pull_one(settings, live, index, force) for live in wanted]


class _Index:
    """Existing files by id and by slug, and the uncommitted paths, each worked out once:
    matching one live metric is then a lookup, not a scan (pull stays linear)."""

    def __init__(self, settings: Settings, existing: Sequence[MetricFile], dirty: set[Path] | None) -> None:
        self.by_id: dict[int, MetricFile] = {}
        self.by_slug: dict[str, MetricFile] = {}  # files of new metrics (no id yet)
        for f in existing:
            if f.metric.id is not None:
                self.by_id.setdefault(f.metric.id, f)
            else:
                self.by_slug.setdefault(f.metric.slug, f)
        self.namer = metric_files.PathNamer(settings.root)
        self._folders: dict[Path, Path] = {}
        self.dirty = None if dirty is None else {p.resolve() for p in dirty}

    def match(self, metric_id: int, slug: str) -> MetricFile | None:
        return self.by_id.get(metric_id) or self.by_slug.get(slug)

    def is_dirty(self, path: Path) -> bool:
        return self.dirty is not None and self._key(path) in self.dirty

    def _key(self, path: Path) -> Path:
        """path.resolve(), resolving each folder once (a symlinked file resolves in full)."""
        if path.is_symlink():
            return path.resolve()
        folder = self._folders.get(path.parent)
        if folder is None:
            folder = self._folders[path.parent] = path.parent.resolve()
        return folder / path.name


def _by_selector(
    client: CekuraClient, selectors: Sequence[str], concurrency: int
) -> tuple[list[LiveMetric], list[PullResult]]:
    """The live metrics named by id or slug, and an error result for each that does not exist."""

    def fetch(selector: str) -> LiveMetric | None:
        try:
            return client.get_metric(int(selector) if selector.isdigit() else selector)
        except CekuraAPIError as err:
            if err.status == 404:
                return None
            raise

    wanted, missing = [], []
    for selector, live in zip(selectors, parallel_map(fetch, selectors, concurrency), strict=True):
        if live is not None:
            wanted.append(live)
            continue
        kind = "id" if selector.isdigit() else "slug"
        detail = (
            f"no live metric with {kind} {selector!r} in Cekura: check the {kind} "
            "(Cekura's dashboard shows both)"
        )
        missing.append(PullResult(selector, None, "", PullStatus.ERROR, detail=detail))
    return wanted, missing


def _by_project(
    client: CekuraClient, settings: Settings, project: int | None, existing: Sequence[MetricFile]
) -> list[LiveMetric]:
    if project is None and not existing:
        raise ConfigError("name the project to import: `cekura-gitops pull --project ID`")
    known = sorted({f.metric.project for f in existing if f.metric.project is not None})
    projects: list[int | None] = [project] if project is not None else [*known] or [None]
    lists = parallel_map(lambda p: client.list_metrics(project_id=p), projects, settings.concurrency)
    wanted = [m for rows in lists for m in rows]
    if not wanted and project is not None:
        raise ConfigError(_empty_project(client, project))
    # The list hides custom_code: fetch details only for the metrics that need it.
    need = [i for i, m in enumerate(wanted) if m.get("type") == "custom_code"]
    for i, detail in zip(
        need,
        parallel_map(lambda i: client.get_metric(wanted[i].id), need, settings.concurrency),
        strict=True,
    ):
        wanted[i] = detail
    return wanted


def _empty_project(client: CekuraClient, project: int) -> str:
    """Why a project listed no metrics: it does not exist (for this key), or it is empty."""
    try:
        projects = client.list_projects()
    except CekuraAPIError:
        return (
            f"no metrics found in project {project}: check that the project exists and that this "
            "API key can read it (--project, CEKURA_PROJECT_ID)"
        )
    found = next((p for p in projects if p.get("id") == project), None)
    if found is None:
        reached = ", ".join(f"{p.get('id')} {p.get('name', '')}".strip() for p in projects[:10]) or "none"
        return (
            f"no project {project} among the projects this API key reaches ({reached}): "
            "check --project or CEKURA_PROJECT_ID"
        )
    return f"project {project} ({found.get('name', '')}) has no metrics: nothing to import"


def _existing_files(settings: Settings) -> list[MetricFile]:
    if not settings.metrics_dir.is_dir():
        return []
    return metric_files.load_metrics([settings.metrics_dir], settings.root)


def _dirty_paths(settings: Settings) -> set[Path] | None:
    try:
        from cekura_gitops.gitrepo import GitRepo

        repo = GitRepo(settings.root)
        rel = settings.metrics_dir.resolve().relative_to(repo.root.resolve())
        return {repo.root / p for p in repo.dirty_paths(str(rel))}
    except (GitError, ValueError):
        return None  # not a git repository: nothing to protect beyond atomic writes


def _pull_one(settings: Settings, live: LiveMetric, index: _Index, force: bool) -> PullResult:
    metric_id, slug = live.id, live.slug or str(live.id)
    match = index.match(metric_id, slug)
    path = match.path if match else settings.metrics_dir / f"{slug}.yaml"
    display = index.namer(path)
    if not force and index.is_dirty(path):
        return PullResult(
            slug,
            metric_id,
            display,
            PullStatus.SKIPPED_DIRTY,
            detail="has uncommitted changes: commit or stash them, or use --force",
        )
    fields = file_fields(live)
    if match is None:
        if path.exists() and not force:
            return PullResult(
                slug,
                metric_id,
                display,
                PullStatus.ERROR,
                detail="exists but is not a valid file for this metric; use --force to replace it",
            )
        # A file we create points editors at its schema; a human's file is never touched.
        text = metric_files.render_new(fields, schema_url=release.schema_url("metric"))
        refused = _write_valid(path, text, display, slug)
        if refused:
            return PullResult(slug, metric_id, display, PullStatus.ERROR, detail=refused)
        return PullResult(slug, metric_id, display, PullStatus.CREATED, tuple(fields))
    # Refresh: only fields the file manages (plus identity) are brought up to date.
    changes = {
        k: v for k, v in fields.items() if k in match.doc.data and k in (*MANAGED_FIELDS, "slug", "project")
    }
    changes = {k: v for k, v in changes.items() if normalise(match.doc.data[k]) != normalise(v)}
    if not changes:
        return PullResult(slug, metric_id, display, PullStatus.UNCHANGED)
    if index.dirty is None and not force:
        # Outside git nothing tells a local edit from an older pull: never overwrite either.
        return PullResult(
            slug,
            metric_id,
            display,
            PullStatus.SKIPPED_DIRTY,
            detail="not in a git repository, so local edits cannot be told apart: run pull in "
            "your metrics repository, or use --force to overwrite",
        )
    refused = _write_valid(path, metric_files.edit_fields(match.text, display, changes), display, None)
    if refused:
        return PullResult(slug, metric_id, display, PullStatus.ERROR, detail=refused)
    return PullResult(slug, metric_id, display, PullStatus.UPDATED, tuple(changes))


def json_rows(results: Sequence[PullResult]) -> list[dict[str, Any]]:
    return [
        {
            "slug": r.slug,
            "id": r.id,
            "path": r.path or None,
            "status": r.status.value,
            "fields": list(r.fields),
            **({"detail": r.detail} if r.detail else {}),
        }
        for r in results
    ]


def failed(results: Sequence[PullResult]) -> bool:
    return any(r.status.failed for r in results)


def _write_valid(path: Path, text: str, display: str, file_stem: str | None) -> str:
    """Write text unless validate would refuse it (over 1 MiB, a field over its limit...):
    '' when written, else why not. Never write what validate, plan and apply can't read."""
    try:
        metric_files.check_text(text, display, file_stem=file_stem)
    except MetricValidationError as err:
        return f"refusing to write an invalid file: {err.problems[0]}"
    metric_files.write_atomic(path, text)
    return ""


def _report(settings: Settings, console: Console, results: Sequence[PullResult]) -> int:
    if settings.json_output:
        console.emit_json({"metrics": json_rows(results)})
    else:
        for r in results:
            extra = f" ({', '.join(r.fields)})" if r.status is PullStatus.UPDATED else ""
            detail = f": {r.detail}" if r.detail else ""
            console.say(f"{r.status.value:<14} {r.path or r.slug}{extra}{detail}")
        created = sum(r.status is PullStatus.CREATED for r in results)
        updated = sum(r.status is PullStatus.UPDATED for r in results)
        console.say(f"\n{created} created, {updated} updated, {len(results) - created - updated} other.")
        if created or updated:
            console.say("Review with `git diff`, then commit: the files are now the source of truth.")
    return 1 if failed(results) else 0

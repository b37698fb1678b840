"""Helpers the commands share: clients, metric selection, concurrency, live lookups."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from cekura_gitops import metric_files
from cekura_gitops.cekura import CekuraClient
from cekura_gitops.errors import CekuraAPIError, ConfigError
from cekura_gitops.gitrepo import GitRepo
from cekura_gitops.metric_files import MetricFile
from cekura_gitops.settings import Settings

T = TypeVar("T")
R = TypeVar("R")


def cekura_client(settings: Settings, *, sleep: Callable[[float], None] | None = None) -> CekuraClient:
    """`sleep` replaces the client's waits between retries (sync: one a stop request ends)."""
    return CekuraClient(
        settings.cekura_api_url,
        settings.require_cekura_key(),
        timeout=settings.http_timeout,
        backoff_base=settings.http_backoff,
        deadline=settings.http_deadline,
        sleep=sleep or time.sleep,
    )


def git_repo(settings: Settings) -> GitRepo:
    """The repository at settings.root; with a GitHub App, git fetches and pushes with the
    App's renewing installation token (through git's credential channel only)."""
    repo = GitRepo(settings.root)
    if settings.uses_app and settings.github_configured:
        from cekura_gitops.githubaccess import access_for

        repo.use_credentials(access_for(settings).git_token(), settings.github_server_url)
    return repo


def metrics_folder(settings: Settings, repo: GitRepo) -> str:
    """The metrics folder relative to the repository root; outside it is a usage error."""
    try:
        return str(settings.metrics_dir.resolve().relative_to(repo.root.resolve()))
    except ValueError:
        raise ConfigError(
            f"--metrics-dir {settings.metrics_dir} is outside the git repository {repo.root}"
        ) from None


def load_files(settings: Settings, *, identity_only: bool = False) -> list[MetricFile]:
    if not settings.metrics_dir.is_dir():
        raise ConfigError(
            f"no metrics folder at {settings.metrics_dir}: run `cekura-gitops pull --project ID` "
            "to import your metrics, or pass --metrics-dir"
        )
    return metric_files.load_metrics([settings.metrics_dir], settings.root, identity_only=identity_only)


def select(files: Sequence[MetricFile], selectors: Sequence[str]) -> list[MetricFile]:
    """The files named by id or slug (all when none are named); unknown names are an error."""
    if not selectors:
        return list(files)
    chosen: list[MetricFile] = []
    unknown: list[str] = []
    for sel in selectors:
        match = [f for f in files if f.metric.slug == sel or str(f.metric.id) == sel]
        if match:
            chosen.extend(m for m in match if m not in chosen)
        else:
            unknown.append(sel)
    if unknown:
        raise ConfigError(
            f"no metric file for {', '.join(unknown)}: `cekura-gitops list` shows the managed metrics"
        )
    return chosen


def in_shard(slug: str, shard: tuple[int, int] | None) -> bool:
    """Stable partition by slug: the same metric always lands in the same shard."""
    if shard is None:
        return True
    k, n = shard
    return zlib.crc32(slug.encode()) % n == k - 1


def run_all(func: Callable[[T], R], items: Iterable[T], concurrency: int) -> list[R]:
    """func over items, at most `concurrency` at once, results in input order."""
    items = list(items)
    if concurrency <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        futures = [pool.submit(func, item) for item in items]
        # Wait in short slices: a signal handler runs only in the main thread, and only
        # between waits (some platforms deliver the signal to a worker thread instead).
        while wait(futures, timeout=0.25).not_done:
            pass
        return [f.result() for f in futures]


@dataclass(frozen=True)
class LiveView:
    """Live metrics as one list call per project shows them, plus details where needed."""

    by_id: Mapping[int, dict[str, Any]]
    by_slug: Mapping[str, dict[str, Any]]
    listed_projects: frozenset[int | None]

    def find(self, f: MetricFile) -> dict[str, Any] | None:
        if f.metric.id is not None:
            return self.by_id.get(f.metric.id)
        return self.by_slug.get(f.metric.slug)


NEEDS_DETAIL = frozenset({"custom_code"})  # the list endpoint hides these (write-only there)


def fetch_live(
    client: CekuraClient,
    files: Sequence[MetricFile],
    *,
    concurrency: int,
    default_project: int | None = None,
) -> LiveView:
    """List each project once; GET details only for files managing list-hidden fields."""
    projects: set[int | None] = {f.metric.project for f in files}
    if default_project is not None:
        projects = {p if p is not None else default_project for p in projects} or {default_project}
    if not projects:
        projects = {default_project}
    listed: list[dict[str, Any]] = []
    for rows in run_all(lambda p: client.list_metrics(project_id=p), sorted(projects, key=str), concurrency):
        listed.extend(rows)
    by_id = {int(m["id"]): m for m in listed if "id" in m}
    # Files whose metric the lists did not show (another project?) and files that manage
    # fields the list hides need the detail endpoint.
    want = [
        f.metric.id
        for f in files
        if f.metric.id is not None and (f.metric.id not in by_id or NEEDS_DETAIL & set(f.metric.fields))
    ]

    def detail(metric_id: int) -> dict[str, Any] | None:
        try:
            return client.get_metric(metric_id)
        except CekuraAPIError as err:
            if err.status == 404:
                return None
            raise

    for metric_id, found in zip(want, run_all(detail, want, concurrency), strict=True):
        if found is not None:
            by_id[metric_id] = found
        else:
            by_id.pop(metric_id, None)
    by_slug = {str(m.get("slug")): m for m in by_id.values() if m.get("slug")}
    return LiveView(by_id, by_slug, frozenset(projects))

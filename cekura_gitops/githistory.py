"""What the default branch's history says about a metric: earlier versions, merged scores.

- `earlier_version`: the commit whose version of a metric file already had the values a
  proposal would set. A proposal that restores a version a person replaced or reverted is
  a flip-flop (status `oscillation`; Cekura's self-improvement guide warns of exactly this).
- `score_history`: the scores of merged proposals per metric, rebuilt from commit messages
  alone (no database): the `Cekura-Metric`/`Cekura-Score` trailers sync writes, older
  commits' `optimise(<slug>): a → b` subject, or a squash commit carrying the PR body's
  machine block. Both read only what `git log` can reach: a shallow clone sees less
  (`actions/checkout` with `fetch-depth: 0`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cekura_gitops import metric_files, prbody, scores
from cekura_gitops.errors import GitOpsError
from cekura_gitops.gitrepo import GitRepo, LogEntry
from cekura_gitops.metric import Metric, normalise

__all__ = [
    "EarlierVersions",
    "Restored",
    "ScorePoint",
    "earlier_version",
    "parse_point",
    "score_history",
    "trailers",
]

MAX_VERSIONS = 200
MAX_COMMITS = 5000
POINTS_PER_METRIC = 20


@dataclass(frozen=True)
class Restored:
    sha: str
    subject: str


@dataclass(frozen=True)
class _Version:
    sha: str
    subject: str
    metric: Metric


def earlier_version(
    repo: GitRepo, rev: str, rel_path: str, proposed: Mapping[str, Any], slug: str
) -> Restored | None:
    """The newest earlier version of the file (in rev's history) that already had `proposed`."""
    return _restored(_earlier_versions(repo, rev, rel_path, slug), proposed)


def _earlier_versions(repo: GitRepo, rev: str, rel_path: str, slug: str) -> list[_Version]:
    """The file's valid versions before its current one in rev's history, newest first."""
    entries = repo.log(rev, [rel_path], limit=MAX_VERSIONS)
    if len(entries) < 2:
        return []  # only the current version: nothing earlier to read (no git process)
    blobs = repo.read_blobs([f"{e.sha}:{rel_path}" for e in entries[1:]])
    versions = []
    for entry in entries[1:]:  # the newest one is the current version
        try:
            parsed = metric_files.parse_blob(blobs.get(f"{entry.sha}:{rel_path}"), rel_path, file_stem=slug)
        except GitOpsError:
            continue  # an invalid version was never live
        if parsed is not None:
            versions.append(_Version(entry.sha, entry.message.split("\n", 1)[0], parsed.metric))
    return versions


def _restored(versions: list[_Version], proposed: Mapping[str, Any]) -> Restored | None:
    wanted = {k: normalise(v) for k, v in proposed.items()}
    for version in versions:
        if all(normalise(version.metric.fields.get(k)) == v for k, v in wanted.items()):
            return Restored(version.sha, version.subject)
    return None


class EarlierVersions:
    """`earlier_version` for many files at one commit, their history read ahead.

    sync asks only once a metric's optimiser run has ended, but the history it reads is
    fixed when the run starts: reading it while the run is in flight (from its first
    poll, so that it does not compete with the claims and starts), in one background
    thread, takes two git processes per metric off the end of the run.
    """

    def __init__(self, repo: GitRepo, rev: str) -> None:
        self._repo = repo
        self._rev = rev
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")
        self._lock = threading.Lock()
        self._files: dict[str, str] = {}  # slug -> the file's path in the repository
        self._reads: dict[str, Future[list[_Version]]] = {}

    def want(self, slug: str, rel_path: str) -> None:
        """The metric's file will be asked about (nothing is read yet)."""
        with self._lock:
            self._files[slug] = rel_path

    def read_ahead(self, slug: str) -> None:
        """Start reading the wanted file's history in the background (once)."""
        with self._lock:
            rel_path = self._files.get(slug)
            if rel_path is not None and slug not in self._reads:
                self._reads[slug] = self._pool.submit(
                    _earlier_versions, self._repo, self._rev, rel_path, slug
                )

    def find(self, slug: str, proposed: Mapping[str, Any]) -> Restored | None:
        """As `earlier_version` for the wanted file; a read that failed in the background
        raises here."""
        self.read_ahead(slug)
        return _restored(self._reads[slug].result(), proposed)

    def close(self) -> None:
        """Drop the reads nobody asked for (a stopped sync exits without waiting for them)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def trailers(
    slug: str,
    old: scores.Score | None,
    new: scores.Score | None,
    holdout: tuple[scores.Score, scores.Score] | None = None,
) -> str:
    """The commit trailers `score_history` reads back."""
    lines = [f"Cekura-Metric: {slug}", f"Cekura-Score: {scores.text(old)} -> {scores.text(new)}"]
    if holdout is not None:
        lines.append(f"Cekura-Holdout-Score: {scores.text(holdout[0])} -> {scores.text(holdout[1])}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ScorePoint:
    """One merged proposal: when, which commit, and its scores as the commit wrote them
    (`c/t`, or `?`): the history's text is its record, read back with `parse_text`."""

    slug: str
    sha: str
    at: int
    old: str
    new: str
    holdout_old: str | None = None
    holdout_new: str | None = None

    @staticmethod
    def fraction(score: str) -> float | None:
        parsed = scores.parse_text(score)
        return parsed.value if parsed is not None else None


_LINE = r"(?m)^[ \t]*(?:\*[ \t]+)?"
_SCORE = r"(\d+/\d+|\?)"
_METRIC = re.compile(_LINE + r"Cekura-Metric:[ \t]*([A-Za-z0-9_-]+)[ \t]*$")
_PAIR = re.compile(_LINE + r"Cekura-Score:[ \t]*" + _SCORE + r"[ \t]*(?:->|→)[ \t]*" + _SCORE)
_HOLDOUT = re.compile(_LINE + r"Cekura-Holdout-Score:[ \t]*(\d+/\d+)[ \t]*(?:->|→)[ \t]*(\d+/\d+)")
_SUBJECT = re.compile(_LINE + r"optimise\(([A-Za-z0-9_-]+)\): " + _SCORE + r" → " + _SCORE + r"[ \t]*$")
_PROPOSAL = re.compile(_LINE + r"Cekura-GitOps-Proposal:")


def parse_point(entry: LogEntry) -> ScorePoint | None:
    """The merged proposal a commit message records, if it records one."""
    text = entry.message
    metric, pair = _METRIC.search(text), _PAIR.search(text)
    if metric and pair:
        held = _HOLDOUT.search(text)
        return ScorePoint(
            metric[1],
            entry.sha,
            entry.committed_at,
            pair[1],
            pair[2],
            *(held.groups() if held else (None, None)),
        )
    subject = _SUBJECT.search(text)
    if subject and _PROPOSAL.search(text):
        return ScorePoint(subject[1], entry.sha, entry.committed_at, subject[2], subject[3])
    machine = prbody.read_machine(text)
    slug = machine.get("slug")
    if machine.get("kind") == "optimise" and isinstance(slug, str) and _SLUG.fullmatch(slug):
        # Anyone can write a commit message: keep only values of the expected shape.
        old, new, held_old, held_new = (
            _score(machine.get(k))
            for k in ("old_score", "new_score", "holdout_old_score", "holdout_new_score")
        )
        if old and new:
            return ScorePoint(slug, entry.sha, entry.committed_at, old, new, held_old, held_new)
    return None


_SLUG = re.compile(r"[A-Za-z0-9_-]{1,200}")


def _score(value: Any) -> str | None:
    return value if isinstance(value, str) and scores.parse_text(value) is not None else None


def score_history(repo: GitRepo, rev: str, under: str) -> dict[str, list[ScorePoint]]:
    """Merged proposals per metric slug, oldest first (the newest POINTS_PER_METRIC each)."""
    found: dict[str, list[ScorePoint]] = {}
    for entry in repo.log(rev, [under], limit=MAX_COMMITS):  # newest first
        point = parse_point(entry)
        if point is None:
            continue
        points = found.setdefault(point.slug, [])
        if len(points) < POINTS_PER_METRIC:
            points.append(point)
    return {slug: list(reversed(points)) for slug, points in sorted(found.items())}

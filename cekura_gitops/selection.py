"""Which metric files a command works on: named by id or slug, and this shard's share."""

from __future__ import annotations

import difflib
import zlib
from collections.abc import Iterable, Sequence

from cekura_gitops.errors import ConfigError
from cekura_gitops.metric_files import MetricFile

# (slug, id) of one metric a command knows of; id is None for a metric not created yet.
MetricKey = tuple[str, int | None]


def names(selector: str, slug: str, metric_id: int | None) -> bool:
    """Whether `--metric selector` names this metric, by slug or by id."""
    return selector == slug or (metric_id is not None and selector == str(metric_id))


def select(files: Sequence[MetricFile], selectors: Sequence[str]) -> list[MetricFile]:
    """The files named by id or slug (all when none are named); unknown names are an error."""
    if not selectors:
        return list(files)
    require_known(selectors, [(f.metric.slug, f.metric.id) for f in files])
    chosen: list[MetricFile] = []
    for sel in selectors:
        match = [f for f in files if names(sel, f.metric.slug, f.metric.id)]
        chosen.extend(m for m in match if m not in chosen)
    return chosen


def require_known(selectors: Sequence[str], known: Iterable[MetricKey]) -> None:
    """Raise ConfigError naming every selector that matches none of the known metrics.

    A typo must not quietly select nothing (a run that "succeeds" having done nothing), so
    the message names what was typed and the closest known slugs or ids.
    """
    keys = list(known)
    unknown = [s for s in selectors if not any(names(s, slug, mid) for slug, mid in keys)]
    if unknown:
        raise ConfigError(
            f"no metric file for {', '.join(unknown)}{_did_you_mean(unknown, keys)}: "
            "`cekura-gitops list` shows the managed metrics"
        )


def _did_you_mean(unknown: Sequence[str], known: Sequence[MetricKey]) -> str:
    slugs = sorted({slug for slug, _ in known})
    ids = sorted({str(mid) for _, mid in known if mid is not None})
    close: list[str] = []
    for sel in unknown:
        candidates = ids if sel.isdigit() else slugs
        close += [c for c in difflib.get_close_matches(sel, candidates, n=3) if c not in close]
    return f" (did you mean {', '.join(close)}?)" if close else ""


def in_shard(slug: str, shard: tuple[int, int] | None) -> bool:
    """Stable partition by slug: the same metric always lands in the same shard."""
    if shard is None:
        return True
    k, n = shard
    return zlib.crc32(slug.encode()) % n == k - 1

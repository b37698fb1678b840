"""Which metric files a command works on: named by id or slug, and this shard's share."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from cekura_gitops.errors import ConfigError
from cekura_gitops.metric_files import MetricFile


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

"""A bounded thread pool that keeps input order and lets Ctrl-C through."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(func: Callable[[T], R], items: Iterable[T], concurrency: int) -> list[R]:
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

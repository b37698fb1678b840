"""One pacer for every GitHub write of a run: spacing, one at a time, and an hourly budget.

GitHub's secondary rate limits are per identity, not per client: an installation may
create about 80 pieces of content a minute and 500 an hour, and "wait at least one second
between each request" that mutates (github-notes §6). A run holds several clients (pull
requests, the dashboard issue, the App's token minting, Git Data commits), so they all share
one `WritePacer`:

- writes go out one at a time (`serial`), at least `interval` seconds apart (`space`, measured
  from the end of the previous write);
- a secondary-limit wait happens while holding `serial`, so every other writer waits too
  instead of hammering the limit from another thread;
- `reserve(n)` books the writes one metric's publishing needs against `per_hour`, so a run
  whose budget is spent stops *between* metrics (they end `skipped-cap`, the next run goes on)
  rather than half-way through a pull request.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

HOUR = 3600.0

__all__ = ["HOUR", "WritePacer"]


class WritePacer:
    """Shared by every GitHub client of one run. `clock` and `sleep` are the test seam."""

    def __init__(
        self,
        *,
        interval: float = 1.0,
        per_hour: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_hour is not None and per_hour < 1:
            raise ValueError("per_hour must be at least 1")
        self.interval = interval
        self.per_hour = per_hour
        self.clock = clock
        self.sleep = sleep
        self._serial = threading.RLock()
        self._books = threading.Lock()
        self._last_write: float | None = None
        self._sent: collections.deque[float] = collections.deque()
        self._reserved = 0
        # Bookings belong to the thread that made them (one metric is published on one
        # worker thread), so that its writes consume its own booking and `release` returns
        # only what that metric did not use.
        self._mine = threading.local()

    @contextmanager
    def serial(self) -> Iterator[None]:
        """One write (with its retries and rate-limit waits) at a time, across clients."""
        with self._serial:
            yield

    def space(self) -> None:
        """Wait until `interval` has passed since the previous write ended."""
        if self._last_write is not None:
            gap = self.clock() - self._last_write
            if gap < self.interval:
                self.sleep(self.interval - gap)

    def mark(self) -> None:
        """A write was sent (whatever its answer): count it and restart the spacing."""
        now = self.clock()
        with self._books:
            self._last_write = now
            self._sent.append(now)
            if self._booked() > 0:
                self._mine.booked -= 1
                self._reserved -= 1

    def reserve(self, writes: int) -> bool:
        """Book `writes` against the hourly budget; False (nothing booked) when they do not fit."""
        if self.per_hour is None:
            return True
        with self._books:
            self._forget_old()
            if len(self._sent) + self._reserved + writes > self.per_hour:
                return False
            self._reserved += writes
            self._mine.booked = self._booked() + writes
            return True

    def release(self) -> None:
        """Give back what this thread booked and did not write (an unchanged PR, an error)."""
        with self._books:
            self._reserved -= self._booked()
            self._mine.booked = 0

    def _booked(self) -> int:
        return int(getattr(self._mine, "booked", 0))

    def share(self, parts: int) -> None:
        """This run is one of `parts` running at once as the same identity (`--shard K/N`):
        take 1/N of the budget and space writes N times wider, so that together they keep
        to one write a second and `per_hour` writes an hour."""
        if parts < 1:
            raise ValueError("parts must be at least 1")
        self.interval *= parts
        if self.per_hour is not None:
            self.per_hour = max(1, self.per_hour // parts)

    @property
    def sent_last_hour(self) -> int:
        with self._books:
            self._forget_old()
            return len(self._sent)

    def _forget_old(self) -> None:
        horizon = self.clock() - HOUR
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()

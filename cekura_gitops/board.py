"""The terminal board: each metric's live status while waiting on the optimiser.

On a terminal: one status line redrawn in place. Elsewhere (CI logs): a line when a
metric's status changes, and a "still running" line at most every 30 s per metric.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cekura_gitops.console import Console

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
QUIET_INTERVAL = 30.0


class ProgressBoard:
    def __init__(self, console: Console, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._console = console
        self._clock = clock
        self._lock = threading.Lock()
        self._status: dict[str, tuple[str, float]] = {}
        self._last_print: dict[str, float] = {}
        self._tty = console.is_tty and not console.json_output
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ProgressBoard:
        if self._tty:
            self._thread = threading.Thread(target=self._redraw_loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=1)
            self._console.human.write("\r\033[K")
            self._console.human.flush()

    def update(self, slug: str, status: str, elapsed: float | None = None) -> None:
        now = self._clock()
        with self._lock:
            previous = self._status.get(slug, ("", 0.0))[0]
            self._status[slug] = (status, elapsed or 0.0)
            if self._tty:
                return
            due = now - self._last_print.get(slug, -QUIET_INTERVAL) >= QUIET_INTERVAL
            if status == previous and not due:
                return
            self._last_print[slug] = now
        timing = f" ({_fmt(elapsed)})" if elapsed else ""
        self._console.say(f"  {slug}: {status}{timing}")

    def done(self, slug: str) -> None:
        with self._lock:
            self._status.pop(slug, None)

    def _redraw_loop(self) -> None:
        frame = 0
        while not self._stop.wait(0.12):
            with self._lock:
                running = sorted(self._status.items())
            if not running:
                continue
            frame += 1
            parts = [f"{s} {st} {_fmt(e)}" for s, (st, e) in running[:3]]
            more = f" +{len(running) - 3} more" if len(running) > 3 else ""
            line = f"{SPINNER[frame % len(SPINNER)]} {len(running)} running: {', '.join(parts)}{more}"
            self._console.human.write("\r\033[K" + line[:160])
            self._console.human.flush()


def _fmt(seconds: float | None) -> str:
    if not seconds:
        return "0s"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"

"""Ctrl-C and SIGTERM as a request to stop soon, not an exception at a random line.

Python raises KeyboardInterrupt in the main thread only, while sync's work happens in
worker threads; and an exception at a random line could fall between an optimiser's
start POST and the push that records its progress id, leaving a run nobody follows. So
`StopSignal` turns SIGINT and SIGTERM (what GitHub Actions sends on cancel) into an
event: the workers check it at safe points (never inside the start-and-record critical
section), wait on it instead of sleeping, and return promptly; the command then exits
130. A second signal only repeats what is being waited for: SIGKILL remains for anyone
who cannot wait the second or two.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from cekura_gitops.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)
FIRST = (
    "\ninterrupted: stopping — no new optimisations; runs already started go on in Cekura "
    "and the next sync resumes them\n"
)
AGAIN = "\nstill stopping: recording the runs already started so the next sync can resume them\n"


class StopSignal:
    """While entered (in the main thread), SIGINT and SIGTERM set `event` instead of raising."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # os.write, not the console: the handler may run while the main thread holds the
        # console's lock, and a raw write needs none.
        again = self.event.is_set()
        self.signum = self.signum or signum
        self.event.set()
        with contextlib.suppress(OSError):
            os.write(2, (AGAIN if again else FIRST).encode())

    @property
    def stopped(self) -> bool:
        return self.event.is_set()

    def sleep(self, seconds: float) -> None:
        """A sleep that ends early, raising Interrupted, when a stop is requested."""
        if self.event.wait(seconds):
            raise Interrupted("interrupted while waiting")

    def check(self, what: str = "") -> None:
        if self.event.is_set():
            raise Interrupted(f"interrupted{' before ' + what if what else ''}")

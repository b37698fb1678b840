"""Named points in the write protocols where crash tests kill the process.

`CEKURA_GITOPS_CRASH_AT=point` (or `point:slug`) makes the process SIGKILL itself when it
reaches that point, exactly as a runner losing its machine would. `SIGINT@point:slug`
(or `SIGTERM@…`) sends that signal instead, once, and carries on: a Ctrl-C or an Actions
cancel arriving exactly there. It exists for the crash-consistency and interrupt tests
(tests/test_crash.py, tests/test_interrupt.py); unset, `hit` costs one comparison.
"""

from __future__ import annotations

import os
import signal
import time

_target: str | None = None
_signal = signal.SIGKILL

POINTS = (
    "claimed",  # state ref holds our claim; no start POST yet
    "started",  # start POST answered; progress id not yet recorded
    "recorded",  # progress id recorded in the state ref
    "polled",  # after a progress poll
    "branch-pushed",  # proposal branch pushed; PR not yet opened
    "published",  # PR opened or updated; run record not yet cleared
    "finished",  # run record cleared
    "patched",  # apply: PATCH sent; not yet verified
    "verified",  # apply: verified; history not yet named
)


def configure(target: str | None) -> None:
    global _target, _signal
    name, _, point = (target or "").rpartition("@")
    _signal = signal.Signals[name] if name else signal.SIGKILL
    _target = point or None


def hit(point: str, key: str = "") -> None:
    global _target
    if _target is not None and _target in (point, f"{point}:{key}"):
        if _signal is not signal.SIGKILL:
            _target = None  # once: a signal is survived, and must not repeat at every metric
        os.kill(os.getpid(), _signal)
        if _signal is not signal.SIGKILL:
            # Handlers run in the main thread: give it time to, so that the signal takes
            # effect here, at the point, not a few steps later.
            time.sleep(1.0)

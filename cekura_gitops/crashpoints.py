"""Named points in the write protocols where crash tests kill the process.

`CEKURA_GITOPS_CRASH_AT=point` (or `point:slug`) makes the process SIGKILL itself when it
reaches that point, exactly as a runner losing its machine would. It exists for the
crash-consistency tests (tests/test_crash.py); unset, `hit` costs one comparison.
"""

from __future__ import annotations

import os
import signal

_target: str | None = None

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
    global _target
    _target = target or None


def hit(point: str, key: str = "") -> None:
    if _target is not None and _target in (point, f"{point}:{key}"):
        os.kill(os.getpid(), signal.SIGKILL)

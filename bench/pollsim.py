"""The poll schedule in simulated time: `Optimiser._poll` with an injected clock and sleep.

No real waiting: a fake progress source says "running" until the simulated clock passes
the run's duration, each poll costs one round trip of simulated time, and we count polls
and measure how late the end of the run was noticed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

from cekura_gitops.cekura import ProgressReply
from cekura_gitops.optimiser import Optimiser, Outcome
from cekura_gitops.statestore import Claim

RUNNING: dict[str, Any] = {"status": "in_progress", "output": None}
DONE: dict[str, Any] = {
    "status": "success",
    "output": {
        "improved_metric_description": "Score TRUE if ...",
        "improved_evaluation_trigger": "",
        "improved_trigger_kind": "always",
        "type": "llm_judge",
        "custom_code": "",
        "optimization_summary": "",
        "old_score": {"num_correct": 4, "num_total": 6, "score": 0.667},
        "new_score": {"num_correct": 6, "num_total": 6, "score": 1.0},
    },
}


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class _Progress:
    """Stands in for CekuraClient: only `optimiser_progress` is called while polling."""

    def __init__(self, clock: _Clock, duration: float, rtt: float) -> None:
        self.clock, self.duration, self.rtt = clock, duration, rtt
        self.seen: list[float] = []  # when the server saw each poll

    def optimiser_progress(self, progress_id: str) -> ProgressReply:
        self.clock.now += self.rtt / 2  # the server sees the request half a round trip later
        self.seen.append(self.clock.now)
        body = DONE if self.clock.now >= self.duration else RUNNING
        self.clock.now += self.rtt / 2
        return ProgressReply(body=body, retry_after=None)


class _NoStore:
    def update(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("polling a run that finishes in time never touches the state")


@dataclass(frozen=True)
class PollRun:
    duration: float
    polls: int
    noticed: float  # simulated time when the caller learnt the run had ended

    @property
    def lag(self) -> float:
        return max(0.0, self.noticed - self.duration)


def simulate(duration: float, rtt: float = 0.02) -> PollRun:
    """Poll one run of `duration` seconds to its end, in simulated time."""
    return _simulate(duration, rtt)[0]


def _simulate(duration: float, rtt: float) -> tuple[PollRun, list[float]]:
    clock = _Clock()
    source = _Progress(clock, duration, rtt)
    optimiser = Optimiser(
        client=cast(Any, source),
        store=cast(Any, _NoStore()),
        timeout=10 * max(duration, 60.0),
        owner="bench",
        sleep=clock.sleep,
        clock=clock.time,
    )
    record = Claim(metric_id=1, claimed_at=0.0, owner="bench", progress_id="bench-run", started_at=0.0)
    result = optimiser._poll("bench", record, False)
    if result.outcome is not Outcome.FINISHED:
        raise RuntimeError(f"simulated run of {duration} s ended {result.outcome}: {result.detail}")
    return PollRun(duration, result.polls, source.seen[-1]), source.seen


def fixed_interval(duration: float, interval: float) -> PollRun:
    """The documented routine: sleep `interval`, poll, repeat (no first immediate poll)."""
    polls = max(1, math.ceil(duration / interval))
    return PollRun(duration, polls, polls * interval)


def worst(rtt: float = 0.02, horizon: float = 4 * 3600.0) -> PollRun:
    """The run, of every length up to `horizon`, whose end is noticed latest.

    The worst lengths end just after a poll, so the grid holds each poll time of the
    longest run plus a hair, and a dense geometric grid besides.
    """
    _, times = _simulate(horizon, rtt)
    grid = {horizon, *(t + 1e-3 for t in times if t + 1e-3 <= horizon)}
    grid.update(0.05 * 1.01**k for k in range(int(math.log(horizon / 0.05) / math.log(1.01)) + 1))
    runs = [simulate(d, rtt) for d in sorted(grid)]
    return max(runs, key=lambda r: r.lag)

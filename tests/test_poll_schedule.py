"""The optimiser's poll schedule, on simulated time (no sleeping, no sandbox)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from cekura_gitops.cekura import ProgressReply
from cekura_gitops.optimiser import Optimiser, Outcome
from cekura_gitops.statestore import Claim

RTT = 0.05
RUNNING: dict[str, Any] = {"status": "in_progress", "output": None}
DONE: dict[str, Any] = {
    "status": "success",
    "output": {
        "improved_metric_description": "Score TRUE if ...",
        "improved_trigger_kind": "always",
        "old_score": {"num_correct": 4, "num_total": 6, "score": 0.667},
        "new_score": {"num_correct": 6, "num_total": 6, "score": 1.0},
    },
}


class SimulatedRun:
    """A progress endpoint whose run ends `duration` simulated seconds after the start."""

    def __init__(self, duration: float) -> None:
        self.now = 0.0
        self.duration = duration
        self.seen: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    def optimiser_progress(self, progress_id: str) -> ProgressReply:
        self.now += RTT / 2  # the server sees the poll half a round trip after it is sent
        self.seen.append(self.now)
        body = DONE if self.now >= self.duration else RUNNING
        self.now += RTT / 2
        return ProgressReply(body=body, retry_after=None)


def poll(duration: float) -> SimulatedRun:
    run = SimulatedRun(duration)
    optimiser = Optimiser(
        client=cast(Any, run),
        store=cast(Any, None),  # a run that ends in time never touches the state
        timeout=duration + 3600,
        owner="test",
        sleep=run.sleep,
        clock=lambda: run.now,
    )
    record = Claim(metric_id=1, claimed_at=0.0, owner="test", progress_id="p", started_at=0.0)
    result = optimiser._poll("m", record, False)
    assert result.outcome is Outcome.FINISHED and result.polls == len(run.seen)
    return run


def late(run: SimulatedRun) -> float:
    return run.seen[-1] - run.duration


def test_a_short_run_is_noticed_within_half_a_second_in_a_few_polls() -> None:
    run = poll(2.0)
    assert len(run.seen) <= 8 and late(run) <= 0.5


@pytest.mark.parametrize("hours", [0.75, 4.0])
def test_no_run_end_is_noticed_more_than_30_s_late(hours: float) -> None:
    horizon = hours * 3600
    # The worst lengths end just after a poll: try one just after each poll of the longest run.
    lengths = [t + 1e-3 for t in poll(horizon).seen if t + 1e-3 <= horizon] + [horizon]
    worst = max(late(poll(d)) for d in lengths)
    assert worst <= 30.0, worst

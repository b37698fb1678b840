"""The naive serial baselines: one metric at a time, as Cekura's documented routine does.

- optimise: GET the metric, POST the optimiser start, then sleep a fixed interval and poll
  until the run ends. Cekura documents polling every 30 s for runs that take minutes; the
  benchmark maps one real minute to one second, so the interval is 0.5 s.
- read: GET each metric's detail (no list endpoint), one after the other.
- apply: GET, PATCH, GET (verify) each metric, one after the other.

Serial work is linear in the number of metrics, so a baseline may be measured on a sample
and scaled (the table says so); `--full-baseline` measures every metric.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness import Population, new_sandbox

from cekura_gitops.cekura import CekuraClient
from cekura_gitops.proposal import RunState, parse_progress

FIXED_POLL = 0.5  # 30 s, at one real minute per benchmark second


@dataclass(frozen=True)
class Baseline:
    per_item: float
    measured: int

    def scaled(self, n: int) -> float:
        return self.per_item * n

    def describe(self, n: int) -> str:
        how = "" if self.measured >= n else f", measured on {self.measured}"
        return f"{self.scaled(n):.1f} s{how}"


def _measure(
    pop: Population,
    sample: int,
    latency: float,
    seconds: float,
    step: Callable[[CekuraClient, int], None],
) -> Baseline:
    sandbox = new_sandbox(pop, latency=latency, optimiser_seconds=seconds)
    ids: Sequence[int] = pop.ids()[:sample]
    try:
        with CekuraClient(sandbox.url, sandbox.api_key) as client:
            start = time.perf_counter()
            for metric_id in ids:
                step(client, metric_id)
            wall = time.perf_counter() - start
    finally:
        sandbox.stop()
    return Baseline(wall / len(ids), len(ids))


def optimise(pop: Population, sample: int, latency: float, seconds: float) -> Baseline:
    def step(client: CekuraClient, metric_id: int) -> None:
        client.get_metric(metric_id)
        progress_id = client.start_optimiser(metric_id, None)
        while True:
            time.sleep(FIXED_POLL)
            reply = client.optimiser_progress(progress_id)
            if parse_progress(reply.body).state is not RunState.PENDING:
                return

    return _measure(pop, sample, latency, seconds, step)


def read(pop: Population, sample: int, latency: float) -> Baseline:
    def step(client: CekuraClient, metric_id: int) -> None:
        client.get_metric(metric_id)

    return _measure(pop, sample, latency, 0.0, step)


def apply(pop: Population, sample: int, latency: float) -> Baseline:
    def step(client: CekuraClient, metric_id: int) -> None:
        live = client.get_metric(metric_id)
        client.patch_metric(metric_id, {"name": str(live["name"]) + " (edited)"})
        client.get_metric(metric_id)

    return _measure(pop, sample, latency, 0.0, step)

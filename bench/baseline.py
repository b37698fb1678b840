"""The serial routine: one metric at a time, as Cekura's documented routine does.

- optimise: GET the metric, POST the optimiser start, then sleep a fixed interval and poll
  until the run ends. Cekura documents polling every 30 s for runs that take minutes; the
  benchmark maps one real minute to one second, so the interval is 0.5 s.
- apply: GET, PATCH, GET (verify) each metric, one after the other.

Each routine runs over every metric of the scenario, against its own fresh sandbox, in the
same invocation as the product it is compared with (no sample, no scaling).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from harness import Population, new_sandbox

from cekura_gitops.cekura import CekuraClient
from cekura_gitops.progress import ProgressState, parse_progress

FIXED_POLL = 0.5  # 30 s, at one real minute per benchmark second


def _measure(
    pop: Population, latency: float, seconds: float, step: Callable[[CekuraClient, int], None]
) -> float:
    sandbox = new_sandbox(pop, latency=latency, optimiser_seconds=seconds)
    try:
        with CekuraClient(sandbox.url, sandbox.api_key) as client:
            start = time.perf_counter()
            for metric_id in pop.ids():
                step(client, metric_id)
            return time.perf_counter() - start
    finally:
        sandbox.stop()


def optimise(pop: Population, latency: float, seconds: float) -> float:
    """Wall time of the serial optimise routine over every metric of `pop`."""

    def step(client: CekuraClient, metric_id: int) -> None:
        client.get_metric(metric_id)
        progress_id = client.start_optimiser(metric_id, None)
        while True:
            time.sleep(FIXED_POLL)
            reply = client.optimiser_progress(progress_id)
            if parse_progress(reply.body).state is not ProgressState.PENDING:
                return

    return _measure(pop, latency, seconds, step)


def apply(pop: Population, latency: float) -> float:
    """Wall time of GET, PATCH, GET per metric, one metric after the other."""

    def step(client: CekuraClient, metric_id: int) -> None:
        live = client.get_metric(metric_id)
        client.patch_metric(metric_id, {"name": str(live["name"]) + " (edited)"})
        client.get_metric(metric_id)

    return _measure(pop, latency, 0.0, step)

"""sync against the serial routine, against itself at other sizes, with a slow origin, and
with Cekura queueing runs: every comparison alternates its two sides in one invocation."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import baseline
from config import Config
from harness import GitCount, Population, cli, count_kinds, median, new_sandbox
from report import Paired, Report, med, seconds


@dataclass(frozen=True)
class SyncRun:
    wall: float
    statuses: Counter[str]
    kinds: Counter[str]
    requests: int
    git: GitCount
    starts: Counter[int]


# Why the remote operations stop at 1 + 3 per wave of metrics, not 3 (docs/guarantees.md).
REMOTE_WHY = (
    "one fetch reads everything, then three steps push, and the metrics that reach a step "
    "together share its push: the claims (before any start POST: a sync killed after it "
    "leaves no run unclaimed), the records (each run's progress id the moment its POST "
    "returns, so a crash never loses a run that Cekura is billing), the branches with the "
    "runs' finishes (one atomic push that also checks each run is still ours; with pull "
    "requests the finishes are a fourth push, one for all, after the pull requests, so a "
    "crash in between still opens them next time). The nearest safe figure is 4 when every metric reaches "
    "each step together; records and ends that arrive apart take a push each."
)


def sync_once(
    cfg: Config,
    n: int,
    run_seconds: float,
    *,
    concurrency: int,
    remote_delay: float = 0.0,
    cap: int | None = None,
) -> SyncRun:
    """One `sync --no-pr` of n metrics in a fresh clone, against a fresh sandbox."""
    pop = Population(n)
    repo = cfg.template(pop).copy(cfg.fresh(f"sync-{n}"))
    env, log = cfg.git_counter.env(remote_delay=remote_delay)
    # As the scheduled workflow runs it: GitHub runs a schedule on the default branch and
    # says so in GITHUB_REF, so sync does not ask the remote for its HEAD (an ls-remote).
    env |= {"GITHUB_EVENT_NAME": "schedule", "GITHUB_REF": "refs/heads/main"}
    sandbox = new_sandbox(pop, latency=cfg.latency, optimiser_seconds=run_seconds, optimiser_cap=cap)
    try:
        run = cli(
            ["--json", "sync", "--no-pr", "--concurrency", str(concurrency)],
            cwd=repo.work,
            sandbox=sandbox,
            env=env,
        ).check()
        starts = Counter({k: v for k, v in sandbox.state.optimisations_started.items()})
    finally:
        sandbox.stop()
    statuses = Counter(str(m["status"]) for m in run.json()["metrics"])
    return SyncRun(
        run.wall, statuses, count_kinds(run.requests), len(run.requests), cfg.git_counter.read(log), starts
    )


def _correct(report: Report, name: str, n: int, runs: Sequence[SyncRun]) -> None:
    last = runs[-1]
    report.check(
        name,
        f"every metric proposed, one optimiser start per metric ({n})",
        ", ".join(f"{c} {s}" for s, c in sorted(last.statuses.items()))
        + f"; starts {sum(last.starts.values())}",
        all(
            r.statuses == Counter({"proposed": n})
            and r.starts == Counter(dict.fromkeys(Population(n).ids(), 1))
            for r in runs
        ),
        "correct",
    )


def sizes_scenario(cfg: Config, report: Report) -> None:
    """1, 20 and 100 metrics: sync vs the serial routine, alternated, plus the counts."""
    run_s = cfg.seconds(2.0, 0.3)
    small, mid, big = (1, 20, 100) if not cfg.smoke else (1, 2, 4)
    concurrency = {small: small, mid: mid, big: big}
    syncs: dict[int, list[SyncRun]] = {n: [] for n in (small, mid, big)}
    serial: dict[int, list[float]] = {n: [] for n in (small, mid, big)}

    def serial_run(n: int) -> float:
        wall = baseline.optimise(Population(n), cfg.latency, run_s)
        serial[n].append(wall)
        return wall

    def sync_run(n: int) -> float:
        result = sync_once(cfg, n, run_s, concurrency=concurrency[n])
        syncs[n].append(result)
        return result.wall

    # Rounds of serial-1, sync-1, serial-20, sync-20: each pair side by side, and sync-1 and
    # sync-20 in the same rounds for their ratio.
    for _ in range(cfg.pairs):
        for n in (small, mid):
            serial_run(n)
            sync_run(n)
    for _ in range(cfg.big_pairs):
        serial_run(big)
        sync_run(big)

    rows = report.section(
        f"sync --no-pr: optimiser runs of {run_s:g} s, {cfg.latency * 1000:g} ms per HTTP request, "
        "local bare origin; serial routine = GET, start, poll every 0.5 s, one metric at a time",
        (
            "metrics",
            "--concurrency",
            "sync wall",
            "serial routine wall",
            "sync / serial, per pair",
            "× faster",
            "floor",
            "sync / floor",
            "git processes / metric",
            "remote git ops / run",
            "HTTP requests / metric",
        ),
    )
    for n in (small, mid, big):
        pair = Paired(serial[n], [r.wall for r in syncs[n]])
        floor = math.ceil(n / concurrency[n]) * run_s
        last = syncs[n][-1]
        rows.append(
            (
                str(n),
                str(concurrency[n]),
                med(pair.b),
                med(pair.a),
                pair.describe(),
                f"{1 / pair.ratio:.1f}",
                seconds(floor),
                f"{median(pair.b) / floor:.2f}",
                f"{median([r.git.processes for r in syncs[n]]) / n:.1f}",
                f"{median([r.git.remote for r in syncs[n]]):g}",
                f"{last.requests / n:.1f} ({', '.join(f'{k} {v}' for k, v in sorted(last.kinds.items()))})",
            )
        )
        _correct(report, f"sync, {n} metric(s)", n, syncs[n])
        limit = 3 + n // 50
        remote = max(r.git.remote for r in syncs[n])
        report.check(
            f"sync, {n} metric(s)",
            f"remote git operations ≤ 3 + 1 per 50 metrics = {limit}",
            str(remote),
            remote <= limit,
            why=REMOTE_WHY,
        )
    per_metric = max(r.git.processes for r in syncs[mid]) / mid
    report.check(f"sync, {mid} metrics", "git processes per metric ≤ 4", f"{per_metric:.1f}", per_metric <= 4)
    vs_one = Paired([r.wall for r in syncs[small]], [r.wall for r in syncs[mid]])
    report.check(
        f"sync, {mid} metrics",
        f"≤ 1.5 × a {small}-metric sync of the same rounds",
        f"{vs_one.ratio:.2f} × (per round: {vs_one.describe()})",
        vs_one.ratio <= 1.5,
    )
    vs_serial = Paired(serial[mid], [r.wall for r in syncs[mid]])
    report.check(
        f"sync, {mid} metrics",
        "≥ 15 × faster than the serial routine",
        f"{1 / vs_serial.ratio:.1f} × (per pair: {', '.join(f'{1 / r:.1f}' for r in vs_serial.ratios)})",
        1 / vs_serial.ratio >= 15,
    )


def remote_scenario(cfg: Config, report: Report) -> None:
    """The same sync with a local origin and with 300 ms per remote git operation."""
    n = cfg.pick(20, 2)
    run_s = cfg.seconds(2.0, 0.3)
    delay = cfg.seconds(0.3, 0.1)
    local: list[SyncRun] = []
    slow: list[SyncRun] = []
    for _ in range(cfg.pairs):
        local.append(sync_once(cfg, n, run_s, concurrency=n))
        slow.append(sync_once(cfg, n, run_s, concurrency=n, remote_delay=delay))
    pair = Paired([r.wall for r in local], [r.wall for r in slow])
    rows = report.section(
        f"sync, {n} metric(s) × {run_s:g} s: local origin vs {delay * 1000:g} ms per remote git operation",
        ("origin", "sync wall", "remote git ops / run", "slow / local, per pair"),
    )
    rows.append(("local", med(pair.a), f"{median([r.git.remote for r in local]):g}", ""))
    rows.append(
        (
            f"+{delay * 1000:g} ms per remote op",
            med(pair.b),
            f"{median([r.git.remote for r in slow]):g}",
            pair.describe(),
        )
    )
    _correct(report, f"sync, {n} metric(s), slow origin", n, slow)
    report.check(
        f"sync, {n} metric(s), {delay * 1000:g} ms per remote op",
        "≤ 1.5 × the same sync with a local origin",
        f"{pair.ratio:.2f} ×",
        pair.ratio <= 1.5,
    )


def cap_scenario(cfg: Config, report: Report) -> None:
    """Cekura may queue runs: sync's wall time when at most 1, 4 or any runs go at once."""
    n = cfg.pick(20, 3)
    run_s = cfg.seconds(2.0, 0.2)
    caps: tuple[int | None, ...] = (1, 4, None) if not cfg.smoke else (1, 2, None)
    rows = report.section(
        f"sync, {n} metric(s) × {run_s:g} s, --concurrency {n}, "
        "Cekura running at most CAP optimisations at once",
        ("cap", "sync wall", "floor (ceil(metrics / cap) × run)", "sync / floor"),
    )
    for cap in caps:
        result = sync_once(cfg, n, run_s, concurrency=n, cap=cap)
        floor = math.ceil(n / (cap or n)) * run_s
        rows.append(
            (str(cap or "unlimited"), seconds(result.wall), seconds(floor), f"{result.wall / floor:.2f}")
        )
        _correct(report, f"sync, {n} metric(s), cap {cap or 'unlimited'}", n, [result])

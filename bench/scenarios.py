"""The benchmark scenarios: each adds result rows and targets (with pass/fail) to a Report."""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import baseline
import pollsim
from harness import (
    CliRun,
    Population,
    Repo,
    cli,
    console_script,
    count_kinds,
    format_kinds,
    kind_of,
    median,
    new_repo,
    new_sandbox,
)

from cekura_gitops.metric_files import edit_fields, load_metrics
from cekura_gitops.sandbox import Fault, RecordedRequest, Sandbox

Kind = Literal["timing", "count", "advisory"]
DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class Target:
    scenario: str
    target: str
    measured: str
    ok: bool
    kind: Kind  # count: request counts and correctness, enforced in --smoke too


@dataclass(frozen=True)
class Row:
    scenario: str
    wall: str
    requests: str
    rss: str
    baseline: str


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def check(self, scenario: str, target: str, measured: str, ok: bool, kind: Kind = "timing") -> None:
        self.targets.append(Target(scenario, target, measured, ok, kind))


@dataclass
class Config:
    smoke: bool
    runs: int
    latency: float
    tmp: Path
    full_baseline: bool = False
    templates: dict[Population, Repo] = field(default_factory=dict)
    baselines: dict[tuple[object, ...], baseline.Baseline] = field(default_factory=dict)
    _dirs: int = 0

    def pick(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full

    def seconds(self, full: float, smoke: float) -> float:
        return smoke if self.smoke else full

    def fresh(self, name: str) -> Path:
        self._dirs += 1
        return self.tmp / f"{self._dirs:03d}-{name}"

    def sample(self, n: int, cap: int) -> int:
        return n if self.full_baseline else min(n, 2 if self.smoke else cap)

    def template(self, pop: Population) -> Repo:
        """A repo whose metrics/ was pulled from a sandbox seeded with `pop`, pushed to main."""
        if pop not in self.templates:
            repo = new_repo(self.fresh(f"template-{pop.count}"))
            sandbox = new_sandbox(pop, latency=0.0)
            try:
                for p in sorted({pop.project_of(i) for i in range(pop.count)}):
                    cli(["pull", "--project", str(p)], cwd=repo.work, sandbox=sandbox).check()
            finally:
                sandbox.stop()
            repo.commit_push(f"import {pop.count} metrics")
            self.templates[pop] = repo
        return self.templates[pop]

    def baseline(
        self, key: tuple[object, ...], measure: Callable[[], baseline.Baseline]
    ) -> baseline.Baseline:
        if key not in self.baselines:
            self.baselines[key] = measure()
        return self.baselines[key]


def _mb(kb: Sequence[int]) -> str:
    return f"{max(kb) / 1024:.0f} MB" if max(kb) else "—"


def _wall(walls: Sequence[float]) -> str:
    value = median(walls)
    text = f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return text + (f" (median of {len(walls)})" if len(walls) > 1 else "")


def _vs(wall: float, base: baseline.Baseline, n: int) -> str:
    return f"{wall / base.scaled(n):.2f} of {base.describe(n)}"


def _by_kind(runs: Sequence[CliRun]) -> Counter[str]:
    """Request counts of one run (they are the same for every run; the last is shown)."""
    return count_kinds(runs[-1].requests)


# -- sync ------------------------------------------------------------------------------


@dataclass
class SyncRun:
    cli: CliRun
    statuses: Counter[str]
    kinds: Counter[str]
    polls_max: int
    lags: list[float]
    max_concurrent: int


def _sync_once(repo: Repo, sandbox: Sandbox, seconds: float, extra: Sequence[str]) -> SyncRun:
    run = cli(["--json", "sync", "--no-pr", *extra], cwd=repo.work, sandbox=sandbox).check()
    statuses = Counter(str(m["status"]) for m in run.json()["metrics"])
    starts = {int(r.body["metric_id"]): r.at for r in run.requests if kind_of(r) == "start"}
    progress: dict[str, list[float]] = {}
    for r in run.requests:
        if kind_of(r) == "progress":
            progress.setdefault(r.query["progress_id"], []).append(r.at)
    lags = [
        max(progress[o["progress_id"]]) - starts[int(o["metric_id"])] - seconds
        for o in sandbox.state.optimisations()
        if o["progress_id"] in progress and int(o["metric_id"]) in starts
    ]
    polls_max = max((len(v) for v in progress.values()), default=0)
    return SyncRun(
        run, statuses, count_kinds(run.requests), polls_max, lags, sandbox.state.max_concurrent_optimisations
    )


def sync_scenario(
    cfg: Config, report: Report, *, name: str, n: int, seconds: float, concurrency: int | None
) -> None:
    pop = Population(n)
    template = cfg.template(pop)
    extra = ["--concurrency", str(concurrency)] if concurrency else []
    conc = concurrency or DEFAULT_CONCURRENCY
    results: list[SyncRun] = []
    for _ in range(cfg.runs):
        sandbox = new_sandbox(pop, latency=cfg.latency, optimiser_seconds=seconds)
        try:
            results.append(_sync_once(template.copy(cfg.fresh(name)), sandbox, seconds, extra))
        finally:
            sandbox.stop()
    walls = [r.cli.wall for r in results]
    base = cfg.baseline(
        ("optimise", seconds, cfg.latency),
        lambda: baseline.optimise(pop, cfg.sample(n, 20), cfg.latency, seconds),
    )
    last = results[-1]
    report.rows.append(
        Row(
            name,
            _wall(walls),
            format_kinds(last.kinds),
            _mb([r.cli.max_rss_kb for r in results]),
            _vs(median(walls), base, n),
        )
    )
    wall = median(walls)
    if concurrency and concurrency >= n:
        limit = seconds + 1.0
        report.check(name, f"wall ≤ {limit:g} s (all {n} runs overlap)", f"{wall:.2f} s", wall <= limit)
        report.check(
            name,
            f"serial baseline ≥ {n * seconds:g} s",
            f"{base.scaled(n):.1f} s",
            base.scaled(n) >= n * seconds,
        )
    else:
        ideal = math.ceil(n / conc) * seconds
        limit = ideal * 1.1
        report.check(
            name,
            f"wall ≤ ceil({n}/{conc})×{seconds:g} s + 10 % = {limit:.1f} s",
            f"{wall:.2f} s ({wall / ideal - 1:+.0%})",
            wall <= limit,
        )
    report.check(
        name,
        f"one start POST and one detail GET per metric ({n}), no list",
        f"start {last.kinds['start']}, get {last.kinds['get']}, list {last.kinds['list']}",
        all(r.kinds["start"] == n and r.kinds["get"] == n and r.kinds["list"] == 0 for r in results),
        "count",
    )
    report.check(
        name,
        "every metric proposed, exit 0",
        ", ".join(f"{c} {s}" for s, c in sorted(last.statuses.items())),
        all(r.statuses == Counter({"proposed": n}) for r in results),
        "count",
    )
    polls = max(r.polls_max for r in results)
    report.check(name, f"≤ 8 progress polls per {seconds:g} s run", f"max {polls}", polls <= 8, "count")
    lag = max(max(r.lags) for r in results)
    allowance = max(0.5, 0.1 * seconds)
    report.check(name, f"run end noticed within {allowance:g} s", f"worst {lag:.2f} s", lag <= allowance)
    peak = min(r.max_concurrent for r in results)
    report.check(
        name,
        f"{min(n, conc)} optimisations in flight at once",
        f"{peak} (fewest over runs)",
        peak >= min(n, conc),
    )


# -- poll schedule (simulated time) ---------------------------------------------------


def poll_scenario(cfg: Config, report: Report) -> None:
    rtt = cfg.latency
    for duration, budget, label in ((2.0, 8, "2 s"), (600.0, 40, "10 min")):
        run = pollsim.simulate(duration, rtt)
        fixed = pollsim.fixed_interval(duration, 30.0)
        name = f"poll {label} run (simulated)"
        report.rows.append(
            Row(
                name,
                f"noticed +{run.lag:.2f} s",
                f"progress {run.polls}",
                "—",
                f"fixed 30 s polling: {fixed.polls} polls, +{fixed.lag:.0f} s",
            )
        )
        report.check(name, f"≤ {budget} progress requests", str(run.polls), run.polls <= budget, "count")
        report.check(
            name,
            f"end noticed within {run.allowance:g} s",
            f"+{run.lag:.2f} s",
            run.lag <= run.allowance,
            "count",
        )
    worst, ratio = pollsim.sweep(rtt)
    name = "poll, every run length ≤ 10 min"
    report.rows.append(
        Row(name, f"worst lag {ratio:.0%} of elapsed", "—", "—", "fixed 30 s polling: up to 30 s late")
    )
    report.check(
        name,
        "end noticed within max(0.5 s, 10 %) for every length",
        f"{worst.lag:.2f} s late for a {worst.duration:.1f} s run; ≤ {ratio:.0%} of elapsed past 5 s",
        worst.lag <= worst.allowance,
        "advisory",
    )


# -- plan, validate, --help -------------------------------------------------------------


def _max_overlap(requests: Sequence[RecordedRequest], latency: float) -> int:
    """Most requests being served at once (each is in the server for its injected latency)."""
    events = sorted([(r.at - latency, 1) for r in requests] + [(r.at, -1) for r in requests])
    depth = peak = 0
    for _, step in events:
        depth += step
        peak = max(peak, depth)
    return peak


def plan_population(cfg: Config) -> Population:
    return Population(cfg.pick(1000, 60), projects=cfg.pick(4, 2), code_every=5)


def plan_scenario(cfg: Config, report: Report) -> None:
    pop = plan_population(cfg)
    name = f"plan, {pop.count} metrics ({pop.code_count} custom_code)"
    repo = cfg.template(pop)
    sandbox = new_sandbox(pop, latency=cfg.latency)
    try:
        runs = [
            cli(["plan", "--detailed-exitcode"], cwd=repo.work, sandbox=sandbox).check()
            for _ in range(max(cfg.runs, 5))
        ]
    finally:
        sandbox.stop()
    walls = [r.wall for r in runs]
    kinds = _by_kind(runs)
    base = cfg.baseline(
        ("read", pop, cfg.latency), lambda: baseline.read(pop, cfg.sample(pop.count, 200), cfg.latency)
    )
    report.rows.append(
        Row(
            name,
            _wall(walls),
            format_kinds(kinds),
            _mb([r.max_rss_kb for r in runs]),
            _vs(median(walls), base, pop.count),
        )
    )
    wall = median(walls)
    report.check(name, "wall ≤ 2 s", f"{wall:.2f} s", wall <= 2.0)
    report.check(
        name,
        f"list = projects ({pop.projects}), detail GETs = custom_code ({pop.code_count}), nothing else",
        format_kinds(kinds),
        all(count_kinds(r.requests) == Counter(list=pop.projects, get=pop.code_count) for r in runs),
        "count",
    )
    gets = [r for r in runs[-1].requests if kind_of(r) == "get"]
    overlap = _max_overlap(gets, cfg.latency)
    report.check(
        name,
        "detail GETs run concurrently",
        f"up to {overlap} at once",
        overlap >= min(4, len(gets)),
        "count",
    )
    report.check(name, "in sync (exit 0 with --detailed-exitcode)", f"exit {runs[-1].code}", True, "count")


def validate_scenario(cfg: Config, report: Report) -> None:
    pop = plan_population(cfg)
    repo = cfg.template(pop)
    name = f"validate, {pop.count} files"
    runs = [cli(["validate"], cwd=repo.work).check() for _ in range(max(cfg.runs, 5))]
    wall = median([r.wall for r in runs])
    report.rows.append(
        Row(name, _wall([r.wall for r in runs]), "none", _mb([r.max_rss_kb for r in runs]), "—")
    )
    report.check(name, "wall ≤ 1 s", f"{wall:.2f} s", wall <= 1.0)
    report.check(
        name,
        f"all {pop.count} valid",
        runs[-1].out.strip(),
        f"{pop.count} metric file(s) valid" in runs[-1].out,
        "count",
    )


def help_scenario(cfg: Config, report: Report) -> None:
    command = console_script()
    cli(["--help"], cwd=cfg.tmp, command=command).check()  # warm the file cache
    runs = [cli(["--help"], cwd=cfg.tmp, command=command).check() for _ in range(max(10, cfg.runs))]
    wall = median([r.wall for r in runs])
    python = [cli([], cwd=cfg.tmp, command=[sys.executable, "-c", "pass"]) for _ in range(5)]
    bare = median([r.wall for r in python])
    name = "cekura-gitops --help"
    rss = cli(["--help"], cwd=cfg.tmp).check().max_rss_kb
    report.rows.append(
        Row(
            name,
            _wall([r.wall for r in runs]),
            "none",
            _mb([rss]),
            f"bare `python -c pass`: {bare * 1000:.0f} ms",
        )
    )
    report.check(name, "wall ≤ 150 ms", f"{wall * 1000:.0f} ms", wall <= 0.150)


# -- apply ------------------------------------------------------------------------------


def _changed_template(cfg: Config, pop: Population) -> Repo:
    """The population's repo plus one commit that changes every metric's prompt or code."""
    repo = cfg.template(pop).copy(cfg.fresh(f"apply-{pop.count}"))
    for f in load_metrics([repo.work / "metrics"], repo.work):
        fields = f.metric.fields
        if fields.get("type") == "custom_code":
            change = {"custom_code": str(fields["custom_code"]) + "# reviewed in git\n"}
        else:
            change = {"description": str(fields["description"]) + "\nA title alone does not count."}
        (repo.work / f.display).write_text(edit_fields(f.text, f.display, change))
    repo.commit_push("tighten every metric")
    return repo


def apply_scenario(cfg: Config, report: Report) -> None:
    pop = Population(cfg.pick(100, 10), code_every=5)
    changed = _changed_template(cfg, pop)
    name = f"apply, {pop.count} changed metrics"
    runs = []
    for _ in range(max(cfg.runs, 5)):
        # apply records the applied commit on origin: each run starts from a fresh copy.
        repo = changed.copy(cfg.fresh("apply-run"))
        sandbox = new_sandbox(pop, latency=cfg.latency)
        try:
            runs.append(cli(["--json", "apply"], cwd=repo.work, sandbox=sandbox).check())
        finally:
            sandbox.stop()
    walls = [r.wall for r in runs]
    kinds = _by_kind(runs)
    base = cfg.baseline(
        ("apply", pop, cfg.latency), lambda: baseline.apply(pop, cfg.sample(pop.count, 100), cfg.latency)
    )
    report.rows.append(
        Row(
            name,
            _wall(walls),
            format_kinds(kinds),
            _mb([r.max_rss_kb for r in runs]),
            _vs(median(walls), base, pop.count),
        )
    )
    wall = median(walls)
    report.check(name, "wall ≤ 2 s", f"{wall:.2f} s", wall <= 2.0)
    n = pop.count
    report.check(
        name,
        f"≤ 1 GET + 1 PATCH + 1 verify GET per metric (get ≤ {2 * n}, patch ≤ {n})",
        f"get {kinds['get']}, patch {kinds['patch']}",
        all(count_kinds(r.requests)["get"] <= 2 * n and count_kinds(r.requests)["patch"] <= n for r in runs),
        "count",
    )
    total = max(len(r.requests) for r in runs)
    report.check(
        name,
        "≤ 3 requests per metric in all (history trace included)",
        f"{total / n:.1f} per metric ({format_kinds(kinds)})",
        total <= 3 * n,
        "advisory",
    )
    statuses = Counter(str(m["status"]) for m in runs[-1].json()["metrics"])
    report.check(
        name,
        "every metric applied",
        ", ".join(f"{c} {s}" for s, c in sorted(statuses.items())),
        statuses == Counter({"applied": n}),
        "count",
    )


# -- shards -----------------------------------------------------------------------------


def shard_scenario(cfg: Config, report: Report) -> None:
    pop = Population(cfg.pick(24, 8))
    seconds = cfg.seconds(1.0, 0.3)
    conc = cfg.pick(3, 2)  # 24/3 = 8 waves for 1 shard, 4 for 2, 2 for 4: 1/N exactly
    shard_counts = (1, 2, 4) if not cfg.smoke else (1, 2)
    template = cfg.template(pop)
    per_n: dict[int, list[float]] = {}
    for n_shards in shard_counts:
        problems = []
        for _ in range(cfg.runs):
            sandbox = new_sandbox(pop, latency=cfg.latency, optimiser_seconds=seconds)
            origin = template.copy(cfg.fresh(f"shards-{n_shards}"))
            walls, listed = [], []
            try:
                for k in range(1, n_shards + 1):
                    runner = origin.clone(cfg.fresh(f"runner-{k}-of-{n_shards}"))
                    shard = f"{k}/{n_shards}"
                    listed += (
                        cli(["--json", "list", "--shard", shard], cwd=runner.work).check().json()["slugs"]
                    )
                    run = cli(
                        ["--json", "sync", "--no-pr", "--shard", shard, "--concurrency", str(conc)],
                        cwd=runner.work,
                        sandbox=sandbox,
                    ).check()
                    walls.append(run.wall)
                started = sandbox.state.optimisations_started
            finally:
                sandbox.stop()
            per_n.setdefault(n_shards, []).append(max(walls))
            if len(set(listed)) != len(listed) or len(listed) != pop.count:
                problems.append(f"{len(listed)} listed, {len(set(listed))} distinct")
            if started != dict.fromkeys(pop.ids(), 1):
                problems.append(f"{sum(started.values())} starts for {len(started)} metrics")
        report.check(
            f"sync --shard K/{n_shards}",
            "shards partition the metrics: each listed and optimised exactly once",
            "; ".join(problems) or f"{pop.count} listed, {pop.count} started",
            not problems,
            "count",
        )
    one = median(per_n[1])
    for n_shards, walls in per_n.items():
        wall = median(walls)
        name = f"sync --shard K/{n_shards}, {pop.count}×{seconds:g} s, c{conc}"
        report.rows.append(
            Row(name, _wall(walls) + " slowest shard", "—", "—", f"{wall / one:.2f} of 1 shard ({one:.2f} s)")
        )
        if n_shards > 1:
            report.check(
                f"sync --shard K/{n_shards}",
                f"wall falls ~1/N: ≤ 1.3/{n_shards} of one shard",
                f"{wall / one:.2f}",
                wall / one <= 1.3 / n_shards,
            )


# -- memory -----------------------------------------------------------------------------


def memory_scenario(cfg: Config, report: Report) -> None:
    big = plan_population(cfg)
    small = Population(big.count // 10, projects=big.projects, code_every=5)
    peaks = {}
    for pop in (small, big):
        repo = cfg.template(pop)
        sandbox = new_sandbox(pop, latency=cfg.latency)
        try:
            peaks[pop.count] = max(
                cli(["plan"], cwd=repo.work, sandbox=sandbox).check().max_rss_kb for _ in range(cfg.runs)
            )
        finally:
            sandbox.stop()
    lo, hi = peaks[small.count], peaks[big.count]
    name = f"memory, plan {small.count} → {big.count} metrics"
    report.rows.append(Row(name, "—", "—", f"{lo / 1024:.0f} → {hi / 1024:.0f} MB", "—"))
    per_metric = (hi - lo) / (big.count - small.count)
    report.check(
        name,
        "flat: ≤ 25 KB of peak RSS per extra metric",
        f"{per_metric:.0f} KB per metric ({hi / lo - 1:+.0%} for ×10 metrics)",
        per_metric <= 25,
    )


# -- 429 backoff --------------------------------------------------------------------------


def backoff_scenario(cfg: Config, report: Report) -> None:
    pop = Population(cfg.pick(100, 30), code_every=2)
    repo = cfg.template(pop)
    pause = 0.5
    sandbox = new_sandbox(pop, latency=cfg.latency)
    try:
        sandbox.faults.add(
            Fault(method="GET", path=r"/v2/metrics/\d+/$", status=429, retry_after=pause, times=1, after=5)
        )
        run = cli(["plan"], cwd=repo.work, sandbox=sandbox).check()
    finally:
        sandbox.stop()
    limited = [r for r in run.requests if r.status == 429]
    name = f"plan, {pop.count} metrics, one 429 (Retry-After {pause:g} s)"
    kinds = count_kinds(run.requests)
    report.rows.append(Row(name, _wall([run.wall]), format_kinds(kinds), _mb([run.max_rss_kb]), "—"))
    if len(limited) != 1:
        report.check(name, "exactly one 429 served", str(len(limited)), False, "count")
        return
    at = limited[0].at
    # Requests already in flight when the 429 went out arrive within one latency (+ slack).
    window = (at + cfg.latency + 0.05, at + pause - 0.02)
    during = [r for r in run.requests if window[0] < r.at < window[1]]
    report.check(
        name,
        "all requests pause after a 429 (global backoff)",
        f"{len(during)} served during the pause",
        not during,
        "count",
    )
    report.check(
        name,
        f"the limited GET is retried once ({pop.code_count} + 1 detail GETs)",
        f"get {kinds['get']}",
        kinds["get"] == pop.code_count + 1,
        "count",
    )

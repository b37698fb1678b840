"""The poll schedule (simulated time), apply, `--version`, and a 429 during plan."""

from __future__ import annotations

import sys
from collections import Counter

import baseline
import harness
import pollsim
from config import Config
from harness import Population, Repo, cli, console_script, count_kinds, kind_of, median, new_sandbox
from report import Paired, Report, med

from cekura_gitops.metric_files import edit_fields, load_metrics
from cekura_gitops.sandbox import Fault


def poll_scenario(cfg: Config, report: Report) -> None:
    rtt = cfg.latency
    rows = report.section(
        f"Poll schedule, simulated time ({rtt * 1000:g} ms round trip)",
        ("run length", "progress polls", "end noticed after", "fixed 30 s polling"),
    )
    for duration, label in ((2.0, "2 s"), (600.0, "10 min"), (2700.0, "45 min")):
        run = pollsim.simulate(duration, rtt)
        fixed = pollsim.fixed_interval(duration, 30.0)
        rows.append((label, str(run.polls), f"+{run.lag:.2f} s", f"{fixed.polls} polls, +{fixed.lag:.0f} s"))
        if label == "45 min":
            report.check(
                "poll a 45-minute run",
                "≤ 30 progress polls",
                str(run.polls),
                run.polls <= 30,
                why=(
                    "Cekura's progress reply says only whether the run has finished: no progress "
                    "fraction, ETA or step count, and no documented Retry-After (reference/cekura-api.md "
                    "§3, ProcessFeedbacksResponse), so a run's end can only be found by polling. Noticing "
                    "it at most 30 s late, for runs of any length, needs gaps of at most 30 s: at least "
                    f"2,700 / 30 = 90 polls for 45 minutes (this schedule: {run.polls}, its first gaps "
                    "short so that short runs are noticed early). 30 polls would mean 90-second gaps "
                    "and ends noticed up to 90 s late; the 30-second guarantee wins."
                ),
            )
    horizon = 4 * 3600.0 if not cfg.smoke else 2700.0
    worst = pollsim.worst(rtt, horizon)
    rows.append(
        (
            f"any ≤ {horizon / 3600:g} h",
            "—",
            f"worst +{worst.lag:.1f} s ({worst.duration:.0f} s run)",
            "+30 s",
        )
    )
    report.check(
        f"poll, every run length ≤ {horizon / 3600:g} h",
        "end noticed ≤ 30 s late",
        f"+{worst.lag:.1f} s (a {worst.duration:.0f} s run)",
        worst.lag <= 30.0,
    )


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
    n = pop.count
    runs = []

    def product() -> float:
        # apply records the applied commit on origin: each run starts from a fresh copy.
        repo = changed.copy(cfg.fresh("apply-run"))
        sandbox = new_sandbox(pop, latency=cfg.latency)
        try:
            runs.append(cli(["--json", "apply"], cwd=repo.work, sandbox=sandbox).check())
        finally:
            sandbox.stop()
        return runs[-1].wall

    pair = Paired([], [])
    for _ in range(cfg.pairs):
        pair.a.append(baseline.apply(pop, cfg.latency))
        pair.b.append(product())
    kinds = count_kinds(runs[-1].requests)
    rows = report.section(
        f"apply, {n} changed metrics ({pop.code_count} custom_code), "
        f"{cfg.latency * 1000:g} ms per HTTP request",
        ("", "wall", "apply / serial, per pair", "HTTP requests / metric"),
    )
    rows.append(("serial GET, PATCH, GET", med(pair.a), "", "3.0"))
    per_metric = max(len(r.requests) for r in runs) / n
    detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    rows.append(("cekura-gitops apply", med(pair.b), pair.describe(), f"{per_metric:.1f} ({detail})"))
    report.check(f"apply, {n} metrics", "≤ 4 HTTP requests per metric", f"{per_metric:.1f}", per_metric <= 4)
    statuses = Counter(str(m["status"]) for m in runs[-1].json()["metrics"])
    report.check(
        f"apply, {n} metrics",
        "every metric applied",
        ", ".join(f"{c} {s}" for s, c in sorted(statuses.items())),
        all(Counter(str(m["status"]) for m in r.json()["metrics"]) == Counter({"applied": n}) for r in runs),
        "correct",
    )


def version_scenario(cfg: Config, report: Report) -> None:
    command = console_script()
    if harness.PRODUCT_CODE is not None:
        # The console script's two lines, importing the snapshot instead of the install.
        command = [sys.executable, "-c", harness.ENTRY.format(code=str(harness.PRODUCT_CODE))]
    bare = [sys.executable, "-c", "pass"]
    cli(["--version"], cwd=cfg.tmp, command=command).check()  # warm the file cache
    pair = Paired([], [])
    for _ in range(cfg.pick(20, 5)):
        pair.a.append(cli([], cwd=cfg.tmp, command=bare).check().wall)
        pair.b.append(cli(["--version"], cwd=cfg.tmp, command=command).check().wall)
    extra = median([b - a for a, b in zip(pair.a, pair.b, strict=True)])
    rows = report.section("Start-up", ("command", "wall", "over `python -c pass`, median of pairs"))
    rows.append(("python -c pass", med(pair.a), ""))
    rows.append(("cekura-gitops --version", med(pair.b), f"{extra * 1000:+.0f} ms"))
    report.check(
        "cekura-gitops --version", "≤ 40 ms over `python -c pass`", f"{extra * 1000:+.0f} ms", extra <= 0.040
    )


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
    name = f"plan, {pop.count} metrics, one 429 (Retry-After {pause:g} s)"
    limited = [r for r in run.requests if r.status == 429]
    if len(limited) != 1:
        report.check(name, "exactly one 429 served", str(len(limited)), False, "correct")
        return
    at = limited[0].at
    # Requests already in flight when the 429 went out arrive within one latency (+ slack).
    window = (at + cfg.latency + 0.05, at + pause - 0.02)
    during = [r for r in run.requests if window[0] < r.at < window[1]]
    gets = sum(kind_of(r) == "get" for r in run.requests)
    report.check(
        name,
        "every request pauses after a 429; the limited GET is retried once",
        f"{len(during)} served during the pause; get {gets} for {pop.code_count} custom_code",
        not during and gets == pop.code_count + 1,
        "correct",
    )

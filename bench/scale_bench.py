"""validate, list, plan and pull at 1k / 5k / 10k metric files: time, peak RSS, growth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config import Config
from harness import CliRun, Population, Repo, cli, git, kind_of, median, new_sandbox
from report import Paired, Report, med

from cekura_gitops.sandbox import Sandbox

COMMANDS = ("validate", "list", "plan", "pull")
CONCURRENCY = 8  # the default --concurrency: plan's GETs at once
GROWTH_LIMIT = {"validate": 10.0, "list": 10.0, "plan": 10.0, "pull": 12.0}


@dataclass
class Size:
    pop: Population
    repo: Repo
    sandbox: Sandbox


def _local_drafts(repo: Repo, count: int) -> None:
    """Uncommitted new metric files (no id yet): pull must leave them alone, cheaply."""
    for i in range(count):
        slug = f"bench_local_draft_{i:04d}"
        (repo.work / "metrics" / f"{slug}.yaml").write_text(
            f"slug: {slug}\nproject: 5000\nname: Local draft {i}\ntype: llm_judge\n"
            f"eval_type: binary\ndescription: Score TRUE if the agent did step {i}.\n"
        )


def _prepare(cfg: Config, count: int) -> Size:
    pop = Population(count, projects=4, code_every=5, reviews=0)
    repo = cfg.template(pop).copy(cfg.fresh(f"scale-{count}"))
    _local_drafts(repo, max(1, count // 100))
    sandbox = new_sandbox(pop, latency=cfg.latency)
    # Someone edited every tenth metric in Cekura's dashboard: plan shows it, pull brings it in.
    for metric_id in pop.ids()[::10]:
        sandbox.state.dashboard_edit(metric_id, description=f"Edited in the dashboard: metric {metric_id}.")
    return Size(pop, repo, sandbox)


def _run(command: str, size: Size, code: Path | None = None) -> CliRun:
    work = size.repo.work
    if command == "validate":
        return cli(["validate"], cwd=work, code=code).check()
    if command == "list":
        return cli(["list"], cwd=work, code=code).check()
    if command == "plan":
        return cli(["plan"], cwd=work, sandbox=size.sandbox, code=code).check()
    run = cli(["--json", "pull"], cwd=work, sandbox=size.sandbox, code=code).check()
    git(work, "checkout", "-q", "--", "metrics")  # the next round pulls the same changes again
    return run


def scale_scenario(cfg: Config, report: Report) -> None:
    counts = (1000, 5000, 10000) if not cfg.smoke else (20, 60, 200)
    sizes = {c: _prepare(cfg, c) for c in counts}
    walls: dict[tuple[str, int], list[float]] = {}
    rss: dict[tuple[str, int], list[int]] = {}
    old = cfg.old_code()
    old_plan, new_plan = [], []
    largest = counts[-1]
    gets = 0
    try:
        for _ in range(cfg.pairs):
            for count, size in sizes.items():
                for command in COMMANDS:
                    if command == "plan" and count == largest and old is not None:
                        old_plan.append(_run("plan", size, old).wall)
                    run = _run(command, size)
                    walls.setdefault((command, count), []).append(run.wall)
                    rss.setdefault((command, count), []).append(run.max_rss_kb)
                    if command == "plan" and count == largest:
                        new_plan.append(run.wall)
                        gets = sum(kind_of(r) in ("get", "list") for r in run.requests)
    finally:
        for size in sizes.values():
            size.sandbox.stop()
    small = counts[0]
    rows = report.section(
        f"Metric files at scale (4 projects, 20 % custom_code, every tenth metric edited in the "
        f"dashboard, 1 % uncommitted local drafts; {cfg.latency * 1000:g} ms per HTTP request)",
        ("command", *(f"{c:,} files" for c in counts), f"{largest:,} / {small:,}, per round", "peak RSS"),
    )
    for command in COMMANDS:
        growth = Paired(walls[(command, small)], walls[(command, largest)])
        peaks = " → ".join(f"{max(rss[(command, c)]) / 1024:.0f}" for c in counts) + " MB"
        rows.append(
            (
                command,
                *(med(walls[(command, c)]) for c in counts),
                f"{growth.ratio:.1f} ({growth.describe()})",
                peaks,
            )
        )
        limit = GROWTH_LIMIT[command]
        report.check(
            f"{command}, {small:,} → {largest:,} files",
            f"time grows ≤ {limit:g} × for 10 × the files",
            f"{growth.ratio:.1f} ×",
            growth.ratio <= limit,
        )
    if old is not None and old_plan:
        pair = Paired(old_plan, new_plan)
        rows.append(
            (
                f"plan as of {cfg.baseline_ref[:12]}",
                *("" for _ in counts[:-1]),
                med(old_plan),
                f"this / then, per pair: {pair.describe()}",
                "",
            )
        )
        report.check(
            f"plan, {largest:,} files",
            f"≤ 0.6 × the plan of {cfg.baseline_ref[:12]} (run alternately)",
            f"{pair.ratio:.2f} × ({median(new_plan):.2f} s vs {median(old_plan):.2f} s)",
            pair.ratio <= 0.6,
            why=_plan_why(gets, cfg.latency, median(walls[("validate", largest)]), median(old_plan)),
        )
    else:
        report.notes.append("plan was not compared with the baseline commit: it is not in this clone.")


def _plan_why(gets: int, latency: float, load: float, old: float) -> str:
    floor = gets * latency / CONCURRENCY
    return (
        f"a file that validate refuses must send no request (docs/guarantees.md, *Hostile and "
        f"broken input*), so plan's {gets:,} GETs (the project lists, and the detail of each "
        f"custom_code metric: the list hides its code) start once every file has loaded. Loading "
        f"alone (validate, start-up included: {load:.2f} s) plus those GETs at --concurrency {CONCURRENCY} "
        f"({gets:,} × {latency * 1000:g} ms / {CONCURRENCY} = {floor:.2f} s) is {load + floor:.2f} s "
        f"of the {0.6 * old:.2f} s allowed (0.6 × {old:.2f} s), before reading the "
        "replies, comparing and printing."
    )

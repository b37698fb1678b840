"""cekura-gitops benchmark: `python bench/run.py [--smoke] [--only NAME] [--code REV] [--readme FILE]`.

Every comparison runs side by side in this one invocation, alternating its two sides
(A B A B ...), and reports the medians and the ratio of each pair: on a shared machine a
slow spell then hits both sides instead of one. The sandbox stands in for Cekura on
127.0.0.1 (injected latency per request, scripted optimiser durations), git repositories
are real with a bare origin, a counting `git` sits first on the CLI's PATH, and the CLI runs
as a child process (its own wall time and peak RSS).

Exit status: 0 when every enforced target passed, 1 otherwise. A full run enforces every
target; --smoke (tiny sizes, for CI, under 30 s) enforces only the correctness checks
and prints the other targets without enforcing them.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import snapshot  # noqa: E402

# --code REV: REV's package, before anything below imports the installed one.
CODE_REV = snapshot.rev_in(sys.argv[1:]) if __name__ == "__main__" else None
MEASURED = snapshot.extract(CODE_REV) if CODE_REV else None
if MEASURED is not None:
    snapshot.use(MEASURED)

import harness  # noqa: E402
import misc_bench  # noqa: E402
import scale_bench  # noqa: E402
import sync_bench  # noqa: E402
from config import Config  # noqa: E402
from harness import isolated_git  # noqa: E402
from report import Report  # noqa: E402

Scenario = Callable[[Config, Report], None]
SCENARIOS: dict[str, Scenario] = {
    "sync": sync_bench.sizes_scenario,
    "remote": sync_bench.remote_scenario,
    "cap": sync_bench.cap_scenario,
    "scale": scale_bench.scale_scenario,
    "apply": misc_bench.apply_scenario,
    "poll": misc_bench.poll_scenario,
    "version": misc_bench.version_scenario,
    "backoff": misc_bench.backoff_scenario,
}
# Where --readme writes the Markdown report.
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
# "Today's" code for the plan comparison: main before the work of issue 14.
BASELINE_REF = "41859c0d7cbf4f58d6c5119415d2845a9f335b19"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.split("\n\n")[1])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one pair; enforce correctness only")
    parser.add_argument("--pairs", type=int, default=None, help="A B pairs per comparison (3; smoke 1)")
    parser.add_argument(
        "--big-pairs", type=int, default=1, help="pairs for 100 metrics (each serial run takes ~4 min) (1)"
    )
    parser.add_argument("--latency", type=float, default=20.0, metavar="MS", help="per HTTP request (20)")
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="commit whose plan is 'today's'")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        metavar="SCENARIO",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--code",
        metavar="REV",
        help="measure the package as of this commit (a snapshot), not the installed one",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the report as Markdown (the README's block)"
    )
    parser.add_argument(
        "--readme",
        metavar="FILE",
        type=Path,
        help=f"also write the Markdown report into FILE, between {BEGIN} and {END}",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary repositories")
    args = parser.parse_args(argv)
    pairs = args.pairs or (1 if args.smoke else 3)
    if pairs < 1 or args.big_pairs < 1:
        parser.error("--pairs and --big-pairs must be at least 1")

    tmp = Path(tempfile.mkdtemp(prefix="cekura-gitops-bench-"))
    report = Report()
    crashed: list[str] = []
    began = time.perf_counter()
    load_before = os.getloadavg()
    if args.code != CODE_REV:
        parser.error("--code takes effect only on the command line (python bench/run.py --code REV)")
    harness.PRODUCT_CODE = MEASURED
    import cekura_gitops

    if MEASURED is not None and not Path(cekura_gitops.__file__ or "").is_relative_to(MEASURED):
        raise RuntimeError(f"--code: the package came from {cekura_gitops.__file__}, not {MEASURED}")
    snapshot.compiled(Path(cekura_gitops.__file__ or "").parent)
    with isolated_git(tmp):
        cfg = Config(
            smoke=args.smoke,
            pairs=pairs,
            big_pairs=1 if args.smoke else args.big_pairs,
            latency=args.latency / 1000,
            tmp=tmp,
            baseline_ref=args.baseline_ref,
        )
        for name in args.only or SCENARIOS:
            print(f"-- {name}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            try:
                SCENARIOS[name](cfg, report)
            except Exception:  # noqa: BLE001 - report it, run the others, fail at the end
                crashed.append(name)
                traceback.print_exc()
            print(f"   {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    if args.keep:
        print(f"kept {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        if MEASURED is not None:
            shutil.rmtree(MEASURED, ignore_errors=True)

    run = "smoke" if args.smoke else "full"
    what = f"commit {snapshot.commit(args.code)}" if args.code else "the installed package (this checkout)"
    text, failed = report.render(smoke=args.smoke)
    markdown, _ = report.render(smoke=args.smoke, markdown=True)
    took = time.perf_counter() - began
    block = (
        f"`python bench/run.py {' '.join(argv if argv is not None else sys.argv[1:])}` printed the "
        f"following at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({run} run, {pairs} "
        f"pair(s) per comparison, {args.latency:g} ms per HTTP request, {took / 60:.1f} minutes). "
        f"Measured: {what}. {_machine(load_before)}.\n\n{markdown}"
    )
    if args.markdown:
        print(block, end="")
    else:
        print(
            f"\ncekura-gitops benchmark ({run}; {pairs} pair(s) per comparison; "
            f"{args.latency:g} ms per HTTP request)\n{_machine(load_before)}\nMeasured: {what}\n"
        )
        print(text)
    if args.readme is not None:
        _write_block(args.readme, block)
        print(f"wrote the report into {args.readme}", file=sys.stderr)
    print(f"\n{len(report.targets)} targets, {failed} enforced failure(s)", end="", file=sys.stderr)
    print(f", crashed: {', '.join(crashed)}" if crashed else "", end="", file=sys.stderr)
    print(f"; {took:.0f} s", file=sys.stderr)
    return 1 if failed or crashed else 0


def _write_block(path: Path, block: str) -> None:
    """Replace what sits between the BEGIN and END markers of path with block."""
    text = path.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers to write the report between")
    path.write_text(f"{text[: start + len(BEGIN)]}\n{block}{text[end:]}")


def _machine(load_before: tuple[float, float, float]) -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            model = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), ""
            )
    except OSError:
        pass
    load = ", load average {:.2f} {:.2f} {:.2f} before the run, {:.2f} {:.2f} {:.2f} after".format(
        *load_before, *os.getloadavg()
    )
    named = f" ({model})" if model else ""
    return (
        f"Machine: {platform.system()} {platform.machine()}, {cpus} CPU(s){named}{load}; "
        f"Python {platform.python_version()}; git {_git_version()}"
    )


def _git_version() -> str:
    import subprocess

    done = subprocess.run(["git", "--version"], capture_output=True, text=True)
    return done.stdout.strip().removeprefix("git version ") or "?"


if __name__ == "__main__":
    sys.exit(main())

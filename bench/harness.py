"""Benchmark plumbing: temp git repos with a bare origin, a seeded sandbox, the CLI as a child.

The CLI always runs as a separate process (`python -m cekura_gitops`), like in CI: its
wall time includes interpreter start-up and imports, its peak RSS is its own (from
`os.wait4`), and the sandbox — standing in for Cekura's servers — spends its CPU in this
process, not in the measured one.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cekura_gitops.sandbox import RecordedRequest, Sandbox
from cekura_gitops.sandbox import server as sandbox_server

PROJECT_BASE = 5000
METRIC_BASE = 20000
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench Human",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench Human",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
# Request kinds, by (method, path regex); first match wins.
KINDS: tuple[tuple[str, str, str], ...] = (
    ("GET", r"/v2/metrics/$", "list"),
    ("GET", r"/v2/metrics/\d+/history/$", "history"),
    ("PATCH", r"/v2/metrics/\d+/history/edit/$", "history-edit"),
    ("GET", r"/v2/metrics/[^/]+/$", "get"),
    ("PATCH", r"/v2/metrics/\d+/$", "patch"),
    ("POST", r"/process_feedbacks/$", "start"),
    ("GET", r"/process_feedbacks_progress/$", "progress"),
    ("POST", r"/process_feedbacks_cancel/$", "cancel"),
)
KIND_ORDER = ("list", "get", "patch", "history", "history-edit", "start", "progress", "cancel", "other")


def kind_of(r: RecordedRequest) -> str:
    for method, pattern, kind in KINDS:
        if r.method == method and re.search(pattern, r.path):
            return kind
    return "other"


def count_kinds(requests: Sequence[RecordedRequest]) -> Counter[str]:
    return Counter(kind_of(r) for r in requests)


def format_kinds(counts: Mapping[str, int]) -> str:
    parts = [f"{k} {counts[k]}" for k in KIND_ORDER if counts.get(k)]
    return ", ".join(parts) or "none"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


@contextmanager
def isolated_git(tmp: Path) -> Iterator[None]:
    """A private git config and identity for everything this process and its children run."""
    config = tmp / "gitconfig"
    config.write_text(
        "[init]\n\tdefaultBranch = main\n[user]\n\tname = Bench Human\n\temail = bench@example.com\n"
    )
    saved = {k: os.environ.get(k) for k in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", *GIT_IDENTITY)}
    os.environ.update({"GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1", **GIT_IDENTITY})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class Repo:
    """A working clone and its bare origin."""

    work: Path
    origin: Path

    def commit_push(self, message: str) -> None:
        git(self.work, "add", "-A")
        git(self.work, "commit", "-qm", message)
        git(self.work, "push", "-q", "origin", "HEAD:main")

    def clone(self, dest: Path) -> Repo:
        """Another runner's checkout of the same origin."""
        git(dest.parent, "clone", "-q", str(self.origin), str(dest))
        git(dest, "remote", "set-head", "origin", "main")
        return Repo(dest, self.origin)

    def copy(self, dest: Path) -> Repo:
        """An independent repo (own origin) with the same history: a fresh start per run."""
        dest.mkdir(parents=True)
        origin = dest / "origin.git"
        shutil.copytree(self.origin, origin, symlinks=True)
        work = dest / "work"
        git(dest, "clone", "-q", str(origin), str(work))
        git(work, "remote", "set-head", "origin", "main")
        return Repo(work, origin)


def new_repo(where: Path) -> Repo:
    where.mkdir(parents=True, exist_ok=True)
    origin, work = where / "origin.git", where / "work"
    git(where, "init", "-q", "--bare", "--initial-branch=main", str(origin))
    # GitHub does not run `gc --auto` inside a push; a local bare origin would, on the
    # benchmark's clock (copies of this origin keep the setting).
    git(origin, "config", "receive.autogc", "false")
    git(where, "init", "-q", "--initial-branch=main", str(work))
    git(work, "remote", "add", "origin", str(origin))
    (work / "README.md").write_text("bench metrics repo\n")
    git(work, "add", "README.md")
    git(work, "commit", "-qm", "init")
    git(work, "push", "-q", "-u", "origin", "main")
    git(work, "remote", "set-head", "origin", "main")
    return Repo(work, origin)


@dataclass(frozen=True)
class Population:
    """N metrics spread over projects; every `code_every`-th one is a custom_code metric."""

    count: int
    projects: int = 1
    code_every: int = 0  # 0: none; 5: 20 %
    reviews: int = 6

    def ids(self) -> list[int]:
        return [METRIC_BASE + i for i in range(self.count)]

    def project_of(self, i: int) -> int:
        return PROJECT_BASE + i % self.projects

    def is_code(self, i: int) -> bool:
        return bool(self.code_every) and i % self.code_every == self.code_every - 1

    @property
    def code_count(self) -> int:
        return sum(self.is_code(i) for i in range(self.count))


def seed(sandbox: Sandbox, pop: Population, *, optimiser_seconds: float | None = None) -> None:
    """Metrics with `reviews` labelled Lab reviews each; the mismatches carry feedback."""
    state = sandbox.state
    for p in range(pop.projects):
        state.add_project(PROJECT_BASE + p, f"Bench project {p}")
    for i, metric_id in enumerate(pop.ids()):
        fields: dict[str, Any] = {
            "id": metric_id,
            "slug": f"bench_metric_{i:04d}_{metric_id}",
            "project": pop.project_of(i),
            "agents": [40 + i % 3],
            "name": f"Bench metric {i}",
            "eval_type": "binary",
            "evaluation_trigger": "always",
            "observability_enabled": True,
            "simulation_enabled": i % 2 == 0,
        }
        if pop.is_code(i):
            fields.update(
                type="custom_code",
                description="",
                custom_code=f'transcript = data.get("transcript", "")\n_result = "step {i}" in transcript\n',
            )
        else:
            fields.update(
                type="llm_judge",
                description=(
                    f"Score TRUE if the agent completed step {i} of the support script.\n"
                    "Score FALSE otherwise."
                ),
            )
        state.add_metric(**fields)
        for j in range(pop.reviews):
            expected = j % 2 == 0
            mismatch = j in (1, 4)
            state.add_review(
                metric_id,
                expected,
                (not expected) if mismatch else expected,
                f"Review {j} of metric {i}: the agent skipped step {i}; score {str(expected).upper()}."
                if mismatch
                else "",
                transcript=f"Agent: step {i if j % 3 else i + 1}. Caller: thanks.",
            )
        if optimiser_seconds is not None:
            state.set_optimiser_seconds(metric_id, optimiser_seconds)


def _no_violations(request: object) -> list[object]:
    return []


def new_sandbox(
    pop: Population, *, latency: float, optimiser_seconds: float = 0.0, optimiser_cap: int | None = None
) -> Sandbox:
    """A started sandbox seeded with `pop`, standing in for Cekura's servers.

    Cekura's own CPU time is not the tool's: here it would compete with the measured CLI
    for this machine's cores. So the sandbox skips its OpenAPI checks of requests and
    replies (the test suite enforces the contract), and the injected latency models the
    server's time.
    """
    sandbox_server.request_violations = _no_violations  # type: ignore[assignment]
    sandbox = Sandbox(
        seed=False,
        latency=latency,
        optimiser_seconds=optimiser_seconds,
        validate_responses=False,
        optimiser_cap=optimiser_cap,
    )
    seed(sandbox, pop)
    return sandbox.start()


def child_env(sandbox: Sandbox | None) -> dict[str, str]:
    """The environment of a CLI child: nothing from the developer's or CI's environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CEKURA_", "GITHUB_", "GH_", "RUNNER_")) and k not in ("CI", "ACTIONS_ID_TOKEN")
    }
    if sandbox is not None:
        env.update(CEKURA_API_URL=sandbox.url, CEKURA_API_KEY=sandbox.api_key)
    return env


@dataclass
class CliRun:
    argv: list[str]
    code: int
    wall: float
    max_rss_kb: int
    out: str
    err: str
    requests: list[RecordedRequest] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.out)

    def check(self, expected: int = 0) -> CliRun:
        if self.code != expected:
            raise RuntimeError(
                f"`cekura-gitops {' '.join(self.argv)}` exited {self.code} (expected {expected}):\n"
                f"{self.err[-2000:]}"
            )
        return self


# `python -m cekura_gitops`, plus a report of the process's own peak RSS at exit. A forked
# child's ru_maxrss also counts the pages it shared with this (much bigger) process before
# exec, so the high-water mark comes from /proc/self/status instead. With CODE_ENV set the
# child imports the package from that folder (an older commit's tree) instead of the
# editable install, so the benchmark can run "today's" code side by side with this one.
RSS_FILE = "CEKURA_GITOPS_BENCH_RSS_FILE"
# Where the measured CLI's code lives (run.py --code: a snapshot of one commit, so that
# the worktree may change during a long run); None: the installed package.
PRODUCT_CODE: Path | None = None
CODE_ENV = "CEKURA_GITOPS_BENCH_CODE"
WRAPPER = f"""\
import atexit, os, sys
def _peak():
    try:
        with open("/proc/self/status") as status:
            kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        with open(os.environ["{RSS_FILE}"], "w") as out:
            out.write(kb)
    except (OSError, KeyError, StopIteration):
        pass
atexit.register(_peak)
if os.environ.get("{CODE_ENV}"):
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
    sys.path.insert(0, os.environ["{CODE_ENV}"])
sys.argv[0] = "cekura-gitops"
try:  # what the console script runs (older code, without it, had only the CLI's main)
    from cekura_gitops.entry import main
except ImportError:
    from cekura_gitops.cli import main
sys.exit(main(sys.argv[1:]))
"""


ENTRY = """\
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path.insert(0, {code!r})
from cekura_gitops.entry import main
sys.exit(main())
"""


def cli(
    argv: Sequence[str],
    *,
    cwd: Path,
    sandbox: Sandbox | None = None,
    command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    code: Path | None = None,
) -> CliRun:
    """Run the CLI as a child process: its wall time and (Linux) its own peak RSS."""
    cmd = [*(command or (sys.executable, "-c", WRAPPER)), *argv]
    before = len(sandbox.requests) if sandbox is not None else 0
    with tempfile.TemporaryDirectory(prefix="cli-") as tmp:
        rss_file = Path(tmp) / "rss"
        child = {**child_env(sandbox), RSS_FILE: str(rss_file), **(env or {})}
        code = code or PRODUCT_CODE
        if code is not None:
            child[CODE_ENV] = str(code)
        with open(Path(tmp) / "out", "w+b") as out, open(Path(tmp) / "err", "w+b") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=cwd, env=child, stdout=out, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 already
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
        rss = int(rss_file.read_text()) if rss_file.exists() else 0
    requests = sandbox.requests[before:] if sandbox is not None else []
    return CliRun(list(argv), proc.returncode, wall, rss, stdout, stderr, requests)


# Remote operations: the git subcommands that talk to the origin.
REMOTE_COMMANDS = frozenset({"fetch", "push", "ls-remote", "pull", "clone"})
_GIT_WRAPPER = """\
#!/bin/sh
# Counts every git process (the tool's and the ones git itself starts, e.g. gc --auto) and
# delays the ones that talk to the remote, as a network round trip to GitHub would.
sub=""
skip=0
for a in "$@"; do
  if [ "$skip" = 1 ]; then skip=0; continue; fi
  case "$a" in
    -c|-C) skip=1 ;;
    -*) ;;
    *) sub="$a"; break ;;
  esac
done
[ -n "$CEKURA_GITOPS_BENCH_GIT_LOG" ] && echo "$sub" >> "$CEKURA_GITOPS_BENCH_GIT_LOG"
case "$sub" in
  fetch|push|ls-remote|pull|clone)
    [ -n "$CEKURA_GITOPS_BENCH_GIT_DELAY" ] && sleep "$CEKURA_GITOPS_BENCH_GIT_DELAY" ;;
esac
exec {real} "$@"
"""


@dataclass(frozen=True)
class GitCount:
    processes: int
    remote: int
    by_command: Counter[str]


class GitCounter:
    """A counting `git` first on the CLI child's PATH (optionally slow on remote operations)."""

    def __init__(self, where: Path) -> None:
        real = shutil.which("git")
        if real is None:
            raise RuntimeError("git is not on PATH")
        self.bin = where / "git-bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        script = self.bin / "git"
        script.write_text(_GIT_WRAPPER.format(real=shlex.quote(os.path.realpath(real))))
        script.chmod(0o755)
        self._logs = where / "git-logs"
        self._logs.mkdir(exist_ok=True)
        self._n = 0

    def env(self, *, remote_delay: float = 0.0) -> tuple[dict[str, str], Path]:
        """Environment for one child, and the log its git processes append to."""
        self._n += 1
        log = self._logs / f"{self._n:04d}.log"
        log.write_text("")
        env = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "CEKURA_GITOPS_BENCH_GIT_LOG": str(log),
        }
        if remote_delay:
            env["CEKURA_GITOPS_BENCH_GIT_DELAY"] = f"{remote_delay:g}"
        return env, log

    @staticmethod
    def read(log: Path) -> GitCount:
        commands = Counter(line.strip() for line in log.read_text().splitlines())
        remote = sum(n for c, n in commands.items() if c in REMOTE_COMMANDS)
        return GitCount(sum(commands.values()), remote, commands)


def console_script() -> list[str]:
    """The installed `cekura-gitops` entry point (what users type), else `python -m`."""
    beside = Path(sys.executable).with_name("cekura-gitops")
    found = str(beside) if beside.exists() else shutil.which("cekura-gitops")
    return [found] if found else [sys.executable, "-m", "cekura_gitops"]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A pipe table: readable in a terminal, pasteable into Markdown."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])

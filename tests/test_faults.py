"""Fault matrix: every Cekura and GitHub operation the tool uses × every way HTTP goes wrong.

Cekura cases drive the real CLI (`pull`, `sync`, `apply`) in-process against the sandbox.
Per case:

- safe requests (GETs, PATCHes carrying full desired values, cancel) are retried with the
  configured (fast) backoff, honour Retry-After, and succeed when the fault clears;
- non-idempotent POSTs (optimiser start, metric create, PR create) are never resent after
  a failure that may have taken effect (only a 429, which the server rejected unprocessed);
- a persistent fault ends in one clear line naming the operation and the HTTP status
  (or "no response"), exit code 1, no traceback;
- nothing is half-written: metric files on every branch parse, no PR lacks its branch, and
  a re-run after the fault clears converges without a second optimisation.

GitHub cases: a client-level matrix against the fake GitHub (sleep injected, since the
GitHub client's backoff cannot be set from the CLI: 1 s, 2 s, 4 s and 60 s for a secondary
rate limit without Retry-After) plus CLI cases for the outcomes that involve no retry sleep.

`--run-slow` runs the full cross product; CI runs a sample covering every (operation, kind).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cekura_gitops.errors import GitHubAPIError
from cekura_gitops.github import GitHubClient
from cekura_gitops.sandbox import Fault, Sandbox
from tests._hardening import (  # noqa: F401
    GREETING,
    TOKEN,
    assert_no_pr_without_branch,
    assert_yaml_parses_everywhere,
    cekura_env,
    fresh_repo,
    github_env,
    no_traceback,
    state,
    statuses,
    template_origin,
)
from tests.conftest import CliResult, Repo
from tests.fakes.github_server import FakeGitHub

GREETING_FILE = f"metrics/{GREETING}.yaml"
# CEKURA_GITOPS_HTTP_TIMEOUT for hang cases. It is every request's read timeout in that
# run: on a loaded machine the sandbox answers a healthy GET in up to ~1 s (measured at
# load 13: median 0.17 s, p90 0.34 s, max 0.85 s); the hang (30 s) still outlasts it.
HANG_TIMEOUT = "2"
MAX_ATTEMPTS = 5  # CekuraClient default

# -- fault kinds ----------------------------------------------------------------------------

KINDS: dict[str, dict[str, Any]] = {
    "429-retry-after": {"kind": "status", "status": 429, "retry_after": 0.3},
    "429": {"kind": "status", "status": 429},
    "500": {"kind": "status", "status": 500},
    "502": {"kind": "status", "status": 502},
    "503": {"kind": "status", "status": 503},
    "504": {"kind": "status", "status": 504},
    "hang": {"kind": "hang", "seconds": 30.0},  # the sandbox's stop() ends it early
    "drop": {"kind": "drop"},
    "non-json": {"kind": "non_json"},
    "missing-fields": {"kind": "missing_fields"},
    "401": {"kind": "status", "status": 401},
    "403": {"kind": "status", "status": 403},
    "404": {"kind": "status", "status": 404},
}
RETRYABLE = {"429-retry-after", "429", "500", "502", "503", "504", "hang", "drop"}
SERVER_ERRORS = ("500", "502", "503", "504")


def transient_times(kind: str) -> int:
    return 1 if kind in ("hang", "429-retry-after") else 2


def marker(kind: str) -> str:
    """How the error line names what happened."""
    if kind == "hang":
        return "no response: read timeout"
    if kind == "drop":
        return "no response: connection dropped"
    if kind in ("non-json", "missing-fields"):
        return "HTTP 200: unexpected response"
    return f"HTTP {KINDS[kind]['status']}"


# -- operations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    name: str  # as CekuraClient names it in errors
    method: str
    path: str
    safe: bool  # resent after a failure that may have taken effect
    driver: str


OPS = [
    Op("list metrics", "GET", r"/test_framework/v2/metrics/$", True, "pull"),
    Op("get metric", "GET", r"/v2/metrics/1562/$", True, "sync"),
    Op("patch metric", "PATCH", r"/v2/metrics/1562/$", True, "apply"),
    Op("create metric", "POST", r"/test_framework/v2/metrics/$", False, "create"),
    Op("metric history", "GET", r"/v2/metrics/1562/history/$", True, "apply"),
    Op("edit history", "PATCH", r"/v2/metrics/1562/history/edit/$", True, "apply"),
    Op("start optimiser", "POST", r"/process_feedbacks/$", False, "sync"),
    Op("optimiser progress", "GET", r"/process_feedbacks_progress/$", True, "sync"),
    Op("cancel optimiser", "POST", r"/process_feedbacks_cancel/$", True, "timeout"),
]


def _rotation(op_index: int, kind: str, persistent: bool) -> bool:
    """A fixed CI sample: each operation meets every family of fault, and each kind runs
    (transient and persistent) on several operations; --run-slow runs the whole product."""
    if kind in ("401", "403", "404"):
        return persistent and kind == ("401", "403", "404")[op_index % 3]
    if kind in ("non-json", "missing-fields"):
        return persistent and kind == ("non-json", "missing-fields")[op_index % 2]
    if kind in SERVER_ERRORS:
        return kind == SERVER_ERRORS[(op_index + (2 if persistent else 0)) % 4]
    return {
        ("429", False): op_index % 2 == 0,
        ("429", True): op_index % 2 == 1,
        ("drop", False): op_index % 2 == 1,
        ("drop", True): op_index % 2 == 0,
        ("hang", False): op_index % 2 == 1,
        ("hang", True): op_index == 1,
        ("429-retry-after", False): op_index % 3 == 1,
        ("429-retry-after", True): False,
    }[(kind, persistent)]


def _ci_sample(op_index: int, kind: str, persistent: bool) -> bool:
    op = OPS[op_index]
    if op.name == "cancel optimiser":  # each case waits out a 1 s optimiser timeout
        return (kind, persistent) in {("502", False), ("drop", True), ("404", True)}
    if kind == "missing-fields" and op.name == "optimiser progress":
        return True  # `{}` means "pending" there: transient and persistent differ
    return _rotation(op_index, kind, persistent)


CASES = [
    pytest.param(
        op,
        kind,
        persistent,
        id=f"{op.name.replace(' ', '-')}-{kind}-{'persistent' if persistent else 'transient'}",
        marks=() if _ci_sample(i, kind, persistent) else pytest.mark.slow,
    )
    for i, op in enumerate(OPS)
    for kind in KINDS
    for persistent in (False, True)
    if persistent or kind in RETRYABLE or kind == "missing-fields"
]


@pytest.fixture
def repo(template_origin: Path, tmp_path: Path) -> Repo:
    return fresh_repo(template_origin, tmp_path / "r")


@dataclass
class Scenario:
    repo: Repo
    sandbox: Sandbox
    cli: Callable[..., CliResult]
    env: dict[str, str]
    fault: Fault | None = None
    gh: FakeGitHub | None = None

    def run(self, *args: str, **extra: str) -> CliResult:
        return self.cli("--json", *args, cwd=self.repo.work, env={**self.env, **extra})


def _edit(repo: Repo, rel: str, old: str, new: str) -> None:
    path = repo.work / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


NEW_DESCRIPTION = "Score FALSE otherwise, or if unsure."


def _prepare(op: Op, kind: str, s: Scenario) -> list[str]:
    """Set up the driver's situation; returns the CLI arguments."""
    if op.driver == "pull":
        s.sandbox.state.dashboard_edit(1563, name="Satisfied customer")
        return ["pull", "--project", "1376"]
    if op.driver == "sync":
        # Bounds a progress that never ends (`{}` is pending), yet outlasts retries.
        # (3 s: the transient case needs three polls inside it even on a loaded machine.)
        # Hangs: five read timeouts (HANG_TIMEOUT) must fit, and a claim left by a hung start
        # must not expire (CLAIM_EXPIRY timeouts) before the next run finds it.
        timeout = {"missing-fields": "3s", "hang": "30s"}.get(kind, "5s")
        s.env["CEKURA_GITOPS_OPTIMISER_TIMEOUT"] = timeout
        return ["sync", "--no-pr", "--metric", GREETING]
    if op.driver == "timeout":
        s.sandbox.state.set_optimiser_seconds(1562, 600)
        s.env["CEKURA_GITOPS_OPTIMISER_TIMEOUT"] = "1s"
        return ["sync", "--no-pr", "--metric", GREETING]
    if op.driver == "apply":
        _edit(s.repo, GREETING_FILE, "Score FALSE otherwise.", NEW_DESCRIPTION)
        s.repo.commit_all("stricter greeting")
        return ["apply"]
    assert op.driver == "create"
    s.repo.write(
        "metrics/hold_music.yaml",
        "slug: hold_music\nproject: 1376\nname: Hold music mentioned\ntype: llm_judge\n"
        "eval_type: binary\ndescription: Score TRUE if the agent warns before a hold.\n"
        "evaluation_trigger: always\n",
    )
    s.repo.commit_all("new metric")
    return ["apply"]


def _attempts(s: Scenario, op: Op, fault: Fault | None, kind: str) -> int:
    assert fault is not None
    # A hung request is recorded only when it is finally processed (at the sandbox's stop).
    return s.sandbox.count(op.method, op.path) + (s.sandbox.faults.fired(fault) if kind == "hang" else 0)


def _created_ids(sandbox: Sandbox) -> list[int]:
    return [i for i in sandbox.state.metric_ids() if i not in (1562, 1563, 1564, 1601)]


def _error_line(result: CliResult, op: Op, kind: str) -> str:
    """The one line (stderr, or a JSON detail) naming the operation and the status."""
    details = [m.get("detail", "") for m in result.json()["metrics"]] if result.out else []
    lines = [line for line in [*result.err.splitlines(), *details] if f"Cekura {op.name} (" in line]
    assert lines, f"no line names `Cekura {op.name}`:\n{result.err}"
    assert all("\n" not in line for line in lines)
    assert any(marker(kind) in line for line in lines), (marker(kind), lines)
    return lines[0]


@pytest.mark.parametrize(("op", "kind", "persistent"), CASES)
def test_cekura_fault(
    op: Op, kind: str, persistent: bool, repo: Repo, sandbox: Sandbox, cli: Callable[..., CliResult]
) -> None:
    s = Scenario(repo, sandbox, cli, cekura_env(sandbox))
    args = _prepare(op, kind, s)
    if kind == "hang":
        s.env["CEKURA_GITOPS_HTTP_TIMEOUT"] = HANG_TIMEOUT
    times = None if persistent else transient_times(kind)
    fault = s.fault = sandbox.faults.add(Fault(op.method, op.path, times=times, **KINDS[kind]))
    started = time.monotonic()
    result = s.run(*args)
    elapsed = time.monotonic() - started
    no_traceback(result.err)
    assert sandbox.faults.fired(fault) >= 1, "the fault never fired: wrong path?"
    attempts = _attempts(s, op, fault, kind)

    retried = kind in RETRYABLE and (op.safe or kind.startswith("429"))
    if op.name == "optimiser progress" and kind == "missing-fields":
        # Not a client retry: `{}` reads as "pending", so the poll loop asks again.
        assert attempts == transient_times(kind) + 1 if not persistent else attempts >= 2
    elif not retried:
        assert attempts == 1, (attempts, result.err)
    else:
        assert attempts == (MAX_ATTEMPTS if persistent else transient_times(kind) + 1), (attempts, result.err)
        at = [r.at for r in sandbox.requests if r.method == op.method and re.search(op.path, r.path)]
        gaps = [b - a for a, b in zip(at, at[1:], strict=False)]
        if kind == "429-retry-after":
            assert gaps and min(gaps) >= 0.25, f"Retry-After not honoured: {gaps}"
        elif kind != "hang":  # CEKURA_GITOPS_HTTP_BACKOFF=0.01: capped at 0.08 s, not 0.5..30 s
            assert max(gaps) < 1.0, f"backoff setting ignored: {gaps}"
    waited = attempts * float(HANG_TIMEOUT) if kind == "hang" else 0.0  # read timeouts
    assert elapsed < 8 + waited, f"retries took {elapsed:.1f} s"

    CHECKS[op.driver](s, op, kind, persistent, result, attempts)
    assert_yaml_parses_everywhere(repo.origin)
    assert sandbox.state.optimisations_started.get(1562, 0) <= 1


# -- per-driver outcome checks ----------------------------------------------------------


def _fails(kind: str, persistent: bool, op: Op) -> bool:
    if kind not in RETRYABLE:
        return True
    if not (op.safe or kind.startswith("429")):
        return True  # an ambiguous write is never resent
    return persistent


def check_pull(s: Scenario, op: Op, kind: str, persistent: bool, result: CliResult, attempts: int) -> None:
    path = s.repo.work / "metrics/customer_satisfaction_1563.yaml"
    if _fails(kind, persistent, op):
        assert result.code == 1 and result.out == ""
        line = _error_line(result, op, kind)
        assert line.startswith("error: Cekura list metrics (GET /test_framework/v2/metrics/) failed: ")
        assert s.repo.git("status", "--porcelain") == "", "a failed pull wrote files"
    else:
        assert result.code == 0, result.err
        assert statuses(result.json())["customer_satisfaction_1563"] == "updated"
        assert "name: Satisfied customer\n" in path.read_text()


def check_sync(s: Scenario, op: Op, kind: str, persistent: bool, result: CliResult, attempts: int) -> None:
    branch = f"refs/heads/cekura-gitops/optimise/{GREETING}"
    [m] = result.json()["metrics"]
    started = s.sandbox.state.optimisations_started.get(1562, 0)
    runs = state(s.repo.origin)["runs"]
    ok = not _fails(kind, persistent, op)
    if op.name == "optimiser progress" and kind == "missing-fields":
        # `{}` is a pending answer (pending statuses are undocumented): polling goes on
        # until the fault clears, or the optimiser timeout ends the run (and cancels it).
        ok = not persistent
        if persistent:
            assert m["status"] == "error" and "no result after 3 s" in m["detail"]
            assert runs == {}
            assert result.code == 1
            return
    if op.name == "get metric" and kind == "404":
        assert (m["status"], result.code) == ("missing-live", 0)
        assert started == 0 and runs == {}
        return
    if ok:
        assert (m["status"], result.code) == ("proposed", 0), result.err
        assert started == 1 and runs == {}
        assert s.repo.origin_ref(branch)
        return
    assert (m["status"], result.code) == ("error", 1)
    assert s.repo.origin_ref(branch) is None
    if op.name == "optimiser progress" and kind == "404":
        # Cekura forgot the run: the record is dropped, so the next sync may start anew.
        assert "Cekura no longer knows run" in m["detail"] and runs == {} and started == 1
        return
    line = _error_line(result, op, kind)
    assert line.startswith(f"{GREETING}: error — Cekura {op.name} ("), line
    if op.name == "get metric":
        assert started == 0 and runs == {}  # failed before claiming
    elif op.name == "start optimiser":
        ambiguous = kind in ("500", "502", "503", "504", "hang", "drop", "non-json", "missing-fields")
        if ambiguous:
            # May have started: the claim stays, so the next run (a fresh clone) waits.
            assert "not resent" in m["detail"]
            assert list(runs) == [1562] and "progress_id" not in runs[1562]
            again = s.run("sync", "--no-pr", "--metric", GREETING)
            assert statuses(again.json()) == {GREETING: "in-flight"}
            assert _attempts(s, op, s.fault, kind) == attempts  # still never resent
        else:
            assert runs == {}, "a certain rejection must release the claim"
            assert started == 0
    else:  # progress: the run is kept (unless Cekura says it does not know it) and resumed
        assert started == 1 and runs[1562]["progress_id"]
        s.sandbox.faults.clear()
        again = s.run("sync", "--no-pr", "--metric", GREETING)
        assert statuses(again.json()) == {GREETING: "proposed"}, again.err
        assert s.sandbox.state.optimisations_started == {1562: 1}
        assert state(s.repo.origin)["runs"] == {}


def check_timeout(s: Scenario, op: Op, kind: str, persistent: bool, result: CliResult, attempts: int) -> None:
    [m] = result.json()["metrics"]
    assert (m["status"], result.code) == ("error", 1)
    assert "no result after 1 s" in m["detail"]
    if kind == "missing-fields":
        # The cancel reply's body is not read: a 200 is taken at its word.
        assert "(cancelled)" in m["detail"], m["detail"]
    elif not _fails(kind, persistent, op):
        assert "(cancelled)" in m["detail"], m["detail"]
        assert s.sandbox.state.optimisations(1562)[0]["status"] == "cancelled"
    else:
        assert "cancel failed: Cekura cancel optimiser (POST " in m["detail"] and marker(kind) in m["detail"]
        _error_line(result, op, kind)
    assert state(s.repo.origin)["runs"] == {}


def check_apply(s: Scenario, op: Op, kind: str, persistent: bool, result: CliResult, attempts: int) -> None:
    live = s.sandbox.state.metric(1562)["description"]
    patches = [body for mid, body in s.sandbox.state.patches if mid == 1562]
    head = s.repo.git("rev-parse", "HEAD")[:12]
    _, rows = s.sandbox.state.api_history(1562, 1, 1)
    traced = rows[0].get("version_name") == f"git {head}"
    fails = _fails(kind, persistent, op)
    m = result.json()["metrics"][0]
    if op.name == "patch metric" and fails:
        assert (m["status"], result.code) == ("error", 1)
        line = _error_line(result, op, kind)
        assert line.startswith("Cekura patch metric (PATCH /test_framework/v2/metrics/1562/) failed: "), line
        assert NEW_DESCRIPTION not in live and patches == []  # the fault came first
        s.sandbox.faults.clear()
        again = s.run("apply")
        assert (statuses(again.json()), again.code) == ({GREETING: "applied"}, 0)
    else:
        # Tracing (history, edit history) is best effort: the verified PATCH is the result.
        assert (m["status"], result.code) == ("applied", 0), result.err
        assert NEW_DESCRIPTION in live
        assert traced is not fails, "traced iff the tracing calls went through"
    patches = [body for mid, body in s.sandbox.state.patches if mid == 1562]
    assert len({repr(b) for b in patches}) <= 1, "two different PATCH bodies"
    assert NEW_DESCRIPTION in s.sandbox.state.metric(1562)["description"]


def check_create(s: Scenario, op: Op, kind: str, persistent: bool, result: CliResult, attempts: int) -> None:
    m = result.json()["metrics"][0]
    created = _created_ids(s.sandbox)
    if _fails(kind, persistent, op):
        assert (m["status"], result.code) == ("error", 1)
        _error_line(result, op, kind)
        if kind == "hang":
            return  # it is processed when the sandbox stops: only time tells (see report)
        assert created == []
        s.sandbox.faults.clear()
        again = s.run("apply")
        assert again.code == 0, again.out
        assert len(_created_ids(s.sandbox)) == 1
    else:
        assert (m["status"], result.code) == ("created", 0), result.err
        assert len(created) == 1


CHECKS: dict[str, Callable[..., None]] = {
    "pull": check_pull,
    "sync": check_sync,
    "timeout": check_timeout,
    "apply": check_apply,
    "create": check_create,
}


# == GitHub ===================================================================================

BRANCH = f"cekura-gitops/optimise/{GREETING}"
GH_KINDS: dict[str, dict[str, Any]] = {
    "429-retry-after": {"status": 429, "headers": {"retry-after": "2"}},
    "429": {"status": 429},  # a secondary limit without retry-after: 60 s, doubling
    "500": {"status": 500},
    "502": {"status": 502},
    "503": {"status": 503},
    "504": {"status": 504},
    "hang": {"status": 504, "delay": 3.0},  # the client (GH_HANG_TIMEOUT) has given up by then
    "drop": {"drop": True},
    "non-json": {},  # a proxy's HTML page with 200: see NonJsonTransport
    "missing-fields": {"status": 200, "body": {}},
    "401": {"status": 401},
    "403": {"status": 403},
    "404": {"status": 404},
}
# The client's read timeout: short only where a hang must trip it. It is every request's
# timeout, and on a loaded machine the fake (validating requests and replies) can take
# longer than 0.25 s to answer a healthy one: a spurious timeout and an extra retry.
GH_TIMEOUT = 30.0
GH_HANG_TIMEOUT = 1.5
GH_MAX_ATTEMPTS = 4  # GitHubClient default


@dataclass(frozen=True)
class GhOp:
    name: str
    method: str
    path: str
    safe: bool
    call: Callable[[GitHubClient, int], Any]
    reads_body: bool = True


GH_OPS = [
    GhOp("get repository", "GET", r"^/repos/acme/metrics$", True, lambda c, n: c.get_repo()),
    GhOp("list pull requests", "GET", r"/pulls$", True, lambda c, n: c.list_pulls(head_branch=BRANCH)),
    GhOp(
        "create pull request",
        "POST",
        r"/pulls$",
        False,
        lambda c, n: c.create_pull(head="cekura-gitops/optimise/other", base="main", title="t", body="b"),
    ),
    GhOp("update pull request", "PATCH", r"/pulls/\d+$", True, lambda c, n: c.update_pull(n, body="new")),
    GhOp("list comments", "GET", r"/issues/\d+/comments$", True, lambda c, n: c.list_comments(n)),
    GhOp("create comment", "POST", r"/issues/\d+/comments$", False, lambda c, n: c.create_comment(n, "hi")),
    GhOp("add labels", "POST", r"/issues/\d+/labels$", True, lambda c, n: c.add_labels(n, ["m"]), False),
    GhOp(
        "request reviewers",
        "POST",
        r"/requested_reviewers$",
        True,
        lambda c, n: c.request_reviewers(n, ["ada"]),
        False,
    ),
    GhOp(
        "enable auto-merge",
        "POST",
        r"^/graphql$",
        True,
        lambda c, n: c.enable_auto_merge(c.get_pull(n).node_id),
    ),
]


class NonJsonTransport(httpx.BaseTransport):
    """Real HTTP to the fake, except that the first `times` matching requests get HTML."""

    def __init__(self, method: str, path: str, times: int | None) -> None:
        self._inner = httpx.HTTPTransport()
        self._method, self._path, self._left = method, path, times
        self.hits = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == self._method and re.search(self._path, path) and self._left != 0:
            self._left = None if self._left is None else self._left - 1
            self.hits += 1
            self._inner.handle_request(request).close()  # it reached GitHub and took effect
            return httpx.Response(
                200, text="<html>upstream error</html>", headers={"content-type": "text/html"}
            )
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def _gh_expected_sleeps(kind: str, attempts: int) -> list[float]:
    waits = attempts - 1
    if kind == "429-retry-after":
        return [2.0] * waits
    if kind == "429":
        return [60.0 * 2**i for i in range(waits)]
    return [float(2**i) for i in range(waits)]  # 1, 2, 4: retry-after absent


def _gh_marker(kind: str) -> str:
    if kind in ("hang", "drop"):
        return "no response"
    if kind == "non-json":
        return "HTTP 200: response is not JSON"
    if kind == "missing-fields":
        return "HTTP 20"  # 200, or 201 for the POSTs that create
    return f"HTTP {GH_KINDS[kind]['status']}"


def _gh_sample(op_index: int, kind: str, persistent: bool) -> bool:
    if kind == "hang":  # real time: GH_HANG_TIMEOUT per attempt
        return not persistent and op_index % 3 == 0
    return _rotation(op_index, kind, persistent)


GH_CASES = [
    pytest.param(
        op,
        kind,
        persistent,
        id=f"{op.name.replace(' ', '-')}-{kind}-{'persistent' if persistent else 'transient'}",
        marks=() if _gh_sample(i, kind, persistent) else pytest.mark.slow,
    )
    for i, op in enumerate(GH_OPS)
    for kind in GH_KINDS
    for persistent in (False, True)
]


@pytest.mark.parametrize(("op", "kind", "persistent"), GH_CASES)
def test_github_client_fault(op: GhOp, kind: str, persistent: bool, fake_github: FakeGitHub) -> None:
    pr = fake_github.add_pull(head=BRANCH, base="main", title="Optimise")
    sleeps: list[float] = []
    times = 99 if persistent else (1 if kind == "hang" else 2)
    transport: NonJsonTransport | None = None
    fault = None
    if kind == "non-json":
        transport = NonJsonTransport(op.method, op.path, None if persistent else times)
    else:
        fault = fake_github.faults.add(op.method, op.path, times=times, **GH_KINDS[kind])
    client = GitHubClient(
        fake_github.url,
        fake_github.token,
        fake_github.full_name,
        graphql_url=fake_github.graphql_url,
        transport=transport,
        timeout=GH_HANG_TIMEOUT if kind == "hang" else GH_TIMEOUT,
        min_write_interval=0.0,
        sleep=sleeps.append,
    )
    error: GitHubAPIError | None = None
    with client:
        try:
            op.call(client, pr["number"])
        except GitHubAPIError as err:
            error = err
    hits = transport.hits if transport is not None else (fault.hits if fault is not None else 0)
    assert hits >= 1, "the fault never fired: wrong path?"
    # Every request reaches the fake and is recorded, a hung one only when it finally ends.
    attempts = fake_github.count(op.method, op.path)
    if kind == "hang":
        answered = [r for r in fake_github.requests if r.method == op.method and re.search(op.path, r.path)]
        attempts = hits + sum(1 for r in answered if r.status != 504)
        # Let the hung replies end here, not in some later test's output.
        deadline = time.monotonic() + 5
        while fake_github.count(op.method, op.path) < attempts and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)

    rate_limited = kind.startswith("429")
    retried = rate_limited or (kind in ("500", "502", "503", "504", "hang", "drop") and op.safe)
    if kind in ("non-json", "missing-fields") and not op.reads_body:
        assert error is None, "the reply body is not read: a 2xx is success"
        return
    if retried and not persistent:
        assert error is None, error
        assert attempts == times + 1
        assert sleeps == _gh_expected_sleeps(kind, attempts)
        return
    assert error is not None
    text = str(error)
    assert "\n" not in text and text.startswith(f"GitHub {op.name} ("), text
    assert _gh_marker(kind) in text, text
    assert TOKEN not in text and fake_github.token not in text
    if retried:
        assert attempts == GH_MAX_ATTEMPTS, attempts
        assert sleeps == _gh_expected_sleeps(kind, attempts)
        assert all(s <= 900 for s in sleeps), "a wait beyond max_wait"
    else:
        assert attempts == 1 and sleeps == [], (attempts, sleeps)
    if not op.safe and kind in ("500", "502", "503", "504", "hang", "drop", "non-json", "missing-fields"):
        assert error.ambiguous, "a write that may have taken effect must say so"
    if op.name == "create pull request" and kind in ("500", "502", "503", "504", "drop"):
        assert "not resent" in text or "look before retrying" in text, text


def test_github_backoff_is_settable(fake_github: FakeGitHub) -> None:
    """The knobs a CLI setting would turn (see the report): 5xx and secondary-limit waits."""
    fake_github.faults.add("GET", r"^/repos/acme/metrics$", status=503, times=2)
    fake_github.faults.add("GET", r"/pulls$", status=429, times=2)
    sleeps: list[float] = []
    with GitHubClient(
        fake_github.url,
        fake_github.token,
        fake_github.full_name,
        sleep=sleeps.append,
        backoff_base=0.01,
        secondary_wait=0.5,
    ) as client:
        client.get_repo()
        client.list_pulls()
    assert sleeps == [0.01, 0.02, 0.5, 1.0]


# -- GitHub through the CLI: the cases that involve no real retry sleep -----------------------


@pytest.fixture
def gh_world(repo: Repo, sandbox: Sandbox, make_fake_github, cli) -> Scenario:  # type: ignore[no-untyped-def]
    gh = make_fake_github(origin_path=repo.origin, owner="acme", repo="metrics", token=TOKEN)
    return Scenario(repo, sandbox, cli, {**cekura_env(sandbox), **github_env(gh)}, gh=gh)


def _gh_sound(s: Scenario) -> None:
    gh = s.gh
    assert gh is not None
    assert_yaml_parses_everywhere(s.repo.origin)
    assert_no_pr_without_branch(gh, s.repo.origin)
    heads = [p["head"]["ref"] for p in gh.pulls if p["state"] == "open"]
    assert len(heads) == len(set(heads)), "two PRs for one branch"


CREATE_CASES = [
    # (fault, sends): PR creation is never resent blindly. After a failure that may have
    # taken effect it lists first; only when the list shows nothing is it sent once more.
    pytest.param({"status": 502}, 2, id="502-before"),
    pytest.param({"status": 502, "when": "after"}, 1, id="502-after"),
    pytest.param({"status": 504, "when": "after"}, 1, id="504-after", marks=pytest.mark.slow),
    pytest.param({"drop": True}, 2, id="drop-before", marks=pytest.mark.slow),
    pytest.param({"drop": True, "when": "after"}, 1, id="drop-after"),
    pytest.param({"status": 201, "body": {}, "when": "after"}, 1, id="missing-fields-after"),
    pytest.param({"status": 429, "headers": {"retry-after": "0"}}, 2, id="429-retry-after-0"),
    pytest.param({"status": 422}, 1, id="422", marks=pytest.mark.slow),
    pytest.param({"status": 403}, 1, id="403", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("fault", "sends"), CREATE_CASES)
def test_cli_pr_creation_is_never_blindly_resent(
    fault: dict[str, Any], sends: int, gh_world: Scenario
) -> None:
    s, gh = gh_world, gh_world.gh
    assert gh is not None
    gh.faults.add("POST", r"/pulls$", **fault)
    result = s.run("sync", "--metric", GREETING)
    no_traceback(result.err)
    assert gh.count("POST", r"/pulls$") == sends
    [m] = result.json()["metrics"]
    branch = f"refs/heads/{BRANCH}"
    assert s.repo.origin_ref(branch), "the branch is pushed before its PR"
    _gh_sound(s)
    refused = fault.get("status") in (403, 422)  # GitHub answered: it did not act
    if not refused:
        # Created by the first request (re-listing found it) or by the one resend.
        assert (m["status"], result.code) == ("proposed", 0), result.err
        assert len(gh.pulls) == 1
    else:
        assert (m["status"], result.code) == ("error", 1)
        line = next(x for x in result.err.splitlines() if "GitHub create pull request (POST " in x)
        assert f"HTTP {fault['status']}" in line, line
        assert gh.pulls == []
        assert state(s.repo.origin)["runs"][1562]["progress_id"], "kept, to resume"


def test_pr_creation_is_resent_once_at_most(gh_world: Scenario) -> None:
    """Two creates that may each have landed and a list that shows neither: the run stops
    there, says so, and keeps its optimisation for the next sync."""
    s, gh = gh_world, gh_world.gh
    assert gh is not None
    gh.faults.add("POST", r"/pulls$", drop=True, times=2)
    result = s.run("sync", "--metric", GREETING)
    no_traceback(result.err)
    assert gh.count("POST", r"/pulls$") == 2
    [m] = result.json()["metrics"]
    assert (m["status"], result.code) == ("error", 1)
    line = next(x for x in result.err.splitlines() if "GitHub create pull request (POST " in x)
    assert "no response" in line and "look before retrying" in line, line
    assert gh.pulls == []
    assert state(s.repo.origin)["runs"][1562]["progress_id"], "kept, to resume"
    again = s.run("sync", "--metric", GREETING)
    assert again.code == 0 and len(gh.pulls) == 1, again.err


def test_a_resent_create_meets_a_list_that_lags_and_still_makes_one_pr(
    gh_world: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The create landed but its reply was lost, and the list has not caught up: the one
    resend gets GitHub's 422 "already exists", and the run lists again and finds it."""
    s, gh = gh_world, gh_world.gh
    assert gh is not None
    gh.faults.add("POST", r"/pulls$", status=502, when="after")
    take = gh.faults.take

    def lagging(method: str, path: str, *, reused: bool = True) -> Any:
        fault = take(method, path, reused=reused)
        if method == "POST" and path.endswith("/pulls") and fault is not None:
            # The list that decides to resend: not yet.
            gh.faults.add("GET", r"/pulls$", status=200, body=[], times=1)
        return fault

    monkeypatch.setattr(gh.faults, "take", lagging)
    result = s.run("sync", "--metric", GREETING)
    no_traceback(result.err)
    assert gh.count("POST", r"/pulls$") == 2
    [m] = result.json()["metrics"]
    assert (m["status"], result.code) == ("proposed", 0), result.err
    assert len(gh.pulls) == 1
    _gh_sound(s)
    gh.faults.clear()
    again = s.run("sync", "--metric", GREETING)  # converges: one PR, no second optimisation
    assert again.code == 0, again.err
    assert [p["head"]["ref"] for p in gh.pulls] == [BRANCH]
    assert s.sandbox.state.optimisations_started == {1562: 1}
    assert state(s.repo.origin)["runs"] == {}
    _gh_sound(s)


GH_PERSISTENT = [
    # (method, path, fault, operation, fatal): fatal = the whole command stops (exit 1)
    pytest.param("GET", r"^/repos/acme/metrics$", 401, "get repository", True, id="repos-get-401"),
    pytest.param("GET", r"/pulls$", 403, "list pull requests", True, id="pulls-list-403"),
    pytest.param("GET", r"/pulls$", 404, "list pull requests", True, id="pulls-list-404"),
    pytest.param("POST", r"/issues/\d+/labels$", 403, "add labels", False, id="labels-403"),
    pytest.param("POST", r"/requested_reviewers$", 404, "request reviewers", False, id="reviewers-404"),
    pytest.param("POST", r"^/graphql$", 403, "enable auto-merge", False, id="auto-merge-403"),
]


@pytest.mark.parametrize(("method", "path", "status", "operation", "fatal"), GH_PERSISTENT)
def test_cli_github_persistent_errors(
    method: str, path: str, status: int, operation: str, fatal: bool, gh_world: Scenario
) -> None:
    s, gh = gh_world, gh_world.gh
    assert gh is not None
    s.repo.write(
        "cekura-gitops.yaml",
        "optimiser: {min_feedback: 0, auto_apply: true}\n"
        "pull_requests: {labels: [metrics], reviewers: [ada]}\n",
    )
    s.repo.commit_all("labels, reviewers, auto-apply")
    s.repo.push()
    fault = gh.faults.add(method, path, status=status, times=99)
    result = s.run("sync", "--metric", GREETING)
    no_traceback(result.err)
    assert fault.hits == 1, "4xx is final: not retried"
    lines = [x for x in result.err.splitlines() if f"GitHub {operation} (" in x]
    assert lines and f"HTTP {status}" in lines[0], result.err
    _gh_sound(s)
    if fatal:
        assert result.code == 1
        assert gh.pulls == []
    else:
        # Best effort: the PR stands; the failure is a warning.
        assert result.code == 0, result.err
        assert statuses(result.json()) == {GREETING: "proposed"}
        assert len(gh.pulls) == 1


def test_cli_update_and_comment_failures_keep_one_pr_and_one_comment(
    gh_world: Scenario, tmp_path: Path
) -> None:
    s, gh = gh_world, gh_world.gh
    assert gh is not None
    assert statuses(s.run("sync", "--metric", GREETING).json()) == {GREETING: "proposed"}
    # A new proposal; updating the PR fails for good: an error, the old PR stays.
    s.sandbox.state.add_review(1562, True, False, feedback="A nickname the caller offered counts.")
    gh.faults.add("PATCH", r"/pulls/\d+$", status=403, times=99)
    failed = s.run("sync", "--metric", GREETING)
    line = next(x for x in failed.err.splitlines() if "GitHub update pull request (PATCH " in x)
    assert "HTTP 403" in line and failed.code == 1
    gh.faults.clear()
    assert statuses(s.run("sync", "--metric", GREETING).json()) == {GREETING: "updated"}
    assert s.sandbox.state.optimisations_started == {1562: 2} and len(gh.pulls) == 1
    # A human commits to the branch; the one-time comment's POST dies after it was made.
    s.repo.human_edit(BRANCH, GREETING_FILE, tmp_path / "human")
    s.sandbox.state.add_review(1562, True, False, feedback="Another label.")
    [pr] = gh.pulls
    on_pr = rf"/issues/{pr['number']}/comments$"  # not the dashboard issue's comments
    gh.faults.add("POST", on_pr, drop=True, when="after")
    first = s.run("sync", "--metric", GREETING)
    assert gh.count("POST", on_pr) == 1  # not resent
    assert first.code == 1 and "GitHub create comment (POST " in first.err
    s.sandbox.state.add_review(1562, True, False, feedback="Yet another label.")
    second = s.run("sync", "--metric", GREETING)
    assert statuses(second.json()) == {GREETING: "skipped-edited"}
    assert gh.count("POST", on_pr) == 1
    assert len(gh.comments_on(pr["number"])) == 1, "the comment that landed is not repeated"
    _gh_sound(s)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["502", "drop", "hang"])
def test_cli_github_transient_faults_on_reads_are_ridden_out(kind: str, gh_world: Scenario) -> None:
    """Real 1 s retry sleeps (GitHub's backoff is not settable from the CLI): --run-slow."""
    s, gh = gh_world, gh_world.gh
    assert gh is not None
    fault = {"502": {"status": 502}, "drop": {"drop": True}, "hang": {"status": 504, "delay": 0.8}}[kind]
    gh.faults.add("GET", r"/pulls$", times=1, **fault)
    gh.faults.add("GET", r"^/repos/acme/metrics$", times=1, **fault)
    result = s.run("sync", "--metric", GREETING, CEKURA_GITOPS_HTTP_TIMEOUT="0.5")
    assert (statuses(result.json()), result.code) == ({GREETING: "proposed"}, 0), result.err
    assert len(gh.pulls) == 1
    _gh_sound(s)


def test_kept_alive_connections_closing_as_writes_arrive_leave_nothing_ambiguous(
    gh_world: Scenario,
) -> None:
    """Servers close idle kept-alive connections on their own timer (2 to 75 s behind common
    servers and load balancers). Here both APIs close one as each write arrives on it, the
    worst timing: a write that is never resent (optimiser start, pull request) on a
    reused connection would be dropped unread and left ambiguous."""
    s, gh = gh_world, gh_world.gh
    assert gh is not None
    s.sandbox.faults.add(Fault("POST", r"/process_feedbacks/$", kind="idle_close", times=None))
    # One poll meets it: how many polls go down a reused connection is the pool's business.
    polls = s.sandbox.faults.add(Fault("GET", r"/process_feedbacks_progress/$", kind="idle_close", times=1))
    gh.faults.add("POST", r"/pulls$", idle_close=True, times=99)
    listing = gh.faults.add("GET", r"/pulls$", idle_close=True, times=1)  # a read: resent
    result = s.run("sync")
    no_traceback(result.err)
    proposed = statuses(result.json())
    assert result.code == 0 and set(proposed.values()) == {"proposed"}, result.err
    assert s.sandbox.state.optimisations_started == dict.fromkeys(
        [m["id"] for m in result.json()["metrics"]], 1
    )
    assert len(gh.pulls) == len(proposed) == gh.count("POST", r"/pulls$")
    assert len(proposed) > 1
    assert (s.sandbox.faults.fired(polls), listing.hits) == (1, 1), "the reads met the close"
    _gh_sound(s)

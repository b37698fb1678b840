"""One write pacer for every GitHub write of a run: spaced, one at a time across clients and
threads, secondary limits waited out by all writers, and an hourly budget that ends metrics
`skipped-cap` (to be continued by the next run). Time is a fake clock: no test sleeps."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from cekura_gitops.github import GitHubClient
from cekura_gitops.pacer import WritePacer
from tests.conftest import Repo
from tests.fakes.github_server import FakeGitHub


class FakeTime:
    """A clock that moves only when someone sleeps; shared by the tool and the fake GitHub."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def test_a_burst_of_30_prs_is_paced_and_a_secondary_limit_is_waited_out(make_fake_github) -> None:  # type: ignore[no-untyped-def]
    t = FakeTime()
    gh: FakeGitHub = make_fake_github(clock=t.clock)
    pacer = WritePacer(interval=1.0, per_hour=400, clock=t.clock, sleep=t.sleep)

    def client() -> GitHubClient:
        return GitHubClient(gh.url, gh.token, gh.full_name, pacer=pacer, clock=t.clock, sleep=t.sleep)

    # Two clients (pull requests and, say, the dashboard) and eight threads: one pacer.
    with client() as one, client() as two:

        def open_pr(n: int) -> int:
            if n == 12:  # GitHub answers the 13th-ish write with a secondary limit
                gh.faults.rate_limit("POST", r"/pulls$", retry_after=45)
            return (
                (one if n % 2 else two).create_pull(head=f"b{n}", base="main", title=f"t{n}", body="").number
            )

        with ThreadPoolExecutor(max_workers=8) as pool:
            numbers = list(pool.map(open_pr, range(30)))
    assert sorted(numbers) == list(range(1, 31))
    posts = [r for r in gh.requests if r.method == "POST" and r.path.endswith("/pulls")]
    assert len(posts) == 31 and [r.status for r in posts].count(403) == 1
    times = [r.at for r in posts]
    assert times == sorted(times)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 1.0 - 1e-6  # never two writes within a second, whatever the thread
    limited = next(i for i, r in enumerate(posts) if r.status == 403)
    assert gaps[limited] >= 45  # Retry-After honoured before the next write of *any* client
    assert pacer.sent_last_hour == 31


def test_the_hourly_budget_is_booked_per_metric() -> None:
    t = FakeTime()
    pacer = WritePacer(interval=0, per_hour=5, clock=t.clock, sleep=t.sleep)
    assert pacer.reserve(2) and pacer.reserve(2)
    assert not pacer.reserve(2)  # 4 booked + 2 > 5
    pacer.mark()  # a booked write is sent: still 4 counted
    assert not pacer.reserve(2)
    pacer.release()  # this thread's unused bookings come back
    assert pacer.reserve(2) and pacer.sent_last_hour == 1
    t.now += 3601  # the window slides
    assert pacer.sent_last_hour == 0


def test_a_spent_budget_skips_metrics_before_optimising_and_the_next_run_continues(
    pulled: Repo, cli, github_env, gh, sandbox
) -> None:  # type: ignore[no-untyped-def]
    pulled.write("cekura-gitops.yaml", "optimiser: {min_feedback: 0}\npull_requests: {writes_per_hour: 2}\n")
    pulled.commit_all("budget")
    pulled.push()
    result = cli("--json", "sync", cwd=pulled.work, env=github_env)
    assert result.code == 0, result.err
    metrics = result.json()["metrics"]
    assert sorted(m["status"] for m in metrics) == ["proposed", "proposed", "skipped-cap"]
    [skipped] = [m for m in metrics if m["status"] == "skipped-cap"]
    assert "writes_per_hour: 2" in skipped["detail"] and "next run" in skipped["detail"]
    assert skipped["id"] not in sandbox.state.optimisations_started  # no credits spent on it
    again = cli("--json", "sync", cwd=pulled.work, env=github_env)
    statuses = {m["slug"]: m["status"] for m in again.json()["metrics"]}
    assert statuses[skipped["slug"]] == "proposed"


def test_shards_split_the_budget_and_the_spacing() -> None:
    pacer = WritePacer(interval=1.0, per_hour=400)
    pacer.share(4)
    assert (pacer.interval, pacer.per_hour) == (4.0, 100)


def test_a_shard_takes_its_share_of_the_budget(pulled: Repo, cli, github_env, gh, sandbox) -> None:  # type: ignore[no-untyped-def]
    from cekura_gitops.selection import in_shard
    from tests._hardening import SLUGS

    pulled.write("cekura-gitops.yaml", "optimiser: {min_feedback: 0}\npull_requests: {writes_per_hour: 2}\n")
    pulled.commit_all("budget")
    pulled.push()
    k = next(k for k in (1, 2) if sum(in_shard(s, (k, 2)) for s in SLUGS) >= 2)
    result = cli("--json", "sync", "--shard", f"{k}/2", cwd=pulled.work, env=github_env)
    assert result.code == 0, result.err
    statuses = sorted(m["status"] for m in result.json()["metrics"])
    assert statuses.count("proposed") == 1 and "skipped-cap" in statuses  # 2 // 2 = 1 each
    [skipped, *_] = [m for m in result.json()["metrics"] if m["status"] == "skipped-cap"]
    assert "this shard's share" in skipped["detail"]

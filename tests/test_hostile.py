"""Hostile servers: secrets echoed at every offset, trickled, deep, cut and malformed replies,
refused credentials and scheme-less URLs — against both clients and through the CLI.

The server is `tests/fakes/hostile_server.py`: raw sockets on 127.0.0.1, in front of the
Cekura sandbox or the fake GitHub, scripting the replies a test names and forwarding the
rest. Secrets here are drawn from an alphabet ("QXZJVKWY") no other output uses, so a
fragment of four characters is enough to count as a leak.
"""

from __future__ import annotations

import base64
import json
import random
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from cekura_gitops.cekura import CekuraClient
from cekura_gitops.errors import APIError, CekuraAPIError, GitHubAPIError
from cekura_gitops.github import GitHubClient
from cekura_gitops.sandbox import Sandbox
from tests.conftest import CliResult, Repo, run_subprocess
from tests.fakes.github_server import FakeGitHub
from tests.fakes.hostile_server import HostileServer, Request, Script, nested, raw, reply

ALPHABET = "QXZJVKWY"


def _secret(prefix: str, length: int = 32) -> str:
    return prefix + "".join(random.choice(ALPHABET) for _ in range(length))


KEY = _secret("ck_")
TOKEN = _secret("ghs_")
GREETING = "caller_greeted_by_name_1562"
SATISFACTION = "customer_satisfaction_1563"
FRAGMENT = 4  # a leak: any 4 characters of a secret that are not its public prefix


def leaks(text: str, secret: str, size: int = FRAGMENT) -> list[str]:
    """Every run of `size` characters of the secret (beyond its public prefix) in text."""
    public = secret.index("_") + 1
    grams = {secret[i : i + size] for i in range(max(0, public - size + 1), len(secret) - size + 1)}
    return sorted(g for g in grams if g in text)


def exception_text(err: BaseException) -> str:
    return "\n".join(
        [str(err), repr(err), repr(err.args), "".join(traceback.format_exception(err))]
        + ([f"{err.detail!r}"] if isinstance(err, APIError) else [])
    )


# -- encodings and placements ---------------------------------------------------------------

ENCODINGS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "url-encoded": lambda s: quote(s, safe=""),
    "json-escaped": lambda s: json.dumps(s)[1:-1],
    "base64-basic-auth": lambda s: base64.b64encode(f"x-access-token:{s}".encode()).decode(),
}
# 300 is where error details are cut: a secret at 290-299 straddles it.
OFFSETS = [0, 1, 2, 150, 270, 290, 295, 296, 297, 298, 299, 300, 301, 302, 1000]


def filler(n: int) -> str:
    return ("lorem ipsum dolor sit amet " * (n // 27 + 1))[:n]


def echo_in_json(status: int, field: str, offset: int, encode: Callable[[str], str]) -> Callable[..., Script]:
    def make(request: Request) -> Script:
        text = filler(offset) + encode(request.secret()) + " " + filler(400)
        return reply(status, {field: text})

    return make


def echo_in_text(status: int, offset: int) -> Callable[..., Script]:
    return lambda r: reply(
        status, filler(offset) + r.secret() + filler(400), headers={"Content-Type": "text/plain"}
    )


def echo_in_reason(status: int, offset: int) -> Callable[..., Script]:
    return lambda r: reply(status, b"", reason=(filler(offset) + r.secret())[:1000])


def echo_truncated(status: int, field: str, offset: int, keep: int) -> Callable[..., Script]:
    """The server cut its own message in the middle of the secret (at its end)."""
    return lambda r: reply(status, {field: filler(offset) + r.secret()[:keep]})


@pytest.fixture
def hostile_cekura() -> Iterator[tuple[HostileServer, Sandbox]]:
    sandbox = Sandbox(api_key=KEY).start()
    server = HostileServer(sandbox.url).start()
    try:
        yield server, sandbox
    finally:
        server.stop()
        sandbox.stop()


@pytest.fixture
def hostile_github(fake_github: FakeGitHub) -> Iterator[HostileServer]:
    server = HostileServer(fake_github.url).start()
    try:
        yield server
    finally:
        server.stop()


def cekura_client(url: str, secret: str = KEY, **kwargs: Any) -> CekuraClient:
    return CekuraClient(url, secret, max_attempts=1, backoff_base=0, **kwargs)


def github_client(url: str, secret: str = TOKEN, **kwargs: Any) -> GitHubClient:
    return GitHubClient(url, secret, "acme/metrics", max_attempts=1, sleep=lambda _: None, **kwargs)


def _error_of(call: Callable[[], object]) -> APIError:
    with pytest.raises(APIError) as raised:
        call()
    return raised.value


# -- break 4: secret fragments, client level ------------------------------------------------


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_cekura_errors_hold_no_fragment_of_the_key_at_any_offset(
    encoding: str, hostile_cekura: tuple[HostileServer, Sandbox]
) -> None:
    server, _ = hostile_cekura
    encode = ENCODINGS[encoding]
    texts = []
    with cekura_client(server.url) as client:
        for offset in OFFSETS:
            for script in (
                echo_in_json(400, "detail", offset, encode),
                echo_in_json(400, "prompt", offset, encode),  # a DRF field error
                echo_in_text(502, offset),
                echo_in_reason(400, offset),
                # 2xx of the wrong shape: the body is quoted in "unexpected response"
                lambda r, o=offset: reply(200, {"id": "x", "note": filler(o) + encode(r.secret())}),
                echo_truncated(400, "detail", offset, keep=len(KEY) // 2),
            ):
                server.clear()
                server.add("*", "", script)
                texts.append(exception_text(_error_of(lambda: client.get_metric(1562))))
            server.clear()
            location = f"https://evil.example/?k={filler(offset)}{encode(KEY)}"
            server.add("*", "", reply(302, b"", headers={"Location": location}))
            texts.append(exception_text(_error_of(lambda: client.get_metric(1562))))
    everything = "\n".join(texts)
    assert "***" in everything  # the secret was there, and was redacted
    assert leaks(everything, KEY) == []


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_github_errors_hold_no_fragment_of_the_token_at_any_offset(
    encoding: str, hostile_github: HostileServer
) -> None:
    server, encode = hostile_github, ENCODINGS[encoding]
    texts = []
    with github_client(server.url) as client:
        for offset in OFFSETS:
            for script in (
                echo_in_json(422, "message", offset, encode),
                echo_in_text(404, offset),
                echo_in_reason(404, offset),
                lambda r, o=offset: reply(200, {"number": filler(o) + encode(r.secret())}),
                echo_truncated(422, "message", offset, keep=len(TOKEN) // 2),
            ):
                server.clear()
                server.add("*", "", script)
                texts.append(exception_text(_error_of(lambda: client.get_pull(1))))
            server.clear()
            server.add(
                "*", "", lambda r, o=offset: reply(200, {"errors": [{"message": filler(o) + r.secret()}]})
            )
            texts.append(exception_text(_error_of(lambda: client.enable_auto_merge("PR_1"))))
    everything = "\n".join(texts)
    assert "***" in everything
    assert leaks(everything, TOKEN) == []


def test_a_secret_cut_by_the_server_leaves_no_fragment_at_the_end(
    hostile_cekura: tuple[HostileServer, Sandbox],
) -> None:
    """A proxy that cut its own message inside the echoed key: every length of the stub."""
    server, _ = hostile_cekura
    texts = []
    with cekura_client(server.url) as client:
        for keep in range(1, len(KEY)):
            for offset in (0, 100, 296):
                server.clear()
                server.add("*", "", echo_truncated(400, "detail", offset, keep))
                texts.append(exception_text(_error_of(lambda: client.get_metric(1562))))
    assert leaks("\n".join(texts), KEY) == []


# -- break 4: through every output of the CLI -------------------------------------------------


@dataclass
class World:
    repo: Repo
    sandbox: Sandbox
    cekura: HostileServer
    github: HostileServer
    fake: FakeGitHub
    tmp: Path

    def env(self, **extra: str | None) -> dict[str, str | None]:
        env: dict[str, str | None] = {
            "CEKURA_API_URL": self.cekura.url,
            "CEKURA_API_KEY": KEY,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_REPOSITORY": "acme/metrics",
            "GITHUB_API_URL": self.github.url,
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(self.tmp / "github_output"),
            "GITHUB_STEP_SUMMARY": str(self.tmp / "summary.md"),
            "CEKURA_GITOPS_GITHUB_WRITE_INTERVAL": "0",
            "CEKURA_GITOPS_HTTP_BACKOFF": "0",
            "CEKURA_GITOPS_HTTP_TIMEOUT": "10",
        }
        env.update(extra)
        return env

    def outputs(self, result: CliResult) -> str:
        """stdout (--json), stderr without the leading masks, $GITHUB_OUTPUT, the summary."""
        err = result.err.splitlines()
        while err and err[0].startswith("::add-mask::"):
            err.pop(0)
        files = [self.tmp / "github_output", self.tmp / "summary.md"]
        return "\n".join([result.out, *err, *(f.read_text() for f in files if f.exists())])

    def sandbox_reply(self, request: Request) -> str:
        """What the sandbox itself answers to `request` (for replies that edit it)."""
        return httpx.get(self.sandbox.url + request.path, headers={"X-CEKURA-API-KEY": request.secret()}).text

    def reset_files(self) -> None:
        for name in ("github_output", "summary.md"):
            (self.tmp / name).unlink(missing_ok=True)


@pytest.fixture
def world(repo: Repo, cli, make_fake_github, tmp_path: Path) -> Iterator[World]:  # type: ignore[no-untyped-def]
    sandbox = Sandbox(api_key=KEY).start()
    cekura = HostileServer(sandbox.url).start()
    fake = make_fake_github(origin_path=repo.origin, owner="acme", repo="metrics", token=TOKEN)
    github = HostileServer(fake.url).start()
    (tmp_path / "io").mkdir()
    w = World(repo, sandbox, cekura, github, fake, tmp_path / "io")
    try:
        pulled = cli("pull", "--project", "1376", cwd=repo.work, env=w.env(GITHUB_ACTIONS=None))
        assert pulled.code == 0, pulled.err
        repo.commit_all("import metrics")
        repo.push()
        yield w
    finally:
        github.stop()
        cekura.stop()
        sandbox.stop()


def _edit_two_metrics(w: World) -> None:
    for slug in (GREETING, SATISFACTION):
        path = w.repo.work / f"metrics/{slug}.yaml"
        path.write_text(path.read_text().replace("description: ", "description: Edited. ", 1))
    w.repo.commit_all("edit two metrics")
    w.repo.push()


CLI_OFFSETS = [0, 1, 150, 290, 295, 299, 300, 301, 1000]


def test_no_fragment_of_either_secret_reaches_any_output(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    """stderr, --json, $GITHUB_OUTPUT and the job summary of sync, apply, plan and pull,
    with the key echoed by Cekura and the token by GitHub at every offset."""
    w, seen = world, []
    _edit_two_metrics(w)
    runs: list[tuple[HostileServer, str, str, tuple[str, ...]]] = [
        (w.cekura, "GET", r"/metrics/1562/$", ("--json", "sync", "--metric", GREETING)),
        (w.github, "POST", r"/pulls$", ("--json", "sync", "--metric", GREETING, "--force")),
        (w.cekura, "GET", r"/metrics/1562/$", ("--json", "apply", "--base", "HEAD~1")),
        (w.cekura, "GET", r"/metrics/(\?|$)", ("--json", "plan")),
        (w.cekura, "GET", r"/metrics/(\?|$)", ("--json", "pull", "--project", "1376", "--force")),
    ]
    for server, method, path, args in runs:
        for offset in CLI_OFFSETS:
            status, field = (422, "message") if server is w.github else (400, "detail")
            server.clear()
            server.add(method, path, echo_in_json(status, field, offset, ENCODINGS["raw"]))
            w.reset_files()
            result = cli(*args, cwd=w.repo.work, env=w.env())
            assert result.code == 1, (args, offset, result.err)
            text = w.outputs(result)
            if offset < 290:  # within the excerpt: shown redacted
                assert "***" in text, (args, offset, text)
            seen.append(text)
        server.clear()
    everything = "\n".join(seen)
    assert leaks(everything, KEY) == [] and leaks(everything, TOKEN) == []


# -- break 7: the overall deadline ------------------------------------------------------------


def trickle(part: str) -> Script:
    body = json.dumps([{"id": 1, "padding": "x" * 400}]).encode()
    delay = {"head_delay": 0.05} if part == "headers" else {"body_delay": 0.05}
    return reply(200, body, **delay)  # ~25 s at 20 bytes/s: far past the 1.5 s deadline


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_trickled_reply_ends_at_the_deadline(part: str, hostile_cekura, hostile_github) -> None:  # type: ignore[no-untyped-def]
    cekura_server, _ = hostile_cekura
    cekura_server.add("*", "", trickle(part))
    hostile_github.add("*", "", trickle(part))

    def cekura() -> CekuraClient:
        return cekura_client(cekura_server.url, deadline=1.5, timeout=10)

    for make, call in (
        (cekura, lambda c: c.list_projects()),
        (lambda: github_client(hostile_github.url, deadline=1.5, timeout=10), lambda c: c.list_issues()),
        # A write never resent goes out on a connection of its own: bounded all the same.
        (cekura, lambda c: c.start_optimiser(1, None)),
    ):
        with make() as client:
            started = time.monotonic()
            err = _error_of(lambda c=client, f=call: f(c))
            elapsed = time.monotonic() - started
        assert "no complete reply within 1.5 s" in err.detail, err
        assert elapsed < 8, f"{part}: took {elapsed:.1f} s"  # generous: 1.5 s on a loaded machine


# -- break 7: malformed replies ---------------------------------------------------------------

MALFORMED: dict[str, Script] = {
    "nested-100k": reply(200, nested(100_000)),
    "nested-200": reply(200, nested(200)),
    "not-json": reply(200, "<html>a proxy page</html>", headers={"Content-Type": "text/html"}),
    "truncated": reply(200, b'{"id": 1562, "slug": "caller_gree', content_length=400),
    "cut-mid-body": reply(200, json.dumps({"id": 1562, "x": "y" * 500}), send=100),
    "short-content-length": reply(200, b'{"id": 1562}{"id": 1563}', content_length=5),
    "garbage": raw(b"\x00\xffNOT HTTP AT ALL\r\n\r\n"),
    "no-status": raw(b""),
    "wrong-shape": reply(200, {"id": 1562, "description": ["not", "a", "string"], "reviews": 3}),
    "huge-number": reply(200, b'{"id": 1562, "description": 1' + b"0" * 5000 + b"}"),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_both_clients_refuse_a_malformed_reply_in_one_line(kind: str, hostile_cekura, hostile_github) -> None:  # type: ignore[no-untyped-def]
    cekura_server, _ = hostile_cekura
    cekura_server.add("*", "", MALFORMED[kind])
    hostile_github.add("*", "", MALFORMED[kind])
    with cekura_client(cekura_server.url) as cekura, github_client(hostile_github.url) as github:
        errors = [
            _error_of(lambda: cekura.get_metric(1562)),
            _error_of(lambda: github.get_pull(1)),
            _error_of(lambda: github.list_comments(1)),
        ]
    for err in errors:
        assert isinstance(err, (CekuraAPIError, GitHubAPIError))
        assert "\n" not in str(err) and len(str(err)) < 600, str(err)
        assert err.path in str(err)  # it names the endpoint


def _one_error_line(result: CliResult | Any, endpoint: str) -> str:
    err = result.err if isinstance(result, CliResult) else result.stderr
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert endpoint in lines[0], lines
    assert "internal error" not in err and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_malformed_reply_fails_each_command_with_one_line(kind: str, world: World, cli) -> None:  # type: ignore[no-untyped-def]
    """plan and pull stop (exit 1, one line naming the endpoint); sync and apply report the
    metric as an error and carry on with the others."""
    w = world
    env = w.env(GITHUB_ACTIONS=None, GITHUB_TOKEN=None)
    w.cekura.add("GET", r"/metrics/(\?|$)", MALFORMED[kind])
    for args in (("plan",), ("pull", "--project", "1376", "--force")):
        result = cli(*args, cwd=w.repo.work, env=env)
        assert result.code == 1, (args, result.err)
        _one_error_line(result, "GET /test_framework/v2/metrics/")
    w.cekura.clear()
    w.cekura.add("GET", r"/metrics/1562/$", MALFORMED[kind])
    synced = cli("--json", "sync", "--no-pr", "--force", cwd=w.repo.work, env=env)
    assert synced.code == 1, synced.err
    statuses = {m["slug"]: m for m in synced.json()["metrics"]}  # type: ignore[union-attr]
    assert statuses[GREETING]["status"] == "error"
    assert "/test_framework/v2/metrics/1562/" in statuses[GREETING]["detail"]
    # The others carry on: each was fetched and judged on its own. (Not "all proposed": on
    # a loaded machine a fresh loopback connection is now and then reset, and a start POST
    # that may have been sent is rightly reported ambiguous, not resent.)
    others = {s: m for s, m in statuses.items() if s != GREETING}
    assert set(others) == {SATISFACTION, "refund_policy_code_1564"}
    assert all("/metrics/1562/" not in m.get("detail", "") for m in others.values()), others
    assert "proposed" in {m["status"] for m in others.values()}, others
    _edit_two_metrics(w)
    applied = cli("--json", "apply", "--base", "HEAD~1", cwd=w.repo.work, env=env)
    assert applied.code == 1, applied.err
    results = {m["slug"]: m["status"] for m in applied.json()["metrics"]}  # type: ignore[union-attr]
    assert results == {GREETING: "error", SATISFACTION: "applied"}


def _child_env(w: World, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in w.env(GITHUB_ACTIONS=None, GITHUB_TOKEN=None).items() if v is not None}
    return {**env, **extra}


def test_child_processes_end_on_time_and_in_one_line(world: World) -> None:
    """sync, plan, pull and apply as real processes against a trickling and a deeply nesting
    Cekura: each ends within seconds, exit 1, one line naming the endpoint."""
    w = world
    _edit_two_metrics(w)
    env = _child_env(w, CEKURA_GITOPS_HTTP_DEADLINE="2")
    commands = [
        ["plan"],
        ["pull", "--project", "1376", "--force"],
        ["sync", "--no-pr", "--metric", GREETING],
        ["apply", "--base", "HEAD~1", "--metric", GREETING],
    ]
    # Every command against a trickled body; trickled headers and deep nesting once each
    # (tests above cover them for every command in-process).
    for script, chosen in (
        (trickle("body"), commands),
        (trickle("headers"), commands[:1]),
        (MALFORMED["nested-100k"], commands[2:3]),
    ):
        w.cekura.clear()
        w.cekura.add("GET", r"/metrics/(1562/)?(\?|$)", script)
        for args in chosen:
            started = time.monotonic()
            done = run_subprocess(args, w.repo.work, env, timeout=60)
            elapsed = time.monotonic() - started
            assert done.returncode == 1, (args, done.stderr)
            assert elapsed < 30, f"{args}: {elapsed:.1f} s"  # 2 s deadline; slow machines
            if args[0] in ("plan", "pull"):
                _one_error_line(done, "/test_framework/v2/metrics/")
            else:
                assert "/test_framework/v2/metrics/1562/" in done.stdout + done.stderr
                assert "internal error" not in done.stderr and "Traceback" not in done.stderr


# -- wrong credentials: fail fast, once -------------------------------------------------------


def test_a_refused_cekura_key_stops_every_command_after_one_request(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    w = world
    _edit_two_metrics(w)
    env = w.env(CEKURA_API_KEY=_secret("ck_"), GITHUB_ACTIONS=None, GITHUB_TOKEN=None)
    for args in (
        ("sync", "--no-pr", "--force"),
        ("plan",),
        ("apply", "--base", "HEAD~1"),
        ("pull", "--project", "1376", "--force"),
        ("pull", "--metric", "1562", "--metric", "1563", "--metric", "1564"),
    ):
        before = w.cekura.count()
        result = cli("--concurrency", "8", *args, cwd=w.repo.work, env=env)
        assert result.code == 1, (args, result.err)
        line = _one_error_line(result, "HTTP 401")
        assert "CEKURA_API_KEY" in line
        assert w.cekura.count() - before == 1, (args, w.cekura.requests[before:])


def test_a_refused_github_token_stops_sync_after_one_request(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    w = world
    w.github.add("*", "", lambda r: reply(401, {"message": "Bad credentials"}))
    result = cli("sync", "--force", cwd=w.repo.work, env=w.env(GITHUB_ACTIONS=None))
    assert result.code == 1, result.err
    line = _one_error_line(result, "HTTP 401")
    assert "GITHUB_TOKEN" in line
    assert w.github.count() == 1


def test_a_token_refused_later_stops_sync_once_not_once_per_pull_request(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    """The token works for reading, then every write is refused (an expired App token)."""
    w = world
    w.repo.write("cekura-gitops.yaml", "optimiser:\n  min_feedback: 0\n")
    w.repo.commit_all("config")
    w.repo.push()
    w.github.add("POST", "", reply(401, {"message": "Bad credentials"}))
    result = cli("sync", cwd=w.repo.work, env=w.env(GITHUB_ACTIONS=None))
    assert result.code == 1, result.err
    assert result.err.count("HTTP 401") == 1, result.err
    assert w.github.count("POST") == 1


# -- scheme-less API URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CEKURA_API_URL", "api.cekura.ai"),
        ("CEKURA_API_URL", "localhost:8000"),
        ("GITHUB_API_URL", "api.github.com"),
        ("GITHUB_API_URL", "ftp://api.github.com"),
    ],
)
def test_an_api_url_without_a_scheme_is_a_one_line_config_error(
    name: str, value: str, world: World, cli
) -> None:  # type: ignore[no-untyped-def]
    before = world.cekura.count()
    result = cli("plan", cwd=world.repo.work, env=world.env(GITHUB_ACTIONS=None, **{name: value}))
    assert result.code == 1
    line = _one_error_line(result, name)
    assert "https://" in line and value in line
    assert world.cekura.count() == before


def test_the_deadline_transport_is_in_place() -> None:
    """httpx has no public hook for it: if its internals move, this says so first."""
    with CekuraClient("http://127.0.0.1:9", KEY) as client:
        split = client._http._transport  # type: ignore[attr-defined]
        for transport in (split._pooled, split._fresh):  # kept-alive, and one per write
            assert type(transport._pool._network_backend).__name__ == "_DeadlineBackend"


def test_a_key_echoed_in_a_successful_reply_reaches_no_file_or_output(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    """2xx replies are data, yet they are cut too (an optimiser error at 500 characters) and
    written to files: the key is masked in them as they arrive."""
    w, seen = world, []
    for offset in (0, 490, 495, 499, 500):
        failed = lambda r, o=offset: reply(200, {"status": "failed", "error": filler(o) + r.secret()})  # noqa: E731
        w.cekura.clear()
        w.cekura.add("GET", r"process_feedbacks_progress/", failed)
        w.reset_files()
        result = cli("--json", "sync", "--metric", GREETING, "--force", cwd=w.repo.work, env=w.env())
        assert result.code == 1, result.err
        seen.append(w.outputs(result))
    w.cekura.clear()

    def echoing_list(request: Request) -> Script:
        rows = json.loads(w.sandbox_reply(request))
        rows[0]["description"] = f"Echoed: {request.secret()} (end)"
        return reply(200, rows)

    w.cekura.add("GET", r"/metrics/(\?|$)", echoing_list)
    pulled = cli("pull", "--project", "1376", "--force", cwd=w.repo.work, env=w.env())
    assert pulled.code == 0, pulled.err
    seen += [w.outputs(pulled), *(p.read_text() for p in (w.repo.work / "metrics").iterdir())]
    everything = "\n".join(seen)
    assert "Echoed: *** (end)" in everything
    assert leaks(everything, KEY) == []

"""Secrets: the Cekura key and the GitHub token never leave the process except as headers.

Every command runs with recognisable secrets, on the happy path and in each failure mode
reachable from outside (dead API, 401, 500s echoing the key, invalid files, a conflict, an
internal error with a --verbose traceback, odd key values), under GitHub Actions. Then
everything observable is searched: stdout and stderr, every file in the work tree and in
`.git`, every object and ref of the clone and of origin (`git cat-file`, `git log --all
-p`), what the fake GitHub holds (PR titles/bodies, comments, issues, every request body),
every request body the Cekura sandbox received, and the $GITHUB_OUTPUT and
$GITHUB_STEP_SUMMARY files.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from cekura_gitops import actions
from cekura_gitops.cekura import CekuraClient
from cekura_gitops.console import Console
from cekura_gitops.errors import CekuraAPIError
from cekura_gitops.github import GitHubClient
from cekura_gitops.sandbox import Fault, Sandbox
from cekura_gitops.settings import resolve
from tests.conftest import CliResult, Repo
from tests.deadport import DEAD_URL
from tests.fakes.github_server import FakeGitHub

KEY = "ck_SECRET_" + secrets.token_hex(12)
TOKEN = "ghs_SECRET_" + secrets.token_hex(12)
GREETING = "caller_greeted_by_name_1562"
GREETING_FILE = f"metrics/{GREETING}.yaml"
PACKAGE = Path(__file__).parent.parent / "cekura_gitops"


def _needles(secret: str) -> list[str]:
    """The secret, its random core (catches escaped or partial forms) and its base64."""
    core = secret.strip().rsplit("_", 1)[-1][:16]
    return [secret.strip(), core, base64.b64encode(secret.encode()).decode()]


def _git_dump(path: Path) -> str:
    parts = []
    for args in (
        ["cat-file", "--batch-all-objects", "--batch"],
        ["log", "--all", "-p", "--format=fuller"],
        ["for-each-ref"],
    ):
        done = subprocess.run(["git", *args], cwd=path, capture_output=True)
        parts.append(done.stdout.decode("utf-8", "replace"))
    return "\n".join(parts)


def _tree_dump(path: Path) -> str:
    parts = []
    for file in sorted(path.rglob("*")):
        if file.is_file() and not file.is_symlink():
            parts.append(f"== {file}\n" + file.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


@dataclass
class Harness:
    repo: Repo
    sandbox: Sandbox
    github: FakeGitHub
    tmp: Path
    outputs: list[str] = field(default_factory=list)
    secrets: set[str] = field(default_factory=lambda: {KEY, TOKEN})

    def env(self, **overrides: str | None) -> dict[str, str | None]:
        env: dict[str, str | None] = {
            "CEKURA_API_URL": self.sandbox.url,
            "CEKURA_API_KEY": KEY,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_REPOSITORY": "acme/metrics",
            "GITHUB_API_URL": self.github.url,
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(self.tmp / "github_output"),
            "GITHUB_STEP_SUMMARY": str(self.tmp / "step_summary.md"),
            "CEKURA_GITOPS_GITHUB_WRITE_INTERVAL": "0",
            "CEKURA_GITOPS_HTTP_BACKOFF": "0",
            "CEKURA_GITOPS_HTTP_TIMEOUT": "5",
        }
        env.update(overrides)
        for name in ("CEKURA_API_KEY", "GITHUB_TOKEN"):
            if env.get(name):
                self.secrets.add(str(env[name]))
        return env

    def run(self, cli, *args: str, env: dict[str, str | None]) -> CliResult:  # type: ignore[no-untyped-def]
        result: CliResult = cli(*args, cwd=self.repo.work, env=env)
        self.outputs.append(f"$ {' '.join(args)} -> {result.code}\n{_unmasked(result.err)}\n{result.out}")
        assert result.code in (0, 1, 2, 3), result
        return result

    def everything(self) -> str:
        github = {
            "pulls": self.github.pulls,
            "issues": self.github.issues,
            "comments": self.github.comments,
            "requests": [(r.method, r.path, r.query, r.body) for r in self.github.requests],
        }
        cekura = [(r.method, r.path, r.query, r.body) for r in self.sandbox.requests]
        return "\n".join(
            [
                *self.outputs,
                _tree_dump(self.repo.work),
                _tree_dump(self.repo.origin),
                _git_dump(self.repo.work),
                _git_dump(self.repo.origin),
                json.dumps(github, default=str),
                json.dumps(cekura, default=str),
                _tree_dump(self.tmp / "out"),
            ]
        )

    def assert_nothing_leaked(self) -> None:
        text = self.everything()
        assert len(self.outputs) > 0 and GREETING in text
        for secret in self.secrets:
            for needle in _needles(secret):
                assert needle not in text, f"secret {needle[:12]}… leaked:\n{_around(text, needle)}"


def _unmasked(err: str) -> str:
    """stderr without the leading `::add-mask::` lines (the one place a secret may appear)."""
    lines = err.splitlines()
    while lines and lines[0].startswith("::add-mask::"):
        lines.pop(0)
    return "\n".join(lines)


def _around(text: str, needle: str) -> str:
    at = text.find(needle)
    return text[max(0, at - 300) : at + 100]


@pytest.fixture
def harness(repo: Repo, cli, make_fake_github, tmp_path: Path) -> Iterator[Harness]:  # type: ignore[no-untyped-def]
    sandbox = Sandbox(api_key=KEY).start()
    github = make_fake_github(origin_path=repo.origin, owner="acme", repo="metrics", token=TOKEN)
    (tmp_path / "out").mkdir()
    h = Harness(repo, sandbox, github, tmp_path / "out")
    try:
        pulled = h.run(cli, "pull", "--project", "1376", env=h.env(GITHUB_ACTIONS=None))
        assert pulled.code == 0, pulled.err
        repo.commit_all("import metrics")
        repo.push()
        yield h
    finally:
        sandbox.stop()
    assert sandbox.validation_errors == []


def _every_command(h: Harness, cli, env: dict[str, str | None]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    codes = {}
    for args in (
        ("validate",),
        ("--json", "list"),
        ("-v", "plan", "--format", "markdown"),
        ("-v", "sync", "--metric", GREETING),
        ("-v", "apply", "--base", "HEAD~1"),
        ("-v", "--json", "pull", "--force"),
        ("-v", "doctor"),
    ):
        codes[" ".join(args)] = h.run(cli, *args, env=env).code
    return codes


def test_happy_path_under_actions_leaks_nothing(harness: Harness, cli) -> None:  # type: ignore[no-untyped-def]
    h, env = harness, harness.env()
    assert h.run(cli, "-v", "sync", env=env).code == 0
    [pr] = h.github.pulls
    branch = pr["head"]["ref"]
    h.repo.git("fetch", "-q", "origin")
    h.repo.git("merge", "-q", "--ff-only", f"origin/{branch}")
    h.repo.push()
    event = h.tmp / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": pr["number"]}}))
    assert h.run(cli, "-v", "apply", env=env).code == 0
    comment_env = {**env, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)}
    assert h.run(cli, "-v", "plan", "--comment", env=comment_env).code == 0
    _every_command(h, cli, env)
    assert h.sandbox.state.patches, "apply PATCHed nothing: the happy path did not happen"
    assert h.github.comments and (h.tmp / "step_summary.md").read_text()
    h.assert_nothing_leaked()


def _dead_cekura(h: Harness) -> dict[str, str | None]:
    return h.env(CEKURA_API_URL=DEAD_URL)


def _cekura_401_echo(h: Harness) -> dict[str, str | None]:
    # A proxy that echoes the request's headers into its error body.
    body = {"detail": f"Invalid token. Header X-CEKURA-API-KEY: {KEY}"}
    h.sandbox.faults.add(Fault("*", ".*", status=401, times=None, body=body))
    return h.env()


def _cekura_wrong_key(h: Harness) -> dict[str, str | None]:
    return h.env(CEKURA_API_KEY="ck_SECRET_" + secrets.token_hex(12))  # the sandbox answers 401


def _cekura_500_echo(h: Harness) -> dict[str, str | None]:
    body = {"detail": f"upstream failed for key={KEY}", "headers": {"X-CEKURA-API-KEY": KEY}}
    h.sandbox.faults.add(Fault("*", ".*", status=500, times=None, body=body))
    return h.env()


def _cekura_drops(h: Harness) -> dict[str, str | None]:
    h.sandbox.faults.add(Fault("*", ".*", kind="drop", times=None))
    return h.env()


def _github_401_echo(h: Harness) -> dict[str, str | None]:
    h.github.faults.add(
        "*", ".*", status=401, times=1000, body={"message": f"Bad credentials: Bearer {TOKEN}"}
    )
    return h.env()


def _github_500_on_writes(h: Harness) -> dict[str, str | None]:
    # POSTs are never resent (they are not idempotent), so no backoff makes this slow.
    h.github.faults.add("POST", ".*", status=500, times=1000, body={"message": f"oops for {TOKEN}"})
    return h.env()


def _invalid_files(h: Harness) -> dict[str, str | None]:
    h.repo.write("metrics/broken.yaml", "slug: broken\nid: !!python/object/apply:os.system [id]\n")
    h.repo.write(GREETING_FILE, (h.repo.work / GREETING_FILE).read_text() + "promt: typo\n")
    h.repo.commit_all("broken files")
    return h.env()


def _conflict(h: Harness) -> dict[str, str | None]:
    h.sandbox.state.dashboard_edit(1562, description="Edited in the dashboard.")
    text = (h.repo.work / GREETING_FILE).read_text()
    h.repo.write(
        GREETING_FILE, text.replace("Score FALSE otherwise.", "Score FALSE otherwise, or if unsure.")
    )
    h.repo.commit_all("git edit")
    h.repo.push()
    return h.env()


def _key_with_newline(h: Harness) -> dict[str, str | None]:
    # A secret pasted with its trailing newline: stripped, so it works; the raw form is
    # still redacted wherever it might show.
    return h.env(CEKURA_API_KEY=KEY + "\n")


def _non_ascii_key(h: Harness) -> dict[str, str | None]:
    # httpx cannot encode this header: an error deep inside httpx.
    return h.env(CEKURA_API_KEY=KEY + "é")


# Secrets that the tool accepts after stripping them: no command fails, nothing leaks.
WORKS = {"key-with-trailing-newline"}
# In order: the last two change the repository for good.
FAILURES = {
    "cekura-dead": _dead_cekura,
    "cekura-401-echoing-the-key": _cekura_401_echo,
    "cekura-wrong-key": _cekura_wrong_key,
    "cekura-500-echoing-the-key": _cekura_500_echo,
    "cekura-drops-connections": _cekura_drops,
    "github-401-echoing-the-token": _github_401_echo,
    "github-500-on-writes": _github_500_on_writes,
    "key-with-trailing-newline": _key_with_newline,
    "non-ascii-key": _non_ascii_key,
    "conflict-and-drift": _conflict,
    "invalid-files": _invalid_files,
}


def test_every_command_in_every_failure_mode_leaks_nothing(harness: Harness, cli) -> None:  # type: ignore[no-untyped-def]
    for mode, arrange in FAILURES.items():
        harness.outputs.append(f"### failure mode {mode}")
        env = arrange(harness)
        codes = _every_command(harness, cli, env)
        if mode not in WORKS:
            assert any(code != 0 for code in codes.values()), f"{mode} made nothing fail: {codes}"
        harness.sandbox.faults.clear()
        harness.github.faults.clear()
    harness.assert_nothing_leaked()


def test_github_token_with_trailing_newline_leaks_nothing(fake_github: FakeGitHub) -> None:
    client = GitHubClient(
        fake_github.url,
        TOKEN + "\n",
        "acme/metrics",
        transport=httpx.HTTPTransport(),  # the real transport: h11 refuses the header
        sleep=lambda _: None,
    )
    with client, pytest.raises(Exception) as raised:
        client.get_repo()
    text = f"{raised.value}\n{raised.value!r}"
    for needle in _needles(TOKEN):
        assert needle not in text, text


def test_internal_error_traceback_is_redacted(harness: Harness, cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A bug whose exception carries both secrets (as an httpx error would carry headers)."""

    def buggy(*args: object, **kwargs: object) -> None:
        request = httpx.Request(
            "GET",
            f"{harness.sandbox.url}/x?api_key={KEY}",
            headers={"X-CEKURA-API-KEY": KEY, "Authorization": f"Bearer {TOKEN}"},
        )
        cause = httpx.ConnectError(
            f"cannot reach {request.url} with {dict(request.headers)}", request=request
        )
        raise RuntimeError(f"unexpected {request.headers.raw!r}") from cause

    monkeypatch.setattr("cekura_gitops.commands.plan.fetch_live", buggy)
    monkeypatch.setattr("cekura_gitops.commands.sync.load_files", buggy)
    env = harness.env()
    for args in (("-v", "plan"), ("--verbose", "sync"), ("plan",)):
        result = harness.run(cli, *args, env=env)
        assert result.code == 3
        assert ("Traceback" in result.err) == (args[-1] != "plan" or args[0] == "-v")
        assert "RuntimeError" in result.err
    assert "***" in "".join(harness.outputs)  # it was there, and it was redacted
    harness.assert_nothing_leaked()


def _first_lines_are_masks(args: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "cekura_gitops", *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # the runner's view: one log
        text=True,
        timeout=30,
    )
    lines = done.stdout.splitlines()
    expected = [actions.mask(env["CEKURA_API_KEY"]), actions.mask(env["GITHUB_TOKEN"])]
    assert lines[:2] == expected, lines[:5]
    assert all(KEY not in line and TOKEN not in line for line in lines[2:])
    return lines


def test_secrets_are_masked_before_anything_else_under_actions(harness: Harness) -> None:
    env = {k: v for k, v in harness.env(CEKURA_API_URL=DEAD_URL).items() if v}
    # A usage error, a dead API with a verbose failure, and a JSON run all start with the masks.
    _first_lines_are_masks(["plan", "--bogus-flag"], env, harness.repo.work)
    lines = _first_lines_are_masks(["-v", "plan"], env, harness.repo.work)
    assert any(line.startswith("::error") for line in lines)
    _first_lines_are_masks(["--json", "list"], env, harness.repo.work)
    without = {k: v for k, v in env.items() if k != "GITHUB_ACTIONS"}
    done = subprocess.run(
        [sys.executable, "-m", "cekura_gitops", "list"],
        cwd=harness.repo.work,
        env={**os.environ, **without},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "::add-mask::" not in done.stdout + done.stderr  # only under Actions


def test_reprs_and_errors_hide_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = resolve(root=tmp_path, environ={"CEKURA_API_KEY": KEY, "GITHUB_TOKEN": TOKEN})
    console = Console(secrets=settings.secrets)

    def echo_401(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": f"bad key {request.headers['X-CEKURA-API-KEY']}"})

    with (
        CekuraClient(
            "https://api.cekura.ai", KEY, transport=httpx.MockTransport(echo_401), max_attempts=1
        ) as client,
        GitHubClient("https://api.github.com", TOKEN, "acme/metrics") as gh,
    ):
        with pytest.raises(CekuraAPIError) as raised:
            client.list_metrics()
        texts = [repr(settings), str(settings), repr(console), repr(client), repr(gh), str(raised.value)]
    texts.append(repr(raised.value))
    for text in texts:
        assert KEY not in text and TOKEN not in text, text
    assert console.redact(f"x {KEY} y {TOKEN}") == "x *** y ***"


def test_tls_verification_is_never_disabled() -> None:
    pattern = re.compile(
        r"verify\s*=\s*False|CERT_NONE|_create_unverified_context|check_hostname\s*=\s*False"
    )
    hits = [str(p) for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text())]
    assert hits == []

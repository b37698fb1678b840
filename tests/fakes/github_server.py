"""A stateful fake GitHub REST server on a real loopback socket, validated against OpenAPI.

`FakeGitHub` speaks HTTP/1.1 on 127.0.0.1 (an ephemeral port) and implements the operations
cekura-gitops uses (reference/github-notes.md §1), plus the one GraphQL mutation
(`enablePullRequestAutoMerge`). It is built to catch client bugs, not to be forgiving:

- every request it receives and every response it sends is checked against
  `github-openapi-subset.json` with openapi-core; problems land in `validation_errors`,
  which the fixtures assert is empty at teardown;
- payloads are GitHub's official examples (patched for their known quirks) with the
  realistic fields filled in, so the client parses the same shapes as in production;
- it enforces `Authorization: Bearer`, a `User-Agent`, `Accept` and the API version header,
  answers the documented 422s (PR already exists, missing head branch, no commits), pages
  with `Link` headers whose URLs use `/repositories/<id>/…` as GitHub's do (so a client
  that rebuilds page URLs instead of following them is caught), ignores a `head` filter
  without an `owner:` prefix as GitHub does, and lists PRs in the issues API;
- with `origin_path` (a bare repository) branches, head shas, PR commits and merges are
  real git; without it, branches are assumed to exist and shas are synthetic;
- `faults` injects rate limits, 5xx, 422, slow answers and dropped connections, either
  before the operation runs or after it took effect (an ambiguous failure).

Responses to injected faults and to the authentication/header gate are not
response-validated: they model GitHub behaviour the description does not document (429,
github-notes §1 quirk 3).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from .github_app import FakeApp, FakeClock, TokenBook
from .github_gitdata import GitDataRoutes
from .openapi_adapter import (
    OARequest,
    OAResponse,
    load_spec,
    load_spec_dict,
    request_errors,
    response_errors,
)

API_VERSION = "2022-11-28"
DOCS = "https://docs.github.com/rest"
JSON_TYPE = "application/json; charset=utf-8"
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
GITHUB_IDENTITY = ("GitHub", "noreply@github.com")
_BOT_SUFFIX = "[bot]"
SECONDARY_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it (path without API prefix, `/repositories/<id>`
    rewritten to `/repos/<owner>/<repo>`) and the status it answered."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    raw_path: str = ""
    at: float = 0.0  # the fake's clock when it answered
    actor: str = ""  # who the credentials named ("" when refused)


@dataclass
class Fault:
    """An injected failure: see `FaultPlan.add`."""

    method: str
    path_regex: str
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    times: int = 1
    when: str = "before"
    drop: bool = False
    delay: float = 0.0
    idle_close: bool = False
    hits: int = 0

    def matches(self, method: str, path: str, reused: bool) -> bool:
        return (
            self.times > 0
            and (reused or not self.idle_close)
            and self.method in ("*", method.upper())
            and re.search(self.path_regex, path) is not None
        )


class FaultPlan:
    """Failures to inject, matched in order against (method, path without API prefix)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        method: str,
        path_regex: str,
        *,
        status: int = 500,
        headers: dict[str, str] | None = None,
        body: Any = None,
        times: int = 1,
        when: str = "before",
        drop: bool = False,
        delay: float = 0.0,
        idle_close: bool = False,
    ) -> Fault:
        """Answer the next `times` matching requests with `status` (or drop the connection).

        `when="before"`: the operation does not run. `when="after"`: it runs (state changes)
        and the client gets the fault instead of the real answer, the ambiguous case.
        `idle_close=True`: the server's idle timer closes a kept-alive connection as the
        request arrives on it: dropped before it runs, and only a request on a connection
        that already carried one can meet it (others pass; the fault stays armed).
        `body=None` picks GitHub's usual body for the status (a rate-limit message for 429,
        and for 403 when the headers say rate limit). `delay` sleeps before answering.
        """
        if when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        if idle_close and when != "before":
            raise ValueError("an idle close happens before the request is read: when='before'")
        fault = Fault(
            method=method.upper(),
            path_regex=path_regex,
            status=status,
            headers=dict(headers or {}),
            body=body,
            times=times,
            when=when,
            drop=drop or idle_close,
            delay=delay,
            idle_close=idle_close,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def rate_limit(
        self,
        method: str,
        path_regex: str,
        *,
        kind: str = "secondary",
        status: int = 403,
        retry_after: int | None = None,
        reset: int | None = None,
        times: int = 1,
    ) -> Fault:
        """A primary (remaining 0, reset) or secondary (message, maybe retry-after) limit."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        if kind == "primary":
            headers.update(
                {
                    "x-ratelimit-limit": "5000",
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-used": "5000",
                    "x-ratelimit-reset": str(reset if reset is not None else 0),
                    "x-ratelimit-resource": "core",
                }
            )
        elif kind != "secondary":
            raise ValueError("kind must be 'primary' or 'secondary'")
        body = {
            "message": "API rate limit exceeded for installation ID 1."
            if kind == "primary"
            else SECONDARY_LIMIT_MESSAGE,
            "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api",
        }
        return self.add(method, path_regex, status=status, headers=headers, body=body, times=times)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.times > 0]

    def take(self, method: str, path: str, *, reused: bool = True) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path, reused):
                    fault.times -= 1
                    fault.hits += 1
                    return fault
        return None


class _Reply(Exception):
    """Raised by a route to answer with an error status."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class _Commit:
    sha: str
    author_name: str
    author_email: str
    committer_name: str
    committer_email: str
    message: str
    author_date: str = ""
    committer_date: str = ""
    parents: tuple[str, ...] = ()


@dataclass
class _Pull:
    number: int
    title: str
    body: str
    head_ref: str
    base_ref: str
    user_login: str
    created_at: str
    updated_at: str
    state: str = "open"
    draft: bool = False
    merged: bool = False
    merged_at: str | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    closed_at: str | None = None
    labels: list[str] = field(default_factory=list)
    requested_reviewers: list[str] = field(default_factory=list)
    requested_teams: list[str] = field(default_factory=list)
    auto_merge: dict[str, Any] | None = None
    # Frozen when the PR closes (GitHub keeps showing the commits and head it had then).
    frozen_head_sha: str | None = None
    frozen_commits: list[_Commit] | None = None
    seeded_commits: list[_Commit] = field(default_factory=list)


@dataclass
class _Issue:
    number: int
    title: str
    body: str
    user_login: str
    created_at: str
    updated_at: str
    state: str = "open"
    state_reason: str | None = None
    closed_at: str | None = None
    labels: list[str] = field(default_factory=list)


@dataclass
class _Comment:
    id: int
    issue_number: int
    body: str
    user_login: str
    created_at: str
    updated_at: str


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets connections api.github.com would take: a
    # sync opens several at once, and while this process is busy (a loaded test machine)
    # they wait to be accepted. A reset write (a new pull request, on a connection of its
    # own) is ambiguous, so the double must not be flakier than GitHub here.
    request_queue_size = 512
    fake: FakeGitHub

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up is expected; anything else (a handler thread that could not
        # start, say) is the fake's own failure, and a test must hear of it.
        if not isinstance(sys.exc_info()[1], OSError):
            self.fake._crashed("connection")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like api.github.com
    # Headers and body go out in two writes; with Nagle on, the second waits for the
    # client's delayed ACK: 40 ms added to every reply, which api.github.com does not add.
    disable_nagle_algorithm = True
    timeout = 10  # idle keep-alive connections must not pin a thread forever
    server: _Server
    served = 0  # requests this connection has carried so far (keep-alive)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        # The stdlib reports here a request line that timed out, then closes silently.
        self.server.fake._unanswered(f"{self.client_address[1]}: {format % args}")

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError as err:  # reading the request line or headers failed: silent close
            self.close_connection = True
            self.server.fake._unanswered(f"{self.client_address[1]}: reading a request: {err!r}")

    def _serve(self) -> None:
        try:
            self.server.fake._handle(self)
            self.served += 1
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as err:
            self.close_connection = True  # the client went away (e.g. it timed out first)
            where = f"{self.client_address[1]}: {self.command} {self.path}"
            self.server.fake._unanswered(f"{where} (request {self.served + 1} here): {err!r}")
        except Exception:  # noqa: BLE001 - the fake's own bug: recorded, answered as a server would
            self.server.fake._crashed(f"{self.command} {self.path}")
            # Where reading the request stopped is unknown: this connection ends here, and
            # the answer says so, instead of a silent drop a client must call ambiguous.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.send_response(500)
                self.send_header("Connection", "close")
                self.send_header("Content-Length", "0")
                self.end_headers()

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fake_sha(*parts: object) -> str:
    return hashlib.sha1(":".join(str(p) for p in parts).encode()).hexdigest()


def _stable_id(text: str) -> int:
    return zlib.crc32(text.encode()) % 90_000_000 + 10_000_000


def _error(message: str, doc: str = "", **extra: Any) -> dict[str, Any]:
    return {"message": message, "documentation_url": f"{DOCS}{doc}", **extra}


def _validation_failed(doc: str, *errors: dict[str, Any]) -> dict[str, Any]:
    return _error("Validation Failed", doc, errors=list(errors), status="422")


def _not_found(doc: str = "") -> _Reply:
    return _Reply(404, _error("Not Found", doc, status="404"))


def _templates() -> dict[str, Any]:
    """Official examples, patched where they fail their own schemas (github-notes §1)."""
    examples = copy.deepcopy(load_spec_dict()["components"]["examples"])
    pull = examples["pull-request"]["value"]
    simple = examples["pull-request-simple-items"]["value"][0]
    for item in (pull, simple):
        for team in item["requested_teams"]:
            team["type"] = "organization"
    full_repo = examples["full-repository-default-response"]["value"]
    full_repo["language"] = None
    for key in ("source", "parent", "template_repository"):
        full_repo.pop(key, None)  # our repository is not a fork
    return {
        "pull": pull,
        "pull_simple": simple,
        "team": pull["requested_teams"][0],  # team-simple
        "team_simple_list": simple["requested_teams"][0],  # team (with parent)
        "user": pull["user"],
        "repository": pull["head"]["repo"],
        "full_repository": full_repo,
        "issue": examples["issue"]["value"],
        "comment": examples["issue-comment"]["value"],
        "label": examples["label-items"]["value"][0],
        "git_ref": examples["git-ref"]["value"],
        "commit": examples["commit-items"]["value"][0],
    }


class FakeGitHub(GitDataRoutes):
    """A fake github.com for one repository; see the module docstring.

    With `app` (a `FakeApp`), the App endpoints answer JWTs signed with its key, and the
    installation tokens they mint are accepted until they expire on `clock` (a `FakeClock`
    the test moves); the static `token` keeps working as the Actions token.

    Inspect state through the read-only properties (`pulls`, `issues`, `comments`,
    `labels_added`, `reviewers_requested`, `auto_merge_enabled`, `requests`); change it like
    a human on the web UI would with `add_pull`, `close_pull`, `set_branch`, `set_commits`.
    """

    def __init__(
        self,
        owner: str = "acme",
        repo: str = "metrics",
        default_branch: str = "main",
        origin_path: str | None = None,
        token: str = "ghs_test",
        *,
        actor_login: str = "github-actions[bot]",
        path_prefix: str = "",
        allow_auto_merge: bool = True,
        can_push: bool = True,
        app: FakeApp | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.can_push = can_push
        self.app = app
        self.clock: Callable[[], float] = clock or FakeClock()
        self.tokens = TokenBook()
        self.signed_commits_required = False
        self._verification: dict[str, dict[str, Any]] = {}
        self._local = threading.local()
        self.owner = owner
        self.repo = repo
        self.full_name = f"{owner}/{repo}"
        self.default_branch = default_branch
        self.origin_path = origin_path
        self.token = token
        self.actor_login = actor_login
        self.path_prefix = path_prefix.rstrip("/")
        self.allow_auto_merge = allow_auto_merge
        self.repo_id = _stable_id(self.full_name)
        self.faults = FaultPlan()
        self.validation_errors: list[str] = []
        # Connections closed with a request unanswered for a reason of the socket's (the
        # client went away, a read timed out), not a fault's: printed when a test fails, so
        # that a "no response" a client reports can be told apart from one the fake caused.
        self.unanswered: list[str] = []
        self._lock = threading.RLock()
        self._tick = 0
        self._next_number = 1
        self._next_comment_id = 1001
        self._pulls: dict[int, _Pull] = {}
        self._issues: dict[int, _Issue] = {}
        self._comments: dict[int, _Comment] = {}
        self._labels_added: list[dict[str, Any]] = []
        self._reviewers_requested: list[dict[str, Any]] = []
        self._auto_merge_enabled: list[str] = []
        self._auto_merge_disabled: list[str] = []
        self._requests: list[RecordedRequest] = []
        self._refs: dict[str, str] = {f"heads/{default_branch}": _fake_sha("branch", "main", 0)}
        self._rate_remaining = 5000
        self._tpl = _templates()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        load_spec()  # warm the per-process cache before the first request

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeGitHub is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The REST root to give the client (`GITHUB_API_URL`)."""
        return f"http://127.0.0.1:{self.port}{self.path_prefix}"

    @property
    def graphql_url(self) -> str:
        # GHES serves GraphQL at /api/graphql next to REST at /api/v3.
        prefix = self.path_prefix
        if prefix.endswith("/api/v3"):
            prefix = prefix[: -len("/v3")]
        return f"http://127.0.0.1:{self.port}{prefix}/graphql"

    @property
    def _api(self) -> str:
        return self.url if self._server is not None else "https://api.github.com"

    # -- inspection ----------------------------------------------------------------------

    @property
    def pulls(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._render_pull(p) for p in sorted(self._pulls.values(), key=_number)]

    @property
    def issues(self) -> list[dict[str, Any]]:
        """Issues proper (pull requests excluded)."""
        with self._lock:
            return [self._render_issue(i) for i in sorted(self._issues.values(), key=_number)]

    @property
    def comments(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._render_comment(c) for c in self._comments.values()]

    def comments_on(self, issue_number: int) -> list[dict[str, Any]]:
        with self._lock:
            return [
                self._render_comment(c) for c in self._comments.values() if c.issue_number == issue_number
            ]

    def add_comment(self, issue_number: int, body: str, user_login: str = "octocat") -> dict[str, Any]:
        """Seed a comment written by someone else (e.g. a human on the web UI)."""
        with self._lock:
            return self._render_comment(self._new_comment(issue_number, body, user_login))

    def _new_comment(self, issue_number: int, body: str, user_login: str) -> _Comment:
        """Store a new comment (caller holds the lock)."""
        now = self._now()
        comment = _Comment(
            id=self._next_comment_id,
            issue_number=issue_number,
            body=body,
            user_login=user_login,
            created_at=now,
            updated_at=now,
        )
        self._next_comment_id += 1
        self._comments[comment.id] = comment
        return comment

    @property
    def labels_added(self) -> list[dict[str, Any]]:
        """`{"issue_number": n, "labels": [names]}` per add-labels call."""
        with self._lock:
            return copy.deepcopy(self._labels_added)

    @property
    def reviewers_requested(self) -> list[dict[str, Any]]:
        """`{"number": n, "reviewers": [...], "team_reviewers": [...]}` per call."""
        with self._lock:
            return copy.deepcopy(self._reviewers_requested)

    @property
    def auto_merge_enabled(self) -> list[str]:
        """Node ids of the PRs auto-merge was enabled on, in call order."""
        with self._lock:
            return list(self._auto_merge_enabled)

    @property
    def auto_merge_disabled(self) -> list[str]:
        """Node ids of pull requests whose auto-merge was turned off (GraphQL)."""
        with self._lock:
            return list(self._auto_merge_disabled)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, method: str, path_regex: str) -> int:
        """Requests with `method` ("*" for any) whose path matches `path_regex` (search)."""
        return sum(
            1 for r in self.requests if method.upper() in ("*", r.method) and re.search(path_regex, r.path)
        )

    # -- seeding and web-UI actions ------------------------------------------------------

    def add_pull(
        self,
        *,
        head: str,
        base: str | None = None,
        title: str = "A pull request",
        body: str = "",
        state: str = "open",
        user_login: str = "octocat",
        draft: bool = False,
        labels: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """Seed a PR (as if someone opened it earlier); returns its full rendering."""
        with self._lock:
            now = self._now()
            pull = _Pull(
                number=self._take_number(),
                title=title,
                body=body,
                head_ref=head,
                base_ref=base or self.default_branch,
                user_login=user_login,
                created_at=now,
                updated_at=now,
                draft=draft,
                labels=list(labels),
            )
            self._pulls[pull.number] = pull
            if state == "closed":
                self._close(pull)
            return self._render_pull(pull)

    def close_pull(self, number: int, merged: bool = False) -> dict[str, Any]:
        """A human closes (or merges, squash) the PR on the web UI."""
        with self._lock:
            pull = self._pulls[number]
            if merged:
                try:
                    self._merge(pull, "squash", merged_by="octocat")
                except _Reply as reply:
                    raise RuntimeError(f"cannot merge #{number}: {reply.body}") from None
            else:
                self._close(pull)
            return self._render_pull(pull)

    def set_branch(self, branch: str, sha: str | None = None) -> str:
        """Without an origin: create or move a branch (a push); returns its sha."""
        if self.origin_path is not None:
            raise RuntimeError("with origin_path, push to the bare repository instead")
        with self._lock:
            sha = sha or _fake_sha("branch", branch, self._now())
            self._refs[f"heads/{branch}"] = sha
            return sha

    def set_commits(self, number: int, commits: list[dict[str, str]]) -> None:
        """Without an origin: the commits `list-commits` returns for PR `number`.

        Each dict has `sha`, `author_name`, `author_email`, `committer_email`, `message`
        and optionally `committer_name`.
        """
        with self._lock:
            self._pulls[number].seeded_commits = [
                _Commit(
                    sha=c["sha"],
                    author_name=c["author_name"],
                    author_email=c["author_email"],
                    committer_name=c.get("committer_name", c["author_name"]),
                    committer_email=c["committer_email"],
                    message=c["message"],
                )
                for c in commits
            ]

    # -- the HTTP pipeline ----------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        raw_path = unquote(split.path)
        query_string = split.query
        length = int(h.headers.get("Content-Length") or 0)
        raw_body = h.rfile.read(length) if length else b""
        headers = list(h.headers.items())
        method = h.command.upper()
        body = _parse_body(raw_body)
        query = dict(parse_qsl(query_string, keep_blank_values=True))

        path = self._normalise(raw_path)
        status, out_headers, payload, drop = self._respond(
            h, method, path, query_string, query, headers, raw_body, body
        )
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    method, path or raw_path, query, body, status, raw_path, self.clock(), self._acting()
                )
            )
        if drop:
            h.close_connection = True
            return
        self._send(h, status, out_headers, payload)

    def _normalise(self, raw_path: str) -> str | None:
        """Path without the API prefix, `/repositories/<id>` → `/repos/<owner>/<repo>`."""
        if self.path_prefix:
            if raw_path == self.graphql_path_suffix():
                return "/graphql"
            if not raw_path.startswith(self.path_prefix + "/"):
                return None
            raw_path = raw_path[len(self.path_prefix) :]
        match = re.match(r"^/repositories/(\d+)(/.*)?$", raw_path)
        if match and int(match[1]) == self.repo_id:
            return f"/repos/{self.full_name}{match[2] or ''}"
        return raw_path

    def graphql_path_suffix(self) -> str:
        return urlsplit(self.graphql_url).path

    def _respond(
        self,
        h: _Handler,
        method: str,
        path: str | None,
        query_string: str,
        query: dict[str, str],
        headers: list[tuple[str, str]],
        raw_body: bytes,
        body: Any,
    ) -> tuple[int, dict[str, str], Any, bool]:
        if path is None:
            return 404, {}, _error("Not Found", status="404"), False
        self._local.actor = ""
        gate = self._gate(h, path)
        if gate is not None:
            return gate.status, gate.headers, gate.body, False
        graphql = path == "/graphql"
        oa_request = OARequest(method, path, query_string, headers, raw_body or None)
        if not graphql:
            with self._lock:
                self.validation_errors.extend(request_errors(oa_request))

        fault = self.faults.take(method, path, reused=h.served > 0)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.when == "before":
            return fault.status, fault.headers, self._fault_body(fault), fault.drop

        out_headers: dict[str, str]
        with self._lock:
            try:
                if graphql:
                    status, out_headers, payload = 200, {}, self._graphql(body)
                else:
                    status, out_headers, payload = self._dispatch(method, path, query, body)
            except _Reply as reply:
                status, out_headers, payload = reply.status, reply.headers, reply.body
            except Exception as exc:  # a bug in the fake: fail the test loudly
                self.validation_errors.append(f"fake crashed on {method} {path}: {exc!r}")
                status, out_headers, payload = 500, {}, _error("fake crashed")
        if not graphql:
            self._validate_response(oa_request, status, out_headers, payload)
        if fault is not None:  # when == "after": it took effect, but the client sees this
            return fault.status, fault.headers, self._fault_body(fault), fault.drop
        return status, out_headers, payload, False

    def _gate(self, h: _Handler, path: str) -> _Reply | None:
        """GitHub's checks before any routing: credentials, User-Agent, media type, version."""
        refused = self._authenticate(h.headers.get("Authorization") or "", path)
        if refused is not None:
            return refused
        if not h.headers.get("User-Agent"):
            # GitHub: "Requests with no User-Agent header will be rejected."
            return _Reply(
                403,
                _error(
                    "Request forbidden by administrative rules. "
                    "Please make sure your request has a User-Agent header",
                    status="403",
                ),
            )
        if "application/vnd.github+json" not in (h.headers.get("Accept") or ""):
            return _Reply(
                415,
                _error("Unsupported 'Accept' header: expected application/vnd.github+json"),
            )
        version = h.headers.get("X-GitHub-Api-Version")
        if version != API_VERSION:
            return _Reply(400, _error(f"API version {version!r} is not supported by this fake."))
        return None

    def _authenticate(self, authorization: str, path: str) -> _Reply | None:
        """Who is asking: the App (a JWT, on the App endpoints only), one of its installation
        tokens (until it expires), or the static token (the Actions token)."""
        scheme, _, credential = authorization.partition(" ")
        if scheme != "Bearer" or not credential:
            return _Reply(401, _error("Requires authentication", status="401"))
        app_endpoint = path.startswith("/app/") or path == f"/repos/{self.full_name}/installation"
        if app_endpoint:
            if self.app is None or credential.count(".") != 2:
                return _Reply(401, _error("A JSON web token could not be decoded", status="401"))
            problem = self.app.check_jwt(credential, self.clock())
            if problem is not None:
                return _Reply(401, _error(problem, status="401"))
            self._local.actor = f"app:{self.app.slug}"
            return None
        if credential == self.token:
            self._local.actor = self.actor_login
            return None
        if self.app is not None and self.tokens.valid(credential, self.clock()):
            self._local.actor = self.app.login
            return None
        return _Reply(401, _error("Bad credentials", status="401"))

    def _acting(self) -> str:
        """The login the current request acts as (set by the gate, per handler thread)."""
        return str(getattr(self._local, "actor", "") or "")

    def _unanswered(self, what: str) -> None:
        with self._lock:
            self.unanswered.append(f"{time.strftime('%H:%M:%S')} {what}")

    def _crashed(self, where: str) -> None:
        """Record the exception being handled (the fake's own failure) where tests look."""
        summary = traceback.format_exc(limit=-4).strip()
        with self._lock:
            self.validation_errors.append(f"fake crashed serving {where}: {summary}")

    def _fail(self, status: int, message: str, doc: str) -> _Reply:
        return _Reply(status, _error(message, doc, status=str(status)))

    def _fault_body(self, fault: Fault) -> Any:
        if fault.body is not None:
            return fault.body
        rate_headers = {k.lower() for k in fault.headers}
        if fault.status == 429 or (
            fault.status == 403
            and ("retry-after" in rate_headers or fault.headers.get("x-ratelimit-remaining") == "0")
        ):
            return _error(
                SECONDARY_LIMIT_MESSAGE,
                "/overview/rate-limits-for-the-rest-api",
            )
        if fault.status == 403:
            return _error("Resource not accessible by integration", status="403")
        if fault.status == 422:
            return _validation_failed("")
        return _error(HTTPStatus(fault.status).phrase, status=str(fault.status))

    def _validate_response(
        self, oa_request: OARequest, status: int, headers: dict[str, str], payload: Any
    ) -> None:
        data = None if payload is None else json.dumps(payload).encode()
        header_list = [("Content-Type", JSON_TYPE), *headers.items()] if data else []
        problems = response_errors(oa_request, OAResponse(status, header_list, data))
        if status == 422 and oa_request.method == "post" and oa_request.path.endswith("/git/blobs"):
            # create-blob's 422 is oneOf two schemas every body matches (github-notes §7 quirk 1).
            problems = []
        if status == 404:
            # GitHub answers 404 for a missing resource on every endpoint, including those
            # whose description omits it (e.g. request-reviewers).
            problems = [p for p in problems if "ResponseNotFound" not in p]
        with self._lock:
            self.validation_errors.extend(problems)

    def _send(self, h: _Handler, status: int, headers: dict[str, str], payload: Any) -> None:
        data = b"" if payload is None or status == 204 else json.dumps(payload).encode()
        h.send_response(status)
        with self._lock:
            self._rate_remaining = max(0, self._rate_remaining - 1)
            remaining = self._rate_remaining
        defaults = {
            "x-github-api-version-selected": API_VERSION,
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-used": str(5000 - remaining),
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": "core",
        }
        lowered = {k.lower() for k in headers}
        for key, value in defaults.items():
            if key not in lowered:
                h.send_header(key, value)
        for key, value in headers.items():
            h.send_header(key, value)
        if data:
            h.send_header("Content-Type", JSON_TYPE)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if data:
            h.wfile.write(data)

    # -- routing ------------------------------------------------------------------------

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        app_token = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        if app_token and method == "POST":
            result: tuple[int, dict[str, str], Any] = self._r_create_installation_token(
                query, body, app_token[1]
            )
            return result
        prefix = f"/repos/{self.full_name}"
        if path != prefix and not path.startswith(prefix + "/"):
            raise _not_found()
        tail = path[len(prefix) :]
        for route_method, pattern, name in _ROUTES:
            match = re.fullmatch(pattern, tail)
            if match and route_method == method:
                handler = getattr(self, name)
                routed: tuple[int, dict[str, str], Any] = handler(query, body, *match.groups())
                return routed
        raise _not_found()

    # -- repository ---------------------------------------------------------------------

    def _r_get_repo(self, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        return 200, {}, self._render_full_repo()

    # -- pulls ----------------------------------------------------------------------------

    def _r_list_pulls(self, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        state = query.get("state", "open")
        pulls = list(self._pulls.values())
        if state != "all":
            pulls = [p for p in pulls if p.state == state]
        head = query.get("head")
        # GitHub silently ignores a head filter that lacks the "owner:" prefix.
        if head and ":" in head:
            owner, _, branch = head.partition(":")
            pulls = [p for p in pulls if owner == self.owner and p.head_ref == branch]
        if query.get("base"):
            pulls = [p for p in pulls if p.base_ref == query["base"]]
        sort = query.get("sort", "created")
        key = (lambda p: p.updated_at) if sort == "updated" else _number
        default_direction = "desc" if sort == "created" else "asc"
        pulls.sort(key=key, reverse=query.get("direction", default_direction) == "desc")
        page, link = self._paginate(pulls, query, "/pulls")
        return 200, link, [self._render_pull(p, simple=True) for p in page]

    def _r_create_pull(self, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        doc = "/pulls/pulls#create-a-pull-request"
        if not isinstance(body, dict):
            raise _Reply(400, _error("Problems parsing JSON", doc))
        head, base = str(body.get("head", "")), str(body.get("base", ""))
        owner, sep, branch = head.rpartition(":")
        if not sep:
            owner, branch = self.owner, head
        if not body.get("title") and "issue" not in body:
            raise _Reply(
                422,
                _validation_failed(
                    doc, {"resource": "PullRequest", "field": "title", "code": "missing_field"}
                ),
            )
        if owner != self.owner or self._branch_sha(branch) is None:
            raise _Reply(
                422,
                _validation_failed(doc, {"resource": "PullRequest", "field": "head", "code": "invalid"}),
            )
        if self._branch_sha(base) is None:
            raise _Reply(
                422,
                _validation_failed(doc, {"resource": "PullRequest", "field": "base", "code": "invalid"}),
            )
        if self._open_pull(branch, base) is not None:
            raise _Reply(422, self._already_exists_body(branch))
        if self.origin_path is not None and not self._git_commits(base, branch):
            raise _Reply(
                422,
                _validation_failed(
                    doc,
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"No commits between {base} and {branch}",
                    },
                ),
            )
        now = self._now()
        pull = _Pull(
            number=self._take_number(),
            title=str(body.get("title", "")),
            body=str(body.get("body") or ""),
            head_ref=branch,
            base_ref=base,
            user_login=self._acting() or self.actor_login,
            created_at=now,
            updated_at=now,
            draft=bool(body.get("draft", False)),
        )
        self._pulls[pull.number] = pull
        rendered = self._render_pull(pull)
        return 201, {"Location": rendered["url"]}, rendered

    def _already_exists_body(self, branch: str) -> dict[str, Any]:
        # The exact body GitHub sends (github-notes §6): code "custom", message prefix.
        return {
            "message": "Validation Failed",
            "errors": [
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"A pull request already exists for {self.owner}:{branch}.",
                }
            ],
            "documentation_url": f"{DOCS}/pulls/pulls#create-a-pull-request",
            "status": "422",
        }

    def _r_get_pull(self, query: dict[str, str], body: Any, number: str) -> tuple[int, dict[str, str], Any]:
        return 200, {}, self._render_pull(self._pull(number))

    def _r_update_pull(
        self, query: dict[str, str], body: Any, number: str
    ) -> tuple[int, dict[str, str], Any]:
        pull = self._pull(number)
        body = body if isinstance(body, dict) else {}
        doc = "/pulls/pulls#update-a-pull-request"
        if "title" in body:
            pull.title = str(body["title"])
        if "body" in body:
            pull.body = str(body["body"] or "")
        if body.get("base"):
            if self._branch_sha(body["base"]) is None:
                raise _Reply(
                    422,
                    _validation_failed(doc, {"resource": "PullRequest", "field": "base", "code": "invalid"}),
                )
            pull.base_ref = str(body["base"])
        state = body.get("state")
        if state == "closed" and pull.state == "open":
            self._close(pull)
        elif state == "open" and pull.state == "closed":
            if pull.merged:
                raise _Reply(
                    422,
                    _validation_failed(
                        doc,
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": "Cannot reopen a merged pull request",
                        },
                    ),
                )
            if self._open_pull(pull.head_ref, pull.base_ref) is not None:
                raise _Reply(422, self._already_exists_body(pull.head_ref))
            pull.state, pull.closed_at = "open", None
            pull.frozen_head_sha = pull.frozen_commits = None
        pull.updated_at = self._now()
        return 200, {}, self._render_pull(pull)

    def _r_list_commits(
        self, query: dict[str, str], body: Any, number: str
    ) -> tuple[int, dict[str, str], Any]:
        pull = self._pull(number)
        page, link = self._paginate(self._pull_commits(pull), query, f"/pulls/{pull.number}/commits")
        return 200, link, [self._render_commit(c) for c in page]

    def _r_merge(self, query: dict[str, str], body: Any, number: str) -> tuple[int, dict[str, str], Any]:
        pull = self._pull(number)
        body = body if isinstance(body, dict) else {}
        if pull.state != "open":
            raise _Reply(405, _error("Pull Request is not mergeable", "/pulls/pulls#merge"))
        if body.get("sha") and body["sha"] != self._head_sha(pull):
            raise _Reply(
                409,
                _error(
                    "Head branch was modified. Review and try the merge again.",
                    "/pulls/pulls#merge",
                ),
            )
        method = str(body.get("merge_method", "merge"))
        sha = self._merge(pull, method, merged_by=self._acting() or self.actor_login)
        return 200, {}, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}

    def _r_check_merged(
        self, query: dict[str, str], body: Any, number: str
    ) -> tuple[int, dict[str, str], Any]:
        if not self._pull(number).merged:
            raise _not_found("/pulls/pulls#check-if-a-pull-request-has-been-merged")
        return 204, {}, None

    def _r_request_reviewers(
        self, query: dict[str, str], body: Any, number: str
    ) -> tuple[int, dict[str, str], Any]:
        pull = self._pull(number)
        body = body if isinstance(body, dict) else {}
        reviewers = [str(r) for r in body.get("reviewers") or []]
        teams = [str(t) for t in body.get("team_reviewers") or []]
        if pull.user_login in reviewers:
            raise _Reply(
                422,
                _validation_failed(
                    "/pulls/review-requests",
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": "Review cannot be requested from pull request author.",
                    },
                ),
            )
        self._reviewers_requested.append(
            {"number": pull.number, "reviewers": reviewers, "team_reviewers": teams}
        )
        pull.requested_reviewers += [r for r in reviewers if r not in pull.requested_reviewers]
        pull.requested_teams += [t for t in teams if t not in pull.requested_teams]
        return 201, {}, self._render_pull(pull, simple=True)

    # -- issues, comments, labels --------------------------------------------------------

    def _r_list_issues(self, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        # GitHub's issues API lists pull requests too (with a "pull_request" key).
        items: list[_Issue | _Pull] = [*self._issues.values(), *self._pulls.values()]
        state = query.get("state", "open")
        if state != "all":
            items = [i for i in items if i.state == state]
        wanted = [w.strip().lower() for w in query.get("labels", "").split(",") if w.strip()]
        if wanted:
            items = [i for i in items if all(w in {x.lower() for x in i.labels} for w in wanted)]
        items.sort(key=_number, reverse=query.get("direction", "desc") == "desc")
        page, link = self._paginate(items, query, "/issues")
        return 200, link, [self._render_issue(i) for i in page]

    def _r_create_issue(self, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        body = body if isinstance(body, dict) else {}
        if not body.get("title"):
            raise _Reply(
                422,
                _validation_failed(
                    "/issues/issues#create-an-issue",
                    {"resource": "Issue", "field": "title", "code": "missing_field"},
                ),
            )
        now = self._now()
        issue = _Issue(
            number=self._take_number(),
            title=str(body["title"]),
            body=str(body.get("body") or ""),
            user_login=self._acting() or self.actor_login,
            created_at=now,
            updated_at=now,
            labels=_label_names(body.get("labels") or []),
        )
        self._issues[issue.number] = issue
        rendered = self._render_issue(issue)
        return 201, {"Location": rendered["url"]}, rendered

    def _r_get_issue(self, query: dict[str, str], body: Any, number: str) -> tuple[int, dict[str, str], Any]:
        return 200, {}, self._render_issue(self._issue_like(number))

    def _r_update_issue(
        self, query: dict[str, str], body: Any, number: str
    ) -> tuple[int, dict[str, str], Any]:
        item = self._issue_like(number)
        body = body if isinstance(body, dict) else {}
        if body.get("title") is not None:
            item.title = str(body["title"])
        if "body" in body:
            item.body = str(body["body"] or "")
        if body.get("labels") is not None:
            item.labels = _label_names(body["labels"])
        state = body.get("state")
        if isinstance(item, _Pull):
            if state == "closed" and item.state == "open":
                self._close(item)
        elif state in ("open", "closed") and state != item.state:
            item.state = state
            item.closed_at = self._now() if state == "closed" else None
            item.state_reason = body.get("state_reason") or ("completed" if state == "closed" else "reopened")
        item.updated_at = self._now()
        return 200, {}, self._render_issue(item)

    def _r_list_comments(
        self, query: dict[str, str], body: Any, number: str
    ) -> tuple[int, dict[str, str], Any]:
        item = self._issue_like(number)
        comments = [c for c in self._comments.values() if c.issue_number == item.number]
        page, link = self._paginate(comments, query, f"/issues/{item.number}/comments")
        return 200, link, [self._render_comment(c) for c in page]

    def _r_create_comment(
        self, query: dict[str, str], body: Any, number: str
    ) -> tuple[int, dict[str, str], Any]:
        item = self._issue_like(number)
        if not isinstance(body, dict) or not body.get("body"):
            raise _Reply(
                422,
                _validation_failed(
                    "/issues/comments#create-an-issue-comment",
                    {"resource": "IssueComment", "field": "body", "code": "missing_field"},
                ),
            )
        comment = self._new_comment(item.number, str(body["body"]), self._acting() or self.actor_login)
        rendered = self._render_comment(comment)
        return 201, {"Location": rendered["url"]}, rendered

    def _r_update_comment(
        self, query: dict[str, str], body: Any, comment_id: str
    ) -> tuple[int, dict[str, str], Any]:
        comment = self._comments.get(int(comment_id))
        if comment is None:
            raise _not_found("/issues/comments#update-an-issue-comment")
        if isinstance(body, dict) and "body" in body:
            comment.body = str(body["body"])
        comment.updated_at = self._now()
        return 200, {}, self._render_comment(comment)

    def _r_add_labels(self, query: dict[str, str], body: Any, number: str) -> tuple[int, dict[str, str], Any]:
        item = self._issue_like(number)
        # Both documented forms: {"labels": [...]} and a bare array (names or {"name": x}).
        raw = body.get("labels") if isinstance(body, dict) else body
        names = _label_names(raw if isinstance(raw, list) else [])
        self._labels_added.append({"issue_number": item.number, "labels": names})
        item.labels += [n for n in names if n not in item.labels]
        return 200, {}, [self._render_label(n) for n in item.labels]

    # -- git refs -------------------------------------------------------------------------

    def _r_get_ref(self, query: dict[str, str], body: Any, ref: str) -> tuple[int, dict[str, str], Any]:
        self._require_non_empty()
        sha = self._ref_sha(ref)
        if sha is None:
            raise _not_found("/git/refs#get-a-reference")
        return 200, {}, self._render_ref(ref, sha)

    def _r_create_ref(self, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        doc = "/git/refs#create-a-reference"
        body = body if isinstance(body, dict) else {}
        full, sha = str(body.get("ref", "")), str(body.get("sha", ""))
        if not full.startswith("refs/") or full.count("/") < 2:
            raise _Reply(
                422,
                _error("Reference name must start with 'refs' and have at least two slashes.", doc),
            )
        ref = full[len("refs/") :]
        if self._ref_sha(ref) is not None:
            raise _Reply(422, _error("Reference already exists", doc))
        if self.origin_path is not None:
            if self._git_ok("cat-file", "-e", f"{sha}^{{commit}}") is False:
                raise _Reply(422, _error("Object does not exist", doc))
            self._check_ruleset(ref, sha)
            self._git("update-ref", full, sha, "")
        else:
            self._refs[ref] = sha
        rendered = self._render_ref(ref, sha)
        return 201, {"Location": rendered["url"]}, rendered

    def _r_update_ref(self, query: dict[str, str], body: Any, ref: str) -> tuple[int, dict[str, str], Any]:
        doc = "/git/refs#update-a-reference"
        body = body if isinstance(body, dict) else {}
        old, sha = self._ref_sha(ref), str(body.get("sha", ""))
        if old is None:
            raise _Reply(422, _error("Reference does not exist", doc))
        if self.origin_path is not None:
            if self._git_ok("cat-file", "-e", f"{sha}^{{commit}}") is False:
                raise _Reply(422, _error("Object does not exist", doc))
            fast_forward = self._git_ok("merge-base", "--is-ancestor", old, sha)
            if not fast_forward and not body.get("force"):
                raise _Reply(422, _error("Update is not a fast forward", doc))
            self._check_ruleset(ref, sha)
            self._git("update-ref", f"refs/{ref}", sha, old)
        else:
            self._refs[ref] = sha
        return 200, {}, self._render_ref(ref, sha)

    def _r_delete_ref(self, query: dict[str, str], body: Any, ref: str) -> tuple[int, dict[str, str], Any]:
        old = self._ref_sha(ref)
        if old is None:
            raise _Reply(422, _error("Reference does not exist", "/git/refs#delete-a-reference"))
        if self.origin_path is not None:
            self._git("update-ref", "-d", f"refs/{ref}", old)
        else:
            del self._refs[ref]
        return 204, {}, None

    # -- GraphQL --------------------------------------------------------------------------

    def _graphql(self, body: Any) -> dict[str, Any]:
        """`enablePullRequestAutoMerge` only; its shape is checked here (not in the subset)."""

        def problem(message: str) -> dict[str, Any]:
            self.validation_errors.append(f"graphql: {message}")
            return {"errors": [{"message": message}]}

        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return problem("body must be a JSON object with a string 'query'")
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            return problem("'variables' must be an object")
        query = body["query"]
        if not re.match(r"\s*mutation\b", query) or not re.search(
            r"(enable|disable)PullRequestAutoMerge", query
        ):
            return problem("only `mutation { enablePullRequestAutoMerge(...) }` is supported")
        if query.count("{") != query.count("}") or query.count("(") != query.count(")"):
            return problem("unbalanced braces or parentheses in the query")
        if "disablePullRequestAutoMerge" in query:
            return self._graphql_disable(query, variables, problem)
        call = re.search(r"enablePullRequestAutoMerge\s*\((.*?)\)\s*\{", query, re.S)
        if call is None:
            return problem("enablePullRequestAutoMerge takes an (input: {...}) argument")
        values: dict[str, Any] = {}
        for arg in ("pullRequestId", "mergeMethod"):
            match = re.search(rf"\b{arg}\s*:\s*(\$\w+|\"[^\"]*\"|[A-Z]+\b)", call[1])
            if match is None:
                if arg == "pullRequestId":
                    return problem("enablePullRequestAutoMerge input lacks pullRequestId")
                continue
            token = match[1]
            if token.startswith("$"):
                if token[1:] not in variables:
                    return problem(f"variable {token} is used but not provided")
                values[arg] = variables[token[1:]]
            else:
                values[arg] = token.strip('"')
        merge_method = values.get("mergeMethod", "MERGE")
        if merge_method not in ("MERGE", "SQUASH", "REBASE"):
            return problem(f"mergeMethod must be MERGE, SQUASH or REBASE, got {merge_method!r}")
        node_id = str(values["pullRequestId"])
        pull = next((p for p in self._pulls.values() if self._node_id(p) == node_id), None)
        path = ["enablePullRequestAutoMerge"]
        if pull is None:
            return {
                "data": {"enablePullRequestAutoMerge": None},
                "errors": [
                    {
                        "type": "NOT_FOUND",
                        "path": path,
                        "message": f"Could not resolve to a node with the global id of '{node_id}'",
                    }
                ],
            }
        if not self.allow_auto_merge or pull.state != "open":
            message = (
                "Pull request Auto merge is not allowed for this repository"
                if not self.allow_auto_merge
                else "Pull request Pull request is closed"
            )
            return {
                "data": {"enablePullRequestAutoMerge": None},
                "errors": [{"type": "UNPROCESSABLE", "path": path, "message": message}],
            }
        pull.auto_merge = {
            "enabled_by": self._user(self._acting() or self.actor_login),
            "merge_method": str(merge_method).lower(),
            "commit_title": f"{pull.title} (#{pull.number})",
            "commit_message": "",
        }
        self._auto_merge_enabled.append(node_id)
        return {
            "data": {
                "enablePullRequestAutoMerge": {
                    "pullRequest": {
                        "number": pull.number,
                        "autoMergeRequest": {"mergeMethod": merge_method, "enabledAt": self._now()},
                    }
                }
            }
        }

    def _graphql_disable(
        self, query: str, variables: dict[str, Any], problem: Callable[[str], dict[str, Any]]
    ) -> dict[str, Any]:
        """`disablePullRequestAutoMerge(input: {pullRequestId})`."""
        call = re.search(r"disablePullRequestAutoMerge\s*\((.*?)\)\s*\{", query, re.S)
        if call is None:
            return problem("disablePullRequestAutoMerge takes an (input: {...}) argument")
        match = re.search(r"\bpullRequestId\s*:\s*(\$\w+|\"[^\"]*\")", call[1])
        if match is None:
            return problem("disablePullRequestAutoMerge input lacks pullRequestId")
        token = match[1]
        if token.startswith("$") and token[1:] not in variables:
            return problem(f"variable {token} is used but not provided")
        node_id = str(variables[token[1:]] if token.startswith("$") else token.strip('"'))
        pull = next((p for p in self._pulls.values() if self._node_id(p) == node_id), None)
        path = ["disablePullRequestAutoMerge"]
        if pull is None:
            message = f"Could not resolve to a node with the global id of '{node_id}'"
            return {
                "data": {"disablePullRequestAutoMerge": None},
                "errors": [{"type": "NOT_FOUND", "path": path, "message": message}],
            }
        pull.auto_merge = None
        self._auto_merge_disabled.append(node_id)
        return {"data": {"disablePullRequestAutoMerge": {"pullRequest": {"number": pull.number}}}}

    # -- state helpers --------------------------------------------------------------------

    def _now(self) -> str:
        # A logical clock: deterministic, strictly increasing timestamps.
        self._tick += 1
        return _iso(EPOCH + dt.timedelta(minutes=self._tick))

    def _take_number(self) -> int:
        # Issues and PRs share one sequence, as on GitHub.
        number = self._next_number
        self._next_number += 1
        return number

    def _pull(self, number: str | int) -> _Pull:
        pull = self._pulls.get(int(number))
        if pull is None:
            raise _not_found("/pulls/pulls")
        return pull

    def _issue_like(self, number: str | int) -> _Issue | _Pull:
        item = self._issues.get(int(number)) or self._pulls.get(int(number))
        if item is None:
            raise _not_found("/issues/issues")
        return item

    def _open_pull(self, head: str, base: str) -> _Pull | None:
        return next(
            (
                p
                for p in self._pulls.values()
                if p.state == "open" and p.head_ref == head and p.base_ref == base
            ),
            None,
        )

    def _close(self, pull: _Pull) -> None:
        pull.frozen_head_sha = self._head_sha(pull)
        pull.frozen_commits = self._pull_commits(pull)
        pull.state = "closed"
        pull.closed_at = pull.updated_at = self._now()
        pull.auto_merge = None

    def _merge(self, pull: _Pull, method: str, *, merged_by: str) -> str:
        if self.origin_path is not None:
            sha = self._git_merge(pull, method)
        else:
            sha = _fake_sha("merge", pull.number, method, self._tick)
            self._refs[f"heads/{pull.base_ref}"] = sha
        self._close(pull)
        pull.merged = True
        pull.merged_at = pull.closed_at
        pull.merged_by = merged_by
        pull.merge_commit_sha = sha
        return sha

    def _head_sha(self, pull: _Pull) -> str:
        if pull.frozen_head_sha is not None:
            return pull.frozen_head_sha
        return self._branch_sha(pull.head_ref) or _fake_sha("gone", pull.head_ref)

    def _pull_commits(self, pull: _Pull) -> list[_Commit]:
        if pull.frozen_commits is not None:
            return list(pull.frozen_commits)
        if self.origin_path is None:
            return list(pull.seeded_commits)
        if self._branch_sha(pull.head_ref) is None:
            return []
        return self._git_commits(pull.base_ref, pull.head_ref)

    def _branch_sha(self, branch: str) -> str | None:
        if self.origin_path is None:
            # Without an origin every branch a PR names is assumed to exist (and then does:
            # git/get-ref finds it too).
            return self._refs.setdefault(f"heads/{branch}", _fake_sha("branch", branch, 0))
        return self._ref_sha(f"heads/{branch}")

    def _ref_sha(self, ref: str) -> str | None:
        if self.origin_path is None:
            return self._refs.get(ref)
        out: str = self._git_ok("rev-parse", "--verify", "--quiet", f"refs/{ref}^{{commit}}", out=True)
        return out or None

    def _require_non_empty(self) -> None:
        if self.origin_path is not None and not self._git("for-each-ref", "--count=1").strip():
            raise _Reply(409, _error("Git Repository is empty.", "/git/refs#get-a-reference"))

    # -- real git (origin mode) -------------------------------------------------------------

    def _git(self, *args: str, env: dict[str, str] | None = None) -> str:
        assert self.origin_path is not None
        result = subprocess.run(
            ["git", "-C", self.origin_path, *args],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        return result.stdout

    def _git_ok(self, *args: str, out: bool = False) -> Any:
        """Run git; return whether it succeeded (or its stripped stdout, or "")."""
        assert self.origin_path is not None
        result = subprocess.run(
            ["git", "-C", self.origin_path, *args], capture_output=True, text=True, check=False
        )
        if out:
            return result.stdout.strip() if result.returncode == 0 else ""
        return result.returncode == 0

    def _git_commits(self, base: str, head: str) -> list[_Commit]:
        fmt = "%H%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%P%x00%B%x1e"
        text = self._git("log", "--reverse", f"--format={fmt}", f"refs/heads/{base}..refs/heads/{head}", "--")
        commits = []
        for record in text.split("\x1e"):
            record = record.lstrip("\n")
            if not record:
                continue
            sha, an, ae, ad, cn, ce, cd, parents, message = record.split("\x00", 8)
            commits.append(_Commit(sha, an, ae, cn, ce, message.rstrip("\n"), ad, cd, tuple(parents.split())))
        return commits

    def _git_merge(self, pull: _Pull, method: str) -> str:
        """Merge for real in the bare origin: a 3-way `merge-tree`, then `commit-tree`."""
        base_sha = self._branch_sha(pull.base_ref)
        head_sha = self._branch_sha(pull.head_ref)
        if base_sha is None or head_sha is None:
            raise _Reply(405, _error("Pull Request is not mergeable", "/pulls/pulls#merge"))
        commits = self._git_commits(pull.base_ref, pull.head_ref)
        if method == "rebase":
            # Kept simple: only a fast-forward rebase (GitHub would replay the commits).
            if not self._git_ok("merge-base", "--is-ancestor", base_sha, head_sha):
                raise _Reply(405, _error("This branch can't be rebased", "/pulls/pulls#merge"))
            new = head_sha
        else:
            result = subprocess.run(
                [
                    "git",
                    "-C",
                    str(self.origin_path),
                    "merge-tree",
                    "--write-tree",
                    base_sha,
                    head_sha,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:  # 1 = conflicts
                raise _Reply(405, _error("Pull Request is not mergeable", "/pulls/pulls#merge"))
            tree = result.stdout.split("\n", 1)[0].strip()
            first = commits[0] if commits else None
            author = (first.author_name, first.author_email) if first else GITHUB_IDENTITY
            env = {
                **os.environ,
                "GIT_AUTHOR_NAME": author[0],
                "GIT_AUTHOR_EMAIL": author[1],
                "GIT_COMMITTER_NAME": GITHUB_IDENTITY[0],
                "GIT_COMMITTER_EMAIL": GITHUB_IDENTITY[1],
            }
            if method == "squash":
                lines = "\n\n".join(f"* {c.message.strip()}" for c in commits)
                message = f"{pull.title} (#{pull.number})\n\n{lines}\n"
                parents = ["-p", base_sha]
            else:
                source = f"{self.owner}/{pull.head_ref}"
                message = f"Merge pull request #{pull.number} from {source}\n\n{pull.title}\n"
                parents = ["-p", base_sha, "-p", head_sha]
            new = self._git("commit-tree", tree, *parents, "-m", message, env=env).strip()
        # Compare-and-swap: fails if someone pushed to base meanwhile.
        self._git("update-ref", f"refs/heads/{pull.base_ref}", new, base_sha)
        return new

    # -- pagination -------------------------------------------------------------------------

    def _paginate(
        self, items: list[Any], query: dict[str, str], tail: str
    ) -> tuple[list[Any], dict[str, str]]:
        per_page = min(max(_int(query.get("per_page"), 30), 1), 100)
        page = max(_int(query.get("page"), 1), 1)
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]

        def link(n: int) -> str:
            params = {**query, "page": str(n)}
            # GitHub's links name the repository by id, not owner/name.
            return f"{self.url}/repositories/{self.repo_id}{tail}?{urlencode(params)}"

        rels = []
        if page > 1:
            rels += [f'<{link(page - 1)}>; rel="prev"', f'<{link(1)}>; rel="first"']
        if page < last:
            rels += [f'<{link(page + 1)}>; rel="next"', f'<{link(last)}>; rel="last"']
        return chunk, ({"Link": ", ".join(rels)} if rels else {})

    # -- rendering -----------------------------------------------------------------------

    def _node_id(self, item: _Pull | _Issue) -> str:
        prefix = "PR" if isinstance(item, _Pull) else "I"
        return f"{prefix}_kwDOFAKE{self.repo_id:x}{item.number:05d}"

    def _swap(self, value: Any) -> Any:
        """Re-point an example's URLs and names at this repository and server."""
        text = json.dumps(value)
        text = text.replace("https://api.github.com", self._api)
        text = text.replace("octocat/Hello-World", self.full_name)
        return json.loads(text)

    def _user(self, login: str) -> dict[str, Any]:
        user: dict[str, Any] = {}
        for key, value in self._tpl["user"].items():
            if isinstance(value, str):
                value = value.replace("https://api.github.com", self._api).replace("octocat", quote(login))
            user[key] = value
        user_id = _stable_id(login)
        user.update(
            login=login,
            id=user_id,
            node_id=f"U_kgDOFAKE{user_id:x}",
            avatar_url=f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
            type="Bot" if login.endswith(_BOT_SUFFIX) else "User",
            site_admin=False,
        )
        return user

    def _render_repository(self) -> dict[str, Any]:
        repo: dict[str, Any] = self._swap(self._tpl["repository"])
        repo.update(
            id=self.repo_id,
            node_id=f"R_kgDOFAKE{self.repo_id:x}",
            name=self.repo,
            full_name=self.full_name,
            owner=self._user(self.owner),
            private=True,
            html_url=f"https://github.com/{self.full_name}",
            description="Cekura metric prompts, managed by cekura-gitops",
            fork=False,
            default_branch=self.default_branch,
        )
        return repo

    def _render_full_repo(self) -> dict[str, Any]:
        repo: dict[str, Any] = self._swap(self._tpl["full_repository"])
        base = self._render_repository()
        for key in (
            "id",
            "node_id",
            "name",
            "full_name",
            "owner",
            "private",
            "html_url",
            "description",
            "fork",
            "default_branch",
        ):
            repo[key] = base[key]
        repo.update(
            language=None,
            open_issues_count=sum(i.state == "open" for i in self._issues.values()),
            allow_auto_merge=self.allow_auto_merge,
        )
        # What GitHub reports for the token's own access to the repository.
        repo["permissions"] = {
            "admin": False,
            "maintain": False,
            "push": self.can_push,
            "triage": True,
            "pull": True,
        }
        return repo

    def _render_branch(self, ref: str, sha: str) -> dict[str, Any]:
        return {
            "label": f"{self.owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self._user(self.owner),
            "repo": self._render_repository(),
        }

    def _render_pull(self, pull: _Pull, *, simple: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = self._swap(self._tpl["pull_simple" if simple else "pull"])
        n = pull.number
        api = f"{self._api}/repos/{self.full_name}"
        html = f"https://github.com/{self.full_name}/pull/{n}"
        head_sha = self._head_sha(pull)
        base_sha = self._branch_sha(pull.base_ref) or _fake_sha("gone", pull.base_ref)
        team = self._tpl["team_simple_list" if simple else "team"]
        links = {
            "self": f"{api}/pulls/{n}",
            "html": html,
            "issue": f"{api}/issues/{n}",
            "comments": f"{api}/issues/{n}/comments",
            "review_comments": f"{api}/pulls/{n}/comments",
            "review_comment": f"{api}/pulls/comments{{/number}}",
            "commits": f"{api}/pulls/{n}/commits",
            "statuses": f"{api}/statuses/{head_sha}",
        }
        d.update(
            url=f"{api}/pulls/{n}",
            id=self.repo_id * 10 + n,
            node_id=self._node_id(pull),
            html_url=html,
            diff_url=f"{html}.diff",
            patch_url=f"{html}.patch",
            issue_url=links["issue"],
            commits_url=links["commits"],
            review_comments_url=links["review_comments"],
            review_comment_url=links["review_comment"],
            comments_url=links["comments"],
            statuses_url=links["statuses"],
            number=n,
            state=pull.state,
            locked=False,
            title=pull.title,
            user=self._user(pull.user_login),
            body=pull.body or None,  # GitHub sends null for an empty body
            labels=[self._render_label(name) for name in pull.labels],
            milestone=None,
            active_lock_reason=None,
            created_at=pull.created_at,
            updated_at=pull.updated_at,
            closed_at=pull.closed_at,
            merged_at=pull.merged_at,
            merge_commit_sha=pull.merge_commit_sha,
            assignee=None,
            assignees=[],
            requested_reviewers=[self._user(r) for r in pull.requested_reviewers],
            requested_teams=[
                {
                    **team,
                    "name": t,
                    "slug": t,
                    "id": _stable_id(t),
                    "html_url": f"https://github.com/orgs/{self.owner}/teams/{t}",
                    "type": "organization",
                }
                for t in pull.requested_teams
            ],
            head=self._render_branch(pull.head_ref, head_sha),
            base=self._render_branch(pull.base_ref, base_sha),
            _links={k: {"href": v} for k, v in links.items()},
            author_association="NONE" if pull.user_login.endswith(_BOT_SUFFIX) else "MEMBER",
            auto_merge=copy.deepcopy(pull.auto_merge),
            draft=pull.draft,
        )
        if not simple:
            commits = self._pull_commits(pull)
            d.update(
                merged=pull.merged,
                mergeable=True if pull.state == "open" else None,
                rebaseable=True if pull.state == "open" else None,
                mergeable_state="clean" if pull.state == "open" else "unknown",
                merged_by=self._user(pull.merged_by) if pull.merged_by else None,
                comments=sum(c.issue_number == n for c in self._comments.values()),
                review_comments=0,
                maintainer_can_modify=False,
                commits=len(commits),
                additions=0,
                deletions=0,
                changed_files=0,
            )
        return d

    def _render_issue(self, item: _Issue | _Pull) -> dict[str, Any]:
        d: dict[str, Any] = self._swap(self._tpl["issue"])
        n = item.number
        api = f"{self._api}/repos/{self.full_name}"
        is_pull = isinstance(item, _Pull)
        html = f"https://github.com/{self.full_name}/{'pull' if is_pull else 'issues'}/{n}"
        d.update(
            id=self.repo_id * 10 + n,
            node_id=self._node_id(item),
            url=f"{api}/issues/{n}",
            repository_url=api,
            labels_url=f"{api}/issues/{n}/labels{{/name}}",
            comments_url=f"{api}/issues/{n}/comments",
            events_url=f"{api}/issues/{n}/events",
            html_url=html,
            number=n,
            state=item.state,
            title=item.title,
            body=item.body or None,
            user=self._user(item.user_login),
            labels=[self._render_label(name) for name in item.labels],
            assignee=None,
            assignees=[],
            milestone=None,
            locked=False,
            active_lock_reason=None,
            comments=sum(c.issue_number == n for c in self._comments.values()),
            closed_at=item.closed_at,
            created_at=item.created_at,
            updated_at=item.updated_at,
            closed_by=None,
            author_association="NONE" if item.user_login.endswith(_BOT_SUFFIX) else "MEMBER",
        )
        # GitHub sends `state_reason: null` for open issues, but openapi-core rejects null
        # for this nullable enum, so the (optional) key is left out instead.
        d.pop("state_reason", None)
        if isinstance(item, _Issue) and item.state_reason is not None:
            d["state_reason"] = item.state_reason
        if isinstance(item, _Pull):
            d["pull_request"] = {
                "url": f"{api}/pulls/{n}",
                "html_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "merged_at": item.merged_at,
            }
        else:
            d.pop("pull_request", None)
        return d

    def _render_comment(self, comment: _Comment) -> dict[str, Any]:
        d: dict[str, Any] = self._swap(self._tpl["comment"])
        api = f"{self._api}/repos/{self.full_name}"
        item_kind = "pull" if comment.issue_number in self._pulls else "issues"
        d.update(
            id=comment.id,
            node_id=f"IC_kwDOFAKE{comment.id:x}",
            url=f"{api}/issues/comments/{comment.id}",
            html_url=f"https://github.com/{self.full_name}/{item_kind}/"
            f"{comment.issue_number}#issuecomment-{comment.id}",
            body=comment.body,
            user=self._user(comment.user_login),
            created_at=comment.created_at,
            updated_at=comment.updated_at,
            issue_url=f"{api}/issues/{comment.issue_number}",
            author_association="NONE" if comment.user_login.endswith(_BOT_SUFFIX) else "MEMBER",
        )
        return d

    def _render_label(self, name: str) -> dict[str, Any]:
        d: dict[str, Any] = self._swap(self._tpl["label"])
        label_id = _stable_id(f"label:{name}")
        d.update(
            id=label_id,
            node_id=f"LA_kwDOFAKE{label_id:x}",
            url=f"{self._api}/repos/{self.full_name}/labels/{quote(name, safe='')}",
            name=name,
            description="",  # pull-request-simple's labels do not allow null
            color="ededed",
            default=False,
        )
        return d

    def _render_ref(self, ref: str, sha: str) -> dict[str, Any]:
        d: dict[str, Any] = self._swap(self._tpl["git_ref"])
        api = f"{self._api}/repos/{self.full_name}"
        d.update(
            ref=f"refs/{ref}",
            node_id=f"REF_kwDOFAKE{_stable_id(ref):x}",
            url=f"{api}/git/refs/{ref}",
            object={"type": "commit", "sha": sha, "url": f"{api}/git/commits/{sha}"},
        )
        return d

    def _render_commit(self, commit: _Commit) -> dict[str, Any]:
        d: dict[str, Any] = self._swap(self._tpl["commit"])
        api = f"{self._api}/repos/{self.full_name}"
        html = f"https://github.com/{self.full_name}/commit/{commit.sha}"
        date = commit.author_date or self._now()
        inner = d["commit"]
        inner.update(
            url=f"{api}/git/commits/{commit.sha}",
            author={"name": commit.author_name, "email": commit.author_email, "date": date},
            committer={
                "name": commit.committer_name,
                "email": commit.committer_email,
                "date": commit.committer_date or date,
            },
            message=commit.message,
            tree={"sha": _fake_sha("tree", commit.sha), "url": f"{api}/git/trees/{commit.sha}"},
            comment_count=0,
        )
        d.update(
            url=f"{api}/commits/{commit.sha}",
            sha=commit.sha,
            node_id=f"C_kwDOFAKE{commit.sha[:12]}",
            html_url=html,
            comments_url=f"{api}/commits/{commit.sha}/comments",
            # GitHub maps emails to accounts and sends null for unknown ones, but openapi-core
            # rejects null for this nullable oneOf; {} is the description's empty-object.
            author={},
            committer={},
            parents=[
                {
                    "sha": p,
                    "url": f"{api}/commits/{p}",
                    "html_url": f"https://github.com/{self.full_name}/commit/{p}",
                }
                for p in commit.parents
            ],
        )
        d.pop("files", None)
        d.pop("stats", None)
        return d


_ROUTES: list[tuple[str, str, str]] = [
    ("GET", r"", "_r_get_repo"),
    ("GET", r"/pulls", "_r_list_pulls"),
    ("POST", r"/pulls", "_r_create_pull"),
    ("GET", r"/pulls/(\d+)", "_r_get_pull"),
    ("PATCH", r"/pulls/(\d+)", "_r_update_pull"),
    ("GET", r"/pulls/(\d+)/commits", "_r_list_commits"),
    ("PUT", r"/pulls/(\d+)/merge", "_r_merge"),
    ("GET", r"/pulls/(\d+)/merge", "_r_check_merged"),
    ("POST", r"/pulls/(\d+)/requested_reviewers", "_r_request_reviewers"),
    ("GET", r"/issues", "_r_list_issues"),
    ("POST", r"/issues", "_r_create_issue"),
    ("GET", r"/issues/(\d+)", "_r_get_issue"),
    ("PATCH", r"/issues/(\d+)", "_r_update_issue"),
    ("GET", r"/issues/(\d+)/comments", "_r_list_comments"),
    ("POST", r"/issues/(\d+)/comments", "_r_create_comment"),
    ("PATCH", r"/issues/comments/(\d+)", "_r_update_comment"),
    ("POST", r"/issues/(\d+)/labels", "_r_add_labels"),
    ("GET", r"/git/ref/(.+)", "_r_get_ref"),
    ("POST", r"/git/refs", "_r_create_ref"),
    ("PATCH", r"/git/refs/(.+)", "_r_update_ref"),
    ("DELETE", r"/git/refs/(.+)", "_r_delete_ref"),
    ("GET", r"/installation", "_r_get_installation"),
    ("POST", r"/git/blobs", "_r_create_blob"),
    ("POST", r"/git/trees", "_r_create_tree"),
    ("GET", r"/git/trees/(.+)", "_r_get_tree"),
    ("POST", r"/git/commits", "_r_create_commit"),
    ("GET", r"/git/commits/([0-9a-f]{40})", "_r_get_git_commit"),
]


def _number(item: _Pull | _Issue) -> int:
    return item.number


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _label_names(raw: Any) -> list[str]:
    names: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name and name not in names:
            names.append(name)
    return names


__all__ = ["FakeApp", "FakeClock", "Fault", "FaultPlan", "FakeGitHub", "RecordedRequest"]

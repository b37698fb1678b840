"""A hostile HTTP server on 127.0.0.1, written on raw sockets so that it can misbehave.

It stands in front of a well-behaved upstream (the Cekura sandbox or the fake GitHub) and
forwards every request to it, except those a rule matches: those get a scripted reply,
sent byte for byte as written, which can

- be any raw bytes (a broken status line, no headers, garbage);
- trickle its status line and headers, or its body, one byte at a time;
- declare a Content-Length it does not keep, and cut the connection mid-body;
- echo the request's own secrets (the Cekura key header, the GitHub bearer token) at any
  offset of its body, its reason phrase or a header, raw or encoded;
- nest JSON as deep as asked.

Every request is recorded (`requests`, `count`), so tests can assert that nothing more
was sent after a refusal.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
REASONS |= {404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with its query
    headers: dict[str, str]  # lower-case names
    body: bytes

    def secret(self) -> str:
        """The credential this request carried (Cekura's key header or GitHub's bearer)."""
        if "x-cekura-api-key" in self.headers:
            return self.headers["x-cekura-api-key"]
        return self.headers.get("authorization", "").removeprefix("Bearer ")


@dataclass(frozen=True)
class Script:
    """One scripted reply: `head` (status line and headers, CRLF CRLF included) and `body`.

    `head_delay`/`body_delay` space every byte of that part; `send` sends only that many
    bytes of the body, then the connection is cut.
    """

    head: bytes
    body: bytes = b""
    head_delay: float = 0.0
    body_delay: float = 0.0
    send: int | None = None
    # A complete reply leaves closing to the client ("Connection: close"), as servers do
    # when they answer in full; cut or raw replies close at once.
    keep_open: bool = False


def reply(
    status: int,
    body: bytes | str | Any = b"",
    *,
    headers: dict[str, str] | None = None,
    reason: str | None = None,
    content_length: int | None = None,
    head_delay: float = 0.0,
    body_delay: float = 0.0,
    send: int | None = None,
) -> Script:
    """A reply whose body is bytes, text, or (anything else) JSON."""
    if isinstance(body, str):
        data = body.encode()
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", "Connection": "close", **(headers or {})}
    all_headers["Content-Length"] = str(len(data) if content_length is None else content_length)
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status') if reason is None else reason}"]
    lines += [f"{k}: {v}" for k, v in all_headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    complete = send is None and content_length in (None, len(data))
    return Script(head, data, head_delay, body_delay, send, keep_open=complete)


def raw(data: bytes) -> Script:
    """Exactly these bytes, then the connection is closed."""
    return Script(data)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@dataclass
class _Rule:
    method: str
    path: re.Pattern[str]
    script: Callable[[Request], Script]
    times: int | None


@dataclass
class HostileServer:
    """Forwards to `upstream`, except where a rule scripts the reply."""

    upstream: str
    requests: list[Request] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _conns: set[socket.socket] = field(default_factory=set)

    def start(self) -> HostileServer:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True, name="hostile-accept").start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._sock.close()
        with self._lock:
            for conn in list(self._conns):
                _close(conn)

    def add(
        self,
        method: str,
        path: str,
        script: Script | Callable[[Request], Script],
        *,
        times: int | None = None,
    ) -> None:
        """Script replies to `method` (or "*") on paths matching the regex `path`."""
        make = script if callable(script) else (lambda _request, s=script: s)
        with self._lock:
            self._rules.append(_Rule(method, re.compile(path), make, times))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def count(self, method: str = "*", path: str = "") -> int:
        with self._lock:
            return sum(
                1 for r in self.requests if method in ("*", r.method) and re.search(path, r.path) is not None
            )

    # -- serving ---------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while not self._stopping.is_set():
                request, buffer = _read_request(conn, buffer)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                    rule = self._match(request)
                if rule is None:
                    conn.sendall(self._forward(request))
                    continue
                script = rule.script(request)
                self._play(conn, script)
                if not script.keep_open:
                    return
        except Exception as err:  # noqa: BLE001 - recorded for the test to see
            self.errors.append(repr(err))
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            _close(conn)

    def _match(self, request: Request) -> _Rule | None:
        for rule in self._rules:
            if rule.method in ("*", request.method) and rule.path.search(request.path):
                if rule.times is not None:
                    if rule.times <= 0:
                        continue
                    rule.times -= 1
                return rule
        return None

    def _play(self, conn: socket.socket, script: Script) -> None:
        body = script.body if script.send is None else script.body[: script.send]
        for part, delay in ((script.head, script.head_delay), (body, script.body_delay)):
            if not delay:
                conn.sendall(part)
                continue
            for i in range(len(part)):
                if self._stopping.wait(delay):
                    return
                conn.sendall(part[i : i + 1])

    def _forward(self, request: Request) -> bytes:
        target = urlsplit(self.upstream)
        upstream = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
        try:
            headers = {k: v for k, v in request.headers.items() if k not in ("host", "connection")}
            upstream.request(request.method, request.path, body=request.body or None, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            kept = [
                (k, v.replace(self.upstream, self.url))  # pagination links point back here
                for k, v in response.getheaders()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")
            ]
        finally:
            upstream.close()
        lines = [f"HTTP/1.1 {response.status} {response.reason}"]
        lines += [f"{k}: {v}" for k, v in kept] + [f"Content-Length: {len(data)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


def _read_request(conn: socket.socket, buffer: bytes) -> tuple[Request | None, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    return Request(method, path, headers, rest[:length]), rest[length:]


def _close(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()

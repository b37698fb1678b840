"""The Cekura sandbox: a real HTTP server on 127.0.0.1 in front of `SandboxState`.

Each request goes through, in order: the sandbox's base latency, a `when="before"` fault,
the API-key check (401), OpenAPI validation of the request (400, recorded in
`validation_errors`), the route, a `when="after"` fault, validation of the sandbox's own
2xx reply (a sandbox bug would otherwise test the client against the wrong contract),
then recording, and only then the bytes on the wire: a client that has seen a reply can
rely on it being in `requests`.

A failure of the sandbox's own code is answered with a 500, as a real server answers its
own bug, and recorded in `server_errors`; it is never a silently dropped connection, which
a client must treat as "the request may have been processed".

The server speaks HTTP/1.1 with keep-alive, like Cekura behind its load balancer, so
dropped connections hit pooled connections the way they do in production.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cekura_gitops.sandbox.faults import Fault, FaultSet
from cekura_gitops.sandbox.optimiser import ProgressShape
from cekura_gitops.sandbox.routes import Incoming, Reply, dispatch
from cekura_gitops.sandbox.seed import seed as seed_state
from cekura_gitops.sandbox.state import SandboxState
from cekura_gitops.sandbox.validation import (
    OpenAPIRequest,
    OpenAPIResponse,
    request_violations,
    response_violations,
)

__all__ = ["RecordedRequest", "Sandbox"]

API_KEY_HEADER = "X-CEKURA-API-KEY"
NO_RESPONSE = 0  # RecordedRequest.status of a dropped connection


@dataclass(frozen=True)
class RecordedRequest:
    """One received request and the status it got (0: connection dropped, no answer)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any | None
    status: int
    at: float  # time.monotonic() when the reply was decided


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections a real API server would take:
    # 256 metrics starting at once (--concurrency 256) must not fail on the sandbox alone.
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.handler_threads: list[threading.Thread] = []
        self.tracking_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Like ThreadingMixIn, but keeping the threads so stop() can wait for them.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="cekura-sandbox-connection",
            daemon=True,
        )
        with self.tracking_lock:
            self.handler_threads = [t for t in self.handler_threads if t.is_alive()]
            self.handler_threads.append(thread)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-reply (timeouts, drops, stop()) are expected here; anything
        # else (a handler thread that could not start, say) is the sandbox's own failure.
        if not isinstance(sys.exc_info()[1], OSError):
            self.sandbox._server_error("connection")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (~40 ms per request on Linux loopback).
    disable_nagle_algorithm = True
    server: _Server
    served = 0  # requests this connection has carried so far (keep-alive)

    def setup(self) -> None:
        super().setup()
        with self.server.tracking_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.tracking_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and the demo read `Sandbox.requests` instead

    def do_GET(self) -> None:
        try:
            self.server.sandbox._serve(self)
            self.served += 1
        except Exception:  # noqa: BLE001 - the sandbox's own bug: answered and recorded
            detail = self.server.sandbox._server_error(f"{self.command} {self.path}")
            # Where the request stopped being read is unknown, so the connection ends here,
            # and the reply says so: a client must not send its next request down it.
            body = _encode({"detail": f"sandbox error: {detail}"})
            Sandbox._write(self, 500, body, (("Connection", "close"),))

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET


class Sandbox:
    """A stateful, validating emulation of the Cekura API on an ephemeral loopback port.

    >>> with Sandbox() as sb:                # doctest: +SKIP
    ...     sb.url, sb.api_key, sb.state.metric(1562)["slug"]
    """

    def __init__(
        self,
        *,
        api_key: str = "sandbox-key",
        seed: bool = True,
        optimiser_seconds: float = 0.0,
        progress_shape: ProgressShape = "envelope",
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        validate_responses: bool = True,
        optimiser_cap: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.validate_responses = validate_responses
        self.state = SandboxState(
            optimiser_seconds=optimiser_seconds, progress_shape=progress_shape, optimiser_cap=optimiser_cap
        )
        if seed:
            seed_state(self.state)
        self.faults = FaultSet()
        # The live list (so a test that provokes a violation on purpose can `.clear()` it).
        self.validation_errors: list[str] = []
        # Exceptions in the sandbox's own code while serving (each answered with a 500).
        self.server_errors: list[str] = []
        self._requests: list[RecordedRequest] = []
        self._record_lock = threading.Lock()
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Sandbox:
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="cekura-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections and hanging replies, free the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        with server.tracking_lock:
            connections = list(server.connections)
            threads = list(server.handler_threads)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=5)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- observation ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._record_lock:
            return list(self._requests)

    def count(self, method: str, path_regex: str) -> int:
        """How many recorded requests have this method and a path matching the regex."""
        return sum(1 for r in self.requests if r.method == method.upper() and re.search(path_regex, r.path))

    # -- serving -------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        server = handler.server
        method = handler.command.upper()
        parts = urlsplit(handler.path)
        path, query_pairs = parts.path, parse_qsl(parts.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = _decode(raw)
        query = dict(query_pairs)

        if self.latency:
            server.stopping.wait(self.latency)
        fault = self.faults.take(method, path, reused=handler.served > 0)
        if fault is not None and fault.when == "before":
            if fault.kind in ("hang", "latency"):
                server.stopping.wait(fault.seconds)
            else:
                self._send_fault(handler, fault, method, path, query, body)
                return

        if handler.headers.get(API_KEY_HEADER) != self.api_key:
            reply = Reply(401, {"detail": "Authentication credentials were not provided."})
        else:
            oa_request = OpenAPIRequest(method, path, query_pairs, list(handler.headers.items()), raw or None)
            violations = request_violations(oa_request)
            if violations:
                with self._record_lock:
                    self.validation_errors.extend(v.message for v in violations)
                status = 404 if any(v.path_not_found for v in violations) else 400
                reply = Reply(
                    status,
                    {
                        "detail": "request does not match Cekura's OpenAPI: "
                        + "; ".join(v.message for v in violations)[:1000]
                    },
                )
            else:
                host = handler.headers.get("Host") or f"127.0.0.1:{server.server_address[1]}"
                reply = dispatch(self.state, Incoming(method, path, query, body, f"http://{host}"))
                if self.validate_responses and 200 <= reply.status < 300 and reply.validate:
                    self._check_reply(oa_request, reply)

        if fault is not None and fault.when == "after":
            if fault.kind in ("hang", "latency"):
                self._record(method, path, query, body, reply.status)
                server.stopping.wait(fault.seconds)
                self._write(handler, reply.status, _encode(reply.body), reply.headers)
            else:
                self._send_fault(handler, fault, method, path, query, body)
            return
        self._record(method, path, query, body, reply.status)
        self._write(handler, reply.status, _encode(reply.body), reply.headers)

    def _server_error(self, where: str) -> str:
        """Record the exception being handled; return its one-line summary."""
        summary = f"{where}: {traceback.format_exc(limit=-3).strip()}"
        with self._record_lock:
            self.server_errors.append(summary)
        return summary.splitlines()[-1]

    def _check_reply(self, request: OpenAPIRequest, reply: Reply) -> None:
        data = _encode(reply.body)
        response = OpenAPIResponse(reply.status, [("Content-Type", "application/json")], data)
        violations = response_violations(request, response)
        if violations:
            with self._record_lock:
                self.validation_errors.extend(v.message for v in violations)

    def _send_fault(
        self,
        handler: _Handler,
        fault: Fault,
        method: str,
        path: str,
        query: dict[str, str],
        body: Any,
    ) -> None:
        if fault.kind in ("drop", "idle_close"):
            self._record(method, path, query, body, NO_RESPONSE)
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault.kind == "non_json":
            self._record(method, path, query, body, 200)
            payload = b"<html><body>upstream connect error</body></html>"
            self._write(handler, 200, payload, (), content_type="text/html")
            return
        if fault.kind == "missing_fields":
            self._record(method, path, query, body, 200)
            self._write(handler, 200, _encode({} if fault.body is None else fault.body), ())
            return
        headers: tuple[tuple[str, str], ...] = ()
        if fault.retry_after is not None:
            value = fault.retry_after
            headers = (("Retry-After", value if isinstance(value, str) else f"{value:g}"),)
        error = fault.body if fault.body is not None else {"detail": f"Injected fault: HTTP {fault.status}."}
        self._record(method, path, query, body, fault.status)
        self._write(handler, fault.status, _encode(error), headers)

    def _record(self, method: str, path: str, query: dict[str, str], body: Any, status: int) -> None:
        entry = RecordedRequest(method, path, query, body, status, time.monotonic())
        with self._record_lock:
            self._requests.append(entry)

    @staticmethod
    def _write(
        handler: _Handler,
        status: int,
        payload: bytes,
        headers: tuple[tuple[str, str], ...],
        *,
        content_type: str = "application/json",
    ) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in headers:
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            # The client gave up (timeout) or the sandbox is stopping: nobody to answer.
            handler.close_connection = True


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _encode(body: Any) -> bytes:
    return b"" if body is None else json.dumps(body).encode()

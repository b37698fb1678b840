"""HTTP plumbing both API clients share: an overall deadline, bounded bodies, safe JSON.

httpx's timeouts are per socket operation: a server that trickles its reply (one byte a
second, headers or body) never trips them. Here every request gets an overall deadline:

- the transport's socket reads are given at most the time left before the deadline (a
  wrapper around httpcore's network backend), which covers the status line and headers;
- the body is streamed and the deadline checked after every chunk, which also covers
  transports without that wrapper (an env proxy, a test's MockTransport).

Bodies are read up to a size limit, and JSON is parsed with a nesting limit, so a hostile
or broken reply ends in a clear `ReplyError` rather than a hang, a MemoryError or a
RecursionError. The clients turn a `ReplyError` into their own API error.

A leaf among the adapters: it imports nothing from the package, so `cekura.py` and
`github.py` can share it without importing each other.
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

__all__ = [
    "DEFAULT_DEADLINE",
    "MAX_BODY",
    "MAX_DEPTH",
    "Reply",
    "ReplyError",
    "parse_json",
    "receive",
    "transport",
]

DEFAULT_DEADLINE = 120.0
# The largest reply we read (a metric list of a big project is a few MB).
MAX_BODY = 64 * 1024 * 1024
# An error reply is only ever quoted in an excerpt: no need to read more of it.
MAX_ERROR_BODY = 64 * 1024
# Neither API nests deeper than a dozen levels; Python's own limit is ~1000.
MAX_DEPTH = 100

# The request extension that asks _Transport for a connection of the request's own.
_FRESH = "cekura_gitops.fresh_connection"

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


class ReplyError(Exception):
    """The server answered in a way we refuse to read: too slow, too large, or not JSON.

    `status` is the reply's status when its status line had arrived, else None.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Reply:
    """A fully read reply."""

    status: int
    headers: httpx.Headers
    content: bytes
    reason: str

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    @property
    def links(self) -> dict[str | None, dict[str, str]]:
        """The `Link` header, parsed as httpx does (`rel` -> {url, rel})."""
        return httpx.Response(self.status, headers={"link": self.headers.get("link", "")}).links

    def json(self) -> Any:
        return parse_json(self.content, self.status)


def parse_json(content: bytes, status: int | None = None) -> Any:
    """JSON, or `ReplyError`: not JSON, truncated, or nested deeper than MAX_DEPTH."""
    try:
        data = json.loads(content)
    except RecursionError:
        raise ReplyError(f"JSON nested more than {MAX_DEPTH} levels deep", status) from None
    except json.JSONDecodeError as err:
        ended = err.pos > 0 and err.pos >= len(err.doc.rstrip())
        raise ReplyError("truncated JSON" if ended else "not JSON", status) from None
    except ValueError:  # not UTF-8
        raise ReplyError("not JSON", status) from None
    if _too_deep(data):
        # Parsed, but our own code (comparisons, dumps) would recurse into it.
        raise ReplyError(f"JSON nested more than {MAX_DEPTH} levels deep", status)
    return data


def _too_deep(data: Any) -> bool:
    """Deeper than MAX_DEPTH? Iterative, and it only visits containers."""
    if not isinstance(data, (dict, list)):
        return False
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def receive(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    deadline: float,
    params: Mapping[str, str] | None = None,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    fresh: bool = False,
) -> Reply:
    """Send one request and read its whole reply within `deadline` seconds.

    httpx errors (connect, timeouts, dropped connections) pass through unchanged, except a
    timeout caused by the deadline, which becomes a `ReplyError`, as do oversized bodies.
    `fresh`: send it on a new connection, never a kept-alive one (writes that are never
    resent; see _Transport).
    """
    until = time.monotonic() + deadline
    token = _deadline.set(until)
    status: int | None = None
    extensions = {_FRESH: True} if fresh else None
    try:
        with client.stream(
            method, url, params=params, json=json_body, headers=headers, extensions=extensions
        ) as response:
            status = response.status_code
            limit = MAX_BODY if status < 400 else MAX_ERROR_BODY
            content = _read(response.iter_bytes(), until, deadline, limit, status)
            return Reply(status, response.headers, content, response.reason_phrase)
    except httpx.TimeoutException as err:
        if isinstance(err, (httpx.ConnectTimeout, httpx.PoolTimeout)) or time.monotonic() < until:
            raise
        raise ReplyError(_too_slow(deadline), status) from None
    finally:
        _deadline.reset(token)


def _read(chunks: Iterable[bytes], until: float, deadline: float, limit: int, status: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            if status >= 400:
                # An error body is only quoted: keep its beginning, drop the rest.
                parts.append(chunk[: len(chunk) - (size - limit)])
                break
            raise ReplyError(f"reply larger than {limit // (1024 * 1024)} MiB", status)
        parts.append(chunk)
        if time.monotonic() > until:
            raise ReplyError(_too_slow(deadline), status)
    return b"".join(parts)


def _too_slow(deadline: float) -> str:
    return f"no complete reply within {deadline:g} s (CEKURA_GITOPS_HTTP_DEADLINE)"


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose reads never wait past the current request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        until = _deadline.get()
        if until is not None:
            left = until - time.monotonic()
            if left <= 0:
                raise httpcore.ReadTimeout("deadline")
            timeout = left if timeout is None else min(timeout, left)
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def transport() -> httpx.BaseTransport:
    """httpx's transport, its socket reads bounded by the request's deadline, and a
    connection of its own for each request sent with `fresh=True` (see _Transport)."""
    # One TLS context (loading the CA bundle takes tens of milliseconds) for both pools.
    context = httpx.create_ssl_context(verify=True, trust_env=True)
    return _Transport(
        _with_deadlines(httpx.HTTPTransport(verify=context)),
        _with_deadlines(
            httpx.HTTPTransport(verify=context, limits=httpx.Limits(max_keepalive_connections=0))
        ),
    )


def _with_deadlines(default: httpx.HTTPTransport) -> httpx.HTTPTransport:
    pool = getattr(default, "_pool", None)
    inner = getattr(pool, "_network_backend", None)
    # httpx offers no public hook for the network backend; if its internals change, the
    # streamed body keeps its deadline and tests/test_hostile.py (trickled headers) fails.
    if isinstance(inner, httpcore.NetworkBackend):
        pool._network_backend = _DeadlineBackend(inner)  # type: ignore[union-attr]
    return default


class _Transport(httpx.BaseTransport):
    """Pooled connections, except for the requests marked fresh, which never reuse one.

    A server closes an idle kept-alive connection when its own timer says so (2 to 75 s
    behind common servers and load balancers), without asking: a request written down that
    connection as it closes is never read, yet all the client sees is a connection dropped
    after sending, which for a write means "it may have been processed". A write that is
    never resent blindly (the optimiser start, a pull request) would be left ambiguous by
    a close that it merely crossed; on a connection of its own, nothing can cross it. The
    price is a handshake per such write, next to runs that take minutes.
    """

    def __init__(self, pooled: httpx.BaseTransport, fresh: httpx.BaseTransport) -> None:
        self._pooled = pooled
        self._fresh = fresh

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        chosen = self._fresh if request.extensions.get(_FRESH) else self._pooled
        return chosen.handle_request(request)

    def close(self) -> None:
        self._pooled.close()
        self._fresh.close()

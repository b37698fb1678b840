"""Fault injection for the Cekura sandbox: what a flaky network or a Cekura deploy looks like.

A `Fault` matches requests by method and path regex and changes how the sandbox answers:

- `status`: answer with that HTTP status (JSON error body, optional `Retry-After`);
- `hang`: wait `seconds` before answering, long enough to trip a client's read timeout;
- `latency`: wait `seconds`, then serve normally (slow but healthy);
- `drop`: close the connection without sending a byte of response;
- `idle_close`: the server's idle timer closes a kept-alive connection just as this request
  arrives on it: no response, and the request is never processed. Only a request sent down
  a connection that already carried one can meet it; on a new connection the request is
  served and the fault stays armed (a real server never closes a connection it has not
  used yet);
- `non_json`: answer 200 with a text body (a proxy's error page);
- `missing_fields`: answer 200 with `{}` (or `body`), a JSON body of the wrong shape.

`when="before"` replaces the processing; `when="after"` processes the request first (the
optimisation really starts, the PATCH really applies) and then sends the fault instead of
the real reply, which is how an ambiguous write looks from the client. `idle_close` is
always "before": the close happens before the server reads the request.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Fault", "FaultKind", "FaultSet", "FaultWhen"]

FaultKind = Literal["status", "hang", "latency", "drop", "idle_close", "non_json", "missing_fields"]
FaultWhen = Literal["before", "after"]


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour; see the module docstring for `kind` and `when`."""

    method: str  # "GET", "POST", ... or "*" for any
    path: str  # regex, matched with re.search against the request path (no query)
    kind: FaultKind = "status"
    status: int = 503
    times: int | None = 1  # how many matching requests it affects; None = forever
    after: int = 0  # let the first `after` matching requests through untouched
    when: FaultWhen = "before"
    retry_after: float | str | None = None  # Retry-After header for kind="status"
    seconds: float = 5.0  # for kind="hang" / "latency"
    body: Any = None  # overrides the JSON body for kind="status" / "missing_fields"

    def __post_init__(self) -> None:
        if self.kind == "idle_close" and self.when != "before":
            raise ValueError("an idle close happens before the request is read: when='before'")

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method.upper() == method.upper()) and bool(
            re.search(self.path, path)
        )


@dataclass
class _Armed:
    fault: Fault
    seen: int = 0
    fired: int = 0

    def exhausted(self) -> bool:
        return self.fault.times is not None and self.fired >= self.fault.times


@dataclass
class FaultSet:
    """The sandbox's active faults; thread-safe. The first live matching fault wins."""

    _armed: list[_Armed] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._armed.append(_Armed(fault))
        return fault

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def take(self, method: str, path: str, *, reused: bool = True) -> Fault | None:
        """The fault to apply to this request, consuming one of its `times`.

        `reused`: the request came down a connection that had already carried one (an
        `idle_close` passes over the others).
        """
        with self._lock:
            for armed in self._armed:
                if armed.exhausted() or not armed.fault.matches(method, path):
                    continue
                if armed.fault.kind == "idle_close" and not reused:
                    continue
                armed.seen += 1
                if armed.seen <= armed.fault.after:
                    continue
                armed.fired += 1
                return armed.fault
        return None

    def fired(self, fault: Fault) -> int:
        """How many requests `fault` (as returned by `add`) has affected so far."""
        with self._lock:
            return sum(a.fired for a in self._armed if a.fault is fault)

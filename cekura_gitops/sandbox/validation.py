"""Check sandbox traffic against Cekura's OpenAPI description (the vendored subset).

openapi-core 0.23.1 wants small protocol objects (reference/github-notes.md §2); this module
builds them from the raw pieces the HTTP handler has, and returns problems as strings so
the sandbox can record them and tests can assert on an empty list.

- `host_url` is always `https://api.cekura.ai`, the only server the document declares,
  whatever loopback port the sandbox listens on; otherwise openapi-core raises
  `ServerNotFound`.
- Empty bodies are `None`.
- The document is loaded once per process without openapi-spec-validator (that check
  takes most of a second; tests run it once explicitly).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathNotFound
from werkzeug.datastructures import Headers, ImmutableMultiDict

__all__ = [
    "CEKURA_HOST_URL",
    "SPEC_PATH",
    "OpenAPIRequest",
    "OpenAPIResponse",
    "Violation",
    "load_openapi",
    "request_violations",
    "response_violations",
]

CEKURA_HOST_URL = "https://api.cekura.ai"
SPEC_PATH = Path(__file__).with_name("cekura-openapi-subset.json")

_load_lock = threading.Lock()
_openapi: OpenAPI | None = None
# One check at a time: openapi-core does not claim to be thread-safe, and pathable (under it)
# keeps a per-document LRU cache in a plain OrderedDict that every read mutates
# (`move_to_end`, `popitem`). The checks are pure Python, so the GIL already serialises them:
# the lock costs no parallelism.
_check_lock = threading.Lock()


def load_openapi() -> OpenAPI:
    """The parsed subset, loaded on first use and shared by every sandbox in the process."""
    global _openapi
    with _load_lock:
        if _openapi is None:
            # None skips openapi-spec-validator (openapi-core's app.py checks for it),
            # though its annotation only admits a class or UNSET.
            config = Config(spec_validator_cls=None)  # type: ignore[arg-type]
            _openapi = OpenAPI.from_file_path(str(SPEC_PATH), config=config)
        return _openapi


def _content_type(headers: list[tuple[str, str]]) -> str:
    return next((v for k, v in headers if k.lower() == "content-type"), "")


class OpenAPIRequest:
    """openapi-core's request protocol, from what the HTTP handler received."""

    def __init__(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Iterable[tuple[str, str]],
        body: bytes | None,
    ) -> None:
        header_list = list(headers)
        self.host_url = CEKURA_HOST_URL
        self.method = method.lower()
        self.path = path
        self.body = body or None
        self.content_type = _content_type(header_list) if self.body is not None else ""
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(query)),
            header=Headers(header_list),
            cookie=ImmutableMultiDict(),
        )


class OpenAPIResponse:
    """openapi-core's response protocol, from what the sandbox is about to send."""

    def __init__(self, status_code: int, headers: Iterable[tuple[str, str]], data: bytes) -> None:
        header_list = list(headers)
        self.status_code = status_code
        self.data = data or None
        self.content_type = _content_type(header_list)
        self.headers = Headers(header_list)


@dataclass(frozen=True)
class Violation:
    """One mismatch with the description; `path_not_found` means no such operation."""

    message: str
    path_not_found: bool = False


def _describe(exc: BaseException) -> str:
    """The exception plus the schema errors openapi-core nests under it, kept short."""
    parts = [f"{type(exc).__name__}: {str(exc)[:200]}"]
    cause = exc.__cause__ or exc.__context__
    schema_errors = getattr(cause, "schema_errors", None)
    if schema_errors:
        for err in list(schema_errors)[:5]:
            where = "/".join(str(p) for p in getattr(err, "absolute_path", ()))
            parts.append(f"at /{where}: {str(getattr(err, 'message', err))[:200]}")
    elif cause is not None and str(cause) not in parts[0]:
        parts.append(str(cause)[:200])
    return "; ".join(parts)


def request_violations(request: OpenAPIRequest) -> list[Violation]:
    """Problems with a received request (empty when it matches Cekura's description)."""
    label = f"{request.method.upper()} {request.path}"
    openapi = load_openapi()
    with _check_lock:
        errors = list(openapi.iter_request_errors(request))
    return [Violation(f"{label}: {_describe(e)}", path_not_found=isinstance(e, PathNotFound)) for e in errors]


def _is_known_spec_defect(err: Any) -> bool:
    """Two defects of the published document, where real Cekura (so the sandbox) sends null.

    - DRF pagination's `next`/`previous` are null on the first/last page; the document
      marks them `nullable: true`, an OpenAPI 3.0 keyword that 3.1 (which it declares)
      ignores.
    - Fields typed `oneOf: [{}, {"type": "null"}]` (`alert_filters`,
      `pending_optimisation_proposal`): null matches both branches, which `oneOf` forbids.
    """
    if getattr(err, "instance", object()) is not None:
        return False
    path = list(getattr(err, "absolute_path", ()))
    if len(path) == 1 and path[0] in ("next", "previous"):
        return True
    return getattr(err, "validator", None) == "oneOf"


def response_violations(request: OpenAPIRequest, response: OpenAPIResponse) -> list[Violation]:
    """Problems with a response the sandbox produced, minus the known spec defect above."""
    label = f"{request.method.upper()} {request.path} -> {response.status_code}"
    problems = []
    openapi = load_openapi()
    with _check_lock:
        errors = list(openapi.iter_response_errors(request, response))
    for exc in errors:
        cause = exc.__cause__ or exc.__context__
        schema_errors = list(getattr(cause, "schema_errors", None) or ())
        if schema_errors and all(_is_known_spec_defect(e) for e in schema_errors):
            continue
        problems.append(Violation(f"response {label}: {_describe(exc)}"))
    return problems

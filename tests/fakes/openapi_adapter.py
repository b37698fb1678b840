"""Validate GitHub REST traffic against the vendored OpenAPI subset with openapi-core.

openapi-core wants two small protocol objects (a request and a response); this module
builds them from httpx objects (for `httpx.MockTransport` handlers) or from raw pieces (for
the loopback fake server), and exposes "give me the list of problems" helpers, so that a
test can assert on an empty list instead of catching exceptions.

Details that matter (reference/github-notes.md §1-2):

- `host_url` must be a server the document declares (`https://api.github.com`), whatever
  host the traffic really went to, or openapi-core raises `ServerNotFound`.
- `{ref}` is multi-segment (`heads/a/b`) but openapi-core cannot match that, so the path
  after `git/ref/` or `git/refs/` is percent-encoded into one segment before matching.
- Empty bodies are `None`.
- Only the path *after* an API prefix is validated: GitHub Enterprise serves the same
  operations under `/api/v3`, so callers may pass `strip_prefix`.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

GITHUB_HOST_URL = "https://api.github.com"
GITHUB_SPEC_PATH = Path(__file__).with_name("github-openapi-subset.json")
# `{ref}` and `{tree_sha}` (a sha or a ref name) are both multi-segment (github-notes §7).
MULTI_SEGMENT_REF = re.compile(r"^(/repos/[^/]+/[^/]+/git/(?:refs?|trees)/)(.+)$")


# One check at a time, process-wide: openapi-core does not claim thread safety, and the
# LRU cache pathable keeps under it is a plain OrderedDict that every read mutates.
_CHECK_LOCK = threading.Lock()


@functools.cache
def load_spec(path: str = str(GITHUB_SPEC_PATH)) -> OpenAPI:
    """Load (once per process: it takes ~1 s) the OpenAPI document at `path`."""
    return OpenAPI.from_file_path(path)


@functools.cache
def load_spec_dict(path: str = str(GITHUB_SPEC_PATH)) -> dict[str, Any]:
    """The raw JSON document (for its official examples); callers must deep-copy."""
    with open(path, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def rewrite_path(path: str) -> str:
    """Apply the multi-segment `{ref}` rewrite (github-notes §1 quirk 2)."""
    return MULTI_SEGMENT_REF.sub(lambda m: m[1] + quote(m[2], safe=""), path)


class OARequest:
    """openapi-core request protocol built from raw pieces."""

    def __init__(
        self,
        method: str,
        path: str,
        query: str = "",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        *,
        host_url: str = GITHUB_HOST_URL,
    ) -> None:
        header_list = list(headers)
        self.host_url = host_url
        self.method = method.lower()
        self.path = rewrite_path(path)
        self.body = body or None
        self.content_type = next((v for k, v in header_list if k.lower() == "content-type"), "").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(query, keep_blank_values=True)),
            header=Headers(header_list),
            cookie=ImmutableMultiDict(),
        )

    @classmethod
    def from_httpx(
        cls, request: httpx.Request, *, strip_prefix: str = "", host_url: str = GITHUB_HOST_URL
    ) -> OARequest:
        path = request.url.path
        if strip_prefix and path.startswith(strip_prefix):
            path = path[len(strip_prefix) :] or "/"
        return cls(
            request.method,
            path,
            request.url.query.decode(),
            request.headers.multi_items(),
            request.content,
            host_url=host_url,
        )


class OAResponse:
    """openapi-core response protocol built from raw pieces."""

    def __init__(
        self, status_code: int, headers: Iterable[tuple[str, str]] = (), data: bytes | None = None
    ) -> None:
        header_list = list(headers)
        self.status_code = status_code
        self.data = data or None
        self.headers = Headers(header_list)
        self.content_type = next((v for k, v in header_list if k.lower() == "content-type"), "").lower()

    @classmethod
    def from_httpx(cls, response: httpx.Response) -> OAResponse:
        return cls(response.status_code, response.headers.multi_items(), response.content)


def _describe(exc: BaseException) -> str:
    """One line per problem: the schema errors openapi-core nests under the exception.

    Their `str()` embeds the whole offending value (kilobytes for a pull request), so
    only JSON paths and messages are kept, each cut short.
    """
    parts = [type(exc).__name__]
    cause: BaseException | None = exc
    for _ in range(4):
        if cause is None:
            break
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            for err in list(schema_errors)[:5]:
                where = "/".join(str(p) for p in getattr(err, "absolute_path", ()))
                parts.append(f"at /{where}: {str(getattr(err, 'message', err))[:200]}")
            break
        if cause is not exc:
            parts.append(f"{type(cause).__name__}: {str(cause)[:300]}")
        cause = cause.__cause__ or cause.__context__
    if len(parts) == 1:
        parts.append(str(exc)[:300])
    return "; ".join(parts)


def request_errors(request: OARequest, api: OpenAPI | None = None) -> list[str]:
    """Problems with `request` (empty when it matches the description)."""
    api = api or load_spec()
    label = f"{request.method.upper()} {request.path}"
    with _CHECK_LOCK:
        errors = list(api.iter_request_errors(request))
    return [f"request {label}: {_describe(e)}" for e in errors]


def response_errors(request: OARequest, response: OAResponse, api: OpenAPI | None = None) -> list[str]:
    """Problems with `response` to `request` (empty when it matches the description)."""
    api = api or load_spec()
    label = f"{request.method.upper()} {request.path} -> {response.status_code}"
    with _CHECK_LOCK:
        errors = list(api.iter_response_errors(request, response))
    return [f"response {label}: {_describe(e)}" for e in errors]


class ValidatingTransport(httpx.BaseTransport):
    """A MockTransport that checks each request and response against the description.

    Narrow unit tests keep their plain `Request -> Response` handler and assert
    `transport.errors == []` at the end. `skip_response_statuses` exempts statuses GitHub
    sends but does not document (429: github-notes §1 quirk 3); `skip_paths` (a regex)
    exempts endpoints the description lacks, such as GraphQL.
    """

    def __init__(
        self,
        handler: Any,
        *,
        strip_prefix: str = "",
        skip_response_statuses: Iterable[int] = (429,),
        skip_paths: str | None = None,
        api: OpenAPI | None = None,
    ) -> None:
        self._inner = httpx.MockTransport(handler)
        self._strip_prefix = strip_prefix
        self._skip = frozenset(skip_response_statuses)
        self._skip_paths = re.compile(skip_paths) if skip_paths else None
        self._api = api or load_spec()
        self.errors: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._skip_paths is not None and self._skip_paths.search(request.url.path):
            return self._inner.handle_request(request)
        oa_request = OARequest.from_httpx(request, strip_prefix=self._strip_prefix)
        self.errors.extend(request_errors(oa_request, self._api))
        response = self._inner.handle_request(request)
        response.read()
        if response.status_code not in self._skip:
            self.errors.extend(response_errors(oa_request, OAResponse.from_httpx(response), self._api))
        return response

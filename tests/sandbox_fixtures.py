"""Fixtures for tests that talk to the Cekura sandbox over real loopback HTTP.

tests/conftest.py imports them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cekura_gitops.cekura import CekuraClient
from cekura_gitops.sandbox import Sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A started, seeded sandbox; at teardown, no request may have broken the OpenAPI, and
    the sandbox's own code may not have failed on any."""
    sb = Sandbox()
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()
    assert sb.validation_errors == [], "requests or replies outside Cekura's OpenAPI"
    assert sb.server_errors == [], "the sandbox failed while serving"


@pytest.fixture
def cekura(sandbox: Sandbox) -> Iterator[CekuraClient]:
    """A client for `sandbox` whose retries take milliseconds, not seconds."""
    with CekuraClient(
        sandbox.url, sandbox.api_key, timeout=5.0, backoff_base=0.01, backoff_cap=0.05
    ) as client:
        yield client

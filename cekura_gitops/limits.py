"""Limits shared by the command line (which must start fast) and the settings it feeds.

A leaf: it imports nothing, so `cli` can use it without loading `settings`.
"""

from __future__ import annotations

__all__ = ["MAX_CONCURRENCY"]

# The most metrics one sync or apply works on at once (`--concurrency`, its env var and the
# config file's `concurrency`). Each is a thread holding a connection to Cekura.
MAX_CONCURRENCY = 256

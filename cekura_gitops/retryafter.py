"""The `Retry-After` header, shared by the Cekura and GitHub clients (a leaf: no imports
from the package, so the two adapters need not import each other)."""

from __future__ import annotations

import email.utils


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait: delta-seconds or an HTTP-date (RFC 9110 §10.2.3); None if unusable.

    `now` is the current epoch time, injectable so that tests need not wait.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None  # HTTP-dates are GMT; a date without a zone is malformed
    return max(0.0, when.timestamp() - now)

"""Secrets out of text: the one redaction the HTTP clients, the console and the CLI share.

A leaf (nothing from the package is imported), so both HTTP adapters can use it without
importing each other.

Why more than `text.replace(secret, "***")`:

- a server can echo a secret *encoded*: JSON-escaped, URL-encoded, or base64 (a Basic
  `Authorization` header echoed back); each encoding is redacted as a whole;
- a server, a proxy or a size limit can cut its own text in the middle of a secret, so a
  *fragment* arrives: any run of `FRAGMENT` or more characters of a secret (or of one of
  its encodings) is redacted too, and so is a shorter piece of a secret's beginning at the
  very end of the text, where a cut leaves one;
- our own excerpts cut text: `excerpt()` redacts first and cuts afterwards, so a secret
  straddling the cut is gone before the cut can split it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
# Values shorter than this are not redacted: they would blank ordinary words.
MIN_SECRET = 4
# A run of this many characters of a secret is a fragment worth hiding.
FRAGMENT = 8
# At the end of a text (where a cut happens) a shorter start of a secret is hidden too.
TAIL_FRAGMENT = 4
DETAIL_LIMIT = 300

__all__ = ["DETAIL_LIMIT", "MASK", "Redactor", "excerpt"]


def _encodings(secret: str) -> list[str]:
    """The secret as servers echo it: raw, JSON-escaped, URL-encoded, base64 (each offset)."""
    forms = [
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret, safe=""),
        repr(secret)[1:-1],
    ]
    raw = secret.encode("utf-8", "replace")
    for offset in range(3):
        # Inside a longer base64 text the secret starts at any byte offset mod 3; only the
        # characters that encode its bytes alone are stable, the 4-character groups at
        # its edges also carry the neighbours' bits.
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * offset + raw).decode("ascii")
            start = 4 * ((offset + 2) // 3)
            end = 4 * ((offset + len(raw)) // 3)
            if end - start >= FRAGMENT:
                forms.append(encoded[start:end])
    return forms


class Redactor:
    """Replaces every form and every fragment of the given secrets with `***`."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        values = {v for s in secrets if s for v in (s, s.strip()) if len(v) >= MIN_SECRET}
        forms = {form for value in values for form in _encodings(value) if len(form) >= MIN_SECRET}
        # Longest first: a form that contains another is replaced whole.
        self._forms = sorted(forms, key=len, reverse=True)
        self._grams = {f[i : i + FRAGMENT] for f in forms for i in range(len(f) - FRAGMENT + 1)}
        self._heads = sorted(
            {v[:n] for v in values for n in range(TAIL_FRAGMENT, len(v))}, key=len, reverse=True
        )

    def __repr__(self) -> str:
        return f"Redactor({len(self._forms)} forms)"

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __call__(self, text: str, *, cut: bool = False) -> str:
        """text without any secret; `cut=True` when text may end where something cut it (a
        server's or a proxy's excerpt, a size limit): then a secret's first few characters
        at the very end are hidden as well."""
        if not self._forms or not text:
            return text
        text = self._fragments(self._whole(text))
        if cut:
            for head in self._heads:
                if text.endswith(head):
                    return text[: -len(head)] + MASK
        return text

    def scrub(self, data: Any) -> Any:
        """A parsed JSON reply with every whole secret (in any of its encodings) masked in its
        strings: what a server sends back, even with 2xx, may later be cut (a summary, an
        error excerpt) or written to a file or a pull request. Nesting is bounded by the
        JSON parser's own limit (httpio.MAX_DEPTH)."""
        if not self._forms:
            return data
        if isinstance(data, str):
            return self._whole(data)
        if isinstance(data, list):
            return [self.scrub(item) for item in data]
        if isinstance(data, dict):
            return {self._whole(k) if isinstance(k, str) else k: self.scrub(v) for k, v in data.items()}
        return data

    def _whole(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def _fragments(self, text: str) -> str:
        grams, size = self._grams, FRAGMENT
        hidden: list[tuple[int, int]] = []
        i = 0
        while i <= len(text) - size:
            if text[i : i + size] in grams:
                end = i + size
                while end < len(text) and text[end - size + 1 : end + 1] in grams:
                    end += 1
                hidden.append((i, end))
                i = end
            else:
                i += 1
        if not hidden:
            return text
        parts, last = [], 0
        for start, end in hidden:
            parts += [text[last:start], MASK]
            last = end
        parts.append(text[last:])
        return "".join(parts)


def excerpt(text: str, redact: Redactor, limit: int = DETAIL_LIMIT) -> str:
    """At most `limit` characters of text on one line, redacted BEFORE it is cut."""
    text = redact(" ".join(redact(text, cut=True).split()), cut=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"

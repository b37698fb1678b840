"""Unified diffs of metric fields, for terminals, PR bodies and conflict reports."""

from __future__ import annotations

import difflib
from typing import Any

from cekura_gitops.metric import normalise, thaw
from cekura_gitops.yamltext import render_scalar


def as_text(value: Any) -> str:
    """A field value as diffable text: strings as they are, the rest as YAML scalars."""
    value = normalise(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return render_scalar(thaw(value))


def field_diff(name: str, old: Any, new: Any, *, old_label: str, new_label: str, context: int = 3) -> str:
    """`--- old_label/name` / `+++ new_label/name` unified diff; '' when equal."""
    a, b = as_text(old), as_text(new)
    if a == b:
        return ""
    lines = difflib.unified_diff(
        _lines(a),
        _lines(b),
        fromfile=f"{old_label}/{name}",
        tofile=f"{new_label}/{name}",
        n=context,
    )
    text = "".join(lines)
    if a.endswith("\n") != b.endswith("\n"):
        # Lines are compared with a newline each; say so when only the final one differs.
        text += f"\\ final newline {'removed' if a.endswith(chr(10)) else 'added'}\n"
    return text


def _lines(text: str) -> list[str]:
    """Lines, each ending in a newline, so the last line diffs like any other."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return [line + "\n" for line in lines]

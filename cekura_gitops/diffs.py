"""Unified diffs of metric fields, for terminals, PR bodies and conflict reports."""

from __future__ import annotations

import difflib
from typing import Any

from cekura_gitops.metric import normalise
from cekura_gitops.yamltext import render_scalar


def as_text(value: Any) -> str:
    """A field value as diffable text: strings as they are, the rest as YAML scalars."""
    value = normalise(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return render_scalar(list(value) if isinstance(value, tuple) else value)


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
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _lines(text: str) -> list[str]:
    if not text:
        return []
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out

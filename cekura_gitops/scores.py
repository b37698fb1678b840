"""Scores on the Lab's labelled reviews: stored as numbers, rendered to text in `text` alone.

A score is `num_correct` of `num_total` reviews (the optimiser's `old_score`/`new_score`, a
re-score, the held-out guard), or a bare fraction when Cekura gives only `score`. Text
(`5/7`, `0.812`, `?`) is made at the edges — JSON, PR bodies, commit trailers, the
dashboard — by `text`, and read back from git history by `parse_text`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Score", "pair", "parse_text", "text"]

N = TypeVar("N", int, float)

MISSING = "?"


@dataclass(frozen=True)
class Score:
    num_correct: int | None
    num_total: int | None
    score: float | None = None

    @classmethod
    def of(cls, correct: int, total: int) -> Score:
        return cls(correct, total, None)

    @classmethod
    def parse(cls, data: Any) -> Score | None:
        """A score object of Cekura's JSON (`num_correct`, `num_total`, `score`), if it holds one."""
        if not isinstance(data, Mapping):
            return None
        correct, total = _number(data.get("num_correct"), int), _number(data.get("num_total"), int)
        score = _number(data.get("score"), float)
        if correct is None and score is None:
            return None
        return cls(correct, total, score)

    @property
    def value(self) -> float | None:
        """The score as a fraction of 1 (None when there is nothing to divide)."""
        if self.num_correct is not None and self.num_total:
            return self.num_correct / self.num_total
        return self.score

    def __str__(self) -> str:
        return text(self)

    def to_json(self) -> dict[str, Any]:
        return {"num_correct": self.num_correct, "num_total": self.num_total, "score": self.value}


def text(score: Score | None) -> str:
    """`c/t`, else the bare fraction to three decimals, else `?`: the one rendering of a score."""
    if score is None:
        return MISSING
    if score.num_correct is not None and score.num_total is not None:
        return f"{score.num_correct}/{score.num_total}"
    return f"{score.score:.3f}" if score.score is not None else MISSING


def pair(old: Score | None, new: Score | None) -> str:
    """`old → new`, as sync's reports, commits and pull requests show a change of score."""
    return f"{text(old)} → {text(new)}"


_TEXT = re.compile(r"(\d+)/(\d+)")


def parse_text(value: str | None) -> Score | None:
    """The score `text` rendered as `c/t` (as git history records it); None for anything else."""
    match = _TEXT.fullmatch(value) if isinstance(value, str) else None
    return Score.of(int(match[1]), int(match[2])) if match else None


def _number(v: Any, kind: Callable[[Any], N]) -> N | None:
    """v as a number of `kind` (int or float); None for a bool, None, "" or a non-number."""
    if isinstance(v, bool) or v is None or v == "":
        return None
    try:
        return kind(v)
    except (TypeError, ValueError):
        return None

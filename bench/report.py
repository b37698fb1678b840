"""What the benchmark prints: result sections, targets with PASS/MISS, and paired runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from harness import median, table

# correct: a correctness check (every metric proposed, one start per metric), enforced in
# --smoke too; target: one of the targets, enforced in a full run only.
Kind = Literal["correct", "target"]
T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    scenario: str
    target: str
    measured: str
    ok: bool
    kind: Kind


@dataclass(frozen=True)
class Section:
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]


@dataclass
class Report:
    sections: list[Section] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def section(self, title: str, headers: Sequence[str]) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        self.sections.append(Section(title, tuple(headers), rows))
        return rows

    def check(self, scenario: str, target: str, measured: str, ok: bool, kind: Kind = "target") -> None:
        self.targets.append(Target(scenario, target, measured, ok, kind))

    def render(self, *, smoke: bool) -> tuple[str, int]:
        """The printed report and the number of enforced failures."""
        parts = []
        for s in self.sections:
            parts += [f"{s.title}\n", table(s.headers, s.rows), ""]
        rows, failed = [], 0
        for t in self.targets:
            verdict = "PASS" if t.ok else "MISS"
            enforced = t.kind == "correct" or not smoke
            if not t.ok and enforced:
                failed += 1
            elif not t.ok:
                verdict += " (not enforced in --smoke)"
            rows.append((t.scenario, t.target, t.measured, verdict))
        parts += ["Targets\n", table(("scenario", "target", "measured", "result"), rows), ""]
        parts += [f"- {n}" for n in self.notes]
        return "\n".join(parts), failed


@dataclass(frozen=True)
class Paired:
    """Runs of A and B alternated A B A B ..., so slow spells of a shared machine hit both."""

    a: list[float]
    b: list[float]

    @property
    def ratios(self) -> list[float]:
        """B / A of each pair."""
        return [b / a for a, b in zip(self.a, self.b, strict=True)]

    @property
    def ratio(self) -> float:
        """The median of the per-pair ratios (not the ratio of medians)."""
        return median(self.ratios)

    def describe(self) -> str:
        return ", ".join(f"{r:.2f}" for r in self.ratios)


def alternate(pairs: int, a: Callable[[], float], b: Callable[[], float]) -> Paired:
    """Run a and b alternately `pairs` times each; each returns its measured wall time."""
    out_a, out_b = [], []
    for _ in range(pairs):
        out_a.append(a())
        out_b.append(b())
    return Paired(out_a, out_b)


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def med(values: Sequence[float]) -> str:
    return seconds(median(values)) + (f" (median of {len(values)})" if len(values) > 1 else "")

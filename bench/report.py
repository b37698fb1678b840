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
    why: str = ""  # printed under the table when the target is missed


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

    def check(
        self, scenario: str, target: str, measured: str, ok: bool, kind: Kind = "target", *, why: str = ""
    ) -> None:
        self.targets.append(Target(scenario, target, measured, ok, kind, why))

    def render(self, *, smoke: bool, markdown: bool = False) -> tuple[str, int]:
        """The printed report (plain, or Markdown for the README) and the enforced failures."""
        parts = []
        for s in self.sections:
            title = f"**{s.title}**\n" if markdown else f"{s.title}\n"
            parts += [title, table(s.headers, s.rows), ""]
        rows, failed = [], 0
        missed: dict[str, list[Target]] = {}  # one reason, the targets it explains
        for t in self.targets:
            verdict = "PASS" if t.ok else "MISS"
            enforced = t.kind == "correct" or not smoke
            if not t.ok and enforced:
                failed += 1
            elif not t.ok:
                verdict += " (not enforced in --smoke)"
            if not t.ok and t.why:
                missed.setdefault(t.why, []).append(t)
            rows.append((t.scenario, t.target, t.measured, verdict))
        parts += ["**Targets**\n" if markdown else "Targets\n"]
        parts += [table(("scenario", "target", "measured", "result"), rows), ""]
        if missed:
            parts += [
                "Missed, and why:\n",
                *(f"- {_missed(ts, why, markdown)}" for why, ts in missed.items()),
                "",
            ]
        parts += [f"- {n}" for n in self.notes]
        return "\n".join(parts).rstrip("\n") + "\n", failed


def _missed(targets: list[Target], why: str, markdown: bool) -> str:
    """The targets one reason explains (their scenarios, then the target once), and it."""
    names = ", ".join(f"**{t.scenario}**" if markdown else t.scenario for t in targets)
    if markdown and len({t.target for t in targets}) == 1:
        names += f" ({targets[0].target})"
    return f"{names}: {why}"


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

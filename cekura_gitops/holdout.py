"""The held-out guard: a proposal must win on labelled calls the optimiser never saw.

Cekura's own scheduler guards on the labels the optimiser learned from; a prompt tuned to
those can win there and lose on every other call (overfitting). With
`optimiser: {holdout: F}`:

1. **Split** — the test sets the optimiser would use split per metric into training and
   held-out by a hash of (metric id, test set id): a test set never changes side between
   runs, and a new one lands on a side by its own hash. About F of them are held out
   (at least one on each side).
2. **Train** — `process_feedbacks` receives only the training `test_set_ids`.
3. **Re-score** — the proposal's fields go to `run_reviews` as overrides with
   `skip_save: true` (nothing saved; billed by Cekura). Its reply is undocumented: the
   per-review verdicts are read from `review_results`, at the top level or under `output`.
4. **Guard** — the proposal's held-out score against the Lab's current verdicts on the
   same held-out reviews. A verdict missing for any held-out review is a `RescoreError`:
   a held-out score is never guessed.

Below `holdout_min` labelled reviews (counted before the split) the guard is off and says
why (`Plan.note`); the ordinary guard applies.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cekura_gitops.cekura import CekuraClient
from cekura_gitops.errors import RescoreError
from cekura_gitops.evidence import LabReview, ReviewResult, labelled, same_value
from cekura_gitops.metric import thaw
from cekura_gitops.proposal import Proposal, proposed_values
from cekura_gitops.scores import Score
from cekura_gitops.scoring import OVERRIDABLE

__all__ = ["HeldOutScore", "Plan", "Split", "plan", "rescore", "score", "side", "split"]

RESCORE_TIMEOUT = 15 * 60.0


@dataclass(frozen=True)
class Split:
    training: tuple[int, ...]
    held_out: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    """The guard for one run: a split, or None and why not (empty when holdout is off)."""

    split: Split | None
    note: str = ""


OFF = Plan(None)


@dataclass(frozen=True)
class HeldOutScore:
    old_correct: int
    new_correct: int
    total: int
    rescored: int  # reviews the re-score evaluated (what Cekura bills)

    @property
    def old(self) -> Score:
        return Score.of(self.old_correct, self.total)

    @property
    def new(self) -> Score:
        return Score.of(self.new_correct, self.total)

    def improved(self, min_improvement: float) -> bool:
        """Strictly better than the baseline by more than min_improvement (as a fraction)."""
        return (self.new_correct - self.old_correct) / self.total > min_improvement + 1e-12


def side(metric_id: int, test_set_id: int) -> float:
    """Where a test set falls in [0, 1) for this metric: fixed by the two ids alone."""
    digest = hashlib.sha256(f"cekura-gitops holdout {metric_id} {test_set_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(metric_id: int, test_set_ids: Iterable[int], fraction: float) -> Split:
    """Held out: the test sets whose side is below `fraction`; at least one on each side."""
    ids = sorted(set(test_set_ids), key=lambda t: (side(metric_id, t), t))
    held = [t for t in ids if side(metric_id, t) < fraction]
    if not held and len(ids) > 1:
        held = ids[:1]
    if len(held) == len(ids) and len(ids) > 1:
        held = ids[:-1]
    return Split(
        training=tuple(sorted(t for t in ids if t not in held)),
        held_out=tuple(sorted(held)),
    )


def plan(metric_id: int, reviews: Sequence[LabReview], fraction: float | None, minimum: int) -> Plan:
    """The split for this run, or why the ordinary guard applies instead.

    `reviews` are those the optimiser would use (its `test_set_ids`, else the whole Lab).
    """
    if fraction is None:
        return OFF
    marked = labelled(reviews)
    if len(marked) < minimum:
        return Plan(
            None,
            f"off for this run: {len(marked)} labelled review(s), optimiser.holdout_min is {minimum}; "
            "the ordinary guard applies",
        )
    chosen = split(metric_id, [r.test_set_id for r in marked if r.test_set_id is not None], fraction)
    held = {r.id for r in marked if r.test_set_id in chosen.held_out}
    if not chosen.training or not held:
        sets = len(chosen.training) + len(chosen.held_out)
        return Plan(
            None,
            f"off for this run: labelled reviews in {sets} test set(s) cannot be split into "
            "training and held-out; the ordinary guard applies",
        )
    return Plan(chosen)


def overrides(proposal: Proposal) -> dict[str, Any]:
    """The proposal's fields, as run_reviews overrides."""
    return {k: thaw(v) for k, v in proposed_values(proposal).items() if k in OVERRIDABLE}


def rescore(
    client: CekuraClient,
    metric_id: int,
    fields: Mapping[str, Any],
    *,
    timeout: float = RESCORE_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[ReviewResult, ...]:
    """Run the Lab's reviews with `fields` as overrides, saving nothing; the verdicts."""
    progress_id = client.run_reviews(metric_id, fields, skip_save=True)
    deadline = clock() + timeout
    delay = 0.25
    while True:
        report = client.run_reviews_progress(progress_id)
        if report.failed:
            error = report.error or report.message or report.status
            raise RescoreError(f"the held-out re-score failed: {error[:300]}")
        if report.done:
            found = report.review_results
            if found is None:
                raise RescoreError(
                    "the held-out re-score finished without per-review results (review_results); "
                    "a held-out score is never guessed: turn optimiser.holdout off for this metric"
                )
            return found
        if clock() > deadline:
            raise RescoreError(f"the held-out re-score gave no result in {int(timeout)} s")
        sleep(delay)
        delay = min(delay * 1.5, 10.0)


def score(reviews: Sequence[LabReview], chosen: Split, results: Sequence[ReviewResult]) -> HeldOutScore:
    """Baseline (the Lab's verdicts) and proposal (the re-score) on the held-out reviews."""
    held = [r for r in labelled(reviews) if r.test_set_id in chosen.held_out]
    verdicts = {r.review_id: r for r in results if r.success}
    missing = sorted(r.id for r in held if r.id not in verdicts)
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise RescoreError(
            f"the held-out re-score has no verdict for {len(missing)} held-out review(s) ({shown}); "
            "a held-out score is never guessed"
        )
    return HeldOutScore(
        old_correct=sum(same_value(r.actual, r.expected) for r in held),
        new_correct=sum(same_value(verdicts[r.id].actual, r.expected) for r in held),
        total=len(held),
        rescored=len(results),
    )

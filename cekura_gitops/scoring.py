"""`plan --score`: score the repo's and the live version of each changed prompt.

Uses `run_reviews` with field overrides and `skip_save: true` (cekura-api.md §4), so
nothing is saved; evaluations are billed, so only metrics whose scored fields changed
are run. The progress response is undocumented: we read `status` and a score as `score`
or `num_correct/num_total`, at the top level or under `output`, and fail clearly on
anything else.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cekura_gitops.cekura import CekuraClient
from cekura_gitops.changes import MetricPlan, PlanStatus
from cekura_gitops.console import Console
from cekura_gitops.errors import CekuraAPIError
from cekura_gitops.metric import thaw
from cekura_gitops.metric_files import MetricFile
from cekura_gitops.pool import parallel_map
from cekura_gitops.scores import Score, text

# Fields run_reviews accepts as overrides (RunReviewsRequest).
OVERRIDABLE = (
    "description",
    "type",
    "custom_code",
    "prompt",
    "evaluation_trigger",
    "trigger_type",
    "evaluation_trigger_prompt",
    "evaluation_trigger_custom_code",
)
TIMEOUT = 15 * 60.0


@dataclass(frozen=True)
class PlanScore:
    """Each version's score, or why it has none (a failed or unreadable re-score)."""

    live: Score | str
    repo: Score | str

    def __str__(self) -> str:
        return f"live {self.live_text} → repo {self.repo_text}"

    @property
    def live_text(self) -> str:
        return _text(self.live)

    @property
    def repo_text(self) -> str:
        return _text(self.repo)


def _text(outcome: Score | str) -> str:
    return text(outcome) if isinstance(outcome, Score) else outcome


def _run(client: CekuraClient, metric_id: int, overrides: Mapping[str, Any]) -> Score | str:
    progress_id = client.run_reviews(metric_id, overrides, skip_save=True)
    deadline = time.monotonic() + TIMEOUT
    delay = 0.5
    while True:
        report = client.run_reviews_progress(progress_id)
        if report.score is None and report.done:
            return f"unreadable (finished without a score: {sorted(report)})"
        if report.failed:
            return f"failed ({report.error or report.status})"
        if report.done and report.score is not None:
            return report.score
        if time.monotonic() > deadline:
            return "timed out"
        time.sleep(delay)
        delay = min(delay * 1.5, 10.0)


def score_changes(
    client: CekuraClient, files: Sequence[MetricFile], plans: Sequence[MetricPlan], console: Console
) -> dict[str, PlanScore]:
    """Scores for changed metrics whose scored fields differ; the rest are not run."""
    by_slug = {f.metric.slug: f for f in files}
    targets = [
        p
        for p in plans
        if p.status is PlanStatus.CHANGED
        and p.id is not None
        and any(c.name in OVERRIDABLE for c in p.changes)
    ]

    def one(p: MetricPlan) -> tuple[str, PlanScore]:
        assert p.id is not None
        metric = by_slug[p.slug].metric
        overrides = {k: thaw(v) for k, v in metric.fields.items() if k in OVERRIDABLE}
        try:
            live, repo = parallel_map(lambda o: _run(client, p.id or 0, o), [{}, overrides], 2)
        except CekuraAPIError as err:
            live = repo = f"error: {err}"
        return p.slug, PlanScore(live, repo)

    if targets:
        console.say(
            f"scoring {len(targets)} changed metric(s) on the Lab's labelled reviews (billed by Cekura)..."
        )
    return dict(parallel_map(one, targets, 4))

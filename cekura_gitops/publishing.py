"""What sync hands to a publisher: one proposal or drift per branch, and what came of it.

`Publisher` is the seam between sync (which writes branches) and whatever opens pull
requests for them (`pullrequests.GitHubPublisher`; the demo's own publisher).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cekura_gitops.branches import BranchResult
from cekura_gitops.evidence import Evidence
from cekura_gitops.metric_files import MetricFile
from cekura_gitops.prbody import HoldoutScores
from cekura_gitops.proposal import Proposal
from cekura_gitops.replies import LiveMetric


@dataclass(frozen=True)
class ProposalContext:
    """Everything a pull request about one proposal needs."""

    file: MetricFile
    branch: str
    base_branch: str
    proposal: Proposal
    changes: Mapping[str, Any]
    before: Mapping[str, Any]
    content_hash: str
    progress_id: str
    new_text: str
    evidence: Evidence | None = None
    holdout: HoldoutScores | None = None
    holdout_note: str = ""


@dataclass(frozen=True)
class DriftContext:
    file: MetricFile
    branch: str
    base_branch: str
    live: LiveMetric
    changes: Mapping[str, Any]


@dataclass(frozen=True)
class Published:
    url: str | None
    created: bool = False
    skipped_cap: bool = False
    detail: str = ""


class Publisher(Protocol):
    """Pull requests for sync's branches (GitHub); absent with --no-pr."""

    def default_branch(self) -> str: ...
    def is_rejected(self, branches: Sequence[str], metric_id: int, content_hash: str) -> bool: ...
    def may_open(self, branch: str) -> bool: ...
    def reserve_writes(self) -> bool: ...
    def release_writes(self) -> None: ...
    def publish_proposal(self, ctx: ProposalContext, result: BranchResult) -> Published: ...
    def publish_drift(self, ctx: DriftContext, result: BranchResult) -> Published: ...
    def human_edited(self, branch: str, result: BranchResult) -> Published: ...

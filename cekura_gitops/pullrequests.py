"""One pull request per metric branch on GitHub: open, update in place, respect humans.

- The PR is found by its head branch (no database): `pulls?head=owner:branch`.
- Creating is never blindly resent: a 422 "already exists" or an ambiguous failure is
  answered by listing again (github-notes §6); only when the list shows nothing after an
  ambiguous failure is the create sent once more (GitHub refuses a second open PR).
- A closed, unmerged PR whose machine block holds the same proposal hash means the
  proposal was rejected; it is not proposed again.
- Caps (`max_new_per_run`, `max_open`) are counted once per run, under a lock, since
  metrics are handled concurrently.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cekura_gitops import evidence_body, prbody, scores
from cekura_gitops.branches import BranchResult
from cekura_gitops.console import Console
from cekura_gitops.errors import GitHubAPIError
from cekura_gitops.github import GitHubClient, PullRequest, PullRequestExists
from cekura_gitops.publishing import DriftContext, ProposalContext, Published
from cekura_gitops.settings import PullRequestSettings

ACTIONS_BOT = "github-actions[bot]"


@dataclass
class GitHubPublisher:
    client: GitHubClient
    console: Console
    config: PullRequestSettings
    branch_prefix: str
    dashboard_url: str
    auto_apply_default: bool = False
    api_commits: bool = False
    _default_branch: str | None = None
    _open_bot_prs: int | None = None
    _new_this_run: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _warned_token: bool = False

    # -- queries ---------------------------------------------------------------------------

    def default_branch(self) -> str:
        if self._default_branch is None:
            self._default_branch = self.client.get_repo().default_branch
        return self._default_branch

    def _pulls(self, branch: str, state: str) -> list[PullRequest]:
        return self.client.list_pulls(head_branch=branch, state=state)

    def open_pull(self, branch: str) -> PullRequest | None:
        pulls = [p for p in self._pulls(branch, "open") if p.head_ref == branch]
        return pulls[0] if pulls else None

    def is_rejected(self, branches: Sequence[str], metric_id: int, content_hash: str) -> bool:
        """A closed, unmerged PR of this metric (on any branch it has had) proposed this.

        The machine block names the metric id: after a rename the old branch's PRs are
        still this metric's, and a PR of another metric that once had the slug is not.
        """
        for branch in branches:
            for pr in self._pulls(branch, "closed"):
                machine = prbody.read_machine(pr.body)
                if (
                    pr.head_ref == branch
                    and not pr.merged
                    and machine.get("proposal") == content_hash
                    and machine.get("metric_id") in (metric_id, None)
                ):
                    return True
        return False

    def may_open(self, branch: str) -> bool:
        """True if the branch already has a PR or a new one fits the caps (reserving it)."""
        if self.open_pull(branch) is not None:
            return True
        with self._lock:
            if self._open_bot_prs is None:
                prefix = f"{self.branch_prefix}/"
                self._open_bot_prs = sum(
                    1 for p in self.client.list_pulls(state="open") if p.head_ref.startswith(prefix)
                )
            if self._new_this_run >= self.config.max_new_per_run:
                return False
            if self._open_bot_prs >= self.config.max_open:
                return False
            self._new_this_run += 1
            self._open_bot_prs += 1
            return True

    def reserve_writes(self) -> bool:
        """Book one metric's GitHub writes against the run's hourly budget (pacer.py)."""
        return self.client.pacer.reserve(self._writes_per_metric())

    def release_writes(self) -> None:
        self.client.pacer.release()

    def _writes_per_metric(self) -> int:
        # Create or update the PR, plus labels, reviewers and auto-merge when configured, and
        # the four Git Data requests of a commit made through the API.
        config = self.config
        extra = (
            bool(config.labels) + bool(config.reviewers or config.team_reviewers) + self.auto_apply_default
        )
        return 1 + int(extra) + (4 if self.api_commits else 0)

    # -- writes ----------------------------------------------------------------------------

    def publish_proposal(self, ctx: ProposalContext, result: BranchResult) -> Published:
        auto = self._auto_apply(ctx)
        note = ""
        if auto == "auto":
            note = "_Auto-apply is on for this metric: GitHub merges this PR once its checks pass._"
        elif auto is None and ctx.proposal.label_changes and self._wants_auto_apply(ctx):
            note = "_Auto-apply is on for this metric, but not for this PR: the optimiser changed labels._"
        title, section = proposal_pr(ctx, self.dashboard_url, note)
        pr, created = self._upsert(ctx.branch, ctx.base_branch, title, section)
        if ctx.proposal.label_changes:
            self._hold_for_review(pr)
        if auto:
            self._auto_merge(pr, auto)
        return Published(pr.html_url, created=created)

    def publish_drift(self, ctx: DriftContext, result: BranchResult) -> Published:
        m = ctx.file.metric
        fields = [prbody.FieldDiff(k, m.fields.get(k), v) for k, v in ctx.changes.items()]
        machine = {"version": 1, "kind": "drift", "slug": m.slug, "metric_id": m.id}
        section = prbody.drift_section(
            slug=m.slug,
            metric_id=m.id,
            dashboard_url=self.dashboard_url,
            base_branch=ctx.base_branch,
            fields=fields,
            machine=machine,
        )
        pr, created = self._upsert(
            ctx.branch, ctx.base_branch, f"Drift: {m.slug} was changed in Cekura", section
        )
        return Published(pr.html_url, created=created)

    def human_edited(self, branch: str, result: BranchResult) -> Published:
        """Say once, on the PR, why the bot stopped updating this branch."""
        pr = self.open_pull(branch)
        if pr is None:
            return Published(None, detail="no open pull request for the edited branch")
        existing = self.client.list_comments(pr.number)
        if not any(prbody.HUMAN_EDIT_MARKER in c.body for c in existing):
            authors = [c.author_email for c in result.human_commits]
            self.client.create_comment(pr.number, prbody.human_edit_comment(branch, authors))
        return Published(pr.html_url)

    def _upsert(self, branch: str, base: str, title: str, section: str) -> tuple[PullRequest, bool]:
        pr = self.open_pull(branch)
        if pr is not None:
            return self._updated(pr, title, section), False
        body = prbody.merge_body(None, section)
        for resend in (False, True):
            try:
                pr = self.client.create_pull(
                    head=branch, base=base, title=title, body=body, draft=self.config.draft
                )
            except (PullRequestExists, GitHubAPIError) as err:
                if not isinstance(err, PullRequestExists) and not err.ambiguous:
                    raise
                # Someone (another run, or our own request that did land) created it: list again.
                found = self.open_pull(branch)
                if found is not None:
                    return self._updated(found, title, section), False
                if isinstance(err, PullRequestExists) or resend:
                    raise
                # The create may or may not have landed, and the list shows nothing: send it
                # once more. Safe even if the list lags behind a create that did land, since
                # GitHub keeps one open PR per head branch and refuses a second with the 422.
                continue
            self._after_create(pr)
            return pr, True
        raise AssertionError("unreachable")  # pragma: no cover - the second pass returns or raises

    def _updated(self, pr: PullRequest, title: str, section: str) -> PullRequest:
        """The open PR with this run's title and section (unchanged: not written)."""
        body = prbody.merge_body(pr.body, section)
        if body != pr.body or title != pr.title:
            return self.client.update_pull(pr.number, title=title, body=body)
        return pr

    def _after_create(self, pr: PullRequest) -> None:
        if pr.user_login == ACTIONS_BOT and not self._warned_token:
            self._warned_token = True
            self.console.warn(
                "pull requests opened with the Actions GITHUB_TOKEN trigger no workflows (no CI on "
                "them); use a GitHub App token (see README: 'GitHub App')"
            )
        try:
            if self.config.labels:
                self.client.add_labels(pr.number, self.config.labels)
            if self.config.reviewers or self.config.team_reviewers:
                self.client.request_reviewers(pr.number, self.config.reviewers, self.config.team_reviewers)
        except GitHubAPIError as err:
            self.console.warn(f"{pr.html_url}: could not add labels or reviewers: {err}")

    def _hold_for_review(self, pr: PullRequest) -> None:
        """Label a proposal whose labels changed, and stop GitHub merging it by itself.

        Auto-merge may be on from an earlier proposal on the same PR: GitHub keeps it on
        when the bot pushes a new one, so it is turned off here.
        """
        try:
            self.client.add_labels(pr.number, [evidence_body.LABEL])
        except GitHubAPIError as err:
            self.console.warn(f"{pr.html_url}: could not add the label {evidence_body.LABEL}: {err}")
        if pr.auto_merge:
            try:
                self.client.disable_auto_merge(pr.node_id)
            except GitHubAPIError as err:
                self.console.warn(f"{pr.html_url}: could not turn auto-merge off; turn it off by hand: {err}")

    def _wants_auto_apply(self, ctx: ProposalContext) -> bool:
        opt = ctx.file.metric.optimiser
        return self.auto_apply_default if opt.auto_apply is None else opt.auto_apply

    def _auto_apply(self, ctx: ProposalContext) -> str | None:
        opt = ctx.file.metric.optimiser
        if not self._wants_auto_apply(ctx):
            return None
        if opt.critical:
            self.console.warn(f"{ctx.file.metric.slug}: auto_apply refused for a critical metric")
            return None
        if ctx.proposal.label_changes:
            # A proposal scored against labels nobody approved needs a person's eyes.
            self.console.warn(f"{ctx.file.metric.slug}: not auto-applied: the optimiser changed labels")
            return None
        return "direct" if self.config.merge == "direct" else "auto"

    def _auto_merge(self, pr: PullRequest, mode: str) -> None:
        try:
            if mode == "direct":
                self.client.merge_pull(pr.number, merge_method="squash")
            else:
                self.client.enable_auto_merge(pr.node_id, merge_method="SQUASH")
        except GitHubAPIError as err:
            self.console.warn(f"{pr.html_url}: could not enable auto-merge: {err}")


def proposal_pr(ctx: ProposalContext, dashboard_url: str, auto_merge_note: str = "") -> tuple[str, str]:
    """(title, the tool's body section) of the pull request for one proposal."""
    m, p = ctx.file.metric, ctx.proposal
    old = scores.text(p.old_score) if p.old_score else None
    new = scores.text(p.new_score) if p.new_score else None
    machine: dict[str, Any] = {
        "version": 1,
        "kind": "optimise",
        "slug": m.slug,
        "metric_id": m.id,
        "progress_id": ctx.progress_id,
        "proposal": ctx.content_hash,
        "old_score": old,
        "new_score": new,
        "label_changes": len(p.label_changes),
    }
    if ctx.evidence is not None:
        machine["evidence"] = ctx.evidence.to_json()
    if ctx.holdout is not None:
        machine["holdout_old_score"] = scores.text(ctx.holdout.old)
        machine["holdout_new_score"] = scores.text(ctx.holdout.new)
    section = prbody.proposal_section(
        slug=m.slug,
        name=str(m.fields.get("name", m.slug)),
        metric_id=m.id,
        dashboard_url=dashboard_url,
        old_score=old,
        new_score=new,
        summary=p.summary,
        unresolved=p.unresolved_samples,
        fields=[prbody.FieldDiff(k, ctx.before.get(k), v) for k, v in ctx.changes.items()],
        machine=machine,
        auto_merge_note=auto_merge_note,
        evidence=ctx.evidence,
        label_changes=p.label_changes,
        holdout=ctx.holdout,
        holdout_note=ctx.holdout_note,
    )
    title = f"Optimise {m.slug}: {scores.pair(p.old_score, p.new_score)}"
    if ctx.holdout is not None:
        title += f" (held-out {scores.pair(ctx.holdout.old, ctx.holdout.new)})"
    if ctx.evidence is not None and ctx.evidence.broken:
        title += f" — breaks {ctx.evidence.broken}"
    if p.label_changes:
        title += " — labels changed"
    return title, section


PLAN_MARKER = "<!-- cekura-gitops:plan -->"


def upsert_sticky_comment(client: GitHubClient, number: int, body: str, marker: str = PLAN_MARKER) -> str:
    """Create or update the one comment carrying marker; returns its URL.

    Only a bot's comment is adopted: anyone can write the marker into a comment of their
    own, and the tool must not take over (or be steered by) a human's comment.
    """
    text = f"{marker}\n{body}"
    for comment in client.list_comments(number):
        if comment.body.startswith(marker) and comment.user_login.endswith("[bot]"):
            if comment.body != text:
                return client.update_comment(comment.id, text).html_url
            return comment.html_url
    return client.create_comment(number, text).html_url


__all__: Sequence[str] = ["GitHubPublisher", "upsert_sticky_comment"]

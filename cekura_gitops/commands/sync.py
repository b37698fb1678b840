"""`cekura-gitops sync`: optimise each metric and propose improvements on branches/PRs."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cekura_gitops import (
    actions,
    crashpoints,
    dashboard,
    evidence,
    feedback,
    githistory,
    holdout,
    markdown,
    metric_files,
    scores,
)
from cekura_gitops.apicommits import ApiCommitter
from cekura_gitops.board import ProgressBoard
from cekura_gitops.branches import BranchResult, BranchStatus, BranchWriter
from cekura_gitops.cekura import CekuraClient
from cekura_gitops.changes import field_changes
from cekura_gitops.clients import cekura_client, git_repo, github_client
from cekura_gitops.console import Console
from cekura_gitops.defaultbranch import default_branch
from cekura_gitops.errors import (
    EXIT_INTERRUPTED,
    CekuraAPIError,
    ConfigError,
    GitError,
    GitOpsError,
    Interrupted,
    MetricValidationError,
    RescoreError,
)
from cekura_gitops.evidence import Evidence
from cekura_gitops.github import GitHubClient
from cekura_gitops.githubaccess import access_for
from cekura_gitops.gitrepo import GitRepo, Identity
from cekura_gitops.interrupts import StopSignal
from cekura_gitops.livereads import LiveReads
from cekura_gitops.metric import thaw
from cekura_gitops.metric_files import MetricFile
from cekura_gitops.metricsdir import load_files, metrics_folder
from cekura_gitops.optimiser import Optimisation, Optimiser, Outcome, run_owner
from cekura_gitops.pool import parallel_map
from cekura_gitops.prbody import HoldoutScores
from cekura_gitops.progress import ProgressState
from cekura_gitops.proposal import Proposal, Verdict, changes_for, judge
from cekura_gitops.publishing import DriftContext, ProposalContext, Publisher
from cekura_gitops.pullrequests import GitHubPublisher
from cekura_gitops.replies import LiveMetric
from cekura_gitops.scores import Score
from cekura_gitops.selection import in_shard, select
from cekura_gitops.settings import Settings
from cekura_gitops.statestore import STATE_REFSPEC, Activity, Gathering, State, StateStore
from cekura_gitops.statuses import SyncStatus

FAILED_STATUSES = frozenset({SyncStatus.ERROR})


# Threads for a sync's metrics: twice --concurrency, so that metrics needing no run do not
# hold up those waiting for a slot, and at most this many. A thread following a run mostly
# sleeps, so `--concurrency 100` follows 100 runs at once; the bound only keeps a mistyped
# value from starting thousands of threads.
MAX_WORKERS = 256


@dataclass(frozen=True)
class SyncResult:
    slug: str
    id: int | None
    status: SyncStatus
    detail: str = ""
    old_score: Score | None = None
    new_score: Score | None = None
    branch: str | None = None
    pull_request: str | None = None
    progress_id: str | None = None
    fields: tuple[str, ...] = ()
    evidence: Mapping[str, int] | None = None
    label_changes: int | None = None
    holdout_old_score: Score | None = None
    holdout_new_score: Score | None = None
    holdout_note: str = ""
    rescored: int = 0
    restores: str | None = None  # oscillation: the commit whose version the proposal restores

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"slug": self.slug, "id": self.id, "status": self.status.value}
        for key in (
            "detail",
            "old_score",
            "new_score",
            "branch",
            "pull_request",
            "progress_id",
            "holdout_old_score",
            "holdout_new_score",
            "holdout_note",
            "restores",
        ):
            value = getattr(self, key)
            if value:
                doc[key] = scores.text(value) if isinstance(value, Score) else value
        if self.fields:
            doc["fields"] = list(self.fields)
        if self.evidence is not None:
            doc["evidence"] = dict(self.evidence)
        if self.label_changes is not None:
            doc["label_changes"] = self.label_changes
        if self.rescored:
            doc["rescored"] = self.rescored
        return doc


@dataclass
class SyncSession:
    """One sync invocation's shared parts."""

    settings: Settings
    console: Console
    repo: GitRepo
    optimiser: Optimiser
    writer: BranchWriter
    base: str
    base_branch: str
    metrics_rel: str
    force: bool
    publisher: Publisher | None
    board: ProgressBoard
    # Earlier versions of each file, for the oscillation check: read while the runs go on.
    history: githistory.EarlierVersions
    # Each metric file as the default branch has it (by path), read in one git process.
    at_base: Mapping[str, bytes | None]
    # The live metrics, read while the git work went on, and the Cekura client that read them.
    live: LiveReads
    # --concurrency bounds optimisations in flight (the load on Cekura); the git and HTTP
    # work before and after a run overlaps other metrics' runs.
    slots: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(8))
    stop: StopSignal = field(default_factory=StopSignal)
    shard: tuple[int, int] | None = None
    # The metrics still at work: pushes stop waiting for company once all have queued.
    activity: Activity | None = None


def sync(
    settings: Settings,
    console: Console,
    *,
    selectors: Sequence[str] = (),
    shard: tuple[int, int] | None = None,
    push: bool = True,
    open_prs: bool = True,
    force: bool = False,
    publisher: Publisher | None = None,
) -> int:
    """Optimise every enabled metric (or those named) and report one status each."""
    every = load_files(settings)
    files = [f for f in select(every, selectors) if in_shard(f.metric.slug, shard)]
    files = [f for f in files if _enabled(f, settings) or selectors]
    repo = git_repo(settings)
    remote = settings.remote if repo.has_remote(settings.remote) else None
    if push and remote is None:
        raise ConfigError(f"no git remote {settings.remote!r} to push to: add one, or run with --no-push")
    stop = StopSignal()
    with contextlib.ExitStack() as closing:
        # The run's one GitHub client: pull requests, API commits and the dashboard.
        github = github_client(settings, sleep=stop.sleep) if settings.github_configured else None
        if github is not None:
            closing.callback(github.close)
        with stop:
            results, history = _sync_all(
                settings,
                console,
                files,
                every,
                repo,
                remote,
                github,
                stop,
                push=push,
                open_prs=open_prs,
                force=force,
                publisher=publisher,
                shard=shard,
            )
        code = report(settings, console, results)
        if stop.stopped:
            console.warn(
                "interrupted: optimisations already started go on in Cekura; their progress ids are "
                "in refs/cekura-gitops/state, and the next sync resumes them"
            )
            return EXIT_INTERRUPTED
        if history is not None and github is not None:
            _publish_dashboard(settings, console, github, results, every, history, failed=code != 0)
    return code


def _publish_dashboard(
    settings: Settings,
    console: Console,
    github: GitHubClient,
    results: Sequence[SyncResult],
    every: Sequence[MetricFile],
    history: dict[str, list[githistory.ScorePoint]],
    *,
    failed: bool,
) -> None:
    dashboard.publish(
        github,
        console,
        dashboard.RunInfo(
            trigger=settings.github_event_name or "manual",
            url=actions.run_url(
                settings.github_server_url, settings.github_repository, settings.github_run_id
            ),
            notify_on=settings.notify_on,
            mention=settings.notify_mention,
        ),
        command="sync",
        rows=[_dashboard_row(r) for r in results],
        managed=[f.metric.slug for f in every],
        failed=failed,
        history=history,
    )


def _sync_all(
    settings: Settings,
    console: Console,
    files: Sequence[MetricFile],
    every: Sequence[MetricFile],
    repo: GitRepo,
    remote: str | None,
    github: GitHubClient | None,
    stop: StopSignal,
    *,
    push: bool,
    open_prs: bool,
    force: bool,
    publisher: Publisher | None,
    shard: tuple[int, int] | None,
) -> tuple[list[SyncResult], dict[str, list[githistory.ScorePoint]] | None]:
    """Every metric's result, and the merged proposals' scores when the dashboard is due
    (None: pull requests do not go to GitHub, or the run was stopped)."""
    on_github = False
    if open_prs and publisher is None:
        publisher = _github_publisher(settings, console, push, github)
        on_github = publisher is not None
    if on_github and shard is not None and github is not None:
        # Shards run at once as one identity: each takes its share of the write budget.
        github.pacer.share(shard[1])
    aliases = {f.metric.slug: f.metric.id for f in every if f.metric.id is not None}
    try:
        results = _sync_files(
            settings, console, files, repo, remote, publisher, push, force, aliases, stop, github, shard
        )
    except GitOpsError as err:
        if stop.stopped and not isinstance(err, Interrupted):
            raise Interrupted(f"interrupted ({err})") from None  # e.g. git killed by Ctrl-C
        raise
    if not on_github or stop.stopped:
        return results, None
    return results, _score_history(settings, repo, remote, publisher)


def _score_history(
    settings: Settings, repo: GitRepo, remote: str | None, publisher: Publisher | None
) -> dict[str, list[githistory.ScorePoint]]:
    """Merged proposals' scores, from the default branch as this run fetched it."""
    if publisher is None:
        return {}
    branch = publisher.default_branch()
    rev = (repo.rev_parse(f"refs/remotes/{remote}/{branch}") if remote else None) or repo.rev_parse(
        f"refs/heads/{branch}"
    )
    if rev is None:
        return {}
    return githistory.score_history(repo, rev, metrics_folder(settings, repo))


def _dashboard_row(r: SyncResult) -> dashboard.Row:
    return dashboard.Row(r.slug, r.status, r.old_score, r.new_score, r.pull_request or "", r.detail)


def _sync_files(
    settings: Settings,
    console: Console,
    files: Sequence[MetricFile],
    repo: GitRepo,
    remote: str | None,
    publisher: Publisher | None,
    push: bool,
    force: bool,
    aliases: Mapping[str, int],
    stop: StopSignal,
    github: GitHubClient | None,
    shard: tuple[int, int] | None = None,
) -> list[SyncResult]:
    workers = min(MAX_WORKERS, 2 * settings.concurrency)
    ids = [f.metric.id for f in files if f.metric.id is not None]
    # The live metrics are read while the git work below goes on (livereads.py).
    with LiveReads(lambda: cekura_client(settings, sleep=stop.sleep), ids, workers) as live:
        api = publisher.default_branch if publisher else None
        base_branch = default_branch(settings, repo, remote, api=api)
        identity = Identity(settings.author_name, settings.author_email)
        # The metrics the pool starts at once: their claims wait for each other (one push). A
        # metric the pool takes up later cannot claim soon, so nobody waits for it.
        gathering = Gathering(f.metric.slug for f in files[:workers])
        activity = Activity(len(files))
        store = StateStore(repo, remote, identity, aliases=aliases, gathering=gathering, activity=activity)
        metrics_rel = metrics_folder(settings, repo)
        writer = _branch_writer(settings, repo, identity, remote if push else None, github, store, activity)
        base = _base_commit(
            repo, remote, base_branch, (*writer.refspecs(settings.branch_prefix), STATE_REFSPEC)
        )
        writer.prime(settings.branch_prefix)
        store.prime()
        history = githistory.EarlierVersions(repo, base)
        at_base = _files_at(repo, base, [_rel_path(metrics_rel, f) for f in files])
        with ProgressBoard(console) as board:
            optimiser = _optimiser(settings, live.client, store, stop, board, history, gathering)
            session = SyncSession(
                settings,
                console,
                repo,
                optimiser,
                writer,
                base,
                base_branch,
                metrics_rel,
                force,
                publisher,
                board,
                history,
                at_base,
                live,
                threading.Semaphore(settings.concurrency),
                stop,
                shard,
                activity,
            )
            console.say(f"sync: {len(files)} metric(s) on {base_branch} @ {base[:8]}")
            return _sync_each(session, files, workers, store)


def _files_at(repo: GitRepo, commit: str, rels: Sequence[str]) -> dict[str, bytes | None]:
    """Each file's content at commit, by path (None: not there), read in one git process."""
    blobs = repo.read_blobs([f"{commit}:{rel}" for rel in rels])
    return {rel: blobs[f"{commit}:{rel}"] for rel in rels}


def _sync_each(
    session: SyncSession, files: Sequence[MetricFile], workers: int, store: StateStore
) -> list[SyncResult]:
    try:
        results = parallel_map(lambda f: _guarded(session, f), files, workers)
    finally:
        session.history.close()
    store.flush()  # the finishes that waited to share a push
    return results


def _optimiser(
    settings: Settings,
    client: CekuraClient,
    store: StateStore,
    stop: StopSignal,
    board: ProgressBoard,
    history: githistory.EarlierVersions,
    gathering: Gathering,
) -> Optimiser:
    def polled(slug: str, status: str, elapsed: float) -> None:
        board.update(slug, status, elapsed)
        history.read_ahead(slug)  # the run is in flight: its file's history is read now

    return Optimiser(
        client,
        store,
        settings.optimiser.timeout,
        stop=stop.event,
        on_poll=polled,
        owner=run_owner(settings.github_run_id),
        gathering=gathering,
    )


def _branch_writer(
    settings: Settings,
    repo: GitRepo,
    identity: Identity,
    remote: str | None,
    github: GitHubClient | None,
    store: StateStore,
    activity: Activity,
) -> BranchWriter:
    """Bot branches by git push (guarded by the state ref: one atomic push checks the run is
    still ours), or (`git: {commit_via: api}`) made by GitHub and signed."""
    if github is None:
        if settings.commit_via == "api" and remote is not None:
            raise ConfigError(
                "git.commit_via: api creates commits through GitHub's API: set GITHUB_REPOSITORY "
                "and a GitHub App (CEKURA_GITOPS_APP_ID, CEKURA_GITOPS_APP_PRIVATE_KEY) or GITHUB_TOKEN"
            )
        return BranchWriter(repo, identity, remote, state=store, activity=activity)
    login = access_for(settings).bot_login()
    if settings.commit_via != "api" or remote is None:
        return BranchWriter(repo, identity, remote, bot_login=login, state=store, activity=activity)
    if login is None:
        raise ConfigError(
            "git.commit_via: api needs a GitHub App (CEKURA_GITOPS_APP_ID, "
            "CEKURA_GITOPS_APP_PRIVATE_KEY) or the Actions GITHUB_TOKEN: GitHub authors those "
            "commits, and sync must recognise them as its own"
        )
    return BranchWriter(
        repo, identity, remote, committer=ApiCommitter(github, repo), bot_login=login, activity=activity
    )


def _enabled(f: MetricFile, settings: Settings) -> bool:
    value = f.metric.optimiser.enabled
    return settings.optimiser.enabled if value is None else value


def _github_publisher(
    settings: Settings, console: Console, push: bool, github: GitHubClient | None
) -> Publisher | None:
    if not push:
        console.warn("--no-push: pull requests need pushed branches; not opening any")
        return None
    if github is None:
        console.warn(
            "GITHUB_TOKEN or GITHUB_REPOSITORY is not set: branches are pushed but no pull "
            "requests are opened (pass --no-pr to silence this)"
        )
        return None
    return GitHubPublisher(
        github,
        console,
        settings.pull_requests,
        settings.branch_prefix,
        settings.dashboard_url,
        auto_apply_default=settings.optimiser.auto_apply,
        api_commits=settings.commit_via == "api",
    )


def _base_commit(repo: GitRepo, remote: str | None, branch: str, also: Sequence[str] = ()) -> str:
    """The default branch's tip, fetched with `also` (every bot branch and the state ref):
    everything sync reads from the remote, in one round trip."""
    if remote:
        repo.fetch(remote, f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}", *also, prune=True)
        sha = repo.rev_parse(f"refs/remotes/{remote}/{branch}")
    else:
        sha = repo.rev_parse(f"refs/heads/{branch}") or repo.rev_parse("HEAD")
    if sha is None:
        raise GitError(f"default branch {branch!r} not found: push it first")
    return sha


def _guarded(session: SyncSession, f: MetricFile) -> SyncResult:
    """One metric; its failure is a result, never an exception that stops the others."""
    try:
        session.stop.check("starting")
        result = _sync_one(session, f)
    except Interrupted as err:
        result = SyncResult(
            f.metric.slug, f.metric.id, SyncStatus.INTERRUPTED, f"{err}; the next sync goes on"
        )
    except GitOpsError as err:
        if err.stops_run:  # a refused key: one line for the run, not one per metric
            raise
        # A git child shares the terminal's process group: Ctrl-C kills it too.
        status = SyncStatus.INTERRUPTED if session.stop.stopped else SyncStatus.ERROR
        result = SyncResult(f.metric.slug, f.metric.id, status, str(err))
    finally:
        if session.optimiser.gathering is not None:
            session.optimiser.gathering.done(f.metric.slug)  # no claim (any more): others need not wait
        if session.publisher is not None:
            session.publisher.release_writes()  # what this metric booked and did not write
        if session.activity is not None:
            session.activity.done()
    session.board.done(f.metric.slug)
    session.console.say(_line(result))
    return result


def _rel(session: SyncSession, f: MetricFile) -> str:
    """The metric file's path in the repository."""
    return _rel_path(session.metrics_rel, f)


def _rel_path(metrics_rel: str, f: MetricFile) -> str:
    return f"{metrics_rel}/{f.path.name}" if metrics_rel != "." else f.path.name


def _at_base(session: SyncSession, f: MetricFile) -> MetricFile | None:
    """The metric file as the default branch has it (proposals are cut from there)."""
    rel = _rel(session, f)
    parsed = metric_files.parse_blob(session.at_base[rel], rel, file_stem=f.metric.slug)
    return replace(parsed, path=f.path) if parsed is not None else None


def _sync_one(session: SyncSession, working: MetricFile) -> SyncResult:
    slug, metric_id = working.metric.slug, working.metric.id
    try:
        f = _at_base(session, working)
    except MetricValidationError as err:
        return SyncResult(slug, metric_id, SyncStatus.ERROR, f"invalid on {session.base_branch}: {err}")
    if f is None:
        return SyncResult(
            slug, metric_id, SyncStatus.ERROR, f"not on {session.base_branch} yet: commit and push it"
        )
    if metric_id is None:
        return SyncResult(slug, None, SyncStatus.MISSING_LIVE, "no id: merge the file so apply creates it")
    session.board.update(slug, "checking")
    try:
        live = session.live.get(metric_id)
    except CekuraAPIError as err:
        if err.status == 404:
            return SyncResult(slug, metric_id, SyncStatus.MISSING_LIVE, "no live metric with this id")
        raise
    record = session.optimiser.existing(session.optimiser.store.load(), metric_id)
    reviews = feedback.relevant(live.review_items, f.metric.optimiser.test_set_ids)
    fingerprint = feedback.fingerprint(reviews)
    if record is None:
        drift = field_changes(f.metric, live)
        if drift:
            return _drift(session, f, live, {c.name: c.live for c in drift})
        gate = _gate(session, f, reviews, fingerprint)
        if gate is not None:
            return gate
    if session.publisher is not None and not session.publisher.reserve_writes():
        # Checked before the optimiser runs: no credits are spent on a proposal this run
        # could not publish, and nothing is recorded, so the next run takes the metric up.
        return SyncResult(slug, metric_id, SyncStatus.SKIPPED_CAP, _budget_detail(session))
    session.board.update(slug, "starting" if record is None else "resuming")
    # A resumed run is finished with the fingerprint it started on.
    used_fingerprint = fingerprint if record is None else record.fingerprint
    return _optimise(session, f, live, reviews, fingerprint, used_fingerprint)


def _optimise(
    session: SyncSession,
    f: MetricFile,
    live: LiveMetric,
    reviews: list[Any],
    fingerprint: str,
    used_fingerprint: str | None,
) -> SyncResult:
    """Run (or resume) the optimiser for one metric, then propose what it found."""
    slug, metric_id = f.metric.slug, f.metric.id
    assert metric_id is not None
    guard = _holdout_plan(session, f, reviews)
    train_ids = guard.split.training if guard.split else f.metric.optimiser.test_set_ids
    session.history.want(slug, _rel(session, f))  # read while the run is in flight
    # Whether the run is still ours is checked in the branch's own push when the writer can
    # (one round trip fewer); before a billed re-scoring of held-out reviews, up front.
    confirm = not session.writer.guards or guard.split is not None
    optimisation = session.optimiser.optimise(
        metric_id, slug, train_ids, fingerprint, slot=session.slots, confirm=confirm
    )
    if optimisation.outcome is Outcome.IN_FLIGHT:
        return SyncResult(slug, metric_id, SyncStatus.IN_FLIGHT, optimisation.detail)
    if optimisation.outcome is Outcome.INTERRUPTED or (
        optimisation.outcome is Outcome.FINISHED and session.stop.stopped
    ):
        # The record stays: the next sync resumes the run (or reads its result) and publishes.
        detail = (
            optimisation.detail or f"run {optimisation.progress_id} ended; the next sync publishes its result"
        )
        return SyncResult(
            slug, metric_id, SyncStatus.INTERRUPTED, detail, progress_id=optimisation.progress_id
        )
    if optimisation.outcome in (Outcome.AMBIGUOUS, Outcome.ERROR, Outcome.TIMED_OUT):
        return SyncResult(
            slug, metric_id, SyncStatus.ERROR, optimisation.detail, progress_id=optimisation.progress_id
        )
    result = _ended(session, f, live, optimisation, guard, used_fingerprint)
    if result.status is SyncStatus.IN_FLIGHT:  # taken over: the taker finishes the run
        return result
    # A run whose pull request is open is finished with the state's next push (or the
    # sync's last one, in _sync_files): pull requests open a second or more apart
    # (GitHub's write pace), and a finish lost to a crash only makes the next sync resume
    # the run and find it.
    defer = session.publisher is not None and result.pull_request is not None
    finished = session.optimiser.finish(
        metric_id, slug, optimisation.progress_id, used_fingerprint, result.status.value, defer=defer
    )
    if not finished and result.branch is None:
        return replace(
            result,
            status=SyncStatus.IN_FLIGHT,
            detail=f"run {optimisation.progress_id} was taken over by another sync, which finishes it",
        )
    return result


def _ended(
    session: SyncSession,
    f: MetricFile,
    live: LiveMetric,
    optimisation: Optimisation,
    guard: holdout.Plan,
    used_fingerprint: str | None,
) -> SyncResult:
    """What a finished run gives: its proposal, checked and published, or its failure. Other
    metrics' branch pushes wait for it (Activity.ending) until its own is queued."""
    progress, progress_id = optimisation.progress, optimisation.progress_id
    assert progress is not None and progress_id is not None
    if progress.state is ProgressState.FAILED or progress.proposal is None:
        return SyncResult(
            f.metric.slug,
            f.metric.id,
            SyncStatus.ERROR,
            f"optimiser failed: {progress.error}",
            progress_id=progress_id,
        )
    _ending(session, f.metric.slug, True)
    try:
        return _propose(session, f, live, progress.proposal, progress_id, guard, used_fingerprint)
    finally:
        _ending(session, f.metric.slug, False)


def _ending(session: SyncSession, slug: str, ending: bool) -> None:
    """Say that slug's branch push is on its way (True), or is out or will not come."""
    if session.activity is not None:
        (session.activity.ending if ending else session.activity.ended)(slug)


def _gate(session: SyncSession, f: MetricFile, reviews: list[Any], fingerprint: str) -> SyncResult | None:
    """Feedback gating: skip runs that cannot learn anything new."""
    if session.force:
        return None
    slug = f.metric.slug
    last = session.optimiser.store.load().last.get(f.metric.id) if f.metric.id is not None else None
    if last is not None:
        if last.fingerprint == fingerprint:
            return SyncResult(
                slug,
                f.metric.id,
                SyncStatus.NO_NEW_FEEDBACK,
                f"Lab labels unchanged since the last run ({last.outcome}); --force to run anyway",
            )
        return None
    need = f.metric.optimiser.min_feedback
    need = session.settings.optimiser.min_feedback if need is None else need
    have = feedback.annotated(reviews)
    if have < need:
        return SyncResult(
            slug,
            f.metric.id,
            SyncStatus.NOT_ENOUGH_FEEDBACK,
            f"{have} labelled review(s) in the Lab, {need} needed before a first run "
            "(optimiser.min_feedback)",
        )
    return None


def content_hash(changes: Mapping[str, Any]) -> str:
    """Identity of a proposal: the proposed field values, whatever else the file holds."""
    canonical = json.dumps({k: changes[k] for k in sorted(changes)}, sort_keys=True, default=list)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _propose(
    session: SyncSession,
    f: MetricFile,
    live: LiveMetric,
    proposal: Proposal,
    progress_id: str,
    guard: holdout.Plan = holdout.OFF,
    used_fingerprint: str | None = None,
) -> SyncResult:
    slug, metric_id = f.metric.slug, f.metric.id
    proof = _evidence(live, proposal)
    result = functools.partial(
        SyncResult,
        slug,
        metric_id,
        old_score=proposal.old_score,
        new_score=proposal.new_score,
        progress_id=progress_id,
        evidence=proof.to_json() if proof is not None else None,
        label_changes=len(proposal.label_changes),
        holdout_note=guard.note,
    )
    changes = changes_for(f.metric, live, proposal)
    if not changes:
        return result(status=SyncStatus.NO_CHANGE, detail="the proposal equals the file")
    # Before any re-scoring (billed): a file validate would refuse is never proposed.
    new_text = metric_files.edit_fields(f.text, f.display, changes)
    unfit = _unfit(new_text, f)
    if unfit:
        return result(
            status=SyncStatus.INVALID_PROPOSAL,
            detail=f"not proposed: validate, plan and apply would refuse the proposed file ({unfit}); "
            "the next run with new Lab labels tries again",
        )
    held: _HeldOut | None = None
    if guard.split is not None:
        try:
            held = _held_out(session, f, live, proposal, guard.split)
        except RescoreError as err:
            return result(status=SyncStatus.ERROR, detail=str(err))
        result = functools.partial(
            result,
            holdout_old_score=held.score.old,
            holdout_new_score=held.score.new,
            rescored=held.score.rescored,
        )
    rejected = _guard(session, proposal, held, result)
    if rejected is not None:
        return rejected
    restored = session.history.find(slug, changes)
    if restored is not None:
        return result(
            status=SyncStatus.OSCILLATION,
            restores=restored.sha,
            detail=f"the proposal restores {', '.join(changes)} as of {restored.sha[:12]} "
            f"({restored.subject[:80]}), a version since replaced on {session.base_branch}; not proposed",
        )
    checked = _Checked(proof, held, guard.note, new_text)
    return _publish(session, f, live, proposal, changes, progress_id, checked, result, used_fingerprint)


@dataclass(frozen=True)
class _Checked:
    """What the checks before publishing found: evidence, the held-out guard's scores, and
    the proposed file they checked (the one committed)."""

    proof: Evidence | None
    held: _HeldOut | None
    holdout_note: str
    new_text: str


def _publish(
    session: SyncSession,
    f: MetricFile,
    live: LiveMetric,
    proposal: Proposal,
    changes: Mapping[str, Any],
    progress_id: str,
    checked: _Checked,
    result: Callable[..., SyncResult],
    used_fingerprint: str | None = None,
) -> SyncResult:
    """Write the proposal onto its branch and open or update its pull request
    (`used_fingerprint`: the Lab labels the run started on, which its finish remembers)."""
    slug = f.metric.slug
    branch = f"{session.settings.branch_prefix}/optimise/{slug}"
    digest = content_hash(changes)
    refused = _refused(session, f, branch, digest, result)
    if refused is not None:
        return refused
    new_text = checked.new_text
    message = _commit_message(slug, proposal, changes, progress_id, digest, checked.held)
    written = session.writer.write(
        branch,
        session.base,
        f.display,
        new_text.encode("utf-8"),
        message,
        holds=session.optimiser.holds(f.metric.id) if f.metric.id is not None else None,
        finish=_finish_with(session, f, progress_id, used_fingerprint),
    )
    _ending(session, slug, False)  # its pull request is no reason for others' pushes to wait
    unwritten = _unwritten(session, written, progress_id, result)
    if unwritten is not None:
        return unwritten
    fields = tuple(changes)
    crashpoints.hit("branch-pushed", slug)
    status = SyncStatus.PROPOSED if written.status is BranchStatus.CREATED else SyncStatus.UPDATED
    url = None
    if session.publisher:
        before = {k: (f.metric.fields[k] if k in f.metric.fields else live.value(k)) for k in changes}
        ctx = ProposalContext(
            f, branch, session.base_branch, proposal, changes, before, digest, progress_id, new_text
        )
        published = session.publisher.publish_proposal(_with_checks(ctx, checked), written)
        crashpoints.hit("published", slug)
        url = published.url
        if published.created:
            status = SyncStatus.PROPOSED
    elif written.status is BranchStatus.UNCHANGED:
        status = SyncStatus.PROPOSED
    return result(status=status, branch=branch, pull_request=url, fields=fields)


def _finish_with(
    session: SyncSession, f: MetricFile, progress_id: str, fingerprint: str | None
) -> Callable[[BranchStatus], Callable[[State], State]] | None:
    """The run's finish, to push with its branch when the writer pushes the state with it
    and no pull request comes after the branch (one push fewer); with a pull request the
    finish waits for it, so a crash in between still opens it next time. The outcome it
    records is the status the write reports."""
    if session.publisher is not None or not session.writer.guards or f.metric.id is None:
        return None
    finishing = session.optimiser.finishing(f.metric.id, f.metric.slug, progress_id, fingerprint)

    def finish(status: BranchStatus) -> Callable[[State], State]:
        outcome = SyncStatus.UPDATED if status is BranchStatus.UPDATED else SyncStatus.PROPOSED
        return finishing(outcome.value)

    return finish


def _unwritten(
    session: SyncSession, written: BranchResult, progress_id: str, result: Callable[..., SyncResult]
) -> SyncResult | None:
    """What became of a proposal its branch did not take; None if the branch holds it."""
    branch = written.branch
    if written.status is BranchStatus.TAKEN_OVER:
        return result(
            status=SyncStatus.IN_FLIGHT,
            detail=f"run {progress_id} was taken over by {written.detail}, which publishes its result",
        )
    if written.status is BranchStatus.HUMAN_EDITED:
        url = session.publisher.human_edited(branch, written).url if session.publisher else None
        who = ", ".join(sorted({c.author_email for c in written.human_commits}))
        return result(
            status=SyncStatus.SKIPPED_EDITED,
            branch=branch,
            pull_request=url,
            detail=f"{branch} has commits by {who}; left alone",
        )
    if written.status is BranchStatus.MOVED:
        return result(
            status=SyncStatus.ERROR,
            branch=branch,
            detail=f"{branch} moved while we worked; the next sync retries",
        )
    return None


def _refused(
    session: SyncSession, f: MetricFile, branch: str, digest: str, result: Callable[..., SyncResult]
) -> SyncResult | None:
    """Why the proposal gets no pull request (rejected before, or over the caps); None if it may."""
    slug, metric_id = f.metric.slug, f.metric.id
    if (
        session.publisher
        and metric_id is not None
        and session.publisher.is_rejected(_branches_of(session, metric_id, slug), metric_id, digest)
    ):
        return result(
            status=SyncStatus.REJECTED,
            branch=branch,
            detail="this exact proposal was closed without merging; not re-proposed",
        )
    if session.publisher and not session.publisher.may_open(branch):
        return result(
            status=SyncStatus.SKIPPED_CAP,
            branch=branch,
            detail="pull request caps reached (pull_requests.max_new_per_run / max_open)",
        )
    return None


@dataclass(frozen=True)
class _HeldOut:
    score: holdout.HeldOutScore
    evidence: Evidence


def _with_checks(ctx: ProposalContext, checked: _Checked) -> ProposalContext:
    held = checked.held
    return replace(
        ctx,
        evidence=checked.proof,
        holdout=HoldoutScores(held.score.old, held.score.new, held.evidence) if held else None,
        holdout_note=checked.holdout_note,
    )


def _holdout_plan(session: SyncSession, f: MetricFile, reviews: Sequence[Any]) -> holdout.Plan:
    """The held-out split for this run (optimiser.holdout), or why there is none."""
    opt, defaults = f.metric.optimiser, session.settings.optimiser
    fraction = opt.holdout if opt.holdout is not None else defaults.holdout
    minimum = opt.holdout_min if opt.holdout_min is not None else defaults.holdout_min
    if f.metric.id is None:
        return holdout.OFF
    return holdout.plan(f.metric.id, evidence.parse_reviews(list(reviews)), fraction, minimum)


def _held_out(
    session: SyncSession, f: MetricFile, live: LiveMetric, proposal: Proposal, split: holdout.Split
) -> _HeldOut:
    """Re-score the proposal without saving; its score and evidence on the held-out reviews."""
    assert f.metric.id is not None
    _ending(session, f.metric.slug, False)  # billed and slow: other branches go without it
    session.board.update(f.metric.slug, "re-scoring held-out reviews")
    with session.slots:
        results = holdout.rescore(session.live.client, f.metric.id, holdout.overrides(proposal))
    held = [r for r in live.reviews if r.test_set_id in split.held_out]
    return _HeldOut(holdout.score(live.reviews, split, results), evidence.classify(held, results))


def _guard(
    session: SyncSession, proposal: Proposal, held: _HeldOut | None, result: Callable[..., SyncResult]
) -> SyncResult | None:
    """None when the proposal may be proposed; else the not-improved result saying why."""
    old, new = proposal.old_score, proposal.new_score
    min_improvement = session.settings.optimiser.min_improvement
    if held is not None:
        if held.score.improved(min_improvement):
            return None
        return result(
            status=SyncStatus.NOT_IMPROVED,
            detail=f"not better on held-out reviews ({scores.pair(held.score.old, held.score.new)}; "
            f"training {scores.pair(old, new)}); not proposed",
        )
    verdict = judge(proposal, min_improvement)
    if verdict is Verdict.REGRESSED:
        return result(
            status=SyncStatus.NOT_IMPROVED, detail=f"regressed: {scores.pair(old, new)}; not proposed"
        )
    if verdict is Verdict.TIED:
        return result(
            status=SyncStatus.NOT_IMPROVED,
            detail=f"no better than the baseline ({scores.pair(old, new)})",
        )
    if verdict is Verdict.UNSCORED:
        return result(
            status=SyncStatus.NOT_IMPROVED,
            detail="the optimiser returned no comparable scores",
        )
    return None


def _evidence(live: LiveMetric, proposal: Proposal) -> Evidence | None:
    """Fixed/broken/still wrong/still right, when the optimiser reported per-review results."""
    if not proposal.review_results:
        return None
    return evidence.classify(live.reviews, proposal.review_results)


def _unfit(new_text: str, f: MetricFile) -> str:
    """The first problem validate would report in new_text as f ("" if none), so that
    nothing is committed that validate, plan and apply would refuse after the merge."""
    try:
        metric_files.check_text(new_text, f.display, file_stem=f.metric.slug)
    except MetricValidationError as err:
        more = f" and {len(err.problems) - 1} more problem(s)" if len(err.problems) > 1 else ""
        return f"{err.problems[0]}{more}"
    return ""


def _branches_of(session: SyncSession, metric_id: int, slug: str) -> list[str]:
    """The proposal branches the metric has had: one per slug it ran under (a rename
    changes the branch name, not the metric), the current one first."""
    last = session.optimiser.store.load().last.get(metric_id)
    slugs = dict.fromkeys((slug, *(last.slugs if last else ())))
    return [f"{session.settings.branch_prefix}/optimise/{s}" for s in slugs]


def _drift(session: SyncSession, f: MetricFile, live: LiveMetric, live_values: dict[str, Any]) -> SyncResult:
    slug = f.metric.slug
    detail = (
        f"live differs from {session.base_branch} in {', '.join(live_values)}; not optimised "
        "(merge a drift PR to accept, or `apply --force` to restore git's version)"
    )
    if session.publisher is None:
        return SyncResult(slug, f.metric.id, SyncStatus.DRIFT, detail, fields=tuple(live_values))
    branch = f"{session.settings.branch_prefix}/drift/{slug}"
    values = {k: thaw(v) for k, v in live_values.items()}
    new_text = metric_files.edit_fields(f.text, f.display, values)
    unfit = _unfit(new_text, f)
    if unfit:
        return SyncResult(
            slug,
            f.metric.id,
            SyncStatus.DRIFT,
            f"live differs from {session.base_branch} in {', '.join(live_values)}; not optimised; no drift "
            f"PR: validate, plan and apply would refuse the file with the live values ({unfit}): fix "
            "the live metric in Cekura, or `apply --force` to restore git's version",
            fields=tuple(live_values),
        )
    if not session.publisher.may_open(branch) or not session.publisher.reserve_writes():
        return SyncResult(
            slug,
            f.metric.id,
            SyncStatus.DRIFT,
            detail + "; drift PR skipped by caps or the GitHub write budget",
            branch=branch,
            fields=tuple(live_values),
        )
    message = f"drift({slug}): bring live Cekura values into git\n\nFields: {', '.join(values)}\n"
    written = session.writer.write(branch, session.base, f.display, new_text.encode("utf-8"), message)
    url = None
    if written.status is BranchStatus.HUMAN_EDITED:
        url = session.publisher.human_edited(branch, written).url
    elif written.status is not BranchStatus.MOVED:
        url = session.publisher.publish_drift(
            DriftContext(f, branch, session.base_branch, live, values), written
        ).url
    return SyncResult(
        slug,
        f.metric.id,
        SyncStatus.DRIFT,
        detail,
        branch=branch,
        pull_request=url,
        fields=tuple(live_values),
    )


def _budget_detail(session: SyncSession) -> str:
    budget = session.settings.pull_requests.writes_per_hour
    share = " (this shard's share of it)" if session.shard else ""
    return (
        f"GitHub write budget spent (pull_requests.writes_per_hour: {budget}{share}, within "
        "GitHub's secondary limit for one identity); the next run continues"
    )


def _commit_message(
    slug: str,
    proposal: Proposal,
    changes: Mapping[str, Any],
    progress_id: str,
    digest: str,
    held: _HeldOut | None = None,
) -> str:
    # The trailers are the score history's record (githistory.score_history).
    trailers = githistory.trailers(
        slug, proposal.old_score, proposal.new_score, (held.score.old, held.score.new) if held else None
    )
    return (
        f"optimise({slug}): {scores.pair(proposal.old_score, proposal.new_score)}\n\n"
        f"Cekura's optimiser proposes new {', '.join(changes)}.\n\n"
        f"{trailers}"
        f"Cekura-Progress-Id: {progress_id}\n"
        f"Cekura-GitOps-Proposal: {digest}\n"
    )


def _line(r: SyncResult) -> str:
    score = f" {scores.pair(r.old_score, r.new_score)}" if r.old_score or r.new_score else ""
    where = f" {r.pull_request or r.branch}" if (r.pull_request or r.branch) else ""
    detail = f" — {r.detail}" if r.detail else ""
    notes = f" ({'; '.join(_notes(r))})" if _notes(r) else ""
    return f"{r.slug}: {r.status.value}{score}{notes}{where}{detail}"


def _notes(r: SyncResult) -> list[str]:
    """Evidence, label changes and the held-out guard, in a few words."""
    notes = []
    if r.evidence is not None:
        notes.append(f"{r.evidence['fixed']} fixed, {r.evidence['broken']} broken")
    if r.label_changes:
        notes.append(f"{r.label_changes} label change(s) nobody approved")
    if r.holdout_old_score and r.holdout_new_score:
        notes.append(f"held-out {scores.pair(r.holdout_old_score, r.holdout_new_score)}")
    if r.rescored:
        notes.append(f"{r.rescored} review(s) re-scored")
    return notes


def _summary_scores(r: SyncResult) -> str:
    old = scores.text(r.old_score) if r.old_score else ""
    return old + (f" → {scores.text(r.new_score)}" if r.new_score else "")


def report(settings: Settings, console: Console, results: Sequence[SyncResult]) -> int:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    if settings.json_output:
        console.emit_json(
            {
                "command": "sync",
                "metrics": [r.to_json() for r in results],
                "summary": counts,
                # Held-out re-scores are evaluations Cekura bills.
                "rescored": sum(r.rescored for r in results),
            }
        )
    else:
        console.say("")
        console.table(
            ("metric", "status", "score", "branch / pull request"),
            [
                (
                    r.slug,
                    r.status.value,
                    scores.pair(r.old_score, r.new_score) if (r.old_score or r.new_score) else "",
                    r.pull_request or r.branch or "",
                )
                for r in results
            ],
        )
        console.say(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing to do")
    _actions_report(settings, results)
    return 1 if any(r.status in FAILED_STATUSES for r in results) else 0


def _actions_report(settings: Settings, results: Sequence[SyncResult]) -> None:
    if settings.github_output:
        prs = [r.pull_request for r in results if r.pull_request]
        actions.write_outputs(
            settings.github_output,
            {
                "changed": str(sum(r.status in (SyncStatus.PROPOSED, SyncStatus.UPDATED) for r in results)),
                "pull-requests": json.dumps(prs),
                "errors": str(sum(r.status is SyncStatus.ERROR for r in results)),
                "result": json.dumps([r.to_json() for r in results]),
            },
        )
    if settings.github_step_summary:
        rows = [
            f"| {markdown.code_cell(r.slug)} | {r.status.value} | "
            f"{_summary_scores(r)} | "
            f"{r.pull_request or (markdown.code_cell(r.branch) if r.branch else '')} "
            f"| {markdown.cell('; '.join([*_notes(r), r.detail] if r.detail else _notes(r)))} |"
            for r in results
        ]
        rescored = sum(r.rescored for r in results)
        billed = f"\nRe-scored {rescored} review(s) for the held-out guard (billed by Cekura).\n"
        actions.append_summary(
            settings.github_step_summary,
            "### cekura-gitops sync\n\n| metric | status | score | pull request | detail |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows) + "\n" + (billed if rescored else ""),
        )

"""`cekura-gitops demo`: the whole loop against the bundled sandbox, offline, in a temp repo."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from cekura_gitops import settings as settings_mod
from cekura_gitops.branches import BranchResult
from cekura_gitops.commands.apply import apply
from cekura_gitops.commands.plan import plan
from cekura_gitops.commands.pull import pull
from cekura_gitops.commands.sync import sync
from cekura_gitops.commands.validate import validate
from cekura_gitops.console import Console
from cekura_gitops.gitrepo import init_repo, run_git
from cekura_gitops.publishing import DriftContext, ProposalContext, Published
from cekura_gitops.pullrequests import proposal_pr
from cekura_gitops.sandbox import OptimiserOutcome, Sandbox
from cekura_gitops.settings import Settings

GREETING = "caller_greeted_by_name_1562"
STEPS = 7
BRANCH = f"cekura-gitops/optimise/{GREETING}"


class TerminalPublisher:
    """Stands in for GitHub: renders each pull request body in the terminal."""

    def __init__(self, console: Console, dashboard_url: str) -> None:
        self.console = console
        self.dashboard_url = dashboard_url

    def default_branch(self) -> str:
        return "main"

    def is_rejected(self, branches: Sequence[str], metric_id: int, content_hash: str) -> bool:
        return False

    def may_open(self, branch: str) -> bool:
        return True

    def reserve_writes(self) -> bool:
        return True  # nothing is written to GitHub

    def release_writes(self) -> None:
        pass

    def publish_proposal(self, ctx: ProposalContext, result: BranchResult) -> Published:
        title, body = proposal_pr(ctx, self.dashboard_url)
        self.console.say(f"\n┌─ pull request: {ctx.branch} → {ctx.base_branch} (rendered, not sent)")
        self.console.say(f"│ {title}")
        for line in body.splitlines():
            self.console.say(f"│ {line}")
        self.console.say("└─")
        return Published(f"(pull request for {ctx.branch})", created=True)

    def publish_drift(self, ctx: DriftContext, result: BranchResult) -> Published:
        return Published(f"(drift pull request for {ctx.branch})", created=True)

    def human_edited(self, branch: str, result: BranchResult) -> Published:
        return Published(None)


def demo(settings: Settings, console: Console, *, keep: bool = False) -> int:
    """Run pull → validate/plan → sync → merge → apply → drift check, narrating each step."""
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="cekura-gitops-demo-"))
    try:
        with Sandbox(optimiser_seconds=2.0) as sandbox:
            _run(console, tmp, sandbox, settings)
    finally:
        if keep:
            console.say(f"\nThe demo repository is kept at {tmp / 'work'} (origin: {tmp / 'origin.git'}).")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    console.say(f"\nDemo finished in {time.monotonic() - started:.1f} s.")
    return 0


def _step(console: Console, n: int, title: str, explain: str) -> None:
    console.say(f"\n━━ Step {n}/{STEPS}: {title}")
    console.say(explain)


def _run(console: Console, tmp: Path, sandbox: Sandbox, base: Settings) -> None:
    work = tmp / "work"
    git = _demo_repo(tmp)
    env = {"CEKURA_API_URL": sandbox.url, "CEKURA_API_KEY": sandbox.api_key}
    settings = replace(
        settings_mod.resolve(root=work, environ=env),
        json_output=False,
        verbose=base.verbose,
    )
    console.say(f"Cekura sandbox on {sandbox.url} (project 1376, seeded with 3 metrics and Lab labels)")
    console.say(f"Temporary repository {work} with a bare origin; no credentials, no network.")

    _pull_and_plan(console, settings, git)
    _optimise(console, settings, sandbox, git)
    _merge_and_apply(console, settings, git)
    _dashboard_edit(console, settings, sandbox, work, git)


def _demo_repo(tmp: Path) -> Callable[..., str]:
    """A work repository with one commit, pushed to a bare origin; its git command."""
    origin, work = tmp / "origin.git", tmp / "work"
    init_repo(origin, bare=True)
    init_repo(work)
    identity = {
        "GIT_AUTHOR_NAME": "Demo User",
        "GIT_AUTHOR_EMAIL": "demo@example.com",
        "GIT_COMMITTER_NAME": "Demo User",
        "GIT_COMMITTER_EMAIL": "demo@example.com",
    }

    def git(*args: str) -> str:
        return run_git(work, *args, env=identity)

    git("remote", "add", "origin", str(origin))
    (work / "README.md").write_text("Our Cekura metrics, as code.\n")
    git("add", "README.md")
    git("commit", "-qm", "Start the metrics repository")
    git("push", "-q", "-u", "origin", "main")
    return git


def _pull_and_plan(console: Console, settings: Settings, git: Callable[..., str]) -> None:
    _step(
        console,
        1,
        "pull: import the live metrics into git",
        "Each metric becomes metrics/<slug>.yaml; the repository is now the source of truth.",
    )
    pull(settings, console, project=1376)
    git("add", "-A")
    git("commit", "-qm", "Import metrics from Cekura")
    git("push", "-q")

    _step(
        console,
        2,
        "validate and plan: the repository matches Cekura",
        "validate checks files offline; plan compares them with the live metrics.",
    )
    validate(settings, console, [])
    plan(settings, console)


def _optimise(console: Console, settings: Settings, sandbox: Sandbox, git: Callable[..., str]) -> None:
    # A call labelled without saying why: the optimiser cannot learn it (an unresolved sample).
    sandbox.state.add_review(
        1562, True, False, "", 789, transcript="Agent: Hey you! Caller: It's Sam. Agent: Thanks, Sam."
    )
    # Cekura's optimiser can rewrite a review's feedback while it works; the PR shows it.
    sandbox.state.set_optimiser_outcome(
        1562,
        OptimiserOutcome(
            feedback_edits=(
                {
                    "review_id": 9006,
                    "feedback": "Confirming the spelling of a name is not a greeting.",
                    "reason": "Rephrased from the reviewer's answer during optimisation.",
                },
            )
        ),
    )
    _step(
        console,
        3,
        "sync: run Cekura's optimiser and propose improvements",
        "Metrics without enough Lab labels are skipped; an improvement lands on its own branch\n"
        "and becomes one pull request (rendered here instead of sent to GitHub).",
    )
    sync(
        settings,
        console,
        push=True,
        open_prs=True,
        publisher=TerminalPublisher(console, settings.dashboard_url),
    )
    console.say(f"\n$ git diff main origin/{BRANCH}")
    git("fetch", "-q", "origin")
    console.untrusted(git("diff", "main", f"origin/{BRANCH}"))


def _merge_and_apply(console: Console, settings: Settings, git: Callable[..., str]) -> None:
    _step(
        console,
        4,
        "review and merge the pull request",
        "A reviewer approves the prompt diff; merging puts it on main.",
    )
    git("merge", "-q", "--no-ff", f"origin/{BRANCH}", "-m", f"Merge {BRANCH}")
    git("push", "-q")
    console.say(git("log", "--oneline", "-3"))

    _step(
        console,
        5,
        "apply: deploy the merge to Cekura",
        "Three-way guard: live still equals the pre-merge file, so the changed field is PATCHed\n"
        "and verified.",
    )
    apply(settings, console)

    _step(console, 6, "plan again: live Cekura now equals git", "")
    plan(settings, console, selectors=[GREETING])


def _dashboard_edit(
    console: Console, settings: Settings, sandbox: Sandbox, work: Path, git: Callable[..., str]
) -> None:
    _step(
        console,
        7,
        "a dashboard edit behind git's back, then apply --dry-run",
        "Someone edits the prompt in Cekura's dashboard while a teammate changes it in git.\n"
        "apply refuses to overwrite the dashboard edit and shows all three versions.",
    )
    sandbox.state.dashboard_edit(1562, description="Edited in the dashboard: greet by name.")
    path = work / "metrics" / f"{GREETING}.yaml"
    path.write_text(path.read_text().replace("within the first 3 turns", "within the first 2 turns", 1))
    git("commit", "-qam", "Tighten the greeting window")
    code = apply(settings, console, dry_run=True)
    console.say(
        f"\napply --dry-run exited {code}: a conflict is refused, never overwritten. "
        "Resolve it by merging\n"
        "the drift pull request that `sync` opens, or by `apply --force` to restore git's version."
    )
    console.say(
        "\nNext, in your own metrics repository: `cekura-gitops init --pull --project <ID>`\n"
        "(workflows and metric files), then the secrets it lists (see README)."
    )

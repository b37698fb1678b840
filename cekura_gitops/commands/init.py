"""`cekura-gitops init`: write the workflows (and config) that run cekura-gitops in this repository."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cekura_gitops import metric_files, release, scaffold
from cekura_gitops.clients import github_clients
from cekura_gitops.console import Console
from cekura_gitops.errors import ConfigError, UsageError
from cekura_gitops.gitrepo import GitRepo
from cekura_gitops.metricsdir import metrics_folder
from cekura_gitops.release import ActionRef
from cekura_gitops.settings import Settings


class FileStatus(enum.Enum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    EXISTS = "exists"  # left alone: it differs, and init does not overwrite without --force
    OVERWRITTEN = "overwritten"


@dataclass(frozen=True)
class FileResult:
    path: str  # repository-relative, `/`-separated
    status: FileStatus
    conflict: bool = False  # a differing workflow left alone: the run fails and names it


IMPORT_STEP = (
    "Import your metrics: `cekura-gitops pull --project ID` (`cekura-gitops doctor` lists the "
    "projects your CEKURA_API_KEY reaches, with their ids)."
)
NEXT_STEPS = (
    "Add the repository secret CEKURA_API_KEY (Settings > Secrets and variables > Actions), "
    "e.g. `gh secret set CEKURA_API_KEY`.",
    "Turn the workflows on: set the repository variable CEKURA_ENABLED to true, "
    "e.g. `gh variable set CEKURA_ENABLED --body true` (until then they skip cleanly).",
    "Recommended: a GitHub App, so that checks run on the optimiser's pull requests. Give it "
    "Contents, Pull requests and Issues (read and write), install it on this repository, store "
    "its id as the variable CEKURA_GITOPS_APP_ID and its private key as the secret "
    "CEKURA_GITOPS_APP_PRIVATE_KEY.",
    "Commit and push: `git add .github/workflows cekura-gitops.yaml && git commit -m 'Add cekura-gitops'`.",
)


def init(
    settings: Settings,
    console: Console,
    *,
    action: str | None,
    branch: str | None,
    force: bool,
    dry_run: bool,
    pull: bool,
    project: int | None,
) -> int:
    """Write the workflows for this repository; never overwrite a differing one without --force."""
    if pull and project is None and settings.cekura_project is None:
        raise UsageError("--pull needs the project to import: `cekura-gitops init --pull --project ID`")
    repo = GitRepo(settings.root)
    plan = scaffold.Scaffold(
        branch=branch or _default_branch(repo, settings),
        metrics_dir=Path(metrics_folder(settings, repo)).as_posix(),
        action=_action(action),
    )
    files = scaffold.render(plan)
    results = [_write(repo.root, path, text, force=force, dry_run=dry_run) for path, text in files.items()]
    pulled = _pull(settings, console, project) if pull and not dry_run else None
    _report(settings, console, plan, results, files if dry_run else None, pulled)
    if any(r.conflict for r in results):
        return 1
    return 1 if pulled is not None and pulled.failed else 0


def _action(given: str | None) -> ActionRef:
    if given is not None:
        parsed = release.parse_action(given)
        if parsed is None:
            raise UsageError(f"--action must look like OWNER/cekura-gitops@REF, got {given!r}")
        return parsed
    built = release.installed_action()
    if built is None:
        raise UsageError(
            "this is a development install of cekura-gitops, which does not know the commit it "
            "was released from: pass --action OWNER/cekura-gitops@REF (a full commit SHA pins it)"
        )
    return built


def _default_branch(repo: GitRepo, settings: Settings) -> str:
    found = scaffold.default_branch(repo, settings, github_clients(settings))
    if found is None:
        raise ConfigError(
            f"could not find the default branch: remote {settings.remote!r} names none and the GitHub "
            "API was not reachable (set GITHUB_TOKEN to ask it); pass --branch NAME"
        )
    return found


def _write(root: Path, rel: str, text: str, *, force: bool, dry_run: bool) -> FileResult:
    path = root / rel
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ConfigError(f"{rel} is not a regular file: move it away, then run init again")
    if not path.exists():
        status = FileStatus.CREATED
    elif path.read_bytes() == text.encode("utf-8"):
        return FileResult(rel, FileStatus.UNCHANGED)
    elif rel == scaffold.CONFIG_FILE:
        return FileResult(rel, FileStatus.EXISTS)  # yours: init only writes one when missing
    elif not force:
        return FileResult(rel, FileStatus.EXISTS, conflict=True)
    else:
        status = FileStatus.OVERWRITTEN
    if not dry_run:
        metric_files.write_atomic(path, text)
    return FileResult(rel, status)


@dataclass(frozen=True)
class Pulled:
    failed: bool
    rows: list[dict[str, object]]  # for --json; the text report is printed by pull itself


def _pull(settings: Settings, console: Console, project: int | None) -> Pulled:
    from cekura_gitops.commands import pull as pull_mod

    if settings.json_output:
        results = pull_mod.pull_metrics(settings, project=project)
        return Pulled(pull_mod.failed(results), pull_mod.json_rows(results))
    console.say("Importing the project's metrics:")
    return Pulled(pull_mod.pull(settings, console, project=project) != 0, [])


def _report(
    settings: Settings,
    console: Console,
    plan: scaffold.Scaffold,
    results: Sequence[FileResult],
    dry_run_files: Mapping[str, str] | None,
    pulled: Pulled | None,
) -> None:
    conflicts = [r.path for r in results if r.conflict]
    if settings.json_output:
        document: dict[str, object] = {
            "files": [
                {
                    "path": r.path,
                    "status": r.status.value,
                    **({"content": dry_run_files[r.path]} if dry_run_files and _written(r) else {}),
                }
                for r in results
            ],
            "branch": plan.branch,
            "metrics_dir": plan.metrics_dir,
            "action": plan.action.uses,
            "dry_run": dry_run_files is not None,
        }
        if pulled is not None:
            document["metrics"] = pulled.rows
        console.emit_json(document)
    else:
        _report_text(console, results, dry_run_files)
    console.say(f"(default branch {plan.branch}; metrics in {plan.metrics_dir}/; action {plan.action.uses})")
    if not plan.action.pinned:
        console.warn(f"{plan.action.uses} is not a commit SHA: a moved tag changes what runs; pin a commit")
    if conflicts:
        console.error(
            f"{', '.join(conflicts)} differ(s) from what init writes and was left alone: "
            "compare, then re-run with --force to overwrite"
        )
    elif all(r.status is FileStatus.UNCHANGED for r in results):
        console.say("Nothing to do: every file is already as init writes it.")
    if dry_run_files is None and not conflicts and any(_written(r) for r in results):
        steps = list(NEXT_STEPS)
        if pulled is None and not _has_metrics(settings):
            steps.insert(0, IMPORT_STEP)
        console.say("\nNext steps:")
        for number, step in enumerate(steps, 1):
            console.say(f"  {number}. {step}")


def _report_text(
    console: Console, results: Sequence[FileResult], dry_run_files: Mapping[str, str] | None
) -> None:
    for r in results:
        note = " (differs; left alone, --force overwrites)" if r.conflict else ""
        if r.path == scaffold.CONFIG_FILE and r.status is FileStatus.EXISTS:
            note = " (yours; left alone)"
        console.say(f"{r.status.value:<12} {r.path}{note}")
    if dry_run_files is None:
        return
    console.say("\nDry run: nothing was written. The files would be:")
    for r in results:
        if _written(r):
            console.say(f"\n--- {r.path}\n{dry_run_files[r.path].rstrip()}")


def _written(result: FileResult) -> bool:
    return result.status in (FileStatus.CREATED, FileStatus.OVERWRITTEN)


def _has_metrics(settings: Settings) -> bool:
    folder = settings.metrics_dir
    return folder.is_dir() and any(folder.glob("*.y*ml"))

"""`cekura-gitops doctor`: check the set-up end to end; one line per check, with a fix."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cekura_gitops import metric_files
from cekura_gitops.cekura import CekuraClient
from cekura_gitops.clients import cekura_client, github_clients
from cekura_gitops.console import Console
from cekura_gitops.errors import CekuraAPIError, GitError, GitHubAPIError, GitOpsError, MetricValidationError
from cekura_gitops.metric_files import MetricFile
from cekura_gitops.settings import CONFIG_FILE, Settings

WORKFLOWS = ("optimise.yml", "plan.yml", "apply.yml")
APP_PERMISSIONS = ("contents", "pull_requests")  # push bot branches, open pull requests


class Level(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    message: str
    fix: str = ""


def doctor(settings: Settings, console: Console, *, config_error: str | None = None) -> int:
    """Run every check; exit 1 if any failed (warnings do not fail).

    config_error: why cekura-gitops.yaml could not be used; settings then hold the defaults
    and the environment, so that one broken file fails one check and the others still run.
    """
    checks: list[Check] = []
    _config(settings, checks, config_error)
    files = _files(settings, checks)
    if not _init_workflows(settings, checks):
        _workflows(settings, checks)
    _git(settings, checks)
    _cekura(settings, files, checks)
    _github(settings, checks)
    if settings.json_output:
        console.emit_json(
            {
                "checks": [
                    {"name": c.name, "status": c.level.value, "message": c.message, "fix": c.fix}
                    for c in checks
                ]
            }
        )
    else:
        for c in checks:
            fix = f"\n       fix: {c.fix}" if c.fix and c.level is not Level.OK else ""
            console.say(f"{c.level.value:<4}  {c.name}: {c.message}{fix}")
        failed = sum(c.level is Level.FAIL for c in checks)
        warned = sum(c.level is Level.WARN for c in checks)
        console.say(f"\n{failed} failed, {warned} warning(s), {len(checks) - failed - warned} ok.")
    return 1 if any(c.level is Level.FAIL for c in checks) else 0


def _config(settings: Settings, checks: list[Check], config_error: str | None) -> None:
    if config_error is not None:
        lines = config_error.splitlines() or [""]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        checks.append(
            Check(
                "config",
                Level.FAIL,
                f"{lines[0]}{more}; the other checks ran with the defaults",
                f"edit {CONFIG_FILE} at the line:col shown (schema cekura_gitops/schemas/config.schema.json)",
            )
        )
    elif (settings.root / CONFIG_FILE).is_file():
        checks.append(Check("config", Level.OK, f"{CONFIG_FILE} and environment are valid"))
    else:
        checks.append(Check("config", Level.OK, f"no {CONFIG_FILE} (optional): defaults and environment"))


def _files(settings: Settings, checks: list[Check]) -> list[MetricFile] | None:
    """The managed metric files, or None when they could not be read (the check says why)."""
    if not settings.metrics_dir.is_dir():
        checks.append(
            Check(
                "metric files",
                Level.FAIL,
                f"no folder {settings.metrics_dir}",
                "run `cekura-gitops pull --project ID`",
            )
        )
        return None
    try:
        files = metric_files.load_metrics([settings.metrics_dir], settings.root)
    except MetricValidationError as err:
        checks.append(
            Check(
                "metric files",
                Level.FAIL,
                f"{len(err.problems)} problem(s), first: {err.problems[0]}",
                "run `cekura-gitops validate` and fix each problem",
            )
        )
        return None
    if not files:
        checks.append(
            Check(
                "metric files",
                Level.WARN,
                f"no metric files in {settings.metrics_dir}",
                "run `cekura-gitops pull --project ID` to import your metrics",
            )
        )
    else:
        checks.append(Check("metric files", Level.OK, f"{len(files)} valid"))
    return files


def _workflows(settings: Settings, checks: list[Check]) -> None:
    folder = settings.root / ".github" / "workflows"
    missing = [w for w in WORKFLOWS if not (folder / w).is_file()]
    if missing:
        checks.append(
            Check(
                "workflows",
                Level.WARN,
                f"missing {', '.join(missing)} in .github/workflows",
                "run `cekura-gitops init` (it writes cekura-optimise.yml, cekura-plan.yml, cekura-apply.yml)",
            )
        )
    else:
        checks.append(Check("workflows", Level.OK, "optimise, plan and apply workflows present"))


def _init_workflows(settings: Settings, checks: list[Check]) -> bool:
    """The workflows `cekura-gitops init` wrote, checked against this repository; False if absent."""
    from cekura_gitops import scaffold
    from cekura_gitops.gitrepo import GitRepo
    from cekura_gitops.metricsdir import metrics_folder

    try:
        repo = GitRepo(settings.root)
        folder = Path(metrics_folder(settings, repo)).as_posix()
        branch = scaffold.default_branch(repo, settings, github_clients(settings))
    except GitOpsError:
        return False  # the git check says what is wrong
    findings = scaffold.audit(repo.root, folder, branch)
    if findings is None:
        return False
    fix = "run `cekura-gitops init` to see the difference (--force rewrites the workflows)"
    for finding in findings:
        checks.append(Check("workflows", Level.FAIL if finding.serious else Level.WARN, finding.message, fix))
    if not findings:
        checks.append(
            Check(
                "workflows", Level.OK, "cekura-optimise, cekura-plan and cekura-apply match this repository"
            )
        )
    return True


def _git(settings: Settings, checks: list[Check]) -> None:
    try:
        from cekura_gitops.gitrepo import GitRepo

        repo = GitRepo(settings.root)
        if settings.uses_app and settings.github_configured:
            from cekura_gitops.githubaccess import access_for

            # Fetch as sync will: with the App's token (a broken App is its own check).
            with contextlib.suppress(GitOpsError):
                repo.use_credentials(access_for(settings).git_token(), settings.github_server_url)
        if not repo.has_remote(settings.remote):
            checks.append(
                Check(
                    "git",
                    Level.WARN,
                    f"no remote {settings.remote!r}",
                    f"add it: git remote add {settings.remote} <url> (sync pushes branches there)",
                )
            )
            return
        repo.ls_remote(settings.remote, "HEAD")
        checks.append(Check("git", Level.OK, f"remote {settings.remote!r} reachable"))
    except GitError as err:
        checks.append(Check("git", Level.FAIL, str(err), "run inside a clone of your metrics repository"))
    except GitOpsError as err:  # the App could not mint git's token: see "github identity"
        checks.append(Check("git", Level.FAIL, str(err)))


def _cekura(settings: Settings, files: Sequence[MetricFile] | None, checks: list[Check]) -> None:
    if not settings.cekura_api_key:
        checks.append(
            Check(
                "cekura key",
                Level.FAIL,
                "CEKURA_API_KEY is not set",
                "export CEKURA_API_KEY (in Actions: the repository secret CEKURA_API_KEY)",
            )
        )
        return
    with cekura_client(settings) as client:
        try:
            projects = client.list_projects()
        except CekuraAPIError as err:
            checks.append(_key_failure(settings, err))
            return
        names = ", ".join(f"{p.get('id')} {p.get('name', '')}".strip() for p in projects[:5]) or "none"
        checks.append(Check("cekura key", Level.OK, f"works; reaches project(s) {names}"))
        if files is None:
            # Zero readable files is not "all 0 managed metrics exist".
            for name in ("live metrics", "cekura schedules"):
                checks.append(
                    Check(
                        name,
                        Level.WARN,
                        "not checked: the metric files could not be read",
                        "fix the metric files (see the metric files check), then run doctor again",
                    )
                )
            return
        _exists_live(client, files, checks)
        _cron_jobs(client, files, checks)


def _key_failure(settings: Settings, err: CekuraAPIError) -> Check:
    """The key check's failure, with the fix for what actually went wrong."""
    if err.status is None:
        return Check(
            "cekura key",
            Level.FAIL,
            f"not checked: the Cekura API at {settings.cekura_api_url} is unreachable ({err.detail})",
            "check CEKURA_API_URL and the network (proxy, firewall, DNS), then run doctor again",
        )
    if err.status in (401, 403):
        return Check(
            "cekura key",
            Level.FAIL,
            str(err),
            "create an org- or project-scoped key in Cekura's settings",
        )
    return Check(
        "cekura key",
        Level.FAIL,
        str(err),
        f"Cekura answered HTTP {err.status}: check that CEKURA_API_URL is Cekura's API; if it is, "
        "retry later",
    )


def _exists_live(client: CekuraClient, files: Sequence[MetricFile], checks: list[Check]) -> None:
    missing = []
    for project in sorted({f.metric.project for f in files}, key=str):
        listed = {m.id for m in client.list_metrics(project_id=project)}
        missing += [f.metric.slug for f in files if f.metric.project == project and f.metric.id not in listed]
    if missing:
        checks.append(
            Check(
                "live metrics",
                Level.FAIL,
                f"not found in Cekura: {', '.join(sorted(missing))}",
                "merge the files so apply creates them, or fix their id/project",
            )
        )
    elif files:
        checks.append(Check("live metrics", Level.OK, f"all {len(files)} managed metric(s) exist"))
    else:
        checks.append(Check("live metrics", Level.OK, "no managed metrics to look up"))


def _cron_jobs(client: CekuraClient, files: Sequence[MetricFile], checks: list[Check]) -> None:
    managed = {f.metric.id: f.metric.slug for f in files if f.metric.id is not None}
    try:
        jobs = client.list_cron_jobs()
    except CekuraAPIError as err:
        checks.append(Check("cekura schedules", Level.WARN, f"could not list them: {err}"))
        return
    fighting = []
    for job in jobs:
        if not job.get("auto_apply") or job.get("is_active") is False:
            continue
        overlap = [
            managed[int(m)] for m in job.get("metrics") or [] if isinstance(m, int) and int(m) in managed
        ]
        if overlap:
            fighting.append(f"{job.get('name') or job.get('id')} ({', '.join(overlap)})")
    if fighting:
        checks.append(
            Check(
                "cekura schedules",
                Level.FAIL,
                f"Cekura's optimiser schedule auto-applies to git-managed metrics: {'; '.join(fighting)}",
                "turn auto-apply off for those schedules (read-only) or remove them: two controllers "
                "would fight, and every auto-apply shows up as drift",
            )
        )
    else:
        checks.append(
            Check("cekura schedules", Level.OK, "no Cekura schedule auto-applies to a managed metric")
        )


def _identity(settings: Settings, checks: list[Check]) -> bool:
    """Which identity GitHub will see, and (for an App) its permissions; False if unusable."""
    from cekura_gitops.githubaccess import access_for

    try:
        who, permissions = access_for(settings).describe()
    except GitOpsError as err:
        checks.append(Check("github identity", Level.FAIL, str(err)))
        return False
    if not permissions:
        checks.append(Check("github identity", Level.OK, who))
        return True
    listed = ", ".join(f"{k}: {v}" for k, v in sorted(permissions.items()))
    lacking = [p for p in APP_PERMISSIONS if permissions.get(p) != "write"]
    if lacking:
        checks.append(
            Check(
                "github identity",
                Level.FAIL,
                f"{who}; permissions {listed}",
                f"give the App {' and '.join(f'{p}: write' for p in lacking)} (App settings → "
                "Permissions), then accept the change on the installation",
            )
        )
        return True
    checks.append(Check("github identity", Level.OK, f"{who}; permissions {listed}"))
    return True


def _github(settings: Settings, checks: list[Check]) -> None:
    if not settings.github_configured:
        checks.append(
            Check(
                "github",
                Level.WARN,
                "GITHUB_REPOSITORY and GITHUB_TOKEN (or a GitHub App) not set",
                "set them to let sync open pull requests (Actions sets GITHUB_REPOSITORY; README: "
                "GitHub App)",
            )
        )
        return
    if not _identity(settings, checks):
        return
    from cekura_gitops.clients import github_client

    try:
        with github_client(settings) as client:
            repo = client.get_repo()
    except GitHubAPIError as err:
        checks.append(Check("github", Level.FAIL, str(err), "check the token's repository access"))
        return
    except GitOpsError as err:
        checks.append(Check("github", Level.FAIL, str(err)))
        return
    if repo.can_push is False:
        checks.append(
            Check(
                "github",
                Level.FAIL,
                f"{repo.full_name}: the token cannot push",
                "grant contents: write and pull-requests: write",
            )
        )
    else:
        checks.append(
            Check("github", Level.OK, f"{repo.full_name} reachable (default branch {repo.default_branch})")
        )
    if settings.github_actions and settings.github_token == settings.actions_token and not settings.uses_app:
        checks.append(
            Check(
                "github token",
                Level.WARN,
                "this is the Actions GITHUB_TOKEN: PRs it opens run no workflows",
                "use a GitHub App token (README: GitHub App)",
            )
        )

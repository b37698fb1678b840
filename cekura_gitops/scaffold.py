"""What `init` writes into a metrics repository, and how it finds that repository's default branch.

The templates are package data (`cekura_gitops/templates/`), filled in by plain text
replacement: a workflow is full of `${{ }}` expressions no template engine should touch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from importlib import resources

from cekura_gitops import release
from cekura_gitops.errors import ConfigError, GitError, GitHubAPIError
from cekura_gitops.gitrepo import GitRepo
from cekura_gitops.release import ActionRef
from cekura_gitops.settings import Settings

WORKFLOWS_DIR = ".github/workflows"
WORKFLOW_FILES = ("cekura-optimise.yml", "cekura-plan.yml", "cekura-apply.yml")
CONFIG_FILE = "cekura-gitops.yaml"
# Written into YAML and into workflow `paths:` globs: keep them to characters that need no
# quoting rules beyond JSON's and that no glob or expression reads specially.
_SAFE_DIR = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*")
_SAFE_BRANCH = re.compile(r"[A-Za-z0-9_.+/-]+")


@dataclass(frozen=True)
class Scaffold:
    """The facts of one repository that the files are written for."""

    branch: str
    metrics_dir: str  # relative to the repository root, `/`-separated
    action: ActionRef


def check(scaffold: Scaffold) -> Scaffold:
    """The same scaffold, or ConfigError naming the value a workflow could not hold."""
    if not _SAFE_DIR.fullmatch(scaffold.metrics_dir) or ".." in scaffold.metrics_dir.split("/"):
        raise ConfigError(
            f"metrics folder {scaffold.metrics_dir!r} cannot go into a workflow's paths filter: "
            "use a folder name of letters, digits, '.', '_' and '-'"
        )
    if not _SAFE_BRANCH.fullmatch(scaffold.branch) or scaffold.branch.startswith("-"):
        raise ConfigError(
            f"default branch {scaffold.branch!r} has characters a workflow filter reads as a "
            "pattern: pass --branch with the exact name, or rename the branch"
        )
    return scaffold


def render(scaffold: Scaffold) -> dict[str, str]:
    """Repository-relative path -> text, for the three workflows and the config file."""
    check(scaffold)
    values = {
        "@@ACTION@@": scaffold.action.uses,
        "@@BRANCH@@": json.dumps(scaffold.branch),
        "@@BRANCH_NAME@@": scaffold.branch,
        "@@METRICS_DIR_YAML@@": json.dumps(scaffold.metrics_dir),
        "@@METRICS_DIR@@": scaffold.metrics_dir,
        "@@CONFIG_SCHEMA@@": release.schema_url("config"),
    }
    files = {f"{WORKFLOWS_DIR}/{name}": _template(name) for name in WORKFLOW_FILES}
    files[CONFIG_FILE] = _template(CONFIG_FILE)
    out = {}
    for path, text in files.items():
        for key, value in values.items():
            text = text.replace(key, value)
        out[path] = text
    return out


def _template(name: str) -> str:
    return resources.files("cekura_gitops").joinpath("templates").joinpath(name).read_text(encoding="utf-8")


# --- the default branch -----------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    branch: str
    source: str  # where it came from, for the user: "origin", "the GitHub API"


def default_branch(repo: GitRepo, settings: Settings) -> Found | None:
    """The remote's default branch: what its HEAD names, else what the GitHub API says.

    Never `refs/remotes/origin/HEAD` alone: a clone made the way actions/checkout makes one,
    or an old clone whose remote changed its default, has none or a stale one.
    """
    remote = settings.remote
    if repo.has_remote(remote):
        try:
            branch = repo.remote_head(remote)
        except GitError:
            branch = None
        if branch:
            return Found(branch, remote)
    return _from_github(repo, settings)


def _from_github(repo: GitRepo, settings: Settings) -> Found | None:
    repository = settings.github_repository or _repository_from_remote(repo, settings.remote)
    if not settings.github_token or not repository:
        return None
    from cekura_gitops.pullrequests import client_for

    try:
        with client_for(replace(settings, github_repository=repository)) as client:
            return Found(client.get_repo().default_branch, "the GitHub API")
    except (GitHubAPIError, ConfigError):
        return None


def _repository_from_remote(repo: GitRepo, remote: str) -> str | None:
    """`owner/name` from a GitHub remote URL (https or ssh), None for anything else."""
    url = repo.try_run("remote", "get-url", remote) if repo.has_remote(remote) else None
    match = re.search(r"github\.com[:/]([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$", url or "")
    return f"{match[1]}/{match[2]}" if match else None

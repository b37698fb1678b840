"""What `init` writes into a metrics repository, and how it finds that repository's default branch.

The templates are package data (`cekura_gitops/templates/`), filled in by plain text
replacement: a workflow is full of `${{ }}` expressions no template engine should touch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cekura_gitops import defaultbranch, release, yamltext
from cekura_gitops.errors import ConfigError, GitHubAPIError, MetricValidationError
from cekura_gitops.github import GitHubClient
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


def default_branch(
    repo: GitRepo, settings: Settings, github: Callable[[str], GitHubClient] | None = None
) -> str | None:
    """The default branch as defaultbranch.py decides it (event, settings, then the remote's
    own HEAD via `ls-remote --symref`), else what the GitHub API says; never `origin/HEAD`.

    `github` gives a client on a repository (owner/name); None when there is no token.
    """
    remote = settings.remote if repo.has_remote(settings.remote) else None
    try:
        return defaultbranch.default_branch(settings, repo, remote)
    except ConfigError:
        return _from_github(repo, settings.github_repository, settings.remote, github)


def _from_github(
    repo: GitRepo, repository: str | None, remote: str, github: Callable[[str], GitHubClient] | None
) -> str | None:
    repository = repository or _repository_from_remote(repo, remote)
    if github is None or not repository:
        return None
    try:
        with github(repository) as client:
            return client.get_repo().default_branch
    except (GitHubAPIError, ConfigError):
        return None


def _repository_from_remote(repo: GitRepo, remote: str) -> str | None:
    """`owner/name` from a GitHub remote URL (https or ssh), None for anything else."""
    url = repo.try_git("remote", "get-url", remote) if repo.has_remote(remote) else None
    match = re.search(r"github\.com[:/]([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$", url or "")
    return f"{match[1]}/{match[2]}" if match else None


# --- checking what init wrote (doctor) ------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    serious: bool  # True: the workflows cannot work as they are; False: advice
    message: str


def audit(root: Path, metrics_dir: str, branch: str | None) -> list[Finding] | None:
    """Problems in the workflows init writes, or None when none of them is there."""
    folder = root / WORKFLOWS_DIR
    present = {name: folder / name for name in WORKFLOW_FILES if (folder / name).is_file()}
    if not present:
        return None
    found = [Finding(True, f"{WORKFLOWS_DIR}/{n} is missing") for n in WORKFLOW_FILES if n not in present]
    for name, path in present.items():
        try:
            doc = yamltext.parse(path.read_text(encoding="utf-8"), f"{WORKFLOWS_DIR}/{name}").data
        except (OSError, UnicodeDecodeError, MetricValidationError) as err:
            found.append(Finding(True, f"{WORKFLOWS_DIR}/{name} cannot be read: {err}"))
            continue
        found += [
            Finding(s, f"{WORKFLOWS_DIR}/{name}: {m}") for s, m in _audit_one(name, doc, metrics_dir, branch)
        ]
    return found


def _audit_one(name: str, doc: Any, metrics_dir: str, branch: str | None) -> list[tuple[bool, str]]:
    if not isinstance(doc, dict):
        return [(True, "is not a workflow")]
    triggers = doc.get("on") or {}  # yamltext reads YAML 1.2: the key `on` stays a string
    triggers = triggers if isinstance(triggers, dict) else {}
    out: list[tuple[bool, str]] = []
    steps = [s for job in (doc.get("jobs") or {}).values() for s in (job or {}).get("steps") or []]
    ours = [s for s in steps if isinstance(s, dict) and _is_ours(str(s.get("uses", "")))]
    if not ours:
        out.append((True, "does not use the cekura-gitops Action"))
    for step in ours:
        ref = str(step["uses"]).partition("@")[2]
        if step["uses"] != "./" and not release.FULL_SHA.fullmatch(ref):
            out.append((False, f"the Action is at {ref!r}, not a commit SHA: a moved tag changes what runs"))
        given = str((step.get("with") or {}).get("metrics-dir", "metrics"))
        if given != metrics_dir:
            out.append((True, f"passes metrics-dir {given!r}, but the metrics are in {metrics_dir!r}"))
    push = triggers.get("push") or {}
    if name == "cekura-apply.yml" and branch and branch not in (push.get("branches") or []):
        out.append((True, f"applies pushes to {push.get('branches')}, not to the default branch {branch!r}"))
    if name in ("cekura-apply.yml", "cekura-plan.yml"):
        event = push if name == "cekura-apply.yml" else triggers.get("pull_request") or {}
        paths = event.get("paths") or []
        if paths and f"{metrics_dir}/**" not in paths:
            out.append((True, f"runs only for {paths}, which does not include {metrics_dir}/**"))
    if name == "cekura-plan.yml" and "merge_group" not in triggers:
        out.append((False, "does not run on merge_group: a merge queue requiring it would wait forever"))
    return out


def _is_ours(uses: str) -> bool:
    return uses == "./" or uses.partition("@")[0].endswith("/cekura-gitops")

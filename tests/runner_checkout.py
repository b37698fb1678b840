"""Working copies made exactly as GitHub's runner makes them, for the runner-faithful tests.

actions/checkout (v4, `src/git-source-provider.ts` and `src/ref-helper.ts`) never clones:

    git init <workspace>
    git remote add origin <url>
    git config --local gc.auto 0
    git -c protocol.version=2 fetch --no-tags --prune --no-recurse-submodules --depth=1 \\
        origin +<sha>:refs/remotes/origin/<branch>          # push, schedule (fetch-depth: 1)
        origin +<sha>:refs/remotes/pull/<N>/merge            # pull_request
    git -c protocol.version=2 fetch --prune --no-recurse-submodules \\
        origin +refs/heads/*:refs/remotes/origin/* +refs/tags/*:refs/tags/*   # fetch-depth: 0
    git checkout --progress --force -B <branch> refs/remotes/origin/<branch>    # a branch
    git checkout --progress --force refs/remotes/pull/<N>/merge                 # detached

So there is no `refs/remotes/origin/HEAD`, no upstream, and by default one commit of
history. The step environment and the event payload follow github-notes.md §4 (a
schedule's payload is only `{"schedule": cron}`; its GITHUB_REF is the default branch).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import git

REPOSITORY = "acme/metrics"
BOT_EMAIL = "cekura-gitops@users.noreply.github.com"


@dataclass
class Origin:
    """A bare origin whose HEAD names `default` (main, master, trunk...)."""

    path: Path
    default: str

    def git(self, *args: str) -> str:
        return git(self.path, *args)

    def tip(self, branch: str | None = None) -> str:
        return self.git("rev-parse", f"refs/heads/{branch or self.default}")

    def file(self, ref: str, rel: str) -> str | None:
        try:
            return self.git("show", f"{ref}:{rel}")
        except AssertionError:
            return None

    def ref(self, ref: str) -> str | None:
        out = self.git("for-each-ref", "--format=%(objectname)", ref)
        return out or None


def origin_from(template: Path, dest: Path, default: str) -> Origin:
    """A private copy of a bare template (its branch `main`) with `default` as its branch."""
    shutil.copytree(template, dest)
    if default != "main":
        git(dest, "branch", "-m", "main", default)
    git(dest, "symbolic-ref", "HEAD", f"refs/heads/{default}")
    return Origin(dest, default)


def human_push(
    origin: Origin, tmp: Path, rel: str, edit: Any, message: str, branch: str | None = None
) -> str:
    """A developer clones, edits one file (edit: old text -> new text), commits and pushes
    to `branch` (default: the default branch); returns the pushed sha."""
    work = tmp / f"dev-{len(list(tmp.glob('dev-*')))}"
    git(tmp, "clone", "-q", str(origin.path), str(work))
    target = branch or origin.default
    if branch and branch != origin.default:
        git(work, "checkout", "-q", "-b", branch)
    path = work / rel
    path.write_text(edit(path.read_text()))
    git(work, "commit", "-qam", message)
    git(work, "push", "-q", "origin", f"HEAD:refs/heads/{target}")
    return git(work, "rev-parse", "HEAD")


def make_pull_merge_ref(origin: Origin, tmp: Path, branch: str, number: int) -> tuple[str, str]:
    """What GitHub keeps for an open PR: `refs/pull/N/merge`, the test merge of the head
    branch into the base. Returns (merge sha, base sha)."""
    work = tmp / f"merge-{number}"
    git(tmp, "clone", "-q", str(origin.path), str(work))
    git(work, "checkout", "-q", origin.default)
    git(work, "merge", "-q", "--no-ff", "-m", f"Merge {branch} into {origin.default}", f"origin/{branch}")
    merge = git(work, "rev-parse", "HEAD")
    git(work, "push", "-q", "origin", f"HEAD:refs/pull/{number}/merge")
    return merge, git(work, "rev-parse", "HEAD^1")


@dataclass
class Checkout:
    """A runner's workspace and the environment its steps see."""

    work: Path
    env: dict[str, str]
    runner_temp: Path
    steps: int = field(default=0)

    def step_env(self) -> dict[str, str]:
        """The environment of one step: GITHUB_OUTPUT and the summary are new files each step."""
        self.steps += 1
        output = self.runner_temp / f"output-{self.steps}"
        summary = self.runner_temp / f"summary-{self.steps}"
        output.touch()
        summary.touch()
        return {**self.env, "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}

    def git(self, *args: str) -> str:
        return git(self.work, *args)


def actions_checkout(
    origin: Origin,
    root: Path,
    *,
    event: str,
    depth: int = 1,
    sha: str | None = None,
    before: str | None = None,
    pull_number: int | None = None,
    pull_head: str | None = None,
) -> Checkout:
    """A workspace as actions/checkout makes it for `event` (push, pull_request, schedule,
    workflow_dispatch), with the runner's environment and event payload.

    push: `sha` is the pushed tip (default: the default branch's tip), `before` the old tip.
    pull_request: `pull_number` names refs/pull/N/merge in origin (make_pull_merge_ref).
    """
    root.mkdir(parents=True)
    work, temp = root / "workspace", root / "runner-temp"
    temp.mkdir()
    git(root, "init", "-q", str(work))
    git(work, "remote", "add", "origin", str(origin.path))
    git(work, "config", "--local", "gc.auto", "0")
    shallow = [f"--depth={depth}"] if depth else []
    if event == "pull_request":
        assert pull_number is not None
        merge_ref = f"refs/pull/{pull_number}/merge"
        sha = origin.git("rev-parse", merge_ref)
        tracking = f"refs/remotes/pull/{pull_number}/merge"
        specs = [f"+{sha}:{tracking}"]
        if not depth:
            specs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*", *specs]
        _fetch(work, shallow, specs)
        git(work, "checkout", "-q", "--progress", "--force", tracking)
        ref, ref_name = merge_ref, f"{pull_number}/merge"
    else:
        branch = origin.default
        sha = sha or origin.tip()
        if depth:
            _fetch(work, shallow, [f"+{sha}:refs/remotes/origin/{branch}"])
        else:
            _fetch(work, [], ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"])
        git(work, "checkout", "-q", "--progress", "--force", "-B", branch, f"refs/remotes/origin/{branch}")
        ref, ref_name = f"refs/heads/{branch}", branch
    assert git(work, "for-each-ref", "refs/remotes/origin/HEAD") == ""  # as on the runner
    payload = _payload(origin, event, sha, before, pull_number, pull_head)
    event_path = temp / "event.json"
    event_path.write_text(json.dumps(payload))
    env = {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "RUNNER_OS": "Linux",
        "RUNNER_TEMP": str(temp),
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_REPOSITORY_OWNER": REPOSITORY.split("/")[0],
        "GITHUB_REF": ref,
        "GITHUB_REF_NAME": ref_name,
        "GITHUB_SHA": sha,
        "GITHUB_WORKSPACE": str(work),
        "GITHUB_RUN_ID": "4242",
        "GITHUB_SERVER_URL": "https://github.com",
        # Nothing here answers: a command that calls GitHub without a token would fail loudly.
        "GITHUB_API_URL": "http://127.0.0.1:9",
    }
    return Checkout(work, env, temp)


def _fetch(work: Path, shallow: list[str], specs: list[str]) -> None:
    tags = ["--no-tags"] if shallow else []
    git(
        work,
        "-c",
        "protocol.version=2",
        "fetch",
        *tags,
        "--prune",
        "--no-recurse-submodules",
        *shallow,
        "origin",
        *specs,
    )


def _payload(
    origin: Origin, event: str, sha: str, before: str | None, number: int | None, head: str | None
) -> dict[str, Any]:
    repository = {"full_name": REPOSITORY, "name": "metrics", "default_branch": origin.default}
    if event == "schedule":
        return {"schedule": "17 3 * * *"}
    if event == "push":
        return {
            "ref": f"refs/heads/{origin.default}",
            "before": before or "0" * 40,
            "after": sha,
            "created": before is None,
            "forced": False,
            "commits": [{"id": sha, "message": "change"}],
            "head_commit": {"id": sha, "message": "change"},
            "repository": repository,
        }
    if event == "pull_request":
        return {
            "action": "synchronize",
            "number": number,
            "pull_request": {
                "number": number,
                "head": {"ref": head, "sha": origin.tip(head) if head else sha},
                "base": {"ref": origin.default, "sha": origin.tip(), "repo": {"full_name": REPOSITORY}},
            },
            "repository": repository,
        }
    return {"ref": f"refs/heads/{origin.default}", "repository": repository}

"""The fake GitHub's App and Git Data routes (github-notes §7), as a mixin of `FakeGitHub`.

- `GET /repos/{o}/{r}/installation` and `POST /app/installations/{id}/access_tokens` answer
  an App JWT only (checked by the gate), 404 when the App is not installed, 403 when it is
  suspended, 422 when a token is asked for a repository outside the installation.
- blobs, trees and commits are real git objects in the bare origin. A commit created without
  `author`, `committer` and `signature` by a bot (an App's installation token, or the Actions
  token) is authored by the bot's noreply address, committed by GitHub, and `verified`;
  any custom identity makes it `unsigned`, as on GitHub.
- `require_signed_commits()` turns on a ruleset: pushes to branches are refused with
  GitHub's GH013 message (a pre-receive hook), and ref updates via the API to an unverified
  commit answer 422 "Repository rule violations found".
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .github_app import FakeApp, TokenBook

GITHUB_COMMITTER = ("GitHub", "noreply@github.com")
ACTIONS_BOT_ID = 41898282
RULE_MESSAGE = "Commits must have verified signatures."

_HOOK = """#!/bin/sh
status=0
while read old new ref; do
  case "$ref" in
    refs/heads/*)
      echo "error: GH013: Repository rule violations found for $ref." >&2
      echo "Review all repository rules at https://github.com/{full_name}/rules?ref=$ref" >&2
      echo "" >&2
      echo "- {rule}" >&2
      echo "  Found 1 violation:" >&2
      echo "" >&2
      echo "  $new" >&2
      status=1;;
  esac
done
exit $status
"""


class GitDataRoutes:
    """Needs from `FakeGitHub`: origin_path, full_name, owner, app, clock, tokens, _api,
    _git, _git_ok, _acting, _user, and `_Reply`/`_error` passed in as `reply`/`error`."""

    origin_path: str | None
    full_name: str
    owner: str
    app: FakeApp | None
    tokens: TokenBook
    signed_commits_required: bool
    _verification: dict[str, dict[str, Any]]

    # -- the App ---------------------------------------------------------------------------

    def _r_get_installation(self, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        app = self.app
        if app is None or not app.installed:
            raise self._fail(
                404, "Not Found", "/apps/apps#get-a-repository-installation-for-the-authenticated-app"
            )
        return 200, {}, self._render_installation(app)

    def _r_create_installation_token(
        self, query: dict[str, str], body: Any, installation_id: str
    ) -> tuple[int, dict[str, str], Any]:
        doc = "/apps/apps#create-an-installation-access-token-for-an-app"
        app = self.app
        if app is None or not app.installed or int(installation_id) != app.installation_id:
            raise self._fail(404, "Not Found", doc)
        if app.suspended:
            raise self._fail(403, "This installation has been suspended", doc)
        body = body if isinstance(body, dict) else {}
        wanted = tuple(str(r) for r in body.get("repositories") or ())
        repo_name = self.full_name.split("/", 1)[1]
        if any(r != repo_name for r in wanted):
            raise self._fail(
                422,
                "There is at least one repository that does not exist or is not accessible to the "
                "parent installation.",
                doc,
            )
        issued = self.tokens.mint(self.clock(), wanted)
        expires = dt.datetime.fromtimestamp(issued.expires_at, dt.timezone.utc)
        return (
            201,
            {},
            {
                "token": issued.token,
                "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "permissions": dict(app.permissions),
                "repository_selection": "selected" if wanted else "all",
            },
        )

    def _render_installation(self, app: FakeApp) -> dict[str, Any]:
        api = self._api
        suspended_at = "2026-01-01T00:00:00Z" if app.suspended else None
        return {
            "id": app.installation_id,
            "account": self._user(self.owner),
            "repository_selection": "selected",
            "access_tokens_url": f"{api}/app/installations/{app.installation_id}/access_tokens",
            "repositories_url": f"{api}/installation/repositories",
            "html_url": f"https://github.com/organizations/{self.owner}/settings/installations/{app.installation_id}",
            "app_id": app.app_id,
            "client_id": f"Iv23li{app.app_id}",
            "app_slug": app.slug,
            "target_id": 1,
            "target_type": "Organization",
            "permissions": dict(app.permissions),
            "events": ["pull_request"],
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "single_file_name": None,
            "suspended_by": self._user("octocat") if app.suspended else None,
            "suspended_at": suspended_at,
        }

    # -- Git Data ----------------------------------------------------------------------------

    def _r_create_blob(self, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        self._need_origin()
        body = body if isinstance(body, dict) else {}
        content = str(body.get("content", ""))
        encoding = body.get("encoding", "utf-8")
        if encoding not in ("utf-8", "base64"):
            raise self._fail(422, f"encoding must be utf-8 or base64, got {encoding!r}", "/git/blobs")
        data = base64.b64decode(content, validate=True) if encoding == "base64" else content.encode()
        sha = self._git_input(data, "hash-object", "-w", "--stdin").strip()
        url = f"{self._api}/repos/{self.full_name}/git/blobs/{sha}"
        return 201, {"Location": url}, {"url": url, "sha": sha}

    def _r_create_tree(self, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        self._need_origin()
        doc = "/git/trees#create-a-tree"
        body = body if isinstance(body, dict) else {}
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
            base = body.get("base_tree")
            if base:
                if not self._git_ok("cat-file", "-e", f"{base}^{{tree}}"):
                    raise self._fail(422, "Invalid tree info", doc)
                self._git("read-tree", str(base), env=env)
            for entry in body.get("tree") or []:
                path, mode = str(entry["path"]), str(entry["mode"])
                if "content" in entry:
                    sha = self._git_input(
                        str(entry["content"]).encode(), "hash-object", "-w", "--stdin"
                    ).strip()
                else:
                    sha = entry.get("sha")
                if sha is None:
                    self._git("update-index", "--force-remove", "--", path, env=env)
                    continue
                if not self._git_ok("cat-file", "-e", f"{sha}^{{blob}}"):
                    raise self._fail(422, f"tree.sha {sha} is not a valid blob", doc)
                self._git("update-index", "--add", "--cacheinfo", f"{mode},{sha},{path}", env=env)
            tree = self._git("write-tree", env=env).strip()
        url = f"{self._api}/repos/{self.full_name}/git/trees/{tree}"
        return 201, {"Location": url}, self._render_tree(tree)

    def _r_get_tree(self, query: dict[str, str], body: Any, tree_sha: str) -> tuple[int, dict[str, str], Any]:
        self._need_origin()
        if not self._git_ok("cat-file", "-e", f"{tree_sha}^{{tree}}"):
            raise self._fail(404, "Not Found", "/git/trees#get-a-tree")
        sha = self._git("rev-parse", f"{tree_sha}^{{tree}}").strip()
        return 200, {}, self._render_tree(sha)

    def _r_create_commit(self, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        self._need_origin()
        doc = "/git/commits#create-a-commit"
        body = body if isinstance(body, dict) else {}
        tree, message = str(body.get("tree", "")), str(body.get("message", ""))
        if not self._git_ok("cat-file", "-e", f"{tree}^{{tree}}"):
            raise self._fail(422, "Tree SHA does not exist", doc)
        parents = [str(p) for p in body.get("parents") or []]
        for parent in parents:
            if not self._git_ok("cat-file", "-e", f"{parent}^{{commit}}"):
                raise self._fail(422, "Parent SHA does not exist or is not a commit object", doc)
        actor = self._acting()
        custom = any(k in body for k in ("author", "committer", "signature"))
        author = body.get("author") or {"name": actor, "email": self._noreply(actor)}
        committer = body.get("committer") or (
            author if "author" in body else {"name": GITHUB_COMMITTER[0], "email": GITHUB_COMMITTER[1]}
        )
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": str(author["name"]),
            "GIT_AUTHOR_EMAIL": str(author["email"]),
            "GIT_COMMITTER_NAME": str(committer["name"]),
            "GIT_COMMITTER_EMAIL": str(committer["email"]),
        }
        args = ["commit-tree", tree, *(a for p in parents for a in ("-p", p))]
        sha = self._git_input(message.encode(), *args, env=env).strip()
        signed = not custom and actor.endswith("[bot]")
        self._verification[sha] = {
            "verified": signed,
            "reason": "valid" if signed else "unsigned",
            "signature": "-----BEGIN PGP SIGNATURE-----\nfake\n-----END PGP SIGNATURE-----"
            if signed
            else None,
            "payload": self._git("cat-file", "commit", sha) if signed else None,
            "verified_at": "2026-01-01T00:00:00Z" if signed else None,
        }
        rendered = self._render_git_commit(sha)
        return 201, {"Location": rendered["url"]}, rendered

    def _r_get_git_commit(
        self, query: dict[str, str], body: Any, commit_sha: str
    ) -> tuple[int, dict[str, str], Any]:
        self._need_origin()
        if not self._git_ok("cat-file", "-e", f"{commit_sha}^{{commit}}"):
            raise self._fail(404, "Not Found", "/git/commits#get-a-commit-object")
        return 200, {}, self._render_git_commit(commit_sha)

    def verification(self, sha: str) -> dict[str, Any]:
        """What GitHub says about a commit's signature (pushed commits are unsigned)."""
        return dict(self._verification.get(sha) or _UNSIGNED)

    def require_signed_commits(self) -> None:
        """A ruleset 'Require signed commits' on every branch (git pushes and API ref updates)."""
        assert self.origin_path is not None, "needs origin_path"
        self.signed_commits_required = True
        hook = Path(self.origin_path) / "hooks" / "pre-receive"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(_HOOK.replace("{full_name}", self.full_name).replace("{rule}", RULE_MESSAGE))
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def _check_ruleset(self, ref: str, sha: str) -> None:
        """Called by the ref routes: an unverified commit may not land on a branch."""
        if (
            self.signed_commits_required
            and ref.startswith("heads/")
            and not self.verification(sha)["verified"]
        ):
            raise self._fail(
                422, f"Repository rule violations found\n\n{RULE_MESSAGE}\n\n", "/git/refs#update-a-reference"
            )

    # -- rendering and helpers ---------------------------------------------------------------

    def _render_git_commit(self, sha: str) -> dict[str, Any]:
        api = f"{self._api}/repos/{self.full_name}"
        fmt = "%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
        tree, parents, an, ae, ad, cn, ce, cd, message = self._git(
            "show", "-s", f"--format={fmt}", sha
        ).split("\x00", 8)
        return {
            "sha": sha,
            "node_id": f"C_kwDOFAKE{sha[:12]}",
            "url": f"{api}/git/commits/{sha}",
            "html_url": f"https://github.com/{self.full_name}/commit/{sha}",
            "author": {"name": an, "email": ae, "date": _utc(ad)},
            "committer": {"name": cn, "email": ce, "date": _utc(cd)},
            "message": message.rstrip("\n"),
            "tree": {"sha": tree, "url": f"{api}/git/trees/{tree}"},
            "parents": [
                {
                    "sha": p,
                    "url": f"{api}/git/commits/{p}",
                    "html_url": f"https://github.com/{self.full_name}/commit/{p}",
                }
                for p in parents.split()
            ],
            "verification": self.verification(sha),
        }

    def _render_tree(self, sha: str) -> dict[str, Any]:
        api = f"{self._api}/repos/{self.full_name}"
        entries = []
        for line in self._git("ls-tree", "-l", sha).splitlines():
            meta, path = line.split("\t", 1)
            mode, kind, obj, size = meta.split()
            entry: dict[str, Any] = {"path": path, "mode": mode, "type": kind, "sha": obj}
            entry["url"] = f"{api}/git/{'blobs' if kind == 'blob' else 'trees'}/{obj}"
            if kind == "blob":
                entry["size"] = int(size)
            entries.append(entry)
        return {"sha": sha, "url": f"{api}/git/trees/{sha}", "tree": entries, "truncated": False}

    def _noreply(self, login: str) -> str:
        if self.app is not None and login == self.app.login:
            return self.app.bot_email
        user_id = ACTIONS_BOT_ID if login == "github-actions[bot]" else 1
        return f"{user_id}+{login}@users.noreply.github.com"

    def _need_origin(self) -> None:
        if self.origin_path is None:
            raise self._fail(409, "Git Repository is empty.", "/git")

    def _git_input(self, data: bytes, *args: str, env: dict[str, str] | None = None) -> str:
        assert self.origin_path is not None
        done = subprocess.run(
            ["git", "-C", self.origin_path, *args], input=data, capture_output=True, check=True, env=env
        )
        return done.stdout.decode()

    # Provided by FakeGitHub:
    def _fail(self, status: int, message: str, doc: str) -> Exception:  # pragma: no cover
        raise NotImplementedError

    def _acting(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def clock(self) -> float:  # pragma: no cover
        raise NotImplementedError

    @property
    def _api(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def _user(self, login: str) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def _git(self, *args: str, env: dict[str, str] | None = None) -> str:  # pragma: no cover
        raise NotImplementedError

    def _git_ok(self, *args: str, out: bool = False) -> Any:  # pragma: no cover
        raise NotImplementedError


_UNSIGNED = {"verified": False, "reason": "unsigned", "signature": None, "payload": None, "verified_at": None}


def _utc(iso: str) -> str:
    return dt.datetime.fromisoformat(iso).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["GitDataRoutes", "RULE_MESSAGE"]

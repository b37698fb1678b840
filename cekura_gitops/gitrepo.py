"""Git: the only module (with its helper gitobjects.py) that touches a repository.

Every command is the git CLI started with `subprocess`, arguments always as a list and
never through a shell, so a hostile slug cannot become a command; each runs with
`gc.auto=0` and `maintenance.auto=false`, so none starts housekeeping on the runner's time.
GitPython is not used: its one job here was a rename-aware diff, which is one
`git diff-tree -M` (GitPython starts that same process, after a slow import), and its
shared `cat-file` pipe is not safe across sync's worker threads.

Proposal branches and the state ref are written without a checkout: the commit's blob,
trees and commit object are written in-process (gitobjects.py), or, for a repository
that is not SHA-1, with plumbing (a private index file, `commit-tree`). The user's working
tree is left alone and several metrics can be written concurrently.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cekura_gitops.errors import GitError

if TYPE_CHECKING:
    import subprocess  # imported where a git runs: `--version` starts no subprocess module

ZERO_SHA = "0" * 40
# Every git the tool starts: no automatic gc or maintenance. A sync makes many small
# commits and fetches, and each could start `gc --auto` (or `maintenance run --auto`)
# behind our back, on the runner's time; a clone on a CI runner lives for one job anyway.
GIT = ("git", "-c", "gc.auto=0", "-c", "maintenance.auto=false")
# How `git push --force-with-lease` says the ref moved under us (locally, or in a race
# with another push on the remote's side): the compare-and-swap lost, nothing broke.
LEASE_FAILURES = (
    "stale info",
    "fetch first",
    "non-fast-forward",
    "cannot lock ref",
    "failed to update ref",
    "incorrect old value",
)


# git's credential channel for a token the tool holds (a GitHub App's installation token):
# the helper reads it from the environment of the git process that asks, so it appears in
# no argv, URL or .git/config. `credential.helper=` first empties the helper list, so no
# other helper (a credential store) is asked to save it.
TOKEN_ENV = "CEKURA_GITOPS_GIT_TOKEN"
CREDENTIAL_HELPER = (
    f'!f() {{ test "$1" = get && printf \'username=x-access-token\\npassword=%s\\n\' "${TOKEN_ENV}"; }}; f'
)
RULESET_HINT = (
    "a repository ruleset rejected the push (e.g. 'Require signed commits'): set "
    "`git: {commit_via: api}` in cekura-gitops.yaml so GitHub creates and signs the bot's "
    "commits, or add the bot to the ruleset's bypass list"
)


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author_email: str
    committer_email: str
    author_name: str
    subject: str


@dataclass(frozen=True)
class LogEntry:
    """A commit as `git log` shows it: id, commit time (Unix seconds), full message."""

    sha: str
    committed_at: int
    message: str


@dataclass(frozen=True)
class FileChange:
    """A metric file changed between two commits (from git's rename-aware diff)."""

    status: str  # "added" | "modified" | "deleted" | "renamed"
    old_path: str | None
    new_path: str | None


class GitRepo:
    """A working copy (or bare repository) at `path`."""

    def __init__(self, path: Path) -> None:
        import subprocess

        done = subprocess.run(
            [*GIT, "rev-parse", "--show-toplevel"],
            cwd=path if path.is_dir() else path.parent,
            capture_output=True,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
        if done.returncode != 0:
            raise GitError(f"{path} is not inside a git repository: run this in a clone of your metrics repo")
        self.root = Path(done.stdout.decode().strip())
        self._lock = threading.Lock()
        self._objects: Any = None  # gitobjects.ObjectStore, or False: plumbing only
        self._credentials: tuple[Callable[[], str], str | None] | None = None

    def use_credentials(self, token: Callable[[], str] | None, server_url: str | None = None) -> None:
        """Authenticate fetches and pushes with `token()` (asked per command: it may be
        renewed) through the credential channel only. `server_url`: also drop the
        Authorization header actions/checkout persists for that server, which git would
        otherwise send instead of asking the helper."""
        self._credentials = None if token is None else (token, server_url)

    def _net(self, *args: str) -> tuple[list[str], dict[str, str]]:
        """argv (after `git`) and extra environment for a command that talks to a remote."""
        if self._credentials is None:
            return list(args), {}
        token, server_url = self._credentials
        config = ["-c", "credential.helper=", "-c", f"credential.helper={CREDENTIAL_HELPER}"]
        if server_url:
            config += ["-c", f"http.{server_url.rstrip('/')}/.extraheader="]
        return [*config, *args], {TOKEN_ENV: token()}

    def _object_store(self) -> Any:
        """Where commit_files writes objects itself (None: a non-SHA-1 repository)."""
        with self._lock:
            if self._objects is None:
                from cekura_gitops.gitobjects import ObjectStore

                lines = self.git("rev-parse", "--show-object-format", "--git-path", "objects").splitlines()
                if len(lines) == 2 and lines[0] == "sha1":
                    self._objects = ObjectStore(self.root, self.root / lines[1], GIT)
                else:
                    self._objects = False
            return self._objects or None

    def __repr__(self) -> str:
        return f"GitRepo({str(self.root)!r})"

    def git(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        input_bytes: bytes | None = None,
        strip: bool = True,
    ) -> str:
        """`git <args>` in this repository; failures become GitError naming the command."""
        import subprocess

        full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
        done = subprocess.run(
            [*GIT, *args],
            cwd=self.root,
            env=full_env,
            input=input_bytes,
            capture_output=True,
        )
        if done.returncode != 0:
            stderr = done.stderr.decode("utf-8", "replace").strip()
            raise GitError(f"git {args[0]} failed: {_excerpt(stderr) or 'exit ' + str(done.returncode)}")
        out = done.stdout.decode("utf-8", "replace")
        return out.strip() if strip else out

    def try_git(self, *args: str, env: dict[str, str] | None = None) -> str | None:
        try:
            return self.git(*args, env=env)
        except GitError:
            return None

    # --- reading -------------------------------------------------------------------------

    def rev_parse(self, rev: str) -> str | None:
        return self.try_git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")

    def head_sha(self) -> str:
        sha = self.rev_parse("HEAD")
        if sha is None:
            raise GitError("the repository has no commits yet: commit your metric files first")
        return sha

    def current_branch(self) -> str | None:
        return self.try_git("symbolic-ref", "--quiet", "--short", "HEAD")

    def show_file(self, rev: str, path: str) -> bytes | None:
        """A file's bytes at rev, or None when it does not exist there."""
        # A subprocess per read: a shared `cat-file --batch` pipe would not be
        # thread-safe, and sync reads from several worker threads.
        import subprocess

        done = subprocess.run(
            [*GIT, "cat-file", "blob", f"{rev}:{path}"],
            cwd=self.root,
            capture_output=True,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
        return done.stdout if done.returncode == 0 else None

    def list_files(self, rev: str, under: str) -> list[str]:
        """Paths of the files under a folder at rev."""
        out = self.git("ls-tree", "-r", "--name-only", "-z", rev, "--", under, strip=False)
        return [p for p in out.split("\0") if p]

    def tree_entries(self, rev: str, under: str) -> dict[str, str]:
        """path -> git file mode (100644, 100755, 120000 for a symlink, ...) under a folder."""
        out = self.git("ls-tree", "-r", "-z", rev, "--", under, strip=False)
        entries = {}
        for item in out.split("\0"):
            if item:
                meta, path = item.split("\t", 1)
                entries[path] = meta.split(" ", 1)[0]
        return entries

    def read_blobs(self, specs: list[str]) -> dict[str, bytes | None]:
        """Contents of many `rev:path` specs through one `git cat-file --batch` process."""
        import subprocess

        wanted = [s for s in specs if "\n" not in s]
        done = subprocess.run(
            [*GIT, "cat-file", "--batch"],
            cwd=self.root,
            input="".join(f"{s}\n" for s in wanted).encode(),
            capture_output=True,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
        if done.returncode != 0:
            raise GitError(f"git cat-file failed: {_excerpt(done.stderr.decode('utf-8', 'replace'))}")
        out, pos, blobs = done.stdout, 0, {}
        result: dict[str, bytes | None] = {s: None for s in specs}
        for spec in wanted:
            end = out.index(b"\n", pos)
            line = out[pos:end]
            pos = end + 1
            if line.endswith((b" missing", b" ambiguous")):
                continue
            _sha, kind, size = line.rsplit(b" ", 2)
            if kind == b"blob":
                blobs[spec] = out[pos : pos + int(size)]
            pos += int(size) + 1  # a tree or commit is skipped: not a file
        result.update(blobs)
        return result

    def dirty_paths(self, pathspec: str) -> set[str]:
        """Paths under pathspec with uncommitted changes (staged, unstaged or untracked)."""
        out = self.git("status", "--porcelain", "-z", "--untracked-files=all", "--", pathspec, strip=False)
        paths = set()
        entries = out.split("\0")
        i = 0
        while i < len(entries):
            entry = entries[i]
            if len(entry) > 3:
                paths.add(entry[3:])
                if entry[0] in "RC":
                    i += 1  # the rename's source path follows
            i += 1
        return paths

    def changed_files(self, base: str, head: str, under: str) -> list[FileChange]:
        """Metric files changed between base and head, renames detected (git's default
        50 % similarity, as `git diff -M` shows them)."""
        try:
            out = self.git(
                "diff-tree", "-r", "-M", "--name-status", "-z", base, head, "--", under, strip=False
            )
        except GitError:
            for rev in (base, head):
                if self.try_git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}") is None:
                    raise GitError(
                        f"unknown revision {rev!r}: fetch it (actions/checkout fetch-depth: 0?)"
                    ) from None
            raise
        fields = out.split("\0")
        changes, i = [], 0
        while i + 1 < len(fields) and fields[i]:
            kind = fields[i][0]
            if kind in "RC":  # R086 / C075: the similarity score, then old and new path
                old, new = fields[i + 1], fields[i + 2]
                changes.append(
                    FileChange("renamed", old, new) if kind == "R" else FileChange("added", None, new)
                )
                i += 3
                continue
            path = fields[i + 1]
            if kind == "A":
                changes.append(FileChange("added", None, path))
            elif kind == "D":
                changes.append(FileChange("deleted", path, None))
            else:  # M, T (a file became a symlink or back): modified
                changes.append(FileChange("modified", path, path))
            i += 2
        return changes

    def commits_between(self, base: str, tip: str) -> list[CommitInfo]:
        """Commits reachable from tip but not base, newest first."""
        out = self.git("log", "--format=%H%x00%ae%x00%ce%x00%an%x00%s", f"{base}..{tip}")
        result = []
        for line in out.splitlines():
            sha, author, committer, name, subject = line.split("\0", 4)
            result.append(CommitInfo(sha, author, committer, name, subject))
        return result

    def log(self, rev: str, paths: Sequence[str], *, limit: int) -> list[LogEntry]:
        """Commits reachable from rev that touch paths, newest first, with their messages."""
        out = self.git(
            "log", f"--max-count={limit}", "-z", "--format=%H%x1f%ct%x1f%B", rev, "--", *paths, strip=False
        )
        entries = []
        for record in out.split("\0"):
            parts = record.split("\x1f", 2)
            if len(parts) == 3:
                entries.append(LogEntry(parts[0].strip(), int(parts[1]), parts[2]))
        return entries

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self.try_git("merge-base", "--is-ancestor", ancestor, descendant) is not None

    def has_remote(self, remote: str) -> bool:
        return remote in self.git("remote").split()

    def remote_head_branch(self, remote: str) -> str | None:
        """The branch the remote's HEAD points at, asked of the remote itself
        (`ls-remote --symref`): a local `refs/remotes/<remote>/HEAD` may be missing
        (actions/checkout never makes one) or stale."""
        out = self.git("ls-remote", "--symref", remote, "HEAD")
        for line in out.splitlines():
            target, _tab, name = line.partition("\t")
            if name == "HEAD" and target.startswith("ref: refs/heads/"):
                return target.removeprefix("ref: refs/heads/")
        return None

    def is_shallow(self) -> bool:
        return self.git("rev-parse", "--is-shallow-repository") == "true"

    def deepen(self, remote: str, head: str, commits: int) -> None:
        """Fetch `commits` more commits behind a shallow clone's boundary (0: all of them)."""
        depth = f"--deepen={commits}" if commits else "--unshallow"
        self.git("fetch", "--quiet", "--no-tags", depth, remote, head)

    # --- writing without a checkout ------------------------------------------------------

    def hash_blob(self, data: bytes) -> str:
        return self.git("hash-object", "-w", "--stdin", input_bytes=data)

    def commit_files(
        self,
        parent: str | None,
        files: dict[str, bytes],
        message: str,
        identity: Identity,
    ) -> str:
        """A new commit: parent's tree with `files` replaced; returns its sha. No checkout."""
        store = self._object_store() if _plain(identity.name, identity.email) else None
        if store is not None:
            if parent:
                store.prepare(parent, list(files))
            tree = store.with_files(store.commit_tree(parent) if parent else None, files)
            return str(store.commit(tree, parent, message, identity.name, identity.email))
        with tempfile.TemporaryDirectory(prefix="cekura-gitops-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if parent:
                self.git("read-tree", parent, env=env)
            else:
                self.git("read-tree", "--empty", env=env)
            for path, data in files.items():
                blob = self.hash_blob(data)
                self.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = self.git("write-tree", env=env)
        who = {
            "GIT_AUTHOR_NAME": identity.name,
            "GIT_AUTHOR_EMAIL": identity.email,
            "GIT_COMMITTER_NAME": identity.name,
            "GIT_COMMITTER_EMAIL": identity.email,
        }
        args = ["commit-tree", tree, "-m", message]
        if parent:
            args[2:2] = ["-p", parent]
        return self.git(*args, env=who)

    def tree_of(self, rev: str) -> str:
        return self.git("rev-parse", f"{rev}^{{tree}}")

    def update_local_ref(self, ref: str, new: str, old: str | None) -> bool:
        """Compare-and-swap a local ref; False if it moved."""
        return self.try_git("update-ref", ref, new, old or ZERO_SHA) is not None

    # --- remotes -------------------------------------------------------------------------

    def fetch(self, remote: str, *refspecs: str, prune: bool = False) -> None:
        args, env = self._net(
            "fetch", "--quiet", "--no-tags", *(["--prune"] if prune else []), remote, *refspecs
        )
        self.git(*args, env=env)

    def refs(self, prefix: str) -> dict[str, str]:
        """Local refs under prefix -> sha."""
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)", prefix)
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def fetch_optional(self, remote: str, src: str, dst: str) -> str | None:
        """Fetch one ref if the remote has it; returns its sha or None (and drops dst).

        One round trip: the fetch itself says when the remote has no such ref. (git in
        another language says it in other words: then ls-remote decides.)
        """
        try:
            self.fetch(remote, f"+{src}:{dst}")
        except GitError as err:
            if "couldn't find remote ref" not in str(err).lower() and self.ls_remote(remote, src) is not None:
                raise
            self.try_git("update-ref", "-d", dst)
            return None
        return self.rev_parse(dst)

    def ls_remote(self, remote: str, ref: str) -> str | None:
        args, env = self._net("ls-remote", remote, ref)
        out = self.git(*args, env=env)
        for line in out.splitlines():
            sha, name = line.split("\t", 1)
            if name == ref:
                return sha
        return None

    def push_cas(self, remote: str, sha: str, ref: str, expected: str | None) -> bool:
        """Push sha to ref only if the remote ref is still `expected` (None: must not exist).

        Returns False when the lease failed (someone else moved the ref); other failures
        raise GitError.
        """
        done = self._push_leased(remote, [(sha, ref, expected)], "--quiet")
        if done.returncode == 0:
            return True
        # With --porcelain git reports the refused ref on stdout ("!\t…\t[rejected] (stale
        # info)"), and only "failed to push some refs" on stderr: read both.
        out = done.stdout.decode("utf-8", "replace")
        err = done.stderr.decode("utf-8", "replace").strip()
        _raise_if_ruleset(out + err)
        if any(reason in out or reason in err for reason in LEASE_FAILURES):
            return False
        raise GitError(f"git push failed: {_excerpt(err or out) or 'exit ' + str(done.returncode)}")

    def _push_leased(
        self, remote: str, updates: Sequence[tuple[str, str, str | None]], *flags: str
    ) -> subprocess.CompletedProcess[bytes]:
        """One `git push --porcelain` of (sha, ref, expected) updates, each leased on its
        expected tip (none: the ref must not exist)."""
        import subprocess

        leases = [f"--force-with-lease={ref}:{expected or ''}" for _sha, ref, expected in updates]
        specs = [f"{sha}:{ref}" for sha, ref, _expected in updates]
        args, extra = self._net("push", "--porcelain", *flags, *leases, remote, *specs)
        return subprocess.run(
            [*GIT, *args],
            cwd=self.root,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **extra},
            capture_output=True,
        )

    def push_many(self, remote: str, updates: Sequence[tuple[str, str, str | None]]) -> dict[str, bool]:
        """Several lease-guarded ref updates in one `git push` (not atomic: each ref stands
        alone). `updates` holds (sha, ref, expected); returns ref -> pushed. A ref whose
        lease failed is False; a push that failed as a whole raises GitError."""
        if len(updates) == 1:
            sha, ref, expected = updates[0]
            return {ref: self.push_cas(remote, sha, ref, expected)}
        done = self._push_leased(remote, updates)
        out = done.stdout.decode("utf-8", "replace")
        _raise_if_ruleset(out + done.stderr.decode("utf-8", "replace"))
        results: dict[str, bool] = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and ":" in parts[1] and parts[0] in (" ", "+", "-", "*", "=", "!"):
                results[parts[1].split(":", 1)[1]] = parts[0] != "!"
        missing = [ref for _sha, ref, _expected in updates if ref not in results]
        if missing:
            err = done.stderr.decode("utf-8", "replace").strip()
            raise GitError(f"git push failed: {_excerpt(err or out) or 'exit ' + str(done.returncode)}")
        return results

    def push_atomic(self, remote: str, updates: Sequence[tuple[str, str, str | None]]) -> list[str]:
        """Lease-guarded ref updates in one `git push --atomic`: all land or none does.

        `updates` holds (sha, ref, expected); an update whose sha equals `expected` is a
        no-op that only confirms the ref is still there. Returns the refs whose lease
        failed: empty when everything landed, else nothing landed (the other refs report
        "atomic push failed"). A push that failed for any other reason raises GitError.
        """
        done = self._push_leased(remote, updates, "--atomic")
        out = done.stdout.decode("utf-8", "replace")
        err = done.stderr.decode("utf-8", "replace").strip()
        _raise_if_ruleset(out + err)
        if done.returncode == 0:
            return []
        stale = []
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[0] == "!" and any(r in parts[2] for r in LEASE_FAILURES):
                stale.append(parts[1].split(":", 1)[-1])
        if not stale:
            raise GitError(f"git push failed: {_excerpt(err or out) or 'exit ' + str(done.returncode)}")
        return stale


def _raise_if_ruleset(output: str) -> None:
    # GitHub: "! [remote rejected] b -> b (push declined due to repository rule violations)",
    # with "GH013: Repository rule violations found for refs/heads/b" and the rule's name.
    if "rule violation" in output.lower():
        rules = [line.strip(" -") for line in output.splitlines() if line.strip().startswith("remote: -")]
        detail = f" ({'; '.join(r.removeprefix('remote:').strip(' -') for r in rules)})" if rules else ""
        raise GitError(f"git push refused{detail}: {RULESET_HINT}")


def _plain(*parts: str) -> bool:
    """Identity text git would write verbatim (commit-tree strips these characters)."""
    return not any(c in part for part in parts for c in "<>\n\r\0")


def _excerpt(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def init_repo(path: Path, *, bare: bool = False, initial_branch: str = "main") -> None:
    """`git init` (used by demo and tests)."""
    import subprocess

    args = ["git", "init", "--quiet", f"--initial-branch={initial_branch}"]
    if bare:
        args.append("--bare")
    try:
        subprocess.run([*args, str(path)], check=True, capture_output=True)
    except subprocess.CalledProcessError as err:
        raise GitError(f"git init failed: {err.stderr.decode(errors='replace').strip()}") from None


def run_git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """A plain git command in cwd (demo and test set-up)."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})},
        )
    except subprocess.CalledProcessError as err:
        raise GitError(f"git {args[0]} failed: {_excerpt(err.stderr)}") from None
    return done.stdout.strip()

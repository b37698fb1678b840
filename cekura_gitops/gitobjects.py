"""Git objects written by the tool itself: a commit that changes a few files, no process each.

A sync commits once per proposal and once per state update; through plumbing that is five
git processes a commit (read-tree, hash-object, update-index, write-tree, commit-tree).
Here the blob, the changed trees and the commit are serialised and stored as loose
objects in this process, the way libgit2 and dulwich do; the parent's trees are read
with one `git cat-file --batch` and remembered (the proposals of one sync share a base).
Objects are content-addressed, so writing one that exists (another thread, another run)
changes nothing. SHA-1 repositories only: the caller falls back to plumbing for any other
object format.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from cekura_gitops.errors import GitError

Entry = tuple[bytes, bytes, bytes]  # (mode, name, raw 20-byte sha)
TREE_MODE = b"40000"
FILE_MODE = b"100644"


class ObjectStore:
    """Read trees and commits, write blobs, trees and commits, for one repository."""

    def __init__(self, root: Path, objects: Path, git: Sequence[str]) -> None:
        self._root = root
        self._objects = objects
        self._git = list(git)
        self._trees: dict[bytes, list[Entry]] = {}  # raw tree sha -> entries
        self._commit_trees: dict[str, bytes] = {}  # commit sha -> raw tree sha

    # -- reading --------------------------------------------------------------------------

    def _read(self, specs: Sequence[str]) -> list[tuple[bytes, bytes, bytes] | None]:
        """(sha, kind, body) of each `rev` or `rev:path` spec, in one `git cat-file --batch`."""
        done = subprocess.run(
            [*self._git, "cat-file", "--batch"],
            cwd=self._root,
            input="".join(f"{s}\n" for s in specs).encode(),
            capture_output=True,
        )
        if done.returncode != 0:
            raise GitError(f"git cat-file failed: {done.stderr.decode('utf-8', 'replace').strip()[:300]}")
        out, pos = done.stdout, 0
        found: list[tuple[bytes, bytes, bytes] | None] = []
        for _spec in specs:
            end = out.index(b"\n", pos)
            parts = out[pos:end].split()
            pos = end + 1
            if len(parts) != 3:
                found.append(None)  # "<spec> missing"
                continue
            size = int(parts[2])
            found.append((parts[0], parts[1], out[pos : pos + size]))
            pos += size + 1
        return found

    def prepare(self, parent: str, paths: Sequence[str]) -> None:
        """Read the parent's tree and the folders holding paths, in one process (if not known)."""
        folders = sorted({p.rsplit("/", 1)[0] for p in paths if "/" in p})
        specs = [f"{parent}^{{tree}}", *(f"{parent}:{f}" for f in folders)]
        if parent in self._commit_trees:
            return  # our own commit (or read before): its trees are known or read on demand
        for i, item in enumerate(self._read(specs)):
            if item is None:
                if i == 0:
                    raise GitError(f"{parent} is not a commit")
                continue
            sha, kind, body = item
            if kind == b"tree":
                self._trees.setdefault(bytes.fromhex(sha.decode()), _parse_tree(body))
                if i == 0:
                    self._commit_trees[parent] = bytes.fromhex(sha.decode())

    def commit_tree(self, commit: str) -> bytes:
        if commit not in self._commit_trees:
            self.prepare(commit, ())
        return self._commit_trees[commit]

    def tree(self, sha: bytes) -> list[Entry]:
        if sha not in self._trees:
            [item] = self._read([sha.hex()])
            if item is None or item[1] != b"tree":
                raise GitError(f"{sha.hex()} is not a tree")
            self._trees[sha] = _parse_tree(item[2])
        return self._trees[sha]

    # -- writing --------------------------------------------------------------------------

    def _write(self, kind: bytes, body: bytes) -> bytes:
        data = kind + b" " + str(len(body)).encode() + b"\0" + body
        raw = hashlib.sha1(data).digest()  # noqa: S324 - git's object name, not security
        name = raw.hex()
        path = self._objects / name[:2] / name[2:]
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix="tmp_obj_", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(zlib.compress(data))
                os.chmod(tmp, 0o444)
                os.replace(tmp, path)  # same name, same bytes: a concurrent writer is harmless
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return raw

    def write_tree(self, entries: list[Entry]) -> bytes:
        body = b"".join(mode + b" " + name + b"\0" + sha for mode, name, sha in _sorted(entries))
        raw = self._write(b"tree", body)
        self._trees.setdefault(raw, _sorted(entries))
        return raw

    def with_files(self, tree: bytes | None, files: Mapping[str, bytes]) -> bytes:
        """The tree `tree` (None: empty) with each path set to its content (mode 100644)."""
        entries = {e[1]: e for e in (self.tree(tree) if tree is not None else [])}
        nested: dict[bytes, dict[str, bytes]] = {}
        for path, data in files.items():
            head, _, rest = path.partition("/")
            if rest:
                nested.setdefault(head.encode(), {})[rest] = data
            else:
                entries[head.encode()] = (FILE_MODE, head.encode(), self._write(b"blob", data))
        for name, inner in nested.items():
            current = entries.get(name)
            base = current[2] if current is not None and current[0] == TREE_MODE else None
            entries[name] = (TREE_MODE, name, self.with_files(base, inner))
        return self.write_tree(list(entries.values()))

    def commit(self, tree: bytes, parent: str | None, message: str, name: str, email: str) -> str:
        stamp = f"{name} <{email}> {int(time.time())} +0000"
        lines = [f"tree {tree.hex()}"]
        if parent:
            lines.append(f"parent {parent}")
        lines += [f"author {stamp}", f"committer {stamp}", "", message.rstrip("\n"), ""]
        sha = self._write(b"commit", "\n".join(lines).encode()).hex()
        self._commit_trees[sha] = tree
        return sha


def _parse_tree(body: bytes) -> list[Entry]:
    entries: list[Entry] = []
    pos = 0
    while pos < len(body):
        space = body.index(b" ", pos)
        nul = body.index(b"\0", space)
        entries.append((body[pos:space], body[space + 1 : nul], body[nul + 1 : nul + 21]))
        pos = nul + 21
    return entries


def _sorted(entries: list[Entry]) -> list[Entry]:
    # git orders tree entries by name, a subtree's name compared as if it ended in "/".
    return sorted(entries, key=lambda e: e[1] + b"/" if e[0] == TREE_MODE else e[1])

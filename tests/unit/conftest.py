"""Unit tests, one file per module: `tests/unit/test_<module>.py` tests `cekura_gitops/<module>.py`.

The scenario tests beside this folder drive whole commands (CLI, sandbox, fake GitHub).
These test one module through its public functions and classes: plain values for the pure
domain modules (`changes`, `proposal`), and real git for the modules whose job is git
(`gitrepo`, `statestore`, `branches`): a bare `origin` and clones of it under `tmp_path`,
no mocks. Each file runs in a few seconds; none needs the sandbox or the network.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cekura_gitops.gitrepo import GitRepo, Identity
from tests.conftest import HUMAN, Repo, git

BOT = Identity("cekura-gitops[bot]", "bot@cekura-gitops.invalid")
HUMAN_IDENTITY = Identity(HUMAN["GIT_AUTHOR_NAME"], HUMAN["GIT_AUTHOR_EMAIL"])


@pytest.fixture
def clone(repo: Repo, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A factory of further clones of `repo`'s origin (other runners, other humans)."""
    made = 0

    def make() -> Repo:
        nonlocal made
        made += 1
        return repo.fresh_clone(tmp_path / f"clone-{made}")

    return make


def gitrepo(r: Repo) -> GitRepo:
    return GitRepo(r.work)


def origin_refs(r: Repo, prefix: str = "refs/") -> dict[str, str]:
    out = git(r.origin, "for-each-ref", "--format=%(refname) %(objectname)", prefix)
    return dict(line.split(" ", 1) for line in out.splitlines() if line)

"""The tool's own git processes: what they start behind its back, and how many round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Repo


def test_sync_starts_no_gc_or_maintenance(
    pulled: Repo, cli, cekura_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # git runs `maintenance run --auto` (or `gc --auto`) after fetches and commits unless
    # told not to: on a sync's many small plumbing steps that is runner time for nothing.
    (pulled.work / "cekura-gitops.yaml").write_text("optimiser:\n  min_feedback: 0\n")
    pulled.commit_all("config")
    pulled.push()
    # The origin's own `gc --auto` after a push is the server's business (GitHub's runs
    # apart from the push): keep it out of what this test looks at.
    pulled.origin_git("config", "receive.autogc", "false")
    trace = tmp_path / "git-trace.log"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    result = cli("--json", "sync", "--no-pr", cwd=pulled.work, env=cekura_env)
    assert result.code == 0, result.err
    lines = trace.read_text().splitlines()
    assert any("fetch" in line for line in lines)  # the trace did see the tool's git
    started = [line for line in lines if "run_command:" in line or "exec:" in line]
    assert not [line for line in started if " gc" in line or "maintenance" in line], started


def test_reading_a_missing_ref_is_one_round_trip(pulled: Repo) -> None:
    from cekura_gitops.gitrepo import GitRepo

    repo = GitRepo(pulled.work)
    assert repo.fetch_optional("origin", "refs/cekura-gitops/none", "refs/cekura-gitops/x") is None
    main = repo.fetch_optional("origin", "refs/heads/main", "refs/cekura-gitops/y")
    assert main is not None and main == repo.rev_parse("refs/heads/main")


@pytest.mark.parametrize(
    "files",
    [
        {"metrics/caller_greeted_by_name_1562.yaml": b"slug: changed\n"},  # replace, nested
        {"metrics/zz_new.yaml": b"new\n", "metrics/a-b.yaml": b"dash sorts before the dir\n"},
        {"metrics.yaml": b"a file named like the folder\n", "deep/er/path.txt": b"x"},
        {"state.json": b"{}\n"},
    ],
)
def test_commits_written_in_process_match_gits_own(pulled: Repo, files: dict[str, bytes]) -> None:
    # sync commits without a git process per step; the trees must be exactly git's.
    from cekura_gitops.gitrepo import GitRepo, Identity

    fast, plumbing = GitRepo(pulled.work), GitRepo(pulled.work)
    plumbing._objects = False  # the read-tree / update-index / write-tree / commit-tree path
    who = Identity("cekura-gitops", "cekura-gitops@users.noreply.github.com")
    head = pulled.git("rev-parse", "HEAD")
    for parent in (head, None):
        mine = fast.commit_files(parent, files, "optimise(x): 5/7 → 7/7\n\nbody", who)
        theirs = plumbing.commit_files(parent, files, "optimise(x): 5/7 → 7/7\n\nbody", who)
        assert pulled.git("rev-parse", f"{mine}^{{tree}}") == pulled.git("rev-parse", f"{theirs}^{{tree}}")
        assert pulled.git("log", "-1", "--format=%P|%an|%ae|%cn|%ce|%B", mine) == pulled.git(
            "log", "-1", "--format=%P|%an|%ae|%cn|%ce|%B", theirs
        )
        for path, data in files.items():
            assert pulled.git("show", f"{mine}:{path}") == data.decode().rstrip("\n")
    pulled.git("fsck", "--strict", "--no-dangling")


def test_changed_files_sees_adds_deletes_renames_and_edits(pulled: Repo) -> None:
    # apply deploys exactly these; one `git diff-tree -M` finds them (no GitPython).
    from cekura_gitops.errors import GitError
    from cekura_gitops.gitrepo import FileChange, GitRepo

    base = pulled.git("rev-parse", "HEAD")
    files = sorted(p.name for p in (pulled.work / "metrics").glob("*.yaml"))
    moved, edited, gone = files[0], files[1], files[2]
    pulled.git("mv", f"metrics/{moved}", "metrics/renamed.yaml")
    (pulled.work / "metrics" / edited).write_text((pulled.work / "metrics" / edited).read_text() + "# x\n")
    pulled.git("rm", "-q", f"metrics/{gone}")
    pulled.write("metrics/new one.yaml", "slug: new\n")
    pulled.write("elsewhere.txt", "not a metric\n")
    head = pulled.commit_all("changes")
    got = GitRepo(pulled.work).changed_files(base, head, "metrics")
    assert sorted(got, key=str) == sorted(
        [
            FileChange("renamed", f"metrics/{moved}", "metrics/renamed.yaml"),
            FileChange("modified", f"metrics/{edited}", f"metrics/{edited}"),
            FileChange("deleted", f"metrics/{gone}", None),
            FileChange("added", None, "metrics/new one.yaml"),
        ],
        key=str,
    )
    with pytest.raises(GitError, match="unknown revision 'f{40}'"):
        GitRepo(pulled.work).changed_files("f" * 40, head, "metrics")

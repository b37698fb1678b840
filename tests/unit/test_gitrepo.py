"""gitrepo: the git adapter's plumbing, against real repositories (a clone and a bare origin)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cekura_gitops.errors import GitError
from cekura_gitops.gitrepo import GitRepo, Identity, init_repo, run_git
from tests.conftest import Repo, git
from tests.unit.conftest import BOT, gitrepo, origin_refs


def commit(r: Repo, files: dict[str, str], message: str = "change") -> str:
    for rel, text in files.items():
        r.write(rel, text)
    return r.commit_all(message)


# --- finding the repository, reading ------------------------------------------------------


def test_outside_a_repository_it_says_to_run_in_a_clone(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(GitError, match="not inside a git repository"):
        GitRepo(tmp_path / "plain")


def test_it_finds_the_top_from_a_subfolder_or_a_file(repo: Repo) -> None:
    path = repo.write("metrics/a.yaml", "x\n")
    assert GitRepo(repo.work / "metrics").root == repo.work.resolve()
    assert GitRepo(path).root == repo.work.resolve()


def test_an_empty_repository_has_no_head_and_says_to_commit_first(tmp_path: Path) -> None:
    init_repo(tmp_path / "empty")
    g = GitRepo(tmp_path / "empty")
    assert g.rev_parse("HEAD") is None
    with pytest.raises(GitError, match="commit your metric files first"):
        g.head_sha()


def test_a_failing_command_raises_git_error_naming_the_command(repo: Repo) -> None:
    with pytest.raises(GitError, match="^git ls-tree failed: .+"):
        gitrepo(repo).list_files("no-such-rev", "metrics")
    assert gitrepo(repo).try_git("ls-tree", "no-such-rev") is None


def test_show_file_returns_exact_bytes_or_none(repo: Repo) -> None:
    data = "line one\r\nünïcode\n\tno trailing newline"
    sha = commit(repo, {"metrics/a.yaml": data})
    g = gitrepo(repo)
    assert g.show_file(sha, "metrics/a.yaml") == data.encode()
    assert g.show_file(sha, "metrics/missing.yaml") is None
    assert g.show_file("0" * 40, "metrics/a.yaml") is None


def test_read_blobs_reads_many_in_one_go_and_skips_what_is_not_a_file(repo: Repo) -> None:
    sha = commit(repo, {"metrics/a.yaml": "a\n", "metrics/b.yaml": "b" * 10_000})
    specs = [
        f"{sha}:metrics/a.yaml",
        f"{sha}:metrics/b.yaml",
        f"{sha}:metrics/x.yaml",
        f"{sha}:metrics",
        "a\nb",
    ]
    assert gitrepo(repo).read_blobs(specs) == {
        specs[0]: b"a\n",
        specs[1]: b"b" * 10_000,
        specs[2]: None,  # missing
        specs[3]: None,  # a tree
        specs[4]: None,  # a newline would split the batch protocol's line
    }


def test_list_files_and_tree_entries_under_a_folder(repo: Repo) -> None:
    repo.write("metrics/sub/a.yaml", "a\n")
    script = repo.write("metrics/run.sh", "#!/bin/sh\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    os.symlink("sub/a.yaml", repo.work / "metrics/link.yaml")
    repo.write("other/c.yaml", "c\n")
    sha = repo.commit_all("files")
    g = gitrepo(repo)
    assert g.list_files(sha, "metrics") == ["metrics/link.yaml", "metrics/run.sh", "metrics/sub/a.yaml"]
    assert g.tree_entries(sha, "metrics") == {
        "metrics/link.yaml": "120000",
        "metrics/run.sh": "100755",
        "metrics/sub/a.yaml": "100644",
    }


def test_dirty_paths_sees_staged_unstaged_untracked_and_renamed(repo: Repo) -> None:
    commit(repo, {"metrics/kept.yaml": "k\n", "metrics/edit.yaml": "e\n", "metrics/old.yaml": "o\n"})
    repo.write("metrics/edit.yaml", "edited\n")  # unstaged
    repo.write("metrics/new dir/added.yaml", "n\n")  # untracked, in a folder with a space
    repo.write("metrics/staged.yaml", "s\n")
    repo.git("add", "metrics/staged.yaml")
    repo.git("mv", "metrics/old.yaml", "metrics/renamed.yaml")
    repo.write("elsewhere.txt", "not under the pathspec\n")
    assert gitrepo(repo).dirty_paths("metrics") == {
        "metrics/edit.yaml",
        "metrics/new dir/added.yaml",
        "metrics/staged.yaml",
        "metrics/renamed.yaml",
    }


def test_changed_files_detects_adds_edits_deletes_and_renames(repo: Repo) -> None:
    body = "".join(f"line {i}\n" for i in range(20))
    base = commit(repo, {"metrics/edit.yaml": "a\n", "metrics/gone.yaml": "g\n", "metrics/move.yaml": body})
    repo.write("metrics/edit.yaml", "b\n")
    repo.write("metrics/new.yaml", "n\n")
    repo.git("rm", "-q", "metrics/gone.yaml")
    repo.git("mv", "metrics/move.yaml", "metrics/moved.yaml")
    repo.write("README.md", "outside the folder\n")
    head = repo.commit_all("changes")
    got = {(c.status, c.old_path, c.new_path) for c in gitrepo(repo).changed_files(base, head, "metrics")}
    assert got == {
        ("modified", "metrics/edit.yaml", "metrics/edit.yaml"),
        ("added", None, "metrics/new.yaml"),
        ("deleted", "metrics/gone.yaml", None),
        ("renamed", "metrics/move.yaml", "metrics/moved.yaml"),
    }
    with pytest.raises(GitError, match="fetch-depth"):
        gitrepo(repo).changed_files("no-such-rev", head, "metrics")


def test_commits_between_and_log(repo: Repo) -> None:
    base = repo.git("rev-parse", "HEAD")
    first = commit(repo, {"metrics/a.yaml": "1\n"}, "first\n\nwith a body")
    commit(repo, {"other.txt": "x\n"}, "unrelated")
    bot = {"GIT_AUTHOR_EMAIL": BOT.email, "GIT_COMMITTER_EMAIL": "committer@example.com"}
    repo.write("metrics/a.yaml", "2\n")
    repo.git("commit", "-qam", "by the bot", env=bot)
    third = repo.git("rev-parse", "HEAD")
    g = gitrepo(repo)
    between = g.commits_between(base, third)
    assert [c.subject for c in between] == ["by the bot", "unrelated", "first"]  # newest first
    assert (between[0].sha, between[0].author_email, between[0].committer_email) == (
        third,
        BOT.email,
        "committer@example.com",
    )
    assert between[2].author_name == "Ada Human"
    log = g.log(third, ["metrics/a.yaml"], limit=5)
    assert [e.sha for e in log] == [third, first]
    assert log[1].message.strip() == "first\n\nwith a body"
    assert log[0].committed_at > 1_000_000_000
    assert [e.sha for e in g.log(third, ["metrics/a.yaml"], limit=1)] == [third]


def test_is_ancestor(repo: Repo) -> None:
    base = repo.git("rev-parse", "HEAD")
    head = commit(repo, {"a": "a\n"})
    g = gitrepo(repo)
    assert g.is_ancestor(base, head) and not g.is_ancestor(head, base)


# --- writing without a checkout -------------------------------------------------------------


def test_commit_files_builds_on_the_parent_tree_without_touching_the_checkout(repo: Repo) -> None:
    base = commit(repo, {"metrics/a.yaml": "a\n", "metrics/b.yaml": "b\n"})
    repo.write("metrics/a.yaml", "uncommitted edit\n")
    g = gitrepo(repo)
    sha = g.commit_files(base, {"metrics/b.yaml": b"new b\n", "metrics/c.yaml": b"c\n"}, "bot writes", BOT)
    assert git(repo.work, "rev-parse", f"{sha}^") == base
    assert g.show_file(sha, "metrics/a.yaml") == b"a\n"  # the parent's, not the working tree's
    assert g.show_file(sha, "metrics/b.yaml") == b"new b\n"
    assert g.show_file(sha, "metrics/c.yaml") == b"c\n"
    assert git(repo.work, "log", "-1", "--format=%an|%ae|%cn|%ce|%s", sha) == (
        f"{BOT.name}|{BOT.email}|{BOT.name}|{BOT.email}|bot writes"
    )
    # HEAD, the index and the working tree are as they were.
    assert repo.git("rev-parse", "HEAD") == base
    assert repo.git("status", "--porcelain") == "M metrics/a.yaml"
    assert (repo.work / "metrics/a.yaml").read_text() == "uncommitted edit\n"
    assert g.tree_of(sha) == git(repo.work, "rev-parse", f"{sha}^{{tree}}")


def test_commit_files_without_a_parent_makes_a_root_commit(repo: Repo) -> None:
    sha = gitrepo(repo).commit_files(None, {"state.json": b"{}\n"}, "root", BOT)
    assert git(repo.work, "rev-list", "--count", sha) == "1"
    assert git(repo.work, "ls-tree", "--name-only", sha) == "state.json"


def test_a_hostile_path_or_message_is_data_not_a_command(repo: Repo, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    hostile = f"metrics/$(touch {canary}); `touch {canary}`.yaml"
    g = gitrepo(repo)
    sha = g.commit_files(repo.git("rev-parse", "HEAD"), {hostile: b"x\n"}, f"-m; touch {canary}", BOT)
    assert g.show_file(sha, hostile) == b"x\n"
    assert git(repo.work, "log", "-1", "--format=%s", sha) == f"-m; touch {canary}"
    assert not canary.exists()


def test_update_local_ref_is_a_compare_and_swap(repo: Repo) -> None:
    g = gitrepo(repo)
    one = g.commit_files(None, {"f": b"1"}, "one", BOT)
    two = g.commit_files(one, {"f": b"2"}, "two", BOT)
    ref = "refs/test/cas"
    assert g.update_local_ref(ref, one, None)  # create: must not exist
    assert not g.update_local_ref(ref, two, None)  # exists now
    assert not g.update_local_ref(ref, two, two)  # wrong old value
    assert g.rev_parse(ref) == one
    assert g.update_local_ref(ref, two, one)
    assert g.rev_parse(ref) == two


# --- remotes --------------------------------------------------------------------------------


def test_push_cas_creates_updates_and_refuses_a_stale_lease(repo: Repo) -> None:
    g = gitrepo(repo)
    head = repo.git("rev-parse", "HEAD")
    one = g.commit_files(head, {"f": b"1"}, "one", BOT)
    two = g.commit_files(one, {"f": b"2"}, "two", BOT)
    other = g.commit_files(head, {"f": b"other"}, "other", BOT)
    ref = "refs/heads/cekura-gitops/x"
    assert g.push_cas("origin", one, ref, None)
    assert not g.push_cas("origin", two, ref, None)  # it exists: a new branch must not
    assert not g.push_cas("origin", other, ref, head)  # stale lease
    assert repo.origin_ref(ref) == one
    assert g.push_cas("origin", two, ref, one)
    assert g.push_cas("origin", other, ref, two)  # a lease allows a non-fast-forward rewrite
    assert repo.origin_ref(ref) == other


def test_a_push_that_fails_for_another_reason_raises(repo: Repo) -> None:
    g = gitrepo(repo)
    sha = g.commit_files(None, {"f": b"1"}, "one", BOT)
    git(repo.work, "remote", "add", "nowhere", str(repo.work.parent / "missing.git"))
    with pytest.raises(GitError, match="git push failed"):
        g.push_cas("nowhere", sha, "refs/heads/x", None)


def test_push_many_reports_each_lease_on_its_own(repo: Repo) -> None:
    g = gitrepo(repo)
    head = repo.git("rev-parse", "HEAD")
    a = g.commit_files(head, {"f": b"a"}, "a", BOT)
    b = g.commit_files(head, {"f": b"b"}, "b", BOT)
    assert g.push_cas("origin", a, "refs/heads/taken", None)
    got = g.push_many(
        "origin",
        [(b, "refs/heads/new", None), (b, "refs/heads/taken", None), (b, "refs/heads/moved", None)],
    )
    assert got == {"refs/heads/new": True, "refs/heads/taken": False, "refs/heads/moved": True}
    assert repo.origin_ref("refs/heads/taken") == a
    assert g.push_many("origin", [(a, "refs/heads/new", b), (a, "refs/heads/moved", head)]) == {
        "refs/heads/new": True,
        "refs/heads/moved": False,
    }
    assert origin_refs(repo, "refs/heads/new") == {"refs/heads/new": a}


def test_a_ruleset_refusal_says_to_commit_through_the_api(repo: Repo) -> None:
    hook = repo.origin / "hooks/pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        "echo 'error: GH013: Repository rule violations found for refs/heads/x.' >&2\n"
        "echo '- Commits must have verified signatures.' >&2\n"
        "exit 1\n"
    )
    hook.chmod(0o755)
    g = gitrepo(repo)
    sha = g.commit_files(repo.git("rev-parse", "HEAD"), {"f": b"1"}, "one", BOT)
    with pytest.raises(GitError, match="commit_via: api") as info:
        g.push_cas("origin", sha, "refs/heads/x", None)
    assert "verified signatures" in str(info.value)
    with pytest.raises(GitError, match="commit_via: api"):
        g.push_many("origin", [(sha, "refs/heads/x", None), (sha, "refs/heads/y", None)])


def test_fetch_optional_and_ls_remote(repo: Repo) -> None:
    g = gitrepo(repo)
    sha = g.commit_files(None, {"f": b"1"}, "one", BOT)
    dst = "refs/cekura-gitops/fetched"
    assert g.ls_remote("origin", "refs/x/state") is None
    assert g.fetch_optional("origin", "refs/x/state", dst) is None
    assert g.push_cas("origin", sha, "refs/x/state", None)
    assert g.ls_remote("origin", "refs/x/state") == sha
    assert g.fetch_optional("origin", "refs/x/state", dst) == sha
    assert g.refs("refs/cekura-gitops/") == {dst: sha}
    git(repo.origin, "update-ref", "-d", "refs/x/state")
    assert g.fetch_optional("origin", "refs/x/state", dst) is None
    assert g.rev_parse(dst) is None  # a ref that went away is dropped locally too


def test_fetch_with_prune_drops_deleted_branches(repo: Repo, clone) -> None:  # type: ignore[no-untyped-def]
    g = gitrepo(repo)
    sha = g.commit_files(None, {"f": b"1"}, "one", BOT)
    g.push_cas("origin", sha, "refs/heads/bot/a", None)
    spec = "+refs/heads/bot/*:refs/remotes/origin/bot/*"
    g.fetch("origin", spec)
    assert g.refs("refs/remotes/origin/bot/") == {"refs/remotes/origin/bot/a": sha}
    git(clone().work, "push", "-q", "origin", ":refs/heads/bot/a")
    g.fetch("origin", spec, prune=True)
    assert g.refs("refs/remotes/origin/bot/") == {}


def test_remote_head_branch_asks_the_remote(repo: Repo) -> None:
    g = gitrepo(repo)
    assert g.has_remote("origin") and not g.has_remote("upstream")
    assert g.remote_head_branch("origin") == "main"
    git(repo.origin, "symbolic-ref", "HEAD", "refs/heads/trunk")
    repo.git("push", "-q", "origin", "HEAD:trunk")
    assert g.remote_head_branch("origin") == "trunk"


def test_shallow_clone_is_deepened(repo: Repo, tmp_path: Path) -> None:
    for i in range(3):
        commit(repo, {"n": f"{i}\n"})
    repo.push()
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth=1", f"file://{repo.origin}", str(shallow))
    g = GitRepo(shallow)
    assert g.is_shallow()
    assert git(shallow, "rev-list", "--count", "HEAD") == "1"
    g.deepen("origin", "main", 2)
    assert git(shallow, "rev-list", "--count", "HEAD") == "3"
    g.deepen("origin", "main", 0)
    assert not g.is_shallow()
    assert not gitrepo(repo).is_shallow()


def test_credentials_reach_git_through_the_helper_only(repo: Repo, tmp_path: Path) -> None:
    from tests.fakes.git_http import GitHTTPServer

    tokens = iter(["ghs_first_token_0001", "ghs_second_token_0002"])
    valid = {"ghs_first_token_0001", "ghs_second_token_0002"}
    g = gitrepo(repo)
    sha = g.commit_files(None, {"f": b"1"}, "one", BOT)
    with GitHTTPServer(repo.origin.parent, accept=lambda p: p in valid) as server:
        git(repo.work, "remote", "add", "https-ish", server.url(repo.origin.name))
        with pytest.raises(GitError):  # no credentials: refused, and no prompt
            g.ls_remote("https-ish", "refs/heads/main")
        g.use_credentials(lambda: next(tokens))
        assert g.push_cas("https-ish", sha, "refs/heads/with-token", None)
        assert g.ls_remote("https-ish", "refs/heads/with-token") == sha  # asks again: renewed
        assert {"ghs_first_token_0001", "ghs_second_token_0002"} <= set(server.passwords)
    assert repo.origin_ref("refs/heads/with-token") == sha
    config = (repo.work / ".git/config").read_text()
    assert "ghs_" not in config


def test_init_repo_and_run_git(tmp_path: Path) -> None:
    init_repo(tmp_path / "bare.git", bare=True, initial_branch="trunk")
    assert run_git(tmp_path / "bare.git", "symbolic-ref", "HEAD") == "refs/heads/trunk"
    assert run_git(tmp_path / "bare.git", "rev-parse", "--is-bare-repository") == "true"
    with pytest.raises(GitError, match="^git rev-parse failed"):
        run_git(tmp_path / "bare.git", "rev-parse", "--verify", "nope")
    with pytest.raises(GitError, match="git init failed"):
        init_repo(tmp_path / "bare.git" / "HEAD" / "x")


def test_identity_is_plain_data() -> None:
    assert Identity("a", "b") == Identity("a", "b")

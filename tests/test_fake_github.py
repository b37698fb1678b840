"""GitHubClient end to end against FakeGitHub: real sockets, real git, OpenAPI-checked traffic.

Every fixture-made fake asserts at teardown that no request or response broke the vendored
OpenAPI description; tests that break it on purpose check the error and clear the list.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cekura_gitops import __version__
from cekura_gitops.errors import GitHubAPIError
from cekura_gitops.github import GitHubClient, PullRequestExists
from tests.fakes.github_server import FakeGitHub

# Fixtures `fake_github`, `make_fake_github` and `github_client` come from
# tests/github_fixtures.py through tests/conftest.py.

BRANCH = "cekura-gitops/optimise/greeting"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Cekura GitOps",
    "GIT_AUTHOR_EMAIL": "bot@cekura-gitops.invalid",
    "GIT_COMMITTER_NAME": "Cekura GitOps",
    "GIT_COMMITTER_EMAIL": "bot@cekura-gitops.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def client_for(fake: FakeGitHub, **kwargs: Any) -> GitHubClient:
    kwargs.setdefault("min_write_interval", 0.0)
    kwargs.setdefault("sleep", lambda _: None)
    return GitHubClient(fake.url, fake.token, fake.full_name, graphql_url=fake.graphql_url, **kwargs)


def raw(fake: FakeGitHub) -> httpx.Client:
    """A bare httpx client with GitHub's headers, for what GitHubClient does not expose."""
    return httpx.Client(
        base_url=fake.url,
        headers={
            "Authorization": f"Bearer {fake.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": f"cekura-gitops-tests/{__version__}",
        },
    )


# -- pull requests -----------------------------------------------------------------------


def test_pull_request_lifecycle(fake_github: FakeGitHub, github_client: GitHubClient) -> None:
    repo = github_client.get_repo()
    assert (repo.full_name, repo.default_branch) == ("acme/metrics", "main")

    pull = github_client.create_pull(
        head=BRANCH, base="main", title="Optimise greeting", body="scores", draft=True
    )
    assert (pull.number, pull.state, pull.draft, pull.merged) == (1, "open", True, False)
    assert (pull.head_ref, pull.base_ref) == (BRANCH, "main")
    assert pull.user_login == "github-actions[bot]"
    assert pull.html_url == "https://github.com/acme/metrics/pull/1"
    assert pull.node_id.startswith("PR_")

    fake_github.add_pull(head="someone/else", title="Human PR", user_login="octocat")
    assert [p.number for p in github_client.list_pulls()] == [2, 1]  # newest first
    (found,) = github_client.list_pulls(head_branch=BRANCH, base="main")
    assert found == pull
    assert github_client.list_pulls(head_branch=BRANCH, base="develop") == []

    updated = github_client.update_pull(1, title="Optimise greeting (2)", body="new scores")
    assert (updated.title, updated.body) == ("Optimise greeting (2)", "new scores")
    assert github_client.get_pull(1) == updated

    fake_github.close_pull(1)  # a human rejects it on the web UI
    assert github_client.list_pulls(head_branch=BRANCH) == []
    (closed,) = github_client.list_pulls(head_branch=BRANCH, state="closed")
    assert (closed.state, closed.merged) == ("closed", False)
    assert fake_github.count("POST", r"/pulls$") == 1


def test_create_race_gives_pull_request_exists_then_list_and_update(
    fake_github: FakeGitHub, github_client: GitHubClient
) -> None:
    seeded = fake_github.add_pull(head=BRANCH, title="From another run", user_login="github-actions[bot]")
    with pytest.raises(PullRequestExists) as info:
        github_client.create_pull(head=BRANCH, base="main", title="t", body="b")
    assert f"A pull request already exists for acme:{BRANCH}." in str(info.value)

    (existing,) = github_client.list_pulls(head_branch=BRANCH, base="main")
    assert existing.number == seeded["number"]
    assert github_client.update_pull(existing.number, body="b").body == "b"
    assert len(fake_github.pulls) == 1


def test_head_filter_without_owner_is_ignored_like_github(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(head="a")
    fake_github.add_pull(head="b")
    with raw(fake_github) as http:
        unqualified = http.get("/repos/acme/metrics/pulls", params={"head": "a"}).json()
        qualified = http.get("/repos/acme/metrics/pulls", params={"head": "acme:a"}).json()
    assert len(unqualified) == 2
    assert [p["head"]["ref"] for p in qualified] == ["a"]


def test_link_pagination_with_a_small_page(fake_github: FakeGitHub, github_client: GitHubClient) -> None:
    for i in range(7):
        fake_github.add_pull(head=f"branch-{i}")
    urls, numbers = [], []
    with raw(fake_github) as http:
        response = http.get("/repos/acme/metrics/pulls", params={"per_page": 3, "direction": "asc"})
        while True:
            urls.append(str(response.url))
            numbers += [p["number"] for p in response.json()]
            if "next" not in response.links:
                break
            response = http.get(response.links["next"]["url"])
    assert numbers == list(range(1, 8))
    assert len(urls) == 3
    assert f"/repositories/{fake_github.repo_id}/pulls?" in urls[1]  # GitHub's id-based links
    assert 'rel="last"' not in response.headers.get("link", "")

    # The client (per_page=100) follows the same links across a page boundary.
    for i in range(7, 105):
        fake_github.add_pull(head=f"branch-{i}")
    assert len(github_client.list_pulls()) == 105
    assert fake_github.count("GET", r"/pulls$") == 3 + 2


def test_pull_commits_without_origin_are_seeded(fake_github: FakeGitHub, github_client: GitHubClient) -> None:
    pull = github_client.create_pull(head=BRANCH, base="main", title="t", body="")
    assert github_client.list_pull_commits(pull.number) == []
    fake_github.set_commits(
        pull.number,
        [
            {
                "sha": "a" * 40,
                "author_name": "Jane",
                "author_email": "jane@example.com",
                "committer_email": "jane@example.com",
                "message": "Tweak the prompt by hand",
            }
        ],
    )
    (commit,) = github_client.list_pull_commits(pull.number)
    assert (commit.sha, commit.author_email, commit.message) == (
        "a" * 40,
        "jane@example.com",
        "Tweak the prompt by hand",
    )
    new_sha = fake_github.set_branch(BRANCH)
    assert github_client.get_pull(pull.number).head_sha == new_sha


# -- comments, labels, reviewers, issues -------------------------------------------------


def test_comments_labels_and_reviewers(fake_github: FakeGitHub, github_client: GitHubClient) -> None:
    pull = github_client.create_pull(head=BRANCH, base="main", title="t", body="")
    first = github_client.create_comment(pull.number, "Human edits detected; stopping.")
    second = github_client.create_comment(pull.number, "second")
    assert github_client.update_comment(first.id, "edited").body == "edited"
    assert [(c.id, c.body) for c in github_client.list_comments(pull.number)] == [
        (first.id, "edited"),
        (second.id, "second"),
    ]
    assert first.html_url.endswith(f"/pull/{pull.number}#issuecomment-{first.id}")
    assert len(fake_github.comments_on(pull.number)) == 2

    github_client.add_labels(pull.number, ["cekura-gitops", "metric:greeting"])
    github_client.add_labels(pull.number, ["cekura-gitops"])
    assert fake_github.labels_added == [
        {"issue_number": 1, "labels": ["cekura-gitops", "metric:greeting"]},
        {"issue_number": 1, "labels": ["cekura-gitops"]},
    ]
    github_client.request_reviewers(pull.number, ["alice"], ["prompt-owners"])
    assert fake_github.reviewers_requested == [
        {"number": 1, "reviewers": ["alice"], "team_reviewers": ["prompt-owners"]}
    ]
    rendered = fake_github.pulls[0]
    assert [label["name"] for label in rendered["labels"]] == ["cekura-gitops", "metric:greeting"]
    assert [u["login"] for u in rendered["requested_reviewers"]] == ["alice"]

    with pytest.raises(GitHubAPIError, match="Review cannot be requested from pull request author"):
        github_client.request_reviewers(pull.number, ["github-actions[bot]"])
    with pytest.raises(GitHubAPIError) as info:
        github_client.create_comment(999, "nobody home")
    assert info.value.status == 404


def test_add_labels_bare_array_form(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(head=BRANCH)
    with raw(fake_github) as http:
        response = http.post("/repos/acme/metrics/issues/1/labels", json=["a", {"name": "b"}])
    assert response.status_code == 200
    assert [label["name"] for label in response.json()] == ["a", "b"]
    # The vendored subset's oneOf only lists the {"labels": [...]} form (github-notes says
    # both): the bare array is served, and reported.
    assert len(fake_github.validation_errors) == 1
    assert "InvalidRequestBody" in fake_github.validation_errors[0]
    fake_github.validation_errors.clear()


def test_dashboard_issue(fake_github: FakeGitHub, github_client: GitHubClient) -> None:
    fake_github.add_pull(head=BRANCH, labels=("cekura-gitops-dashboard",))  # a PR: excluded
    issue = github_client.create_issue(
        title="Cekura metrics dashboard", body="v1", labels=["cekura-gitops-dashboard"]
    )
    github_client.create_issue(title="Unrelated", body="")
    (found,) = github_client.list_issues(labels=["cekura-gitops-dashboard"])
    assert found == issue
    assert found.labels == ("cekura-gitops-dashboard",)
    assert github_client.update_issue(issue.number, body="v2").body == "v2"
    closed = github_client.update_issue(issue.number, state="closed")
    assert closed.state == "closed"
    assert github_client.list_issues(labels=["cekura-gitops-dashboard"]) == []
    assert [i["number"] for i in fake_github.issues] == [2, 3]


# -- auto-merge (GraphQL) ----------------------------------------------------------------


def test_enable_auto_merge(fake_github: FakeGitHub, github_client: GitHubClient) -> None:
    pull = github_client.create_pull(head=BRANCH, base="main", title="t", body="")
    github_client.enable_auto_merge(pull.node_id)
    assert fake_github.auto_merge_enabled == [pull.node_id]
    assert fake_github.pulls[0]["auto_merge"]["merge_method"] == "squash"

    with pytest.raises(GitHubAPIError, match="Could not resolve to a node"):
        github_client.enable_auto_merge("PR_nope")
    fake_github.allow_auto_merge = False
    with pytest.raises(GitHubAPIError, match="Allow auto-merge"):
        github_client.enable_auto_merge(pull.node_id)


def test_malformed_graphql_is_reported(fake_github: FakeGitHub) -> None:
    with raw(fake_github) as http:
        response = http.post(fake_github.graphql_url, json={"query": "{ viewer { login } }"})
    assert response.status_code == 200 and response.json()["errors"]
    assert fake_github.validation_errors == [
        "graphql: only `mutation { enablePullRequestAutoMerge(...) }` is supported"
    ]
    fake_github.validation_errors.clear()


def test_enterprise_prefix(make_fake_github: Callable[..., FakeGitHub]) -> None:
    fake = make_fake_github(path_prefix="/api/v3")
    assert fake.url.endswith("/api/v3") and fake.graphql_url.endswith("/api/graphql")
    # No graphql_url given: the client derives GHES's /api/graphql from /api/v3.
    with GitHubClient(fake.url, fake.token, fake.full_name, min_write_interval=0) as client:
        pull = client.create_pull(head=BRANCH, base="main", title="t", body="")
        assert len(client.list_pulls()) == 1
        client.enable_auto_merge(pull.node_id)
    assert fake.auto_merge_enabled == [pull.node_id]


# -- validation, gatekeeping, faults -----------------------------------------------------


def test_invalid_request_lands_in_validation_errors(fake_github: FakeGitHub) -> None:
    with raw(fake_github) as http:
        http.get("/repos/acme/metrics/pulls", params={"state": "merged"})
        http.post("/repos/acme/metrics/pulls", json={"head": BRANCH, "title": "no base"})
    errors = fake_github.validation_errors
    assert len(errors) == 2
    assert "InvalidParameter" in errors[0] or "state" in errors[0]
    assert "InvalidRequestBody" in errors[1]
    fake_github.validation_errors.clear()


def test_wrong_token_and_missing_headers_are_rejected(fake_github: FakeGitHub) -> None:
    with client_for(fake_github) as good:
        good.get_repo()
    with (
        GitHubClient(fake_github.url, "ghs_wrong", fake_github.full_name) as bad,
        pytest.raises(GitHubAPIError) as info,
    ):
        bad.get_repo()
    assert info.value.status == 401 and "invalid or expired" in str(info.value)
    with raw(fake_github) as http:
        no_agent = http.get("/repos/acme/metrics", headers={"User-Agent": ""})
        no_accept = http.get("/repos/acme/metrics", headers={"Accept": "text/html"})
    assert (no_agent.status_code, no_accept.status_code) == (403, 415)
    assert fake_github.validation_errors == []


def test_rate_limit_faults_are_retried(fake_github: FakeGitHub) -> None:
    sleeps: list[float] = []
    fake_github.faults.rate_limit("POST", r"/pulls$", retry_after=2)
    fake_github.faults.rate_limit("GET", r"/pulls$", kind="primary", status=429, reset=0)
    with client_for(fake_github, sleep=sleeps.append) as client:
        pull = client.create_pull(head=BRANCH, base="main", title="t", body="")
        assert [p.number for p in client.list_pulls()] == [pull.number]
    assert sleeps == [2, 1]  # retry-after; then a reset in the past: just the 1 s margin
    assert fake_github.count("POST", r"/pulls$") == 2
    assert len(fake_github.pulls) == 1
    assert fake_github.faults.pending == []


def test_502_after_create_is_ambiguous_and_the_pr_exists(fake_github: FakeGitHub) -> None:
    fake_github.faults.add("POST", r"/pulls$", status=502, when="after")
    with client_for(fake_github) as client:
        with pytest.raises(GitHubAPIError) as info:
            client.create_pull(head=BRANCH, base="main", title="t", body="")
        assert info.value.ambiguous
        # The caller looks before trying again, and finds the PR GitHub did create.
        assert [p.number for p in client.list_pulls(head_branch=BRANCH)] == [1]
    assert fake_github.count("POST", r"/pulls$") == 1


def test_dropped_connection_on_comment_is_ambiguous(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(head=BRANCH)
    fake_github.faults.add("POST", r"/comments$", when="after", drop=True)
    fake_github.faults.add("GET", r"/comments$", status=503)
    with client_for(fake_github) as client:
        with pytest.raises(GitHubAPIError) as info:
            client.create_comment(1, "once")
        assert info.value.ambiguous and info.value.status is None
        assert [c.body for c in client.list_comments(1)] == ["once"]  # 503 retried
    assert fake_github.count("POST", r"/comments$") == 1


# -- git refs (for a push-less flow) -----------------------------------------------------


def test_git_refs_multi_segment(fake_github: FakeGitHub) -> None:
    main_sha = fake_github.set_branch("main", "1" * 40)
    with raw(fake_github) as http:
        created = http.post(
            "/repos/acme/metrics/git/refs", json={"ref": f"refs/heads/{BRANCH}", "sha": main_sha}
        )
        assert created.status_code == 201
        assert created.json()["ref"] == f"refs/heads/{BRANCH}"
        again = http.post(
            "/repos/acme/metrics/git/refs", json={"ref": f"refs/heads/{BRANCH}", "sha": main_sha}
        )
        assert again.status_code == 422
        got = http.get(f"/repos/acme/metrics/git/ref/heads/{BRANCH}")
        assert got.json()["object"]["sha"] == main_sha
        moved = http.patch(
            f"/repos/acme/metrics/git/refs/heads/{BRANCH}", json={"sha": "2" * 40, "force": True}
        )
        assert moved.json()["object"]["sha"] == "2" * 40
        assert http.delete(f"/repos/acme/metrics/git/refs/heads/{BRANCH}").status_code == 204
        assert http.get(f"/repos/acme/metrics/git/ref/heads/{BRANCH}").status_code == 404


# -- real git: a bare origin and a clone -------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return result.stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A bare `origin` with `main` (one metric file) and a clone to push from."""
    bare, clone = tmp_path / "origin.git", tmp_path / "clone"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git(tmp_path, "clone", "--quiet", str(bare), str(clone))
    (clone / "metrics").mkdir()
    (clone / "metrics" / "greeting.yaml").write_text("prompt: say hi\n")
    (clone / "metrics" / "other.yaml").write_text("prompt: other\n")
    git(clone, "add", ".")
    git(clone, "commit", "--quiet", "-m", "Initial metrics")
    git(clone, "push", "--quiet", "origin", "HEAD:main")
    yield bare, clone


def push_change(clone: Path, branch: str, path: str, text: str, message: str) -> str:
    git(clone, "checkout", "--quiet", "-B", branch)
    (clone / path).write_text(text)
    git(clone, "commit", "--quiet", "-am", message)
    git(clone, "push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{branch}")
    return git(clone, "rev-parse", "HEAD")


def test_merge_for_real_in_a_bare_origin(
    origin: tuple[Path, Path], make_fake_github: Callable[..., FakeGitHub]
) -> None:
    bare, clone = origin
    fake = make_fake_github(origin_path=bare)
    base_before = git(bare, "rev-parse", "refs/heads/main")
    with client_for(fake) as client:
        with pytest.raises(GitHubAPIError, match=r"PullRequest.head invalid"):
            client.create_pull(head=BRANCH, base="main", title="t", body="")

        first = push_change(clone, BRANCH, "metrics/greeting.yaml", "prompt: greet\n", "Optimise")
        pull = client.create_pull(head=BRANCH, base="main", title="Optimise greeting", body="")
        assert pull.head_sha == first
        (commit,) = client.list_pull_commits(pull.number)
        assert (commit.sha, commit.author_email, commit.message) == (
            first,
            "bot@cekura-gitops.invalid",
            "Optimise",
        )

        second = push_change(clone, BRANCH, "metrics/greeting.yaml", "prompt: hi!\n", "By hand")
        assert client.get_pull(pull.number).head_sha == second
        assert [c.sha for c in client.list_pull_commits(pull.number)] == [first, second]

        # main moves on (another file) meanwhile: the squash is a real 3-way merge.
        git(clone, "checkout", "--quiet", "main")
        (clone / "metrics" / "other.yaml").write_text("prompt: other v2\n")
        git(clone, "commit", "--quiet", "-am", "Other change")
        git(clone, "push", "--quiet", "origin", "HEAD:main")
        base_moved = git(clone, "rev-parse", "HEAD")
        assert base_moved != base_before

        sha = client.merge_pull(pull.number)
        merged = client.get_pull(pull.number)
        assert (merged.state, merged.merged, merged.head_sha) == ("closed", True, second)
        assert [c.sha for c in client.list_pull_commits(pull.number)] == [first, second]

    assert git(bare, "rev-parse", "refs/heads/main") == sha
    assert git(bare, "rev-parse", f"{sha}^") == base_moved  # squash: one parent
    assert git(bare, "show", f"{sha}:metrics/greeting.yaml") == "prompt: hi!"
    assert git(bare, "show", f"{sha}:metrics/other.yaml") == "prompt: other v2"
    assert git(bare, "log", "-1", "--format=%s%n%ae%n%ce", sha).splitlines() == [
        "Optimise greeting (#1)",
        "bot@cekura-gitops.invalid",
        "noreply@github.com",
    ]
    with raw(fake) as http:
        assert http.get("/repos/acme/metrics/pulls/1/merge").status_code == 204


def test_conflicting_merge_is_refused(
    origin: tuple[Path, Path], make_fake_github: Callable[..., FakeGitHub]
) -> None:
    bare, clone = origin
    fake = make_fake_github(origin_path=bare)
    push_change(clone, BRANCH, "metrics/greeting.yaml", "prompt: A\n", "A")
    git(clone, "checkout", "--quiet", "main")
    (clone / "metrics" / "greeting.yaml").write_text("prompt: B\n")
    git(clone, "commit", "--quiet", "-am", "B")
    git(clone, "push", "--quiet", "origin", "HEAD:main")
    with client_for(fake) as client:
        pull = client.create_pull(head=BRANCH, base="main", title="t", body="")
        with pytest.raises(GitHubAPIError) as info:
            client.merge_pull(pull.number)
        assert info.value.status == 405
        assert client.get_pull(pull.number).state == "open"
        with raw(fake) as http:
            assert http.get("/repos/acme/metrics/pulls/1/merge").status_code == 404


def test_no_commits_between_and_web_ui_merge(
    origin: tuple[Path, Path], make_fake_github: Callable[..., FakeGitHub]
) -> None:
    bare, clone = origin
    fake = make_fake_github(origin_path=bare)
    git(clone, "push", "--quiet", "origin", f"HEAD:refs/heads/{BRANCH}")  # same as main
    with client_for(fake) as client:
        with pytest.raises(GitHubAPIError, match="No commits between main and"):
            client.create_pull(head=BRANCH, base="main", title="t", body="")
        push_change(clone, BRANCH, "metrics/greeting.yaml", "prompt: yo\n", "Yo")
        pull = client.create_pull(head=BRANCH, base="main", title="t", body="")
        fake.close_pull(pull.number, merged=True)
        assert client.get_pull(pull.number).merged
    assert git(bare, "show", "main:metrics/greeting.yaml") == "prompt: yo"


def test_git_refs_in_a_bare_origin(
    tmp_path: Path, origin: tuple[Path, Path], make_fake_github: Callable[..., FakeGitHub]
) -> None:
    bare, clone = origin
    fake = make_fake_github(origin_path=bare)
    main_sha = git(bare, "rev-parse", "refs/heads/main")
    ahead = push_change(clone, "scratch", "metrics/greeting.yaml", "prompt: x\n", "x")
    refs = "/repos/acme/metrics/git/refs"
    with raw(fake) as http:
        made = http.post(refs, json={"ref": f"refs/heads/{BRANCH}", "sha": main_sha})
        assert made.status_code == 201
        assert git(bare, "rev-parse", f"refs/heads/{BRANCH}") == main_sha
        assert http.post(refs, json={"ref": "refs/heads/x", "sha": "f" * 40}).status_code == 422
        forward = http.patch(f"{refs}/heads/{BRANCH}", json={"sha": ahead})
        assert forward.status_code == 200
        back = http.patch(f"{refs}/heads/{BRANCH}", json={"sha": main_sha})
        assert (back.status_code, back.json()["message"]) == (422, "Update is not a fast forward")
        assert http.patch(f"{refs}/heads/{BRANCH}", json={"sha": main_sha, "force": True}).is_success
        assert git(bare, "rev-parse", f"refs/heads/{BRANCH}") == main_sha
        assert http.delete(f"{refs}/heads/{BRANCH}").status_code == 204
        assert http.get(f"/repos/acme/metrics/git/ref/heads/{BRANCH}").status_code == 404

    empty = tmp_path / "empty.git"
    git(tmp_path, "init", "--quiet", "--bare", str(empty))
    with raw(make_fake_github(origin_path=empty)) as http:
        assert http.get("/repos/acme/metrics/git/ref/heads/main").status_code == 409


def test_a_failure_of_the_fake_itself_is_a_500_and_recorded() -> None:
    """Its own bug is never a silently dropped connection, which a client must treat as
    "the request may have been processed"; the test that met it is told why."""
    fake = FakeGitHub().start()
    try:

        def broken(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("the fake's own bug")

        fake._send = broken  # type: ignore[method-assign]
        with raw(fake) as client:
            reply = client.get("/repos/acme/metrics")
        assert (reply.status_code, reply.headers.get("connection")) == (500, "close")
        [crash] = fake.validation_errors
        assert crash.startswith("fake crashed serving GET /repos/acme/metrics: ") and "own bug" in crash
    finally:
        fake.stop()


def test_a_request_left_unanswered_by_the_socket_is_noted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request body, or a request line, that never comes ends the connection with nothing
    sent. Such closes are listed (and printed when a test fails), so that a client's "no
    response" can be traced to the socket instead of guessed at."""
    import socket
    import time

    from tests.fakes import github_server

    monkeypatch.setattr(github_server._Handler, "timeout", 0.3)  # the idle timer, shortened
    fake = FakeGitHub().start()
    try:
        with socket.create_connection(("127.0.0.1", fake.port)) as stalled:
            stalled.settimeout(5)
            stalled.sendall(b"POST /repos/acme/metrics/pulls HTTP/1.1\r\nContent-Length: 99\r\n\r\n{")
            assert stalled.recv(1) == b"", "the body never came: closed with nothing sent"
        with socket.create_connection(("127.0.0.1", fake.port)) as quiet:
            quiet.settimeout(5)
            assert quiet.recv(1) == b"", "closed with nothing sent"
        deadline = time.monotonic() + 5
        while len(fake.unanswered) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        notes = sorted(fake.unanswered, key=lambda n: "POST" not in n)
        assert len(notes) == 2, notes
        assert "POST /repos/acme/metrics/pulls (request 1 here)" in notes[0]
        assert "timed out" in notes[1]
        assert fake.validation_errors == []
    finally:
        fake.stop()

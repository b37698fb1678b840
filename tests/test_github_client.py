"""GitHubClient against httpx.MockTransport: headers, paths, pagination, errors, retries.

Handlers are plain `Request -> Response` callables; `ValidatingTransport` also checks each
request (and documented response) against the vendored OpenAPI subset. Waits are observed
through an injected clock/sleep pair, so no test sleeps for real.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cekura_gitops import __version__
from cekura_gitops.errors import ConfigError, GitHubAPIError
from cekura_gitops.github import (
    Commit,
    GitHubClient,
    Issue,
    PullRequest,
    PullRequestExists,
    Repo,
)
from tests.fakes.openapi_adapter import ValidatingTransport, load_spec_dict

TOKEN = "ghs_SuperSecretToken123"
API = "https://api.github.com"
REPO = "/repos/acme/metrics"
Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """A clock that only moves when the client sleeps (or the test says so)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def example(name: str) -> Any:
    """An official example from the subset, patched like the fake does (github-notes §1)."""
    value = json.loads(json.dumps(load_spec_dict()["components"]["examples"][name]["value"]))
    for item in value if isinstance(value, list) else [value]:
        for team in item.get("requested_teams", []) if isinstance(item, dict) else []:
            team["type"] = "organization"
    return value


def pull_json(number: int = 7, **changes: Any) -> dict[str, Any]:
    pull: dict[str, Any] = example("pull-request")
    pull.update(number=number, node_id=f"PR_{number}", **changes)
    return pull


def make_client(
    handler: Handler | httpx.BaseTransport,
    *,
    api_url: str = API,
    time_: FakeTime | None = None,
    **kwargs: Any,
) -> GitHubClient:
    transport = handler if isinstance(handler, httpx.BaseTransport) else httpx.MockTransport(handler)
    t = time_ or FakeTime()
    kwargs.setdefault("min_write_interval", 0.0)
    return GitHubClient(
        api_url, TOKEN, "acme/metrics", transport=transport, sleep=t.sleep, clock=t.clock, **kwargs
    )


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


# -- headers, paths ----------------------------------------------------------------------


def test_sends_github_headers_and_parses_repo() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        repo = example("full-repository-default-response")
        repo["language"] = None
        repo["source"]["language"] = repo["parent"]["language"] = None
        return json_response(200, repo)

    transport = ValidatingTransport(handler)
    with make_client(transport) as client:
        repo = client.get_repo()
    # The official example: the token may pull, not push.
    assert repo == Repo(
        "octocat/Hello-World", "master", "https://github.com/octocat/Hello-World", can_push=False
    )
    (request,) = seen
    assert request.url == f"{API}{REPO}"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert request.headers["User-Agent"] == f"cekura-gitops/{__version__}"
    assert transport.errors == []


def test_enterprise_base_path_is_kept_and_graphql_moves_next_to_it() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path.endswith("/graphql"):
            return json_response(200, {"data": {"enablePullRequestAutoMerge": {"pullRequest": {}}}})
        return json_response(200, pull_json())

    transport = ValidatingTransport(handler, strip_prefix="/api/v3", skip_paths=r"/graphql$")
    with make_client(transport, api_url="https://ghe.example.com/api/v3/") as client:
        client.get_pull(7)
        client.enable_auto_merge("PR_7")
        assert client.graphql_url == "https://ghe.example.com/api/graphql"
    assert seen == [
        "https://ghe.example.com/api/v3/repos/acme/metrics/pulls/7",
        "https://ghe.example.com/api/graphql",
    ]
    assert transport.errors == []
    with make_client(handler) as client:
        assert client.graphql_url == "https://api.github.com/graphql"


def test_repository_must_be_owner_slash_name() -> None:
    with pytest.raises(ConfigError, match="OWNER/NAME"):
        GitHubClient(API, TOKEN, "acme")


# -- pagination --------------------------------------------------------------------------


def test_follows_link_next_verbatim_and_stops_without_it() -> None:
    # GitHub's next links name the repository by id: a client that rebuilt the URL from
    # the first request (or re-added its params) would not hit this exact URL.
    page2 = f"{API}/repositories/1296269/pulls?state=open&head=acme%3Ab&per_page=100&page=2&after=xyz"
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if len(seen) == 1:
            items = example("pull-request-simple-items")
            return json_response(200, items, {"Link": f'<{page2}>; rel="next", <{page2}>; rel="last"'})
        item = example("pull-request-simple-items")[0]
        item["number"] = 2
        return json_response(200, [item], {"Link": f'<{API}{REPO}/pulls?page=1>; rel="first"'})

    with make_client(handler) as client:
        pulls = client.list_pulls(head_branch="b", base="main")
    assert [p.number for p in pulls] == [1347, 2]
    assert seen == [f"{API}{REPO}/pulls?state=open&head=acme%3Ab&base=main&per_page=100", page2]
    first = pulls[0]
    assert first.merged is True  # pull-request-simple has no `merged`: taken from merged_at
    assert (first.head_ref, first.base_ref, first.user_login) == ("new-topic", "master", "octocat")


def test_refuses_a_next_link_to_another_host() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return json_response(200, [], {"Link": '<https://evil.example/steal?page=2>; rel="next"'})

    with make_client(handler) as client, pytest.raises(GitHubAPIError, match="evil.example"):
        client.list_comments(3)
    assert client.request_count == 1


# -- errors ------------------------------------------------------------------------------

ALREADY_EXISTS = {
    "message": "Validation Failed",
    "errors": [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": "A pull request already exists for acme:cekura-gitops/optimise/greeting.",
        }
    ],
    "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
    "status": "422",
}


def test_422_already_exists_raises_pull_request_exists() -> None:
    transport = ValidatingTransport(lambda request: json_response(422, ALREADY_EXISTS))
    with make_client(transport) as client, pytest.raises(PullRequestExists) as info:
        client.create_pull(head="cekura-gitops/optimise/greeting", base="main", title="t", body="b")
    assert isinstance(info.value, GitHubAPIError)
    assert info.value.status == 422 and not info.value.ambiguous
    assert "A pull request already exists for acme:" in str(info.value)
    assert transport.errors == []


def test_other_422_is_a_plain_error_naming_the_field() -> None:
    body = {
        "message": "Validation Failed",
        "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}],
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
    }
    with (
        make_client(lambda request: json_response(422, body)) as client,
        pytest.raises(GitHubAPIError) as info,
    ):
        client.create_pull(head="nope", base="main", title="t", body="b")
    assert type(info.value) is GitHubAPIError
    assert info.value.detail == "Validation Failed: PullRequest.head invalid"


@pytest.mark.parametrize(
    ("message", "hint"),
    [
        ("Resource not accessible by integration", "contents/pull-requests: write?"),
        (
            "GitHub Actions is not permitted to create or approve pull requests.",
            "Allow GitHub Actions to create and approve pull requests",
        ),
    ],
)
def test_plain_403_is_not_retried_and_hints_at_the_fix(message: str, hint: str) -> None:
    body = {"message": message, "documentation_url": "https://docs.github.com/rest"}
    t = FakeTime()
    with make_client(lambda request: json_response(403, body), time_=t) as client:
        with pytest.raises(GitHubAPIError) as info:
            client.create_pull(head="b", base="main", title="t", body="b")
        assert client.request_count == 1
    assert t.sleeps == []
    assert info.value.status == 403
    assert message in str(info.value) and hint in str(info.value)


def test_detail_is_an_excerpt() -> None:
    body = {"message": "x" * 5000}
    with (
        make_client(lambda request: json_response(404, body)) as client,
        pytest.raises(GitHubAPIError) as info,
    ):
        client.get_pull(1)
    assert len(info.value.detail) < 400
    assert info.value.detail.startswith("x" * 300)


def test_unexpected_shape_is_a_github_error() -> None:
    with (
        make_client(lambda request: json_response(200, {"number": 1})) as client,
        pytest.raises(GitHubAPIError, match="unexpected response shape"),
    ):
        client.get_pull(1)


# -- rate limits -------------------------------------------------------------------------


def rate_limited_then_ok(responses: list[httpx.Response], ok: Any) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return responses.pop(0) if responses else json_response(200, ok)

    return handler


def test_rate_limit_waits_in_githubs_documented_order() -> None:
    t = FakeTime()
    reset = int(t.now) + 100
    responses = [
        # 1. retry-after wins over everything else.
        json_response(
            403,
            {"message": "You have exceeded a secondary rate limit."},
            {"retry-after": "7", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        ),
        # 2. remaining 0: wait until the reset (+1 s margin), computed with the clock.
        json_response(
            429,
            {"message": "API rate limit exceeded for installation ID 1."},
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        ),
        # 3. secondary limit without headers: at least 60 s, doubling.
        json_response(403, {"message": "You have exceeded a secondary rate limit."}),
    ]
    with make_client(rate_limited_then_ok(responses, pull_json()), time_=t, max_attempts=4) as c:
        assert c.get_pull(7).number == 7
        assert c.request_count == 4
    assert t.sleeps == [
        7,  # retry-after
        94,  # until the reset: 100 s - 7 s already slept, + 1 s margin
        240,  # no headers, the third rate limit in a row: 60 s * 2**2
    ]


def test_secondary_rate_limit_backs_off_from_60_s_then_gives_up() -> None:
    t = FakeTime()
    body = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}
    with make_client(lambda r: json_response(403, body), time_=t, max_attempts=4) as client:
        with pytest.raises(GitHubAPIError) as info:
            client.create_comment(5, "hi")
        assert client.request_count == 4
    assert t.sleeps == [60, 120, 240]
    assert info.value.status == 403 and not info.value.ambiguous
    assert "rate limited by GitHub (secondary limit) after 4 attempt(s)" in str(info.value)


def test_rate_limited_create_pull_is_resent_because_github_did_not_process_it() -> None:
    t = FakeTime()
    posts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        if len(posts) == 1:
            return json_response(429, {"message": "secondary rate limit"}, {"retry-after": "3"})
        return json_response(201, pull_json(9))

    with make_client(handler, time_=t) as client:
        assert client.create_pull(head="b", base="main", title="t", body="b").number == 9
    assert len(posts) == 2 and t.sleeps == [3]


def test_a_wait_longer_than_max_wait_fails_at_once() -> None:
    t = FakeTime()
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(t.now) + 3000)}
    with make_client(
        lambda r: json_response(403, {"message": "API rate limit exceeded"}, headers),
        time_=t,
        max_wait=900,
    ) as client:
        with pytest.raises(GitHubAPIError, match="primary limit.*waiting 3001 s"):
            client.list_issues()
        assert client.request_count == 1
    assert t.sleeps == []


# -- 5xx and transport failures ----------------------------------------------------------


def test_create_pull_is_not_resent_after_a_502() -> None:
    posts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return httpx.Response(502, text="<html>Bad gateway</html>")

    with make_client(handler) as client, pytest.raises(GitHubAPIError) as info:
        client.create_pull(head="b", base="main", title="t", body="b")
    assert len(posts) == 1
    assert info.value.ambiguous and info.value.status == 502
    assert "not resent" in str(info.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.create_pull(head="b", base="main", title="t", body="b"),
        lambda c: c.create_comment(1, "hi"),
        lambda c: c.create_issue(title="t", body="b"),
    ],
)
def test_posts_that_create_are_not_resent_after_a_read_timeout(
    call: Callable[[GitHubClient], Any],
) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        raise httpx.ReadTimeout("timed out", request=request)

    with make_client(handler) as client, pytest.raises(GitHubAPIError) as info:
        call(client)
    assert len(sent) == 1
    assert info.value.ambiguous and info.value.status is None
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


def test_a_post_that_never_connected_is_resent() -> None:
    t = FakeTime()
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if len(sent) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return json_response(201, pull_json(3))

    with make_client(handler, time_=t) as client:
        assert client.create_pull(head="b", base="main", title="t", body="b").number == 3
    assert len(sent) == 2 and t.sleeps == [1]


def test_gets_and_patches_retry_5xx_with_backoff() -> None:
    t = FakeTime()
    responses = [httpx.Response(502), httpx.Response(503, headers={"retry-after": "5"})]
    with make_client(rate_limited_then_ok(responses, pull_json()), time_=t) as client:
        assert client.get_pull(7).number == 7
    assert t.sleeps == [1, 5]

    t = FakeTime()
    responses = [httpx.Response(500)] * 4
    with (
        make_client(rate_limited_then_ok(responses, pull_json()), time_=t) as client,
        pytest.raises(GitHubAPIError) as info,
    ):
        client.update_pull(7, body="new")
    assert t.sleeps == [1, 2, 4]
    assert info.value.status == 500 and info.value.ambiguous  # a PATCH may have applied


def test_dropped_connection_on_get_is_retried_then_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected", request=request)

    with make_client(handler, max_attempts=2) as client, pytest.raises(GitHubAPIError) as info:
        client.list_pulls()
    assert client.request_count == 2
    assert info.value.status is None and not info.value.ambiguous
    assert "no response (RemoteProtocolError" in str(info.value)


# -- write spacing -----------------------------------------------------------------------


def comment_json(comment_id: int = 1) -> dict[str, Any]:
    comment: dict[str, Any] = example("issue-comment")
    comment["id"] = comment_id
    return comment


def test_writes_are_spaced_and_reads_are_not() -> None:
    t = FakeTime()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return json_response(200, [comment_json()])
        return json_response(201 if request.method == "POST" else 200, comment_json())

    with make_client(handler, time_=t, min_write_interval=1.0) as client:
        client.create_comment(1, "a")  # first write: nothing to wait for
        client.list_comments(1)  # reads are never delayed
        client.list_comments(1)
        assert t.sleeps == []
        client.update_comment(1, "b")  # 0 s since the last write
        assert t.sleeps == [1.0]
        t.now += 0.25
        client.create_comment(1, "c")
        assert t.sleeps == [1.0, 0.75]
        t.now += 5
        client.update_comment(1, "d")
        assert t.sleeps == [1.0, 0.75]


def test_writes_from_threads_are_serialised() -> None:
    in_flight = 0
    overlap = False
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, overlap
        with lock:
            in_flight += 1
            overlap = overlap or in_flight > 1
        time.sleep(0.01)
        with lock:
            in_flight -= 1
        return json_response(201, comment_json())

    with GitHubClient(
        API,
        TOKEN,
        "acme/metrics",
        transport=httpx.MockTransport(handler),
        min_write_interval=0.0,
    ) as client:
        threads = [threading.Thread(target=client.create_comment, args=(1, str(i))) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.request_count == 6
    assert not overlap


# -- the token never leaks ---------------------------------------------------------------


def test_token_never_appears_in_repr_messages_or_tracebacks() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/pulls/1"):
            # A buggy proxy echoing the credentials back in its error message.
            echoed = {"message": f"Bad credentials: {request.headers['Authorization']}"}
            # 403, not 401: after a 401 the client sends nothing more (tests/test_hostile.py).
            return json_response(403, echoed)
        raise httpx.ConnectError(f"refused {request.url}", request=request)

    with make_client(handler, max_attempts=1) as client:
        assert TOKEN not in repr(client)
        errors = []
        for call in (lambda: client.get_pull(1), lambda: client.create_comment(1, "x")):
            with pytest.raises(GitHubAPIError) as info:
                call()
            errors.append(info.value)
    for error in errors:
        text = "".join(traceback.format_exception(error))
        assert TOKEN not in text and TOKEN not in repr(error)
    assert "Bad credentials: Bearer ***" in str(errors[0])
    assert errors[1].status is None and "ConnectError" in str(errors[1])


# -- parsing of the other operations -----------------------------------------------------


def test_list_issues_excludes_pull_requests_and_joins_labels() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        issue = example("issue")
        plain = dict(issue, number=2)
        plain.pop("pull_request")
        return json_response(200, [issue, plain])

    transport = ValidatingTransport(handler)
    with make_client(transport) as client:
        issues = client.list_issues(labels=["cekura-gitops-dashboard", "bot"], state="all")
    assert [i.number for i in issues] == [2]
    assert issues[0] == Issue(
        2,
        "Found a bug",
        "I'm having a problem with this.",
        "open",
        "https://github.com/octocat/Hello-World/issues/1347",
        ("bug",),
    )
    assert seen[0].url.params["labels"] == "cekura-gitops-dashboard,bot"
    assert transport.errors == []


def test_commits_merge_labels_reviewers_and_their_payloads() -> None:
    bodies: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        key = f"{request.method} {request.url.path.removeprefix(REPO)}"
        bodies[key] = json.loads(request.content) if request.content else None
        if key == "GET /pulls/7/commits":
            return json_response(200, example("commit-items"))
        if key == "PUT /pulls/7/merge":
            return json_response(200, example("pull-request-merge-result-response-if-merge-was-successful"))
        if key == "POST /issues/7/labels":
            return json_response(200, example("label-items"))
        if key == "POST /pulls/7/requested_reviewers":
            return json_response(201, example("pull-request-simple-items")[0])
        return json_response(200, pull_json(7, title="T", body=None, draft=True))

    transport = ValidatingTransport(handler)
    with make_client(transport) as client:
        assert client.list_pull_commits(7) == [
            Commit(
                "6dcb09b5b57875f334f61aebed695e2e4193db5e",
                "Monalisa Octocat",
                "support@github.com",
                "support@github.com",
                "Fix all the bugs",
            )
        ]
        assert client.merge_pull(7) == "6dcb09b5b57875f334f61aebed695e2e4193db5e"
        client.add_labels(7, ["cekura-gitops"])
        client.add_labels(7, [])  # nothing to add: no request
        client.request_reviewers(7, ["alice"], ["prompt-owners"])
        client.request_reviewers(7, [])
        pull = client.update_pull(7, state="closed")
        assert client.request_count == 5
    assert isinstance(pull, PullRequest) and pull.body == "" and pull.draft
    assert bodies["PUT /pulls/7/merge"] == {"merge_method": "squash"}
    assert bodies["POST /issues/7/labels"] == {"labels": ["cekura-gitops"]}
    assert bodies["POST /pulls/7/requested_reviewers"] == {
        "reviewers": ["alice"],
        "team_reviewers": ["prompt-owners"],
    }
    assert bodies["PATCH /pulls/7"] == {"state": "closed"}
    assert transport.errors == []


def test_graphql_errors_become_github_api_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        assert payload["variables"] == {"pullRequestId": "PR_1", "mergeMethod": "SQUASH"}
        assert "enablePullRequestAutoMerge" in payload["query"]
        return json_response(
            200,
            {
                "data": {"enablePullRequestAutoMerge": None},
                "errors": [{"message": "Pull request Auto merge is not allowed for this repository"}],
            },
        )

    with make_client(handler) as client, pytest.raises(GitHubAPIError) as info:
        client.enable_auto_merge("PR_1")
    assert info.value.path == "/graphql" and "Allow auto-merge" in str(info.value)

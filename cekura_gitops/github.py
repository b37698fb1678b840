"""GitHub REST (and one GraphQL mutation) over httpx: pull requests, comments, labels, issues.

`GitHubClient` is the only place that talks HTTP to GitHub. Every failure leaves it as a
`GitHubAPIError` whose message names the operation, method, path, status and an excerpt of
GitHub's `message`, redacted (`redaction.Redactor`: the token, its encodings, its fragments)
before it is cut, so not even a fragment of the token appears in a message or repr.

Hostile replies (`httpio`): an overall deadline per request, a size limit, a JSON nesting
limit; a broken reply is a one-line `GitHubAPIError` naming the endpoint. A 401 means the
token is wrong or expired: `GitHubTokenRefused`, and every later request of this client
fails the same way without being sent.

Conventions (reference/github-notes.md §6):

- headers `Authorization: Bearer`, `Accept: application/vnd.github+json`,
  `X-GitHub-Api-Version: 2022-11-28` and a `User-Agent`;
- `Link: rel="next"` is followed verbatim (GitHub's next URLs use `/repositories/<id>/…`,
  so they must never be rebuilt), with `per_page=100`;
- rate limits (403/429) are waited out in GitHub's documented order: `retry-after`, then
  `x-ratelimit-reset` when `x-ratelimit-remaining` is 0, then at least 60 s with
  exponential backoff;
- 5xx, timeouts and dropped connections are retried only for requests that are safe to
  resend. `POST /pulls`, comments and issues are never resent blindly: a failure that may
  have taken effect raises `GitHubAPIError(ambiguous=True)`, and the caller looks before
  trying again (list the PRs for the head branch, …);
- mutating requests are serialised and spaced `min_write_interval` apart, GitHub's advice
  for staying clear of secondary rate limits.
"""

from __future__ import annotations

import base64
import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import httpx

from cekura_gitops import __version__, httpio
from cekura_gitops.errors import ConfigError, GitHubAPIError, GitHubTokenRefused
from cekura_gitops.pacer import WritePacer
from cekura_gitops.redaction import DETAIL_LIMIT, Redactor, excerpt
from cekura_gitops.retryafter import parse_retry_after

__all__ = [
    "AccessToken",
    "Comment",
    "Commit",
    "GitCommit",
    "GitHubClient",
    "Installation",
    "Issue",
    "PullRequest",
    "PullRequestExists",
    "Repo",
]

API_VERSION = "2022-11-28"
PER_PAGE = 100
# GitHub: "wait at least one minute" before retrying a secondary rate limit without headers.
SECONDARY_RATE_LIMIT_WAIT = 60.0
# Sleeping an hour for a primary limit burns runner minutes for nothing: fail instead and
# let the next scheduled run pick up where this one stopped.
DEFAULT_MAX_WAIT = 900.0
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})

PERMISSION_HINT = "the token lacks permission (contents/pull-requests: write?)"
ACTIONS_PR_HINT = (
    "enable Settings → Actions → General → 'Allow GitHub Actions to create and approve "
    "pull requests' (repository or organisation), or use a GitHub App token"
)
UNAUTHORIZED_HINT = "the token is invalid or expired: check GITHUB_TOKEN; an App token lasts an hour"
ALREADY_EXISTS_PREFIX = "a pull request already exists"
AMBIGUOUS_HINT = "; it may have taken effect on GitHub, so it was not resent: look before retrying"

T = TypeVar("T")

_ENABLE_AUTO_MERGE = """\
mutation($pullRequestId: ID!, $mergeMethod: PullRequestMergeMethod!) {
  enablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId, mergeMethod: $mergeMethod}) {
    pullRequest { number autoMergeRequest { mergeMethod enabledAt } }
  }
}"""

_DISABLE_AUTO_MERGE = """\
mutation($pullRequestId: ID!) {
  disablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId}) {
    pullRequest { number }
  }
}"""


@dataclass(frozen=True)
class Repo:
    full_name: str
    default_branch: str
    html_url: str
    can_push: bool | None = None  # from `permissions.push`, when GitHub says


@dataclass(frozen=True)
class PullRequest:
    number: int
    node_id: str
    state: str  # "open" or "closed"; a merged PR is closed with merged=True
    merged: bool
    draft: bool
    title: str
    body: str
    head_ref: str
    head_sha: str
    base_ref: str
    html_url: str
    user_login: str
    auto_merge: bool = False  # GitHub merges it by itself once its checks pass


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    user_login: str
    html_url: str


@dataclass(frozen=True)
class Issue:
    number: int
    title: str
    body: str
    state: str
    html_url: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Commit:
    sha: str
    author_name: str
    author_email: str
    committer_email: str
    message: str


@dataclass(frozen=True)
class Installation:
    """A GitHub App's installation that covers this repository."""

    id: int
    app_id: int
    app_slug: str
    account: str
    permissions: dict[str, str]
    suspended: bool


@dataclass(frozen=True)
class AccessToken:
    token: str = field(repr=False)
    expires_at: str  # ISO 8601
    permissions: dict[str, str]


@dataclass(frozen=True)
class GitCommit:
    """A commit as the Git Data API returns it."""

    sha: str
    tree_sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    committer_email: str
    verified: bool
    verification_reason: str


class PullRequestExists(GitHubAPIError):
    """`POST /pulls` answered 422 "A pull request already exists for owner:branch".

    Usually a race with another run: list the open PRs for the head branch and update it.
    """


@dataclass(frozen=True)
class _Call:
    """One logical request: what `_request` needs across its attempts."""

    operation: str
    method: str
    target: str  # a path under api_url, or an absolute URL (GraphQL, Link next)
    path: str  # what error messages show: never a URL with a query or credentials
    params: dict[str, str] | None
    json: Any
    resend_safe: bool

    def error(self, status: int | None, detail: str, ambiguous: bool = False) -> GitHubAPIError:
        return GitHubAPIError(self.operation, self.method, self.path, status, detail, ambiguous=ambiguous)


class _Retry(Exception):
    """Internal: this attempt failed in a way that may be retried after `wait` seconds."""

    def __init__(self, wait: float, error: GitHubAPIError, *, rate_limited: bool = False) -> None:
        super().__init__(str(error))
        self.wait = wait
        self.error = error
        self.rate_limited = rate_limited


class GitHubClient:
    """A GitHub REST client bound to one repository.

    `api_url` is the REST root (`https://api.github.com`, or `https://HOST/api/v3` on
    GitHub Enterprise Server: paths are joined under it). `graphql_url` defaults to
    `<api_url>/graphql`, except under an `/api/v3` root where GHES serves GraphQL at
    `/api/graphql`. `transport` is the test seam (`httpx.MockTransport`); `sleep` and
    `clock` make waits observable. `max_wait` caps a single rate-limit wait: beyond it
    the client fails with a clear error rather than idling a runner.

    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        api_url: str,
        token: str | Callable[[], str],
        repository: str,
        *,
        graphql_url: str | None = None,
        pacer: WritePacer | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        max_attempts: int = 4,
        min_write_interval: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        max_wait: float = DEFAULT_MAX_WAIT,
        backoff_base: float = 1.0,
        secondary_wait: float = SECONDARY_RATE_LIMIT_WAIT,
        deadline: float = httpio.DEFAULT_DEADLINE,
    ) -> None:
        owner, sep, name = repository.partition("/")
        if not (sep and owner and name) or "/" in name:
            raise ConfigError(f"GitHub repository must look like OWNER/NAME, got {repository!r}")
        token, self._redact, seen = _token_source(token)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.api_url = api_url.rstrip("/")
        self.repository = repository
        self.graphql_url = graphql_url or _default_graphql_url(self.api_url)
        self._owner = owner
        self._deadline = deadline
        self._refused: tuple[str, str, str, str] | None = None
        # Asked before every attempt: an App's installation token is renewed as it ages.
        self._token_source = token
        self._seen_tokens = seen  # every token sent, for redaction
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        # Retry delays: backoff_base × 1, 2, 4 … after 5xx and lost connections, and
        # secondary_wait × 1, 2, 4 … after a secondary rate limit without Retry-After.
        self._backoff_base = backoff_base
        self._secondary_wait = secondary_wait
        self._sleep = sleep
        self._clock = clock
        # Shared by every client of a run when given: one identity, one write budget.
        self.pacer = pacer or WritePacer(interval=min_write_interval, clock=clock, sleep=sleep)
        self._count_lock = threading.Lock()
        self._request_count = 0
        self._http = httpx.Client(
            # A trailing slash makes httpx join "/repos/…" *under* a GHES "/api/v3" prefix.
            base_url=self.api_url + "/",
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": f"cekura-gitops/{__version__}",
            },
            transport=transport or httpio.transport(),
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
        )

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r}, repository={self.repository!r})"

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far, retries included."""
        return self._request_count

    # -- repository ------------------------------------------------------------------

    def get_repo(self) -> Repo:
        """The repository's name, default branch and web URL."""
        data = self._json("get repository", "GET", self._repo_path())
        return self._parse(data, "get repository", "GET", self._repo_path(), _repo)

    # -- pull requests ---------------------------------------------------------------

    def list_pulls(
        self, *, head_branch: str | None = None, base: str | None = None, state: str = "open"
    ) -> list[PullRequest]:
        """Pull requests, optionally only those from `head_branch` (this repo) into `base`."""
        params: dict[str, str] = {"state": state}
        if head_branch is not None:
            # GitHub silently ignores a `head` filter without the "owner:" prefix and
            # returns every PR, so always qualify a bare branch name.
            params["head"] = head_branch if ":" in head_branch else f"{self._owner}:{head_branch}"
        if base is not None:
            params["base"] = base
        path = self._repo_path("pulls")
        items = self._paginate("list pull requests", path, params)
        return [self._parse(item, "list pull requests", "GET", path, _pull) for item in items]

    def get_pull(self, number: int) -> PullRequest:
        path = self._repo_path(f"pulls/{number}")
        return self._parse(
            self._json("get pull request", "GET", path), "get pull request", "GET", path, _pull
        )

    def create_pull(self, *, head: str, base: str, title: str, body: str, draft: bool = False) -> PullRequest:
        """Open a PR. Raises `PullRequestExists` on GitHub's 422 "already exists".

        Never resent after a failure that may have taken effect: that raises
        `GitHubAPIError(ambiguous=True)`; list the PRs for `head` before trying again.
        """
        op, path = "create pull request", self._repo_path("pulls")
        payload = {"head": head, "base": base, "title": title, "body": body, "draft": draft}
        try:
            data = self._json(op, "POST", path, json=payload, resend_safe=False)
        except GitHubAPIError as err:
            if err.status == 422 and ALREADY_EXISTS_PREFIX in err.detail.lower():
                raise PullRequestExists(op, "POST", path, 422, err.detail, ambiguous=False) from err
            raise
        return self._parse(data, op, "POST", path, _pull)

    def update_pull(
        self,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        state: str | None = None,
    ) -> PullRequest:
        """Change title/body/state; only the fields given are sent."""
        payload = _without_none(title=title, body=body, state=state)
        if not payload:
            return self.get_pull(number)
        op, path = "update pull request", self._repo_path(f"pulls/{number}")
        return self._parse(self._json(op, "PATCH", path, json=payload), op, "PATCH", path, _pull)

    def list_pull_commits(self, number: int) -> list[Commit]:
        """The PR's commits, oldest first (GitHub caps this list at 250)."""
        op, path = "list pull request commits", self._repo_path(f"pulls/{number}/commits")
        return [self._parse(item, op, "GET", path, _commit) for item in self._paginate(op, path, {})]

    def merge_pull(self, number: int, *, merge_method: str = "squash") -> str:
        """Merge the PR and return the merge commit's sha.

        Not resent after an ambiguous failure: a second PUT on a merged PR answers 405, which
        would hide the success. Check `get_pull(number).merged` instead.
        """
        op, path = "merge pull request", self._repo_path(f"pulls/{number}/merge")
        data = self._json(op, "PUT", path, json={"merge_method": merge_method}, resend_safe=False)
        return self._parse(data, op, "PUT", path, lambda d: str(d["sha"]))

    def request_reviewers(
        self, number: int, reviewers: Sequence[str], team_reviewers: Sequence[str] = ()
    ) -> None:
        """Ask users and teams (slugs) to review; a no-op when both are empty."""
        if not reviewers and not team_reviewers:
            return
        op = "request reviewers"
        path = self._repo_path(f"pulls/{number}/requested_reviewers")
        payload = {"reviewers": list(reviewers), "team_reviewers": list(team_reviewers)}
        # Requesting the same reviewers twice changes nothing, so resending is safe.
        self._request(op, "POST", path, json=payload, resend_safe=True)

    # -- comments, labels --------------------------------------------------------------

    def list_comments(self, issue_number: int) -> list[Comment]:
        """Conversation comments of an issue or PR, oldest first."""
        op = "list comments"
        path = self._repo_path(f"issues/{issue_number}/comments")
        return [self._parse(item, op, "GET", path, _comment) for item in self._paginate(op, path, {})]

    def create_comment(self, issue_number: int, body: str) -> Comment:
        """Comment on an issue or PR; never resent after an ambiguous failure."""
        op = "create comment"
        path = self._repo_path(f"issues/{issue_number}/comments")
        data = self._json(op, "POST", path, json={"body": body}, resend_safe=False)
        return self._parse(data, op, "POST", path, _comment)

    def update_comment(self, comment_id: int, body: str) -> Comment:
        op, path = "update comment", self._repo_path(f"issues/comments/{comment_id}")
        data = self._json(op, "PATCH", path, json={"body": body})
        return self._parse(data, op, "PATCH", path, _comment)

    def add_labels(self, issue_number: int, labels: Sequence[str]) -> None:
        """Add labels (GitHub creates unknown ones); a no-op for an empty list."""
        if not labels:
            return  # the API rejects an empty list (minItems: 1)
        path = self._repo_path(f"issues/{issue_number}/labels")
        # Adding a label that is already there changes nothing, so resending is safe.
        self._request("add labels", "POST", path, json={"labels": list(labels)}, resend_safe=True)

    # -- issues ------------------------------------------------------------------------

    def list_issues(self, *, labels: Sequence[str] = (), state: str = "open") -> list[Issue]:
        """Issues (not pull requests, which GitHub's issues API also returns)."""
        op, path = "list issues", self._repo_path("issues")
        params = {"state": state}
        if labels:
            params["labels"] = ",".join(labels)
        return [
            self._parse(item, op, "GET", path, _issue)
            for item in self._paginate(op, path, params)
            if not (isinstance(item, dict) and "pull_request" in item)
        ]

    def create_issue(self, *, title: str, body: str, labels: Sequence[str] = ()) -> Issue:
        """Open an issue; never resent after an ambiguous failure."""
        op, path = "create issue", self._repo_path("issues")
        payload: dict[str, Any] = {"title": title, "body": body}
        if labels:
            payload["labels"] = list(labels)
        data = self._json(op, "POST", path, json=payload, resend_safe=False)
        return self._parse(data, op, "POST", path, _issue)

    def update_issue(
        self,
        number: int,
        *,
        body: str | None = None,
        title: str | None = None,
        state: str | None = None,
    ) -> Issue:
        payload = _without_none(title=title, body=body, state=state)
        op, path = "update issue", self._repo_path(f"issues/{number}")
        if not payload:
            return self._parse(self._json("get issue", "GET", path), "get issue", "GET", path, _issue)
        return self._parse(self._json(op, "PATCH", path, json=payload), op, "PATCH", path, _issue)

    # -- GitHub App (authenticated as the App, with its JWT) -----------------------------

    def get_repo_installation(self) -> Installation:
        """The App's installation on this repository (404: not installed)."""
        op, path = "get App installation", self._repo_path("installation")
        return self._parse(self._json(op, "GET", path), op, "GET", path, _installation)

    def create_installation_token(self, installation_id: int, *, repositories: Sequence[str]) -> AccessToken:
        """A one-hour token limited to `repositories` (names, without owner).

        Minting twice is harmless (each token stands alone), so it may be resent.
        """
        op, path = "create installation token", f"/app/installations/{installation_id}/access_tokens"
        data = self._json(op, "POST", path, json={"repositories": list(repositories)}, resend_safe=True)
        return self._parse(data, op, "POST", path, _access_token)

    # -- Git Data (commits GitHub creates, and signs for an App) --------------------------

    def create_blob(self, content: bytes) -> str:
        """Store a file's bytes; returns the blob sha (the same sha git would compute)."""
        op, path = "create blob", self._repo_path("git/blobs")
        payload = {"content": base64.b64encode(content).decode("ascii"), "encoding": "base64"}
        # Content-addressed: sending the same bytes twice creates nothing new.
        data = self._json(op, "POST", path, json=payload, resend_safe=True)
        return self._parse(data, op, "POST", path, lambda d: str(d["sha"]))

    def create_tree(self, base_tree: str, files: Mapping[str, str]) -> str:
        """`base_tree` with each path pointing at a blob sha (mode 100644); returns the tree sha."""
        op, path = "create tree", self._repo_path("git/trees")
        entries = [{"path": p, "mode": "100644", "type": "blob", "sha": sha} for p, sha in files.items()]
        data = self._json(op, "POST", path, json={"base_tree": base_tree, "tree": entries}, resend_safe=True)
        return self._parse(data, op, "POST", path, lambda d: str(d["sha"]))

    def create_commit(self, *, message: str, tree: str, parents: Sequence[str]) -> GitCommit:
        """A commit GitHub authors itself: no author, committer or signature is sent, which
        is what makes GitHub sign it for an App (shown as Verified)."""
        op, path = "create commit", self._repo_path("git/commits")
        payload = {"message": message, "tree": tree, "parents": list(parents)}
        data = self._json(op, "POST", path, json=payload, resend_safe=True)
        return self._parse(data, op, "POST", path, _git_commit)

    def create_ref(self, ref: str, sha: str) -> bool:
        """Create `refs/heads/...`; False when it already exists (someone was first)."""
        op, path = "create ref", self._repo_path("git/refs")
        try:
            self._request(op, "POST", path, json={"ref": ref, "sha": sha}, resend_safe=False)
        except GitHubAPIError as err:
            if err.status == 422 and "already exists" in err.detail.lower():
                return False
            raise
        return True

    def update_ref(self, ref: str, sha: str) -> bool:
        """Move `heads/...` to `sha` only as a fast-forward: the compare-and-swap.

        False when the ref moved to something `sha` does not descend from, or is gone.
        """
        op, path = "update ref", self._repo_path(f"git/refs/{quote(ref, safe='/')}")
        try:
            self._request(op, "PATCH", path, json={"sha": sha, "force": False})
        except GitHubAPIError as err:
            lowered = err.detail.lower()
            if err.status == 422 and ("fast forward" in lowered or "does not exist" in lowered):
                return False
            raise
        return True

    # -- GraphQL -----------------------------------------------------------------------

    def enable_auto_merge(self, pull_node_id: str, *, merge_method: str = "SQUASH") -> None:
        """Turn on auto-merge (GraphQL only: there is no REST endpoint for it)."""
        variables = {"pullRequestId": pull_node_id, "mergeMethod": merge_method}
        self._mutation("enable auto-merge", "enablePullRequestAutoMerge", _ENABLE_AUTO_MERGE, variables)

    def disable_auto_merge(self, pull_node_id: str) -> None:
        """Turn auto-merge off again (GraphQL only)."""
        variables = {"pullRequestId": pull_node_id}
        self._mutation("disable auto-merge", "disablePullRequestAutoMerge", _DISABLE_AUTO_MERGE, variables)

    def _mutation(self, op: str, field: str, query: str, variables: dict[str, Any]) -> None:
        path = httpx.URL(self.graphql_url).path
        payload = {"query": query, "variables": variables}
        # Enabling or disabling auto-merge twice is harmless, so resending is safe.
        data = self._json(op, "POST", self.graphql_url, json=payload, resend_safe=True, display_path=path)
        errors = data.get("errors") if isinstance(data, dict) else None
        if errors:
            first = errors[0] if isinstance(errors, list) and errors else errors
            message = str(first.get("message", first) if isinstance(first, dict) else first)
            raise GitHubAPIError(
                op, "POST", path, 200, excerpt(_graphql_hint(message), self._redact, DETAIL_LIMIT * 2)
            )
        if not isinstance(data, dict) or not (data.get("data") or {}).get(field):
            raise GitHubAPIError(op, "POST", path, 200, "unexpected GraphQL response shape")

    # -- plumbing ----------------------------------------------------------------------

    def _parse(self, data: Any, operation: str, method: str, path: str, build: Callable[[Any], T]) -> T:
        try:
            return build(data)
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            # GitHub did answer (2xx: the POSTs parsed here create, 201), so this is no
            # "no response"; and a write it answered has taken effect: the caller must look
            # before trying again (a created PR whose reply we cannot read still exists).
            # The error's text can quote the reply: redacted, then cut.
            raise GitHubAPIError(
                operation,
                method,
                path,
                201 if method == "POST" else 200,
                f"unexpected response shape ({type(err).__name__}: {excerpt(str(err), self._redact, 120)})",
                ambiguous=method != "GET",
            ) from None

    def _repo_path(self, tail: str = "") -> str:
        base = f"/repos/{quote(self.repository, safe='/')}"
        return f"{base}/{tail}" if tail else base

    def _json(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        resend_safe: bool | None = None,
        display_path: str | None = None,
    ) -> Any:
        response = self._request(
            operation,
            method,
            path,
            params=params,
            json=json,
            resend_safe=resend_safe,
            display_path=display_path,
        )
        try:
            return self._redact.scrub(response.json())  # a reply echoing the token, even 2xx
        except httpio.ReplyError as err:
            raise GitHubAPIError(
                operation,
                method,
                display_path or path,
                response.status,
                f"response is {err.message}: {excerpt(response.text, self._redact, 80)}",
                ambiguous=method != "GET",  # a write GitHub answered 2xx has taken effect
            ) from None

    def _paginate(self, operation: str, path: str, params: dict[str, str]) -> list[Any]:
        items: list[Any] = []
        for page in self._pages(operation, path, {**params, "per_page": str(PER_PAGE)}):
            if not isinstance(page, list):
                raise GitHubAPIError(
                    operation, "GET", path, 200, "unexpected response shape: expected a list"
                )
            items.extend(page)
        return items

    def _pages(self, operation: str, path: str, params: dict[str, str]) -> Iterator[Any]:
        url: str | None = path
        query: dict[str, str] | None = params
        seen: set[str] = set()
        while url is not None:
            response = self._request(operation, "GET", url, params=query, display_path=path)
            try:
                page = self._redact.scrub(response.json())
            except httpio.ReplyError as err:
                detail = f"response is {err.message}: {excerpt(response.text, self._redact, 80)}"
                raise GitHubAPIError(operation, "GET", path, response.status, detail) from None
            yield page
            next_url = response.links.get("next", {}).get("url")
            if next_url is None:
                return
            if next_url in seen:
                raise GitHubAPIError(
                    operation,
                    "GET",
                    path,
                    response.status,
                    "pagination loops (the same next link twice)",
                )
            self._check_same_origin(operation, path, next_url)
            seen.add(next_url)
            # Follow the link verbatim: it already carries the query, page and per_page.
            url, query = next_url, None

    def _check_same_origin(self, operation: str, path: str, url: str) -> None:
        # The Authorization header goes with every request of this client, so a Link to
        # another host would hand it the token.
        target, api = httpx.URL(url), httpx.URL(self.api_url)
        if (target.scheme, target.host, target.port) != (api.scheme, api.host, api.port):
            raise GitHubAPIError(
                operation,
                "GET",
                path,
                None,
                f"refusing to follow a pagination link to {excerpt(target.host, self._redact, 80)}",
            )

    def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        resend_safe: bool | None = None,
        display_path: str | None = None,
    ) -> httpio.Reply:
        """Send one logical request, with the retries that are safe for it.

        `resend_safe` defaults to True for GET/PUT/PATCH/DELETE and False for POST: it
        decides whether a 5xx or a possibly-delivered transport failure is retried or raised
        as ambiguous. Rate-limited requests were not processed, so they are always retried.
        `display_path` replaces `path` (a full URL for GraphQL or a next link) in errors.
        """
        call = _Call(
            operation=operation,
            method=method,
            target=path,
            path=display_path or path,
            params=params,
            json=json,
            resend_safe=method != "POST" if resend_safe is None else resend_safe,
        )
        if method in WRITE_METHODS:
            with self.pacer.serial():  # serialise writes: GitHub's secondary-limit advice
                return self._attempts(call, spaced=True)
        return self._attempts(call, spaced=False)

    def _attempts(self, call: _Call, *, spaced: bool) -> httpio.Reply:
        rate_limited = 0
        for attempt in range(1, self._max_attempts + 1):
            if spaced:
                self.pacer.space()
            try:
                return self._attempt(call, attempt, rate_limited)
            except _Retry as retry:
                if retry.rate_limited:
                    rate_limited += 1
                if attempt == self._max_attempts:
                    raise retry.error from retry.__cause__
                if retry.wait > self._max_wait:
                    raise call.error(
                        retry.error.status,
                        f"{retry.error.detail}; retrying would mean waiting "
                        f"{retry.wait:.0f} s (more than {self._max_wait:.0f} s): try later",
                    ) from retry.__cause__
                self._sleep(retry.wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, call: _Call, attempt: int, rate_limited: int) -> httpio.Reply:
        with self._count_lock:
            refused = self._refused
            if refused is None:
                self._request_count += 1
        if refused is not None:
            raise GitHubTokenRefused(*refused)
        # Asked per attempt: an App's installation token is renewed as it ages.
        token = _checked_token(self._token_source())
        if token not in self._seen_tokens:
            self._seen_tokens.add(token)
            self._redact = Redactor(self._seen_tokens)
        try:
            response = httpio.receive(
                self._http,
                call.method,
                call.target,
                deadline=self._deadline,
                params=call.params,
                json_body=call.json,
                headers={"Authorization": f"Bearer {token}"},
                # A write never resent must not cross a kept-alive connection's close.
                fresh=not call.resend_safe,
            )
        except httpio.ReplyError as err:
            # Too slow or too large: GitHub (or a proxy) did receive the request. Not retried:
            # each try would cost the whole deadline again.
            write = call.method != "GET"
            detail = err.message + (AMBIGUOUS_HINT if write else "")
            raise call.error(err.status, detail, write) from None
        except httpx.HTTPError as err:
            # Connection refused / connect or pool timeout: nothing reached GitHub, so even
            # a POST may be resent. Anything later (read timeout, dropped connection) may
            # have been processed.
            not_sent = isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
            # httpx's message can quote the request's headers: name the failure only.
            detail = f"no response ({type(err).__name__})"
            if not_sent or call.resend_safe:
                ambiguous = not not_sent and call.method != "GET"
                raise _Retry(self._backoff(attempt), call.error(None, detail, ambiguous)) from err
            raise call.error(None, detail + AMBIGUOUS_HINT, True) from err
        finally:
            if call.method in WRITE_METHODS:
                self.pacer.mark()

        status = response.status
        if status < 400:
            return response
        self._raise_for(call, response, attempt, rate_limited)

    def _raise_for(self, call: _Call, response: httpio.Reply, attempt: int, rate_limited: int) -> NoReturn:
        """The error (or the retry) a failed response means."""
        status = response.status
        detail = _detail(response, self._redact)
        if status == 401:
            detail = _hint(status, detail)
            with self._count_lock:
                self._refused = self._refused or (call.operation, call.method, call.path, detail)
            raise GitHubTokenRefused(call.operation, call.method, call.path, detail)
        if status in (403, 429) and _is_rate_limit(response, detail):
            primary = response.headers.get("x-ratelimit-remaining") == "0"
            message = (
                f"rate limited by GitHub ({'primary' if primary else 'secondary'} limit) "
                f"after {attempt} attempt(s): {detail}"
            )
            wait = self._rate_limit_wait(response, rate_limited)
            raise _Retry(wait, call.error(status, message), rate_limited=True)
        if status >= 500:
            if call.resend_safe:
                # `Retry-After: 0` means now, not "no hint".
                hint = parse_retry_after(response.headers.get("retry-after"), self._clock())
                delay = self._backoff(attempt) if hint is None else hint
                raise _Retry(delay, call.error(status, detail, call.method != "GET"))
            raise call.error(status, detail + AMBIGUOUS_HINT, True)
        raise call.error(status, _hint(status, detail))

    def _rate_limit_wait(self, response: httpio.Reply, rate_limited: int) -> float:
        # github-notes §6: retry-after first, then the primary reset, then >= 60 s doubling.
        retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
        if retry_after is not None:
            return retry_after
        headers = response.headers
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            try:
                reset = float(headers["x-ratelimit-reset"])
            except ValueError:
                pass
            else:
                # +1 s: the reset is a whole second and clocks drift; retrying right at it
                # risks one more limited (and counted) request.
                return max(0.0, reset - self._clock()) + 1.0
        return self._secondary_wait * 2.0**rate_limited

    def _backoff(self, attempt: int) -> float:
        return self._backoff_base * 2.0 ** (attempt - 1)


def _token_source(token: str | Callable[[], str]) -> tuple[Callable[[], str], Redactor, set[str]]:
    """(the token for each request, its redactor, the tokens sent so far) for a fixed token
    or a source of minted ones."""
    if not isinstance(token, str):
        return token, Redactor([]), set()
    redact = Redactor([token])  # the raw form too: it is what a caller printed
    fixed = _checked_token(token)
    return functools.partial(str, fixed), redact, {fixed}  # one shape for fixed and minted tokens


def _checked_token(token: str) -> str:
    token = token.strip()  # a secret pasted with its newline would break the header
    if not token:
        raise ConfigError("a GitHub token is required")
    if not token.isascii() or not token.isprintable():
        raise ConfigError("the GitHub token contains control or non-ASCII characters: re-copy it")
    return token


def _default_graphql_url(api_url: str) -> str:
    # GHES serves REST at https://HOST/api/v3 but GraphQL at https://HOST/api/graphql.
    if api_url.endswith("/api/v3"):
        return api_url[: -len("/v3")] + "/graphql"
    return api_url + "/graphql"


def _without_none(**fields: str | None) -> dict[str, str]:
    return {key: value for key, value in fields.items() if value is not None}


def _is_rate_limit(response: httpio.Reply, detail: str) -> bool:
    if response.status == 429:
        return True
    return response.headers.get("x-ratelimit-remaining") == "0" or "rate limit" in detail.lower()


def _detail(response: httpio.Reply, redact: Redactor) -> str:
    """GitHub's `message` plus the first `errors[]` entry, or a text excerpt; redacted, then cut
    (to its first DETAIL_LIMIT characters and an ellipsis)."""
    limit = DETAIL_LIMIT + 1
    try:
        data = response.json()
    except httpio.ReplyError:
        return excerpt(response.text, redact, limit) or excerpt(response.reason, redact)
    if not isinstance(data, dict):
        return excerpt(str(data), redact, limit)
    parts = [str(data.get("message") or response.reason)]
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0]
        if isinstance(first, dict):
            if first.get("message"):
                parts.append(str(first["message"]))
            else:
                where = ".".join(str(first[k]) for k in ("resource", "field") if k in first)
                parts.append(f"{where} {first.get('code', '')}".strip())
        else:
            parts.append(str(first))
    return excerpt(": ".join(parts), redact, limit)


def _hint(status: int, detail: str) -> str:
    lowered = detail.lower()
    if status == 403 and "not permitted to create or approve pull requests" in lowered:
        return f"{detail} ({ACTIONS_PR_HINT})"
    if status == 403:
        return f"{detail} ({PERMISSION_HINT})"
    if status == 401:
        return f"{detail} ({UNAUTHORIZED_HINT})"
    if status == 404:
        return f"{detail} (not found, or the token cannot see this repository)"
    return detail


def _graphql_hint(message: str) -> str:
    lowered = message.lower()
    if "auto merge is not allowed" in lowered:
        return f"{message} (enable 'Allow auto-merge' in the repository settings)"
    if "clean status" in lowered:
        return f"{message} (the PR is already mergeable: merge it directly instead)"
    return message


def _login(user: Any) -> str:
    return str(user["login"]) if isinstance(user, dict) else ""


def _repo(d: dict[str, Any]) -> Repo:
    return Repo(
        full_name=str(d["full_name"]),
        default_branch=str(d["default_branch"]),
        html_url=str(d["html_url"]),
        can_push=d["permissions"].get("push") if isinstance(d.get("permissions"), dict) else None,
    )


def _pull(d: dict[str, Any]) -> PullRequest:
    # The list endpoint returns `pull-request-simple`, which has no `merged` field.
    merged = d["merged"] if "merged" in d else d.get("merged_at") is not None
    return PullRequest(
        number=int(d["number"]),
        node_id=str(d["node_id"]),
        state=str(d["state"]),
        merged=bool(merged),
        draft=bool(d.get("draft") or False),
        title=str(d["title"]),
        body=d.get("body") or "",
        head_ref=str(d["head"]["ref"]),
        head_sha=str(d["head"]["sha"]),
        base_ref=str(d["base"]["ref"]),
        html_url=str(d["html_url"]),
        user_login=_login(d.get("user")),
        auto_merge=d.get("auto_merge") is not None,
    )


def _comment(d: dict[str, Any]) -> Comment:
    return Comment(
        id=int(d["id"]),
        body=d.get("body") or "",
        user_login=_login(d.get("user")),
        html_url=str(d["html_url"]),
    )


def _issue(d: dict[str, Any]) -> Issue:
    labels = tuple(
        str(label["name"]) if isinstance(label, dict) else str(label) for label in d.get("labels") or ()
    )
    return Issue(
        number=int(d["number"]),
        title=str(d["title"]),
        body=d.get("body") or "",
        state=str(d["state"]),
        html_url=str(d["html_url"]),
        labels=labels,
    )


def _commit(d: dict[str, Any]) -> Commit:
    commit = d["commit"]
    author = commit.get("author") or {}
    committer = commit.get("committer") or {}
    return Commit(
        sha=str(d["sha"]),
        author_name=str(author.get("name", "")),
        author_email=str(author.get("email", "")),
        committer_email=str(committer.get("email", "")),
        message=str(commit["message"]),
    )


def _installation(d: dict[str, Any]) -> Installation:
    account = d.get("account") or {}
    return Installation(
        id=int(d["id"]),
        app_id=int(d["app_id"]),
        app_slug=str(d["app_slug"]),
        account=str(account.get("login") or account.get("slug") or account.get("name") or ""),
        permissions={str(k): str(v) for k, v in (d.get("permissions") or {}).items()},
        suspended=d.get("suspended_at") is not None,
    )


def _access_token(d: dict[str, Any]) -> AccessToken:
    return AccessToken(
        token=str(d["token"]),
        expires_at=str(d["expires_at"]),
        permissions={str(k): str(v) for k, v in (d.get("permissions") or {}).items()},
    )


def _git_commit(d: dict[str, Any]) -> GitCommit:
    verification = d.get("verification") or {}
    return GitCommit(
        sha=str(d["sha"]),
        tree_sha=str(d["tree"]["sha"]),
        parents=tuple(str(p["sha"]) for p in d.get("parents") or ()),
        author_name=str(d["author"]["name"]),
        author_email=str(d["author"]["email"]),
        committer_email=str(d["committer"]["email"]),
        verified=bool(verification.get("verified")),
        verification_reason=str(verification.get("reason", "")),
    )

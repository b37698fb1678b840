"""The one exception tree users see; the CLI maps it to exit codes in one place.

    GitOpsError                 exit 1: a problem the user can fix; the message says how
    ├── ConfigError             bad flags, environment or cekura-gitops.yaml
    ├── MetricValidationError   one or more metric files are invalid (carries every problem)
    ├── APIError                an HTTP API answered with an error, or could not be reached
    │   ├── CekuraAPIError
    │   │   └── CekuraKeyRefused    the API key was refused (401, or a confirmed 403); stops the run
    │   └── GitHubAPIError
    │       └── GitHubTokenRefused  401: the token is wrong or expired; stops the whole run
    ├── RescoreError            a re-score's reply lacks what a score needs (never guessed)
    ├── GitHubAppError          the GitHub App cannot authenticate (key, installation, suspended)
    ├── GitError                a git command failed
    ├── UsageError              exit 64: a needed option is missing (e.g. init --action)
    └── Interrupted             exit 130: SIGINT/SIGTERM asked a long command to stop

Anything else escaping a command is a bug: exit 3 (traceback only with --verbose).
Ctrl-C exits 130. Usage errors (bad options) exit 64, so that 2 keeps meaning
"changes" for `plan --detailed-exitcode`.

Messages never contain secrets: the HTTP adapters build them from method, path, status
and a body excerpt (redacted before it is cut), never from headers or the request's URL
with credentials.

An error whose `stops_run` is True is not a per-metric failure: commands that report
failures per metric re-raise it, so the run ends with one line instead of one per metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CHANGES = 2
EXIT_INTERNAL = 3
EXIT_USAGE = 64
EXIT_INTERRUPTED = 130


class GitOpsError(Exception):
    """Base of every error the user is meant to read."""

    exit_code: ClassVar[int] = EXIT_FAILURE
    # True when nothing else in this run can work either (a refused credential).
    stops_run: ClassVar[bool] = False


class ConfigError(GitOpsError):
    """Flags, environment or `cekura-gitops.yaml` are wrong or missing."""


@dataclass(frozen=True, order=True)
class Problem:
    """One finding in a file, reported as `path:line:col: message` (1-based)."""

    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class MetricValidationError(GitOpsError):
    """One or more metric files are invalid; `problems` holds every finding, sorted."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class APIError(GitOpsError):
    """An HTTP API request failed.

    `status` is None when no HTTP answer arrived (connection refused, timeout).
    `ambiguous` is True when the request may have taken effect on the server even
    though we saw an error (timeout after sending, dropped connection, 5xx): callers of
    non-idempotent operations must not resend it.
    """

    service: ClassVar[str] = "API"

    def __init__(
        self,
        operation: str,
        method: str,
        path: str,
        status: int | None,
        detail: str,
        *,
        ambiguous: bool = False,
    ) -> None:
        self.operation = operation
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        self.ambiguous = ambiguous
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{self.service} {operation} ({method} {path}) failed: {where}: {detail}")


class CekuraAPIError(APIError):
    """A Cekura request failed."""

    service = "Cekura"


class RescoreError(GitOpsError):
    """A re-score (run_reviews) ended without the per-review verdicts a score needs."""


class CekuraKeyRefused(CekuraAPIError):
    """Cekura refused the API key: every other request would fail the same way."""

    stops_run = True


class GitError(GitOpsError):
    """A git operation failed; the message names the command and what to check."""


class GitHubAPIError(APIError):
    """A GitHub request failed."""

    service = "GitHub"


class UsageError(GitOpsError):
    """The command needs an option it was not given (exit 64, like a wrong flag)."""

    exit_code: ClassVar[int] = EXIT_USAGE


class GitHubTokenRefused(GitHubAPIError):
    """GitHub answered 401: the token is wrong or expired, so every request would fail."""

    stops_run = True

    def __init__(self, operation: str, method: str, path: str, detail: str) -> None:
        super().__init__(operation, method, path, 401, detail)


class Interrupted(GitOpsError):
    """A stop was requested (Ctrl-C, SIGTERM); raised at a safe point, never mid-protocol."""

    exit_code: ClassVar[int] = EXIT_INTERRUPTED


class GitHubAppError(GitOpsError):
    """The GitHub App cannot act on this repository: wrong key or id, not installed, suspended."""

"""Settings: flags, then environment, then `cekura-gitops.yaml`, then defaults.

This is the only module that reads configuration from `os.environ` (gitrepo.py hands the
environment on to git unchanged; actions.py reads the files the runner names, from here).
Secrets are kept out of reprs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

from cekura_gitops.errors import ConfigError, MetricValidationError
from cekura_gitops.limits import MAX_CONCURRENCY

CONFIG_FILE = "cekura-gitops.yaml"
DEFAULT_CEKURA_URL = "https://api.cekura.ai"
DEFAULT_GITHUB_URL = "https://api.github.com"
DEFAULT_AUTHOR = "cekura-gitops <cekura-gitops@users.noreply.github.com>"


@dataclass(frozen=True)
class OptimiserDefaults:
    timeout: float = 45 * 60.0
    min_improvement: float = 0.0
    min_feedback: int = 6
    auto_apply: bool = False
    critical: bool = False
    enabled: bool = True
    holdout: float | None = None  # off unless set: 0 < holdout < 1
    holdout_min: int = 30


@dataclass(frozen=True)
class PullRequestSettings:
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    team_reviewers: tuple[str, ...] = ()
    draft: bool = False
    max_new_per_run: int = 10
    max_open: int = 30
    merge: str = "auto"
    # One run's GitHub writes per hour (GitHub allows about 500 content-creating requests
    # an hour per identity, shared by every shard that uses it).
    writes_per_hour: int = 400


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know, resolved once."""

    root: Path
    metrics_dir: Path
    json_output: bool = False
    verbose: bool = False
    concurrency: int = 8
    cekura_api_url: str = DEFAULT_CEKURA_URL
    cekura_api_key: str | None = field(default=None, repr=False)
    cekura_project: int | None = None
    github_token: str | None = field(default=None, repr=False)
    # The Actions GITHUB_TOKEN as the action passes it, to tell it apart from an App token.
    actions_token: str | None = field(default=None, repr=False)
    # A GitHub App the tool authenticates as itself (mints and renews installation tokens).
    github_app_id: str | None = None
    github_app_private_key: str | None = field(default=None, repr=False)  # PEM text or a path
    github_api_url: str = DEFAULT_GITHUB_URL
    github_graphql_url: str | None = None
    github_repository: str | None = None
    github_server_url: str = "https://github.com"
    github_actions: bool = False
    github_run_id: str | None = None
    github_event_name: str | None = None
    github_event_path: str | None = None
    github_ref: str | None = None
    github_step_summary: str | None = None
    github_output: str | None = None
    dashboard_url: str = "https://dashboard.cekura.ai"
    optimiser: OptimiserDefaults = field(default_factory=OptimiserDefaults)
    pull_requests: PullRequestSettings = field(default_factory=PullRequestSettings)
    branch_prefix: str = "cekura-gitops"
    author_name: str = "cekura-gitops"
    author_email: str = "cekura-gitops@users.noreply.github.com"
    remote: str = "origin"
    # The default branch when neither the event nor the remote names it (defaultbranch.py).
    default_branch: str | None = None
    commit_via: str = "push"  # "api": bot commits through the Git Data API (signed by GitHub)
    rescore_after_apply: bool = False
    notify_on: str = "failure"
    notify_mention: str = ""
    crash_at: str | None = None  # test seam: see crashpoints.py
    # GitHub asks for >= 1 s between mutating requests (secondary rate limits).
    github_write_interval: float = 1.0
    http_timeout: float = 30.0  # per connect and per socket read
    http_deadline: float = 120.0  # per request, whole reply included (a trickling server)
    http_backoff: float = 0.5  # first retry delay; grows exponentially with jitter

    def require_cekura_key(self) -> str:
        if not self.cekura_api_key:
            hint = (
                " Is the secret set, and is this a fork pull request (forks get no secrets)?"
                if self.github_actions
                else ""
            )
            raise ConfigError(f"CEKURA_API_KEY is not set: export your Cekura API key.{hint}")
        return self.cekura_api_key

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.cekura_api_key, self.github_token, self.github_app_private_key) if s)

    @property
    def uses_app(self) -> bool:
        return self.github_app_id is not None

    @property
    def github_configured(self) -> bool:
        """A repository and a way to authenticate to it (App or token)."""
        return bool(self.github_repository and (self.github_token or self.uses_app))


def parse_duration(value: Any) -> float:
    """`45m`, `1h30m`, `90s` or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", str(value).strip())
    if not match or not any(match.groups()):
        raise ConfigError(f"invalid duration {value!r}: use e.g. 45m, 1h30m or 90s")
    h, m, s = (int(g) if g else 0 for g in match.groups())
    return float(h * 3600 + m * 60 + s)


def load_config_file(root: Path) -> dict[str, Any]:
    """The validated `cekura-gitops.yaml` at root, or {} when there is none."""
    from cekura_gitops import schema, yamltext

    path = root / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        raw = path.read_bytes()
        text = yamltext.decode(raw, CONFIG_FILE)
        doc = yamltext.parse(text, CONFIG_FILE)
    except OSError as err:
        raise ConfigError(f"{CONFIG_FILE}: cannot read: {err.strerror}") from None
    except MetricValidationError as err:
        raise ConfigError(str(err)) from None
    problems = schema.check("config", doc, CONFIG_FILE)
    if problems:
        raise ConfigError("\n".join(str(p) for p in sorted(problems)))
    return doc.data


def _author(value: str) -> tuple[str, str]:
    match = re.fullmatch(r"(.+?) <(.+)>", value.strip())
    if not match:
        raise ConfigError(f"git author {value!r} must look like 'Name <email>'")
    return match.group(1), match.group(2)


def resolve(
    *,
    root: Path | None = None,
    metrics_dir: str | None = None,
    json_output: bool = False,
    verbose: bool = False,
    concurrency: int | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: bool = True,
) -> Settings:
    """Flags (the arguments), then environment, then the config file, then defaults.

    config_file=False ignores cekura-gitops.yaml (doctor, reporting a broken one).
    """
    env = os.environ if environ is None else environ
    root = (root or Path.cwd()).resolve()
    config = load_config_file(root) if config_file else {}
    git_cfg = config.get("git", {})
    notify_cfg = config.get("notify", {})

    conc = concurrency or _env_int(env, "CEKURA_GITOPS_CONCURRENCY") or config.get("concurrency") or 8
    if not 1 <= conc <= MAX_CONCURRENCY:
        raise ConfigError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
    mdir = metrics_dir or env.get("CEKURA_GITOPS_METRICS_DIR") or config.get("metrics_dir") or "metrics"
    optimiser = _optimiser_defaults(env, config.get("optimiser", {}))
    prs = _pull_request_settings(config.get("pull_requests", {}))
    app_id, app_key = _app(env)
    author_name, author_email = _author(git_cfg.get("author", DEFAULT_AUTHOR))
    api_url, cekura_url = _api_urls(env, config.get("cekura", {}))
    project = env.get("CEKURA_PROJECT_ID") or config.get("cekura", {}).get("project")
    return Settings(
        root=root,
        metrics_dir=(root / mdir) if not Path(mdir).is_absolute() else Path(mdir),
        json_output=json_output,
        verbose=verbose,
        concurrency=int(conc),
        cekura_api_url=cekura_url,
        cekura_api_key=_secret(env, "CEKURA_API_KEY"),
        cekura_project=int(project) if project else None,
        github_token=_secret(env, "GITHUB_TOKEN") or _secret(env, "GH_TOKEN"),
        actions_token=_secret(env, "CEKURA_GITOPS_ACTIONS_TOKEN"),
        github_app_id=app_id,
        github_app_private_key=app_key,
        github_api_url=api_url,
        github_graphql_url=_optional_url(env, "GITHUB_GRAPHQL_URL", "https://api.github.com/graphql"),
        **_runner(env),
        dashboard_url=(env.get("CEKURA_DASHBOARD_URL") or "https://dashboard.cekura.ai").rstrip("/"),
        optimiser=optimiser,
        pull_requests=prs,
        branch_prefix=str(git_cfg.get("branch_prefix", "cekura-gitops")),
        author_name=author_name,
        author_email=author_email,
        remote=str(git_cfg.get("remote", "origin")),
        default_branch=_branch_name(env.get("CEKURA_GITOPS_DEFAULT_BRANCH") or git_cfg.get("default_branch")),
        commit_via=str(git_cfg.get("commit_via", "push")),
        rescore_after_apply=bool(config.get("apply", {}).get("rescore", False)),
        notify_on=str(notify_cfg.get("on", "failure")),
        notify_mention=str(notify_cfg.get("mention", "")),
        **_tuning(env),
    )


def _optimiser_defaults(env: Mapping[str, str], opt_cfg: Mapping[str, Any]) -> OptimiserDefaults:
    """The `optimiser:` block of the config file (the timeout also from the environment)."""
    defaults = OptimiserDefaults()
    return OptimiserDefaults(
        timeout=parse_duration(env.get("CEKURA_GITOPS_OPTIMISER_TIMEOUT") or opt_cfg.get("timeout", "45m")),
        min_improvement=float(opt_cfg.get("min_improvement", defaults.min_improvement)),
        min_feedback=int(opt_cfg.get("min_feedback", defaults.min_feedback)),
        auto_apply=bool(opt_cfg.get("auto_apply", defaults.auto_apply)),
        critical=bool(opt_cfg.get("critical", defaults.critical)),
        enabled=bool(opt_cfg.get("enabled", defaults.enabled)),
        holdout=float(opt_cfg["holdout"]) if opt_cfg.get("holdout") is not None else None,
        holdout_min=int(opt_cfg.get("holdout_min", defaults.holdout_min)),
    )


def _pull_request_settings(pr_cfg: Mapping[str, Any]) -> PullRequestSettings:
    """The `pull_requests:` block of the config file."""
    return PullRequestSettings(
        labels=tuple(pr_cfg.get("labels", ())),
        reviewers=tuple(pr_cfg.get("reviewers", ())),
        team_reviewers=tuple(pr_cfg.get("team_reviewers", ())),
        draft=bool(pr_cfg.get("draft", False)),
        max_new_per_run=int(pr_cfg.get("max_new_per_run", 10)),
        max_open=int(pr_cfg.get("max_open", 30)),
        merge=str(pr_cfg.get("merge", "auto")),
        writes_per_hour=int(pr_cfg.get("writes_per_hour", 400)),
    )


def _api_urls(env: Mapping[str, str], cekura_cfg: Mapping[str, Any]) -> tuple[str, str]:
    """(GitHub's API URL, Cekura's API URL), each checked."""
    api_url = _api_url(env.get("GITHUB_API_URL") or DEFAULT_GITHUB_URL, "GITHUB_API_URL", DEFAULT_GITHUB_URL)
    cekura_url = _api_url(
        env.get("CEKURA_API_URL") or cekura_cfg.get("api_url") or DEFAULT_CEKURA_URL,
        "CEKURA_API_URL" if env.get("CEKURA_API_URL") else f"cekura.api_url in {CONFIG_FILE}",
        DEFAULT_CEKURA_URL,
    )
    return api_url, cekura_url


class _Tuning(TypedDict):
    crash_at: str | None
    github_write_interval: float
    http_timeout: float
    http_backoff: float
    http_deadline: float


def _tuning(env: Mapping[str, str]) -> _Tuning:
    """Knobs only the environment sets: crash tests, write spacing, HTTP timing."""
    return _Tuning(
        crash_at=env.get("CEKURA_GITOPS_CRASH_AT") or None,
        github_write_interval=_env_float(env, "CEKURA_GITOPS_GITHUB_WRITE_INTERVAL", 1.0),
        http_timeout=_env_float(env, "CEKURA_GITOPS_HTTP_TIMEOUT", 30.0),
        http_backoff=_env_float(env, "CEKURA_GITOPS_HTTP_BACKOFF", 0.5),
        http_deadline=_env_float(env, "CEKURA_GITOPS_HTTP_DEADLINE", 120.0) or 120.0,
    )


class _Runner(TypedDict):
    github_repository: str | None
    github_server_url: str
    github_actions: bool
    github_run_id: str | None
    github_event_name: str | None
    github_event_path: str | None
    github_ref: str | None
    github_step_summary: str | None
    github_output: str | None


def _runner(env: Mapping[str, str]) -> _Runner:
    """What the GitHub Actions runner says about this run (all absent elsewhere)."""
    return _Runner(
        github_repository=env.get("GITHUB_REPOSITORY") or None,
        github_server_url=(env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
        github_actions=env.get("GITHUB_ACTIONS") == "true",
        github_run_id=env.get("GITHUB_RUN_ID") or None,
        github_event_name=env.get("GITHUB_EVENT_NAME") or None,
        github_event_path=env.get("GITHUB_EVENT_PATH") or None,
        github_ref=env.get("GITHUB_REF") or None,
        github_step_summary=env.get("GITHUB_STEP_SUMMARY") or None,
        github_output=env.get("GITHUB_OUTPUT") or None,
    )


def _branch_name(value: Any) -> str | None:
    """A branch name from the environment or config (config's schema checks it too)."""
    if value is None or value == "":
        return None
    name = str(value).strip().removeprefix("refs/heads/")
    if not re.fullmatch(r"[^\x00-\x20~^:?*\[\\-][^\x00-\x20~^:?*\[\\]*", name) or ".." in name:
        raise ConfigError(f"default branch {value!r} is not a branch name: use e.g. main")
    return name


def _api_url(value: str, source: str, example: str) -> str:
    """An http(s) URL with a host, without a trailing slash; else a ConfigError saying so.

    httpx's own message for `api.cekura.ai` (no scheme) names neither the variable nor
    the fix. The value is echoed without any user:password@ part.
    """
    value = value.strip()
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = urlsplit(""), False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        shown = value.rsplit("@", 1)[-1]
        raise ConfigError(f"{source} must be an http(s) URL with a host, e.g. {example} (got {shown!r})")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{source} must not carry credentials: use e.g. {example} and the API key")
    return value.rstrip("/")


def _optional_url(env: Mapping[str, str], name: str, example: str) -> str | None:
    value = env.get(name)
    return _api_url(value, name, example) if value else None


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
    if number < 0:
        raise ConfigError(f"{name} must not be negative")
    return number


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None


def _app(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The GitHub App's id and private key (PEM text or a path): both or neither."""
    app_id = (env.get("CEKURA_GITOPS_APP_ID") or "").strip() or None
    key = (env.get("CEKURA_GITOPS_APP_PRIVATE_KEY") or "").strip() or None
    if bool(app_id) != bool(key):
        missing = "CEKURA_GITOPS_APP_PRIVATE_KEY" if app_id else "CEKURA_GITOPS_APP_ID"
        raise ConfigError(
            f"{missing} is not set: a GitHub App needs both its id and its private key "
            "(or set neither to use GITHUB_TOKEN)"
        )
    if app_id is not None and not (app_id.isascii() and app_id.isprintable() and " " not in app_id):
        raise ConfigError("CEKURA_GITOPS_APP_ID must be the App's numeric id (or client id)")
    return app_id, key


SECRET_VARIABLES = (
    "CEKURA_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "CEKURA_GITOPS_ACTIONS_TOKEN",
    "CEKURA_GITOPS_APP_PRIVATE_KEY",
)


def secret_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The secrets present in the environment, for masking and redaction (raw and stripped)."""
    env = os.environ if environ is None else environ
    raw = [env.get(k, "") for k in SECRET_VARIABLES]
    # A PEM key is masked line by line too (the Actions log masks single lines); its
    # BEGIN/END lines are public boilerplate.
    lines = [
        line.strip()
        for line in env.get("CEKURA_GITOPS_APP_PRIVATE_KEY", "").replace("\\n", "\n").splitlines()
        if not line.startswith("-----")
    ]
    return tuple(dict.fromkeys(v for r in [*raw, *lines] for v in (r, r.strip()) if len(v) >= 4))


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret from the environment, stripped (secrets saved with a trailing newline are
    common); refused when it holds characters no HTTP header can carry."""
    value = (env.get(name) or "").strip()
    if not value:
        return None
    if not value.isascii() or not value.isprintable():
        raise ConfigError(f"{name} contains control or non-ASCII characters: re-copy the secret exactly")
    return value


def under_actions(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("GITHUB_ACTIONS") == "true"

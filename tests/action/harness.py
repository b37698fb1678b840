"""Run a composite `action.yml` the way the GitHub Actions runner does, offline.

github-notes §4 is the contract emulated here:

- inputs get their `default:` (which may itself be an expression, e.g. `${{ github.token }}`);
  composite steps get NO `INPUT_*` variables: inputs reach a step only through `${{ }}` in
  its `env:`, `with:` and `if:`, which this harness evaluates (`inputs.*`, `github.*`,
  `steps.<id>.outputs.*`, `env.*`, `runner.*`, literals, `== != ! && ||`, status and a few
  string functions);
- `${{` anywhere inside a `run:` fails the run before anything executes (script injection);
- each `run:` step runs as `bash --noprofile --norc -eo pipefail {script}` in
  GITHUB_WORKSPACE, with fresh GITHUB_OUTPUT / GITHUB_ENV / GITHUB_PATH /
  GITHUB_STEP_SUMMARY files; afterwards GITHUB_OUTPUT (`name=value` and `name<<DELIM`
  heredocs) becomes `steps.<id>.outputs`, GITHUB_ENV the env of later steps and GITHUB_PATH
  is prepended to PATH; a summary over 1 MiB fails the step;
- `GITHUB_TOKEN` is not a default variable: a step sees it only if its `env:` maps it;
- nested `uses:` steps (setup-python, cache) are stubbed: their evaluated `with:` is
  recorded and a stub per action gives the outputs the real one would (`python-path`,
  `cache-hit`, ...);
- `outputs.<name>.value` is evaluated at the end.

So that no test hits the network, a shim directory is first on PATH (and is setup-python's
`python-path`): its `python` forwards to the dev venv's interpreter, except
`python -m pip install ...`, which is recorded (with the interpreter that ran it) and
skipped, and `python -m venv DIR`, which makes a stand-in venv whose `cekura-gitops` runs the
dev venv's (the package is installed editable already).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_SUMMARY_BYTES = 1024 * 1024
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_DROPPED_ENV_PREFIXES = ("GITHUB_", "CEKURA_", "INPUT_", "RUNNER_", "ACTIONS_")
_DROPPED_ENV = {"GH_TOKEN", "CI", "VIRTUAL_ENV"}


class HarnessError(AssertionError):
    """The action breaks the runner contract (or the harness was misused)."""


# -- expressions -------------------------------------------------------------------------


class _Tokens:
    _SPEC = re.compile(
        r"""\s*(?:
            (?P<num>-?\d+(?:\.\d+)?)
          | (?P<str>'(?:[^']|'')*')
          | (?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\].,*])
          | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
        )""",
        re.VERBOSE,
    )

    def __init__(self, text: str) -> None:
        self.items: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            match = self._SPEC.match(text, pos)
            if not match or match.end() == pos:
                raise HarnessError(f"cannot parse expression {text!r} at {pos}")
            kind = match.lastgroup
            assert kind is not None
            self.items.append((kind, match.group(kind)))
            pos = match.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise HarnessError(f"expected {value or 'a token'}, found {token}")
        self.pos += 1
        return token


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and value == value  # NaN is falsy


def _to_number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip()) if value.strip() else 0.0
        except ValueError:
            return float("nan")
    return float("nan")


def _equal(a: Any, b: Any) -> bool:
    """`==`: strings ignore case; objects compare by identity; mixed types as numbers."""
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return a is b
    if type(a) is type(b):
        return bool(a == b)
    return _to_number(a) == _to_number(b)


def to_string(value: Any) -> str:
    """How the runner turns an expression's value into text for `env:` and `with:`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2)
    return str(value)


def _lookup(obj: Any, key: Any) -> Any:
    if isinstance(obj, Mapping):
        if key in obj:
            return obj[key]
        folded = str(key).casefold()
        for name, value in obj.items():
            if str(name).casefold() == folded:
                return value
        return None
    if isinstance(obj, list) and isinstance(key, (int, float)) and 0 <= int(key) < len(obj):
        return obj[int(key)]
    return None


class Evaluator:
    """GitHub Actions expressions over the given contexts (a practical subset)."""

    def __init__(self, contexts: Mapping[str, Any], status: str = "success") -> None:
        self.contexts = {k.casefold(): v for k, v in contexts.items()}
        self.status = status

    def evaluate(self, text: str) -> Any:
        tokens = _Tokens(text)
        value = self._or(tokens)
        if tokens.peek() is not None:
            raise HarnessError(f"unexpected {tokens.peek()} in {text!r}")
        return value

    def interpolate(self, template: Any) -> str:
        """A scalar from `env:`/`with:`: every `${{ }}` replaced by its value as text."""
        if not isinstance(template, str):
            return to_string(template)
        stripped = template.strip()
        whole = EXPRESSION.fullmatch(stripped)
        if whole:
            return to_string(self.evaluate(whole.group(1)))
        return EXPRESSION.sub(lambda m: to_string(self.evaluate(m.group(1))), template)

    def condition(self, text: Any) -> bool:
        """A step's `if:`, with or without `${{ }}`; implicitly `success() && (...)`."""
        if text is None:
            return self.status == "success"
        if isinstance(text, bool):
            return text and self.status == "success"
        source = str(text).strip()
        whole = EXPRESSION.fullmatch(source)
        if whole:
            source = whole.group(1)
        if not re.search(r"\b(success|failure|always|cancelled)\s*\(", source):
            source = f"success() && ({source})"
        return _truthy(self.evaluate(source))

    # recursive descent, lowest precedence first
    def _or(self, t: _Tokens) -> Any:
        left = self._and(t)
        while t.peek() == ("op", "||"):
            t.take()
            right = self._and(t)
            left = left if _truthy(left) else right
        return left

    def _and(self, t: _Tokens) -> Any:
        left = self._compare(t)
        while t.peek() == ("op", "&&"):
            t.take()
            right = self._compare(t)
            left = right if _truthy(left) else left
        return left

    def _compare(self, t: _Tokens) -> Any:
        left = self._unary(t)
        while (tok := t.peek()) and tok[0] == "op" and tok[1] in ("==", "!=", "<", "<=", ">", ">="):
            op = t.take()[1]
            right = self._unary(t)
            if op == "==":
                left = _equal(left, right)
            elif op == "!=":
                left = not _equal(left, right)
            else:
                a, b = _to_number(left), _to_number(right)
                left = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        return left

    def _unary(self, t: _Tokens) -> Any:
        if t.peek() == ("op", "!"):
            t.take()
            return not _truthy(self._unary(t))
        return self._postfix(t)

    def _postfix(self, t: _Tokens) -> Any:
        value = self._primary(t)
        while (tok := t.peek()) and tok in (("op", "."), ("op", "[")):
            t.take()
            if tok[1] == ".":
                kind, name = t.take()
                if kind not in ("name", "num"):
                    raise HarnessError(f"bad property {name!r}")
                value = _lookup(value, name)
            else:
                key = self._or(t)
                t.take("]")
                value = _lookup(value, key)
        return value

    def _primary(self, t: _Tokens) -> Any:
        kind, text = t.take()
        if kind == "num":
            return float(text)
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if (kind, text) == ("op", "("):
            value = self._or(t)
            t.take(")")
            return value
        if kind != "name":
            raise HarnessError(f"unexpected {text!r}")
        literal = {"true": True, "false": False, "null": None}
        if text in literal:
            return literal[text]
        if t.peek() == ("op", "("):
            t.take()
            args: list[Any] = []
            while t.peek() != ("op", ")"):
                args.append(self._or(t))
                if t.peek() == ("op", ","):
                    t.take()
            t.take(")")
            return self._call(text, args)
        return self.contexts.get(text.casefold())

    def _call(self, name: str, args: list[Any]) -> Any:
        fn = name.casefold()
        if fn == "success":
            return self.status == "success"
        if fn == "failure":
            return self.status == "failure"
        if fn == "always":
            return True
        if fn == "cancelled":
            return False
        if fn == "contains":
            hay, needle = args
            if isinstance(hay, list):
                return any(_equal(item, needle) for item in hay)
            return to_string(needle).casefold() in to_string(hay).casefold()
        if fn == "startswith":
            return to_string(args[0]).casefold().startswith(to_string(args[1]).casefold())
        if fn == "endswith":
            return to_string(args[0]).casefold().endswith(to_string(args[1]).casefold())
        if fn == "format":
            out = to_string(args[0])
            for i, arg in enumerate(args[1:]):
                out = out.replace("{" + str(i) + "}", to_string(arg))
            return out
        if fn == "join":
            sep = to_string(args[1]) if len(args) > 1 else ","
            return (
                sep.join(to_string(a) for a in args[0]) if isinstance(args[0], list) else to_string(args[0])
            )
        if fn == "tojson":
            return json.dumps(args[0], indent=2)
        if fn == "fromjson":
            return json.loads(to_string(args[0]))
        raise HarnessError(f"function {name}() is not supported by the harness")


# -- file commands and workflow commands ---------------------------------------------------


def parse_file_command(text: str, what: str = "GITHUB_OUTPUT") -> dict[str, str]:
    """`name=value` lines and `name<<DELIM` heredocs, as the runner reads them."""
    values: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if eq > 0 and (heredoc < 0 or eq < heredoc):
            values[line[:eq]] = line[eq + 1 :]
            continue
        if heredoc > 0:
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            if not delimiter:
                raise HarnessError(f"{what}: empty delimiter for {name!r}")
            body: list[str] = []
            while i < len(lines) and lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                raise HarnessError(f"{what}: matching delimiter not found {delimiter!r}")
            i += 1
            values[name] = "\n".join(body)
            continue
        raise HarnessError(f"{what}: invalid line {line!r}")
    return values


def _unescape(value: str, prop: bool) -> str:
    if prop:
        value = value.replace("%3A", ":").replace("%2C", ",")
    return value.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


@dataclass(frozen=True)
class WorkflowCommand:
    name: str
    properties: dict[str, str]
    message: str


def workflow_commands(stdout: str) -> list[WorkflowCommand]:
    """The `::name k=v,...::message` commands the runner would act on (honours stop-commands)."""
    found: list[WorkflowCommand] = []
    stop_token: str | None = None
    for line in stdout.splitlines():
        if stop_token is not None:
            if line.strip() == f"::{stop_token}::":
                stop_token = None
            continue
        match = re.match(r"^::([A-Za-z-]+)(?: ([^:]*))?::(.*)$", line.rstrip("\r"))
        if not match:
            continue
        name, props_text, message = match.group(1), match.group(2) or "", match.group(3)
        if name == "stop-commands":
            stop_token = message
            continue
        props = {}
        for part in filter(None, props_text.split(",")):
            key, _, value = part.partition("=")
            props[key.strip()] = _unescape(value, prop=True)
        found.append(WorkflowCommand(name, props, _unescape(message, prop=False)))
    return found


# -- the run ---------------------------------------------------------------------------------


@dataclass
class StepResult:
    index: int
    id: str | None
    name: str
    kind: str  # "run" or "uses"
    outcome: str = "skipped"  # success | failure | skipped
    conclusion: str = "skipped"
    uses: str | None = None
    with_: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # the step's own evaluated `env:`
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""


@dataclass
class ActionRun:
    steps: list[StepResult]
    outputs: dict[str, str]
    pip_installs: list[list[str]]
    event_path: Path
    pip_pythons: list[str] = field(default_factory=list)  # the interpreter each install used

    @property
    def ok(self) -> bool:
        return all(s.conclusion in ("success", "skipped") for s in self.steps) and any(
            s.outcome == "success" for s in self.steps
        )

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if s.conclusion == "failure"), None)

    def step(self, key: str) -> StepResult:
        for s in self.steps:
            if key in (s.id, s.name):
                return s
        raise KeyError(key)

    @property
    def stdout(self) -> str:
        return "".join(s.stdout for s in self.steps)

    @property
    def stderr(self) -> str:
        return "".join(s.stderr for s in self.steps)

    @property
    def summary(self) -> str:
        return "".join(s.summary for s in self.steps)

    @property
    def commands(self) -> list[WorkflowCommand]:
        # The runner acts on workflow commands in both streams.
        return workflow_commands(self.stdout) + workflow_commands(self.stderr)

    def annotations(self, level: str = "error") -> list[WorkflowCommand]:
        return [c for c in self.commands if c.name == level]

    @property
    def masks(self) -> list[str]:
        return [c.message for c in self.commands if c.name == "add-mask"]

    @property
    def uses(self) -> list[tuple[str, dict[str, str]]]:
        return [(s.uses or "", s.with_) for s in self.steps if s.kind == "uses"]

    def describe(self) -> str:
        """Everything, for assertion messages."""
        parts = []
        for s in self.steps:
            parts.append(
                f"--- step {s.index} {s.name!r} {s.outcome} rc={s.returncode}\n"
                f"[stdout]\n{s.stdout}[stderr]\n{s.stderr}[outputs] {s.outputs}\n"
            )
        return "".join(parts)


def load_yaml(path: Path) -> Any:
    """YAML 1.2 (so a workflow's `on:` stays a string key), plain Python objects."""
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def load_action(path: Path) -> dict[str, Any]:
    """Parse and check an action.yml against the parts of the contract a harness can see."""
    doc = load_yaml(path)
    if not isinstance(doc, dict) or doc.get("runs", {}).get("using") != "composite":
        raise HarnessError(f"{path}: not a composite action")
    for i, step in enumerate(doc["runs"].get("steps") or []):
        label = step.get("name") or step.get("id") or f"#{i}"
        if "run" in step:
            if "${{" in str(step["run"]):
                raise HarnessError(
                    f"step {label!r}: '${{{{' inside run: (script injection); map the value "
                    'through env: and use "$VAR"'
                )
            if step.get("shell") != "bash":
                raise HarnessError(f"step {label!r}: composite run steps need shell: bash here")
        elif "uses" not in step:
            raise HarnessError(f"step {label!r}: neither run: nor uses:")
    return doc


def _base_environment() -> dict[str, str]:
    """The host's environment minus anything a runner would set (or a developer leaked)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_DROPPED_ENV_PREFIXES) and k not in _DROPPED_ENV
    }


def _venv_bin() -> Path:
    """Where the interpreter running the tests installed `cekura-gitops`."""
    candidate = Path(sys.executable).parent
    if (candidate / "cekura-gitops").exists():
        return candidate
    found = shutil.which("cekura-gitops")
    if found is None:
        raise HarnessError(f"cekura-gitops is not installed (looked next to {sys.executable} and on PATH)")
    return Path(found).parent


def _write_shims(shim_dir: Path, log: Path, venv_bin: Path) -> None:
    """`python` that records `-m pip install` and fakes `-m venv DIR` (no network, no copying).

    A faked venv gets the same `python` (so installs into it are recorded with the venv's
    interpreter) and a `cekura-gitops` that runs the dev venv's, which is what an install
    from the action's directory would have produced.
    """
    python = sys.executable
    script = (
        f"#!{python}\n"
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        "if args[:3] == ['-m', 'pip', 'install']:\n"
        f"    with open({str(log)!r}, 'a', encoding='utf-8') as fh:\n"
        "        fh.write(json.dumps({'python': sys.argv[0], 'args': args}) + '\\n')\n"
        "    print('harness: skipped pip install (package already installed)', file=sys.stderr)\n"
        "    sys.exit(0)\n"
        "if args[:2] == ['-m', 'venv'] and len(args) == 3:\n"
        "    bin_dir = os.path.join(args[2], 'bin')\n"
        "    os.makedirs(bin_dir, exist_ok=True)\n"
        "    me = open(sys.argv[0], encoding='utf-8').read()\n"
        "    for name, text in (('python', me), ('cekura-gitops', CLI)):\n"
        "        with open(os.path.join(bin_dir, name), 'w', encoding='utf-8') as fh:\n"
        "            fh.write(text)\n"
        "        os.chmod(os.path.join(bin_dir, name), 0o755)\n"
        "    open(os.path.join(args[2], 'pyvenv.cfg'), 'w').close()\n"
        "    sys.exit(0)\n"
        f"os.execv({python!r}, [{python!r}, *args])\n"
    )
    cli = f'#!/bin/sh\nexec "{venv_bin / "cekura-gitops"}" "$@"\n'
    script = script.replace("import json, os, sys\n", f"import json, os, sys\nCLI = {cli!r}\n", 1)
    shim_dir.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        path = shim_dir / name
        path.write_text(script, encoding="utf-8")
        path.chmod(0o755)


def default_stubs(shim_dir: Path) -> dict[str, Callable[[Mapping[str, str]], dict[str, str]]]:
    """Outputs of the JavaScript actions the action uses, as their real versions produce them."""
    version = ".".join(str(n) for n in sys.version_info[:3])
    return {
        "actions/setup-python": lambda w: {
            "python-version": version,
            "python-path": str(shim_dir / "python"),
        },
        "actions/cache": lambda w: {"cache-hit": "false"},
        "actions/checkout": lambda w: {},
        "actions/create-github-app-token": lambda w: {"token": "ghs_app_token_from_stub"},
    }


def _git_head(workspace: Path) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=workspace, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else "0" * 40


class ActionHarness:
    """One job's worth of runner state for running `action.yml` (repo root by default).

    `env` is job-level environment (e.g. GITHUB_API_URL pointing at a fake); `token` is
    `github.token`, which steps see only where the action maps it.
    """

    def __init__(
        self,
        workspace: Path,
        temp_dir: Path,
        *,
        action_dir: Path = REPO_ROOT,
        repository: str = "acme/metrics",
        token: str = "ghs_test",
        api_url: str = "https://api.github.com",
        server_url: str = "https://github.com",
        env: Mapping[str, str] | None = None,
        step_timeout: float = 120.0,
    ) -> None:
        self.workspace = workspace
        self.action_dir = action_dir
        self.temp = temp_dir
        self.repository = repository
        self.token = token
        self.api_url = api_url
        self.server_url = server_url
        self.env = dict(env or {})
        self.step_timeout = step_timeout
        self.action = load_action(action_dir / "action.yml")
        self.runner_temp = temp_dir / "runner_temp"
        self.runner_temp.mkdir(parents=True, exist_ok=True)
        self.files_dir = temp_dir / "file_commands"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.pip_log = temp_dir / "pip-installs.jsonl"
        self.shim_dir = temp_dir / "shims"
        self.venv_bin = _venv_bin()
        _write_shims(self.shim_dir, self.pip_log, self.venv_bin)
        # `uses:` steps are not run: each is answered by the stub for its action (owner/repo).
        self.stubs = default_stubs(self.shim_dir)
        # More contexts for the steps' expressions (a workflow job's `vars`, `secrets`).
        self.extra_contexts: dict[str, Any] = {}

    # -- contexts --------------------------------------------------------------------------

    def _github_context(self, event_name: str, event: Mapping[str, Any], event_path: Path) -> dict[str, Any]:
        sha = str(event.get("after") or _git_head(self.workspace))
        ref = str(event.get("ref") or "refs/heads/main")
        if event_name.startswith("pull_request") and "number" in event:
            ref = f"refs/pull/{event['number']}/merge"
        return {
            "token": self.token,
            "repository": self.repository,
            "repository_owner": self.repository.split("/")[0],
            "event_name": event_name,
            "event": dict(event),
            "event_path": str(event_path),
            "sha": sha,
            "ref": ref,
            "ref_name": ref.rsplit("/", 1)[-1] if ref.startswith("refs/heads/") else ref,
            "workspace": str(self.workspace),
            "action_path": str(self.action_dir),
            "api_url": self.api_url,
            "graphql_url": f"{self.api_url}/graphql",
            "server_url": self.server_url,
            "run_id": "4242",
            "run_number": "7",
            "run_attempt": "1",
            "actor": "octocat",
            "job": "test",
            "workflow": "harness",
        }

    def _runner_env(self, github: Mapping[str, Any]) -> dict[str, str]:
        env = _base_environment()
        env.update(
            {
                "CI": "true",
                "GITHUB_ACTIONS": "true",
                "RUNNER_OS": "Linux",
                "RUNNER_ARCH": "X64",
                "RUNNER_NAME": "harness",
                "RUNNER_TEMP": str(self.runner_temp),
                "RUNNER_TOOL_CACHE": str(self.temp / "toolcache"),
                "GITHUB_EVENT_NAME": github["event_name"],
                "GITHUB_EVENT_PATH": github["event_path"],
                "GITHUB_REPOSITORY": github["repository"],
                "GITHUB_REPOSITORY_OWNER": github["repository_owner"],
                "GITHUB_REF": github["ref"],
                "GITHUB_REF_NAME": github["ref_name"],
                "GITHUB_SHA": github["sha"],
                "GITHUB_WORKSPACE": str(self.workspace),
                "GITHUB_ACTION_PATH": str(self.action_dir),
                "GITHUB_ACTION_REPOSITORY": "",
                "GITHUB_API_URL": self.api_url,
                "GITHUB_GRAPHQL_URL": github["graphql_url"],
                "GITHUB_SERVER_URL": self.server_url,
                "GITHUB_RUN_ID": github["run_id"],
                "GITHUB_RUN_NUMBER": github["run_number"],
                "GITHUB_RUN_ATTEMPT": github["run_attempt"],
                "GITHUB_ACTOR": github["actor"],
                "GITHUB_JOB": github["job"],
                "GITHUB_WORKFLOW": github["workflow"],
            }
        )
        env.update(self.env)
        return env

    # -- running ---------------------------------------------------------------------------

    def run(
        self,
        inputs: Mapping[str, str],
        *,
        event_name: str = "workflow_dispatch",
        event: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ActionRun:
        """Run every step of the action; `env` adds job-level variables for this run."""
        payload = dict(event if event is not None else {"inputs": {}})
        payload.setdefault("repository", {"full_name": self.repository, "default_branch": "main"})
        event_path = self.runner_temp / f"event-{uuid.uuid4().hex}.json"
        event_path.write_text(json.dumps(payload), encoding="utf-8")
        github = self._github_context(event_name, payload, event_path)
        job_env = self._runner_env(github)
        job_env.update(env or {})
        self.pip_log.unlink(missing_ok=True)

        resolved_inputs = self._inputs(inputs, github)
        steps_ctx: dict[str, dict[str, Any]] = {}
        added_env: dict[str, str] = {}
        added_path: list[str] = []
        status = "success"
        results: list[StepResult] = []
        for index, step in enumerate(self.action["runs"]["steps"]):
            contexts = {
                "inputs": resolved_inputs,
                "github": github,
                "steps": steps_ctx,
                "env": {**job_env, **added_env},
                "runner": {"os": "Linux", "arch": "X64", "temp": str(self.runner_temp)},
                **self.extra_contexts,
            }
            ev = Evaluator(contexts, status)
            name = ev.interpolate(step.get("name") or step.get("uses") or f"Run step {index}")
            result = StepResult(index, step.get("id"), name, "run" if "run" in step else "uses")
            results.append(result)
            if not ev.condition(step.get("if")):
                self._record(steps_ctx, result)
                continue
            result.env = {k: ev.interpolate(v) for k, v in (step.get("env") or {}).items()}
            if "uses" in step:
                result.uses = str(step["uses"])
                result.with_ = {k: ev.interpolate(v) for k, v in (step.get("with") or {}).items()}
                self._uses(result, {**job_env, **added_env, **result.env})
            else:
                self._run_step(step, result, ev, job_env, added_env, added_path)
            result.conclusion = result.outcome
            if result.outcome == "failure" and _truthy(step.get("continue-on-error", False)):
                result.conclusion = "success"
            if result.conclusion == "failure":
                status = "failure"
            self._record(steps_ctx, result)

        final = Evaluator({"inputs": resolved_inputs, "github": github, "steps": steps_ctx}, status)
        outputs = {
            name: final.interpolate(spec.get("value", ""))
            for name, spec in (self.action.get("outputs") or {}).items()
        }
        installs = (
            [json.loads(line) for line in self.pip_log.read_text().splitlines()]
            if self.pip_log.exists()
            else []
        )
        return ActionRun(
            results,
            outputs,
            [i["args"] for i in installs],
            event_path,
            pip_pythons=[i["python"] for i in installs],
        )

    def _inputs(self, given: Mapping[str, str], github: Mapping[str, Any]) -> dict[str, str]:
        declared = self.action.get("inputs") or {}
        unknown = set(given) - set(declared)
        if unknown:
            raise HarnessError(
                f"unexpected input(s) {sorted(unknown)}; the action declares {sorted(declared)}"
            )
        ev = Evaluator({"github": github})
        resolved = {}
        for name, spec in declared.items():
            spec = spec or {}
            resolved[name] = str(given[name]) if name in given else ev.interpolate(spec.get("default", ""))
        return resolved

    def _uses(self, result: StepResult, env: Mapping[str, str]) -> None:
        """A `uses:` step: answered by the stub of its action, which gives its outputs."""
        name = (result.uses or "").split("@", 1)[0]
        stub = self.stubs.get(name)
        if stub is None:
            raise HarnessError(f"no stub for uses: {result.uses}")
        result.outputs = stub(result.with_)
        result.outcome = "success"

    @staticmethod
    def _record(steps_ctx: dict[str, dict[str, Any]], result: StepResult) -> None:
        if result.id:
            steps_ctx[result.id] = {
                "outputs": dict(result.outputs),
                "outcome": result.outcome,
                "conclusion": result.conclusion,
            }

    def _run_step(
        self,
        step: Mapping[str, Any],
        result: StepResult,
        ev: Evaluator,
        job_env: Mapping[str, str],
        added_env: dict[str, str],
        added_path: list[str],
    ) -> None:
        files = {}
        for var in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY"):
            path = self.files_dir / f"{var.lower()}_{uuid.uuid4().hex}"
            path.write_text("")
            files[var] = path
        script = self.runner_temp / f"{uuid.uuid4().hex}.sh"
        script.write_text(str(step["run"]), encoding="utf-8")
        env = {**job_env, **added_env, **result.env}
        env.update({k: str(v) for k, v in files.items()})
        env["GITHUB_ACTION"] = result.id or f"__run_{result.index}"
        env["PATH"] = os.pathsep.join(
            [*reversed(added_path), str(self.shim_dir), str(self.venv_bin), job_env.get("PATH", "")]
        )
        cwd = self.workspace
        if step.get("working-directory"):
            cwd = self.workspace / ev.interpolate(step["working-directory"])
        try:
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.step_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            result.outcome = "failure"
            result.stdout = (
                (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            )
            result.stderr = f"harness: step timed out after {self.step_timeout}s\n"
            return
        result.returncode = done.returncode
        result.stdout, result.stderr = done.stdout, done.stderr
        result.outcome = "success" if done.returncode == 0 else "failure"

        result.outputs = parse_file_command(files["GITHUB_OUTPUT"].read_text(), "GITHUB_OUTPUT")
        added_env.update(parse_file_command(files["GITHUB_ENV"].read_text(), "GITHUB_ENV"))
        added_path.extend(p for p in files["GITHUB_PATH"].read_text().splitlines() if p.strip())
        summary = files["GITHUB_STEP_SUMMARY"].read_bytes()
        if len(summary) > MAX_SUMMARY_BYTES:
            result.outcome = "failure"
            result.stdout += (
                "::error::$GITHUB_STEP_SUMMARY upload aborted, supports content up to a size of "
                f"1024k, got {len(summary) // 1024}k.\n"
            )
        else:
            result.summary = summary.decode("utf-8")


# -- event payloads --------------------------------------------------------------------------


def push_event(before: str, after: str, *, repository: str = "acme/metrics") -> dict[str, Any]:
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "commits": [{"id": after, "message": "update metrics"}],
        "head_commit": {"id": after, "message": "update metrics"},
        "repository": {"full_name": repository, "default_branch": "main"},
    }


def pull_request_event(
    number: int, *, repository: str = "acme/metrics", fork: bool = False, head: str = "feature"
) -> dict[str, Any]:
    head_repo = f"contributor/{repository.split('/')[1]}" if fork else repository
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"ref": head, "repo": {"full_name": head_repo, "fork": fork}},
            "base": {"ref": "main", "repo": {"full_name": repository}},
        },
        "repository": {"full_name": repository, "default_branch": "main"},
    }


def schedule_event(cron: str = "17 6 * * 1") -> dict[str, Any]:
    return {"schedule": cron}

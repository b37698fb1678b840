"""GitHub Actions runner contract: workflow commands, outputs, the job summary, and every
read of the event payload ($GITHUB_EVENT_PATH) and of what the runner says about the run.

Escaping follows actions/toolkit `packages/core/src/command.ts`. Untrusted text (prompts
from Cekura) printed to the log is wrapped in `::stop-commands::` so that a line inside
it can never be read as a workflow command.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO


def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: str | int | None) -> str:
    """One workflow command line, e.g. `::error file=a.yaml,line=3::msg`."""
    props = ",".join(f"{k}={escape_property(str(v))}" for k, v in properties.items() if v is not None)
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def annotation(
    level: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    col: int | None = None,
    title: str | None = None,
) -> str:
    return command(level, message, file=file, line=line, col=col, title=title)


def mask(value: str) -> str:
    return f"::add-mask::{escape_data(value)}"


def group(title: str) -> str:
    return f"::group::{escape_data(title)}"


def endgroup() -> str:
    return "::endgroup::"


# The runner reads a line as a command when, after leading white space, it starts with
# `::` (or `##[`, the older syntax); it splits lines at LF, CR and CRLF.
_COMMAND_START = re.compile(r"^([^\S\n]*)(:(?=:)|#(?=#\[))", re.MULTILINE)
ZWJ = "\u200d"


def neutralise(text: str) -> str:
    """Text no line of which the runner reads as a workflow command (a ZWJ breaks `::`)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _COMMAND_START.sub(lambda m: m.group(1) + m.group(2) + ZWJ, text)


def print_untrusted(text: str, stream: TextIO) -> None:
    """Print text to the Actions log with workflow commands disabled while it shows."""
    token = secrets.token_hex(16)
    stream.write(f"::stop-commands::{token}\n{text}\n::{token}::\n")


def read_event(path: str | Path | None) -> dict[str, Any]:
    """The webhook payload at $GITHUB_EVENT_PATH ({} when absent or unreadable: every
    caller has a fallback, and a broken payload must not stop a local run)."""
    if not path:
        return {}
    try:
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def push_range(event_name: str | None, event_path: str | Path | None) -> tuple[str, str] | None:
    """On a push: the event's before/after (a push may hold several commits); None for any
    other event and for a new branch (no `before`)."""
    if event_name != "push":
        return None
    event = read_event(event_path)
    before, after = event.get("before"), event.get("after")
    if not before or not after or set(str(before)) == {"0"}:
        return None
    return str(before), str(after)


def pull_request_number(event_path: str | Path | None) -> int | None:
    """The pull request a `pull_request` (or `pull_request_target`) event is about."""
    event = read_event(event_path)
    pr = event.get("pull_request")
    if isinstance(pr, dict) and isinstance(pr.get("number"), int):
        return int(pr["number"])
    number = event.get("number")
    return number if isinstance(number, int) else None


def default_branch_from_event(
    event_name: str | None, event_path: str | Path | None, ref: str | None
) -> str | None:
    """What the runner says the default branch is: the payload's repository, or a
    schedule's ref (GitHub runs schedules on the default branch)."""
    event = read_event(event_path)
    repository = event.get("repository")
    if isinstance(repository, dict):
        name = repository.get("default_branch")
        if isinstance(name, str) and name:
            return name
    ref = ref or ""
    if event_name == "schedule" and ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    return None


def run_url(server_url: str, repository: str | None, run_id: str | None) -> str:
    """The Actions run's page, or "" outside Actions."""
    if run_id and repository:
        return f"{server_url}/{repository}/actions/runs/{run_id}"
    return ""


def write_outputs(path: str | Path, outputs: Mapping[str, str]) -> None:
    """Append name/value pairs to $GITHUB_OUTPUT, multi-line values via a random delimiter."""
    with open(path, "a", encoding="utf-8") as handle:
        for name, value in outputs.items():
            if "\n" in value or "\r" in value:
                delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
                handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                handle.write(f"{name}={value}\n")


MAX_SUMMARY_BYTES = 1024 * 1024


def append_summary(path: str | Path, markdown: str) -> None:
    """Append Markdown to $GITHUB_STEP_SUMMARY, kept under the runner's 1 MiB step limit."""
    data = markdown if markdown.endswith("\n") else markdown + "\n"
    encoded = data.encode("utf-8")
    if len(encoded) > MAX_SUMMARY_BYTES - 1024:
        cut = encoded[: MAX_SUMMARY_BYTES - 1024].decode("utf-8", "ignore")
        data = cut + "\n\n_(summary truncated to fit GitHub's 1 MiB limit)_\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(data)


def mask_all(values: Iterable[str], stream: TextIO) -> None:
    for value in values:
        if value:
            stream.write(mask(value) + "\n")
    stream.flush()

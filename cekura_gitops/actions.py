"""GitHub Actions runner contract: workflow commands, outputs, the job summary.

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

"""Where output goes: human text, machine JSON, Actions annotations; secrets redacted.

Human text goes to stdout, or to stderr when `--json` owns stdout. Every line passes
through `redact` as a last line of defence: no code path should print a secret, but if
one ever does, the key is replaced before it leaves the process.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from cekura_gitops import actions
from cekura_gitops.redaction import Redactor


@dataclass
class Console:
    json_output: bool = False
    verbose: bool = False
    github_actions: bool = False
    secrets: tuple[str, ...] = field(default=(), repr=False)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _redactor: Redactor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._redactor = Redactor(self.secrets)

    @property
    def human(self) -> TextIO:
        return self.stderr if self.json_output else self.stdout

    @property
    def is_tty(self) -> bool:
        return bool(getattr(self.human, "isatty", lambda: False)()) and not self.github_actions

    def redact(self, text: str) -> str:
        """Every secret, raw or stripped, encoded or in fragments, replaced (redaction.py)."""
        return self._redactor(text)

    def _plain(self, text: str) -> str:
        """Redacted human text; under Actions no line of it can be read as a command."""
        text = self.redact(text)
        # Human text can carry Cekura's words (error details, slugs, summaries).
        return actions.neutralise(text) if self.github_actions else text

    def say(self, text: str = "") -> None:
        """A line of human output."""
        with self._lock:
            self.human.write(self._plain(text) + "\n")
            self.human.flush()

    def warn(self, text: str, *, file: str | None = None, line: int | None = None) -> None:
        if self.github_actions:
            self.emit_command(actions.annotation("warning", self.redact(text), file=file, line=line))
        else:
            self.err(f"warning: {text}")

    def err(self, text: str) -> None:
        with self._lock:
            self.stderr.write(self._plain(text) + "\n")
            self.stderr.flush()

    def error(
        self, text: str, *, file: str | None = None, line: int | None = None, col: int | None = None
    ) -> None:
        """An error for the user; an annotation under Actions as well."""
        self.err(f"error: {text}" if file is None else text)
        if self.github_actions:
            self.emit_command(actions.annotation("error", self.redact(text), file=file, line=line, col=col))

    def emit_command(self, line: str) -> None:
        """A workflow command; on stderr when --json owns stdout (the runner reads both)."""
        stream = self.stderr if self.json_output else self.stdout
        with self._lock:
            stream.write(self.redact(line) + "\n")
            stream.flush()

    def group(self, title: str) -> None:
        if self.github_actions:
            self.emit_command(actions.group(title))
        else:
            self.say(f"\n== {title}")

    def endgroup(self) -> None:
        if self.github_actions:
            self.emit_command(actions.endgroup())

    def untrusted(self, text: str) -> None:
        """Print text that came from outside (prompts, diffs) without letting it run commands."""
        if self.github_actions:
            with self._lock:
                actions.print_untrusted(self.redact(text), self.human)
                self.human.flush()
        else:
            self.say(text)

    def emit_json(self, document: Any) -> None:
        with self._lock:
            self.stdout.write(self.redact(json.dumps(document, indent=2, sort_keys=False)) + "\n")
            self.stdout.flush()

    def table(self, headers: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
        head = list(headers)
        body = [[str(c) for c in row] for row in rows]
        widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(head)]
        self.say("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
        for row in body:
            self.say("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

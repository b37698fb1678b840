"""Putting untrusted text (prompts, optimiser summaries) into GitHub Markdown safely.

- Code goes in a fence longer than any backtick run inside it, so it cannot be closed
  early; mentions and issue references inside code spans/blocks never ping or link.
- Prose outside fences gets a zero-width joiner after `@` and `#`, which stops GitHub
  from turning `@team` into a ping or `#12` into a link, and HTML is escaped so it cannot
  hide content (`<!--`, `<details>`). URLs are unlinked the same way: GitHub turns a link
  to an issue into a cross-reference on that issue.
- `one_line`/`cell` also fold line breaks, so a value cannot start a block of its own
  (a code fence that would swallow the rest of the page).
"""

from __future__ import annotations

import re

ZWJ = "\u200d"


def fence(text: str, lang: str = "") -> str:
    """A fenced code block holding text exactly."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{ticks}{lang}\n{body}{ticks}"


def inline_code(text: str) -> str:
    """Text as one code span (line breaks become spaces)."""
    text = text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def prose(text: str) -> str:
    """Untrusted text as inert Markdown prose."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"@(?=\w)", "@" + ZWJ, text)
    text = re.sub(r"#(?=\d)", "#" + ZWJ, text)
    # GitHub also links owner/repo#12 and GH-12 forms.
    text = re.sub(r"(?i)\bgh-(?=\d)", lambda m: m.group(0) + ZWJ, text)
    # Bare URLs and www. links are autolinked; a link to an issue is a cross-reference.
    text = re.sub(r"(?=://)|(?i:(?<=\bwww)(?=\.))", ZWJ, text)
    return text


def one_line(text: str) -> str:
    """Untrusted text as inert prose on a single line."""
    return re.sub(r"[\r\n]+", " ", prose(text))


def code_cell(text: str) -> str:
    """Untrusted text as a code span inside a table cell (a `|` would end the cell)."""
    return inline_code(text).replace("|", "\\|")


def cell(text: str) -> str:
    """Untrusted text for a table cell."""
    return one_line(text).replace("|", "\\|")

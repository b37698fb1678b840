"""Lossless YAML for metric files: safe parsing with positions, and surgical edits.

We never re-dump a whole document. Unchanged files therefore keep their bytes, and an
edit replaces exactly one top-level field's lines, so comments, key order and blank lines
elsewhere survive (like pre-commit's autoupdate rewriting only `rev:` lines).

Parsing goes through libyaml (PyYAML's C loader) for speed, after a strict pre-scan:
anchors, aliases (alias bombs) and explicit tags (`!!python/object`) are refused, since
no metric file needs them. Every rendered scalar is re-parsed and checked to load back to
the exact value; anything a block or plain scalar cannot hold falls back to a
double-quoted scalar, which can hold any string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from cekura_gitops.errors import MetricValidationError, Problem

try:  # pragma: no branch - libyaml ships in PyYAML's wheels; the pure loader is the fallback
    _Base: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment,unused-ignore]
except AttributeError:  # pragma: no cover
    _Base = yaml.SafeLoader

# YAML 1.2 booleans: only true/false. YAML 1.1 also reads yes/no/on/off as booleans, which
# turns a config key like `notify: {on: failure}` into `{True: failure}`.
YAML11_BOOLS = frozenset({"y", "yes", "n", "no", "on", "off"})
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _Loader(_Base):  # type: ignore[valid-type,misc]
    yaml_implicit_resolvers = {
        first: [(tag, _BOOL if tag == "tag:yaml.org,2002:bool" else regexp) for tag, regexp in resolvers]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }


MAX_FILE_BYTES = 1024 * 1024
# A metric file nests three levels at most (optimiser: test_set_ids: [...]). libyaml's
# parser slows down quadratically with flow nesting, and composing deep documents recurses
# (a segfault at ~50k levels), so the pre-scan stops at this depth.
MAX_DEPTH = 20
INDENT = "  "

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Span:
    """Where a top-level field sits in the text (offsets into the str)."""

    start: int  # start of the key
    value_start: int
    value_end: int  # end of the value node (for block nodes: start of the next line)
    block: bool  # the value ends at a line start (block scalar or block collection)


@dataclass(frozen=True)
class Document:
    """A parsed single-mapping YAML document plus where each piece of it sits."""

    text: str
    data: dict[str, Any]
    positions: Mapping[Path, tuple[int, int]]  # path -> (line, col), 1-based, of the value
    key_positions: Mapping[str, tuple[int, int]]  # top-level key -> (line, col)
    spans: Mapping[str, Span]
    newline: str

    def position(self, path: Path) -> tuple[int, int]:
        """The closest known position for `path` (walks up to the parent)."""
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return (1, 1)


def decode(raw: bytes, path: str) -> str:
    """Bytes -> text, refusing what YAML tools handle inconsistently."""
    problems: list[Problem] = []
    if len(raw) > MAX_FILE_BYTES:
        raise MetricValidationError(
            [Problem(path, 1, 1, f"file is {len(raw):,} bytes; metric files are limited to 1 MiB")]
        )
    if raw.startswith(b"\xef\xbb\xbf"):
        problems.append(Problem(path, 1, 1, "file starts with a byte-order mark; save as UTF-8 without BOM"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line, col = _line_col(raw[: err.start].decode("utf-8", "replace"), err.start)
        raise MetricValidationError(
            [Problem(path, line, col, "file is not valid UTF-8; save it as UTF-8")]
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        line, col = _line_col(text, nul)
        problems.append(Problem(path, line, col, "file contains a NUL byte"))
    bare_cr = re.search("\r(?!\n)", text)
    if bare_cr:
        # YAML reads a lone CR as a line break, but line-based edits would not.
        line, col = _line_col(text, bare_cr.start())
        problems.append(
            Problem(path, line, col, "file contains a carriage return without a line feed; use LF or CRLF")
        )
    if problems:
        raise MetricValidationError(problems)
    return text


def _line_col(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    line = before.count("\n") + 1
    return line, index - (before.rfind("\n") + 1) + 1


def parse(text: str, path: str) -> Document:
    """Parse one YAML document whose root is a block mapping; errors name path:line:col.

    libyaml reads the text once, into events: the safety checks run on them, and the data
    and positions are built from them, so a file is parsed once. A metric file's usual
    shape is built straight from the events; anything else takes the general path (node
    tree, then PyYAML's safe constructor), which gives the same values and errors.
    """
    events = _read_events(text, path)
    built = _build(events, text, path)
    if built is None:
        return _parse_nodes(events, text, path)
    data, positions, key_positions, spans, problems = built
    if problems:
        raise MetricValidationError(problems)
    return Document(text, data, positions, key_positions, spans, _newline(text))


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _parse_nodes(events: list[yaml.Event], text: str, path: str) -> Document:
    """parse's general path: a node tree, then PyYAML's safe constructor."""
    try:
        root = _compose(events)
    except yaml.MarkedYAMLError as err:
        raise _invalid(err, path) from None
    if root is None:
        raise MetricValidationError([Problem(path, 1, 1, "file is empty; expected a metric mapping")])
    positions: dict[Path, tuple[int, int]] = {}
    key_positions: dict[str, tuple[int, int]] = {}
    spans: dict[str, Span] = {}
    problems: list[Problem] = []
    if isinstance(root, yaml.MappingNode):
        # Before construction: constructing merges `<<` keys away, in the node tree itself.
        _walk(root, (), positions, problems, path)
        for key_node, value_node in root.value:
            key = str(key_node.value)
            key_positions[key] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            spans[key] = Span(
                start=key_node.start_mark.index,
                value_start=value_node.start_mark.index,
                value_end=value_node.end_mark.index,
                block=_is_block(value_node, text),
            )
    try:
        data = yaml.constructor.SafeConstructor().construct_document(root)
    except yaml.MarkedYAMLError as err:
        raise _invalid(err, path) from None
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        line, col = root.start_mark.line + 1, root.start_mark.column + 1
        raise MetricValidationError(
            [Problem(path, line, col, "expected a mapping of fields (key: value) at the top level")]
        )
    if root.flow_style:
        raise MetricValidationError(
            [Problem(path, 1, 1, "write the top level as block YAML (one `key: value` per line)")]
        )
    if problems:
        raise MetricValidationError(problems)
    return Document(text, data, positions, key_positions, spans, _newline(text))


def _mark(err: yaml.MarkedYAMLError) -> tuple[int, int]:
    mark = err.problem_mark or err.context_mark
    return (mark.line + 1, mark.column + 1) if mark else (1, 1)


def _invalid(err: yaml.MarkedYAMLError, path: str) -> MetricValidationError:
    line, col = _mark(err)
    message = f"invalid YAML: {err.problem or err.context}"
    if "nesting depth" in str(err.problem):
        # libyaml (PyYAML >= 6.0.3) stops deep flow collections while scanning ahead,
        # before the parser hands us the event past MAX_DEPTH: the same refusal.
        message = f"nested deeper than {MAX_DEPTH} levels"
    return MetricValidationError([Problem(path, line, col, message)])


class _Resolver(yaml.resolver.Resolver):
    """Tags for untagged nodes, as _Loader resolves them (YAML 1.2 booleans)."""

    yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


_RESOLVER = _Resolver()
_STR_TAG = "tag:yaml.org,2002:str"
_PLAIN_TAGS: dict[str, str] = {}  # the resolver's answer per plain scalar (values repeat a lot)


def _scalar_tag(value: str, implicit: tuple[bool, bool]) -> str:
    if not implicit[0]:
        return _STR_TAG  # quoted or block: always a string
    tag = _PLAIN_TAGS.get(value)
    if tag is None:
        tag = _RESOLVER.resolve(yaml.ScalarNode, value, implicit)  # type: ignore[no-untyped-call]
        if len(_PLAIN_TAGS) < 10_000 and len(value) < 100:
            _PLAIN_TAGS[value] = tag
    return tag


def _compose(events: list[yaml.Event]) -> yaml.Node | None:
    """The node tree of the (one, alias-free) document the events describe.

    What yaml.compose does, from events already read: _read_events has refused aliases,
    anchors, explicit tags, a second document and deep nesting, so no node is shared.
    """
    resolve = _RESOLVER.resolve
    stack: list[Any] = []
    pending_key: list[yaml.Node | None] = []
    root: yaml.Node | None = None

    def attach(node: yaml.Node) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        parent = stack[-1]
        if isinstance(parent, yaml.SequenceNode):
            parent.value.append(node)
        elif pending_key[-1] is None:
            pending_key[-1] = node
        else:
            parent.value.append((pending_key[-1], node))
            pending_key[-1] = None

    for event in events:
        if isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = _scalar_tag(event.value, event.implicit)
            attach(yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style))  # type: ignore[arg-type]
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
            tag = event.tag
            if tag is None or tag == "!":
                tag = resolve(kind, None, event.implicit)  # type: ignore[no-untyped-call]
            node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)  # type: ignore[arg-type]
            attach(node)
            stack.append(node)
            pending_key.append(None)
        elif isinstance(event, yaml.CollectionEndEvent):
            stack.pop().end_mark = event.end_mark
            pending_key.pop()
        elif isinstance(event, yaml.DocumentEndEvent):
            break
    return root


_FAST_TAGS = frozenset({_STR_TAG, *(f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float"))})
_SCALARS = yaml.constructor.SafeConstructor()
_Built = tuple[
    dict[str, Any], dict[Path, tuple[int, int]], dict[str, tuple[int, int]], dict[str, Span], list[Problem]
]


class _Unusual(Exception):
    """The document is not of the shape _build handles: parse takes the general path."""


def _build(events: list[yaml.Event], text: str, file: str) -> _Built | None:
    """What parse builds through nodes and PyYAML's constructor, straight from the events.

    Handles the shape every metric file has (a block mapping of strings, numbers,
    booleans, nulls, lists and mappings with scalar keys) in one pass; anything else
    (an empty or non-mapping document, a flow-style top level, a merge key, a collection
    as a key, a timestamp or another tag) returns None, and parse takes the general path,
    so errors and values stay exactly what the general path gives.
    """
    builder = _Builder(text, file)
    try:
        for event in events:
            if isinstance(event, yaml.ScalarEvent):
                builder.node(event, _scalar_value(event), collection=False)
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if event.tag is not None:
                    raise _Unusual
                empty: dict[Any, Any] | list[Any] = {} if isinstance(event, yaml.MappingStartEvent) else []
                builder.node(event, empty, collection=True)
            elif isinstance(event, yaml.CollectionEndEvent):
                builder.close(event)
            elif isinstance(event, yaml.DocumentEndEvent):
                break
    except _Unusual:
        return None
    if builder.root is None:
        return None
    return builder.root, builder.positions, builder.key_positions, builder.spans, builder.problems


def _scalar_value(event: yaml.ScalarEvent) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        tag = _scalar_tag(event.value, event.implicit)
    if tag == _STR_TAG:
        return event.value
    if tag not in _FAST_TAGS:
        raise _Unusual
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark)  # type: ignore[arg-type]
    return _SCALARS.yaml_constructors[tag](_SCALARS, node)


@dataclass
class _Open:
    """A collection being built: its path, and for a mapping the keys seen and the key
    waiting for its value (raw text, value, event)."""

    value: dict[Any, Any] | list[Any]
    path: Path
    seen: set[str]
    key: tuple[str, Any, yaml.Event] | None = None


class _Builder:
    def __init__(self, text: str, file: str) -> None:
        self.text, self.file = text, file
        self.root: dict[str, Any] | None = None
        self.positions: dict[Path, tuple[int, int]] = {}
        self.key_positions: dict[str, tuple[int, int]] = {}
        self.spans: dict[str, Span] = {}
        self.problems: list[Problem] = []
        self._stack: list[_Open] = []
        self._field: tuple[str, yaml.Event, yaml.Event] | None = None  # the open top-level field

    def node(self, event: yaml.Event, value: Any, *, collection: bool) -> None:
        where: Path
        if not self._stack:
            if not isinstance(value, dict) or event.flow_style:  # type: ignore[attr-defined]
                raise _Unusual
            self.root, where = value, ()
        else:
            parent = self._stack[-1]
            if isinstance(parent.value, list):
                where = (*parent.path, len(parent.value))
                parent.value.append(value)
            elif parent.key is None:
                self._key(parent, event, value, collection)
                return
            else:
                raw, key, key_event = parent.key
                parent.key = None
                parent.value[key] = value
                where = (*parent.path, str(raw))
                if len(self._stack) == 1:
                    self._field = (str(raw), key_event, event)
                    if not collection:
                        self._span(event)
        self.positions[where] = _at(event)
        if collection:
            self._stack.append(_Open(value, where, set()))

    def _key(self, parent: _Open, event: yaml.Event, value: Any, collection: bool) -> None:
        if collection:
            raise _Unusual  # a collection as a key (a merge key << has no fast tag)
        raw: str = event.value  # type: ignore[attr-defined]
        if raw in parent.seen:
            self.problems.append(Problem(self.file, *_at(event), f"duplicate key {raw!r}"))
        parent.seen.add(raw)
        parent.key = (raw, value, event)
        if len(self._stack) == 1:
            self.key_positions[str(raw)] = _at(event)

    def close(self, event: yaml.Event) -> None:
        self._stack.pop()
        if len(self._stack) == 1:
            self._span(event)

    def _span(self, end: yaml.Event) -> None:
        assert self._field is not None
        key, key_event, start = self._field
        stop, value_start = _index(end.end_mark), _index(start.start_mark)
        block = stop > value_start and stop > 0 and self.text[stop - 1] in "\n\r"
        self.spans[key] = Span(_index(key_event.start_mark), value_start, stop, block)


def _at(event: yaml.Event) -> tuple[int, int]:
    """The 1-based line and column where the event starts."""
    mark = event.start_mark
    assert mark is not None  # libyaml marks every event
    return mark.line + 1, mark.column + 1


def _index(mark: Any) -> int:
    assert mark is not None  # libyaml marks every event
    return int(mark.index)


def _is_block(node: yaml.Node, text: str) -> bool:
    end = node.end_mark.index
    return end > node.start_mark.index and end > 0 and text[end - 1] in "\n\r"


def _walk(
    node: yaml.Node,
    path: Path,
    out: dict[Path, tuple[int, int]],
    problems: list[Problem],
    file: str,
) -> None:
    out[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key_node.tag == "tag:yaml.org,2002:merge":
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                problems.append(
                    Problem(file, line, col, "YAML merge keys (<<) are not allowed in cekura-gitops files")
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a complex key: constructing the data refuses it (unhashable)
            if key in seen:
                problems.append(
                    Problem(
                        file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        f"duplicate key {key!r}",
                    )
                )
            seen.add(key)
            _walk(value_node, (*path, str(key)), out, problems, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), out, problems, file)


_DEFAULT_TAGS = ("tag:yaml.org,2002:",)


def _read_events(text: str, path: str) -> list[yaml.Event]:
    """The text's events, refusing anchors, aliases, explicit tags, a second document and
    deep nesting as they stream by (libyaml slows down quadratically with flow nesting,
    so reading stops at the first event too deep)."""
    problems: list[Problem] = []
    events: list[yaml.Event] = []
    documents = 0
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            events.append(event)
            mark = event.start_mark
            where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    problems.append(Problem(path, *where, f"nested deeper than {MAX_DEPTH} levels"))
                    break
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents == 2:
                    problems.append(Problem(path, *where, "one metric per file: found a second document"))
            elif isinstance(event, yaml.AliasEvent):
                problems.append(
                    Problem(path, *where, "YAML aliases (*name) are not allowed in cekura-gitops files")
                )
            elif isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
                if event.anchor is not None:
                    problems.append(
                        Problem(path, *where, "YAML anchors (&name) are not allowed in cekura-gitops files")
                    )
                tag = event.tag
                explicit = not (isinstance(event, yaml.ScalarEvent) and event.implicit[0])
                if tag is not None and tag != "!" and explicit:
                    problems.append(
                        Problem(path, *where, f"YAML tags ({tag}) are not allowed in cekura-gitops files")
                    )
            if len(problems) >= 20:
                break
    except yaml.MarkedYAMLError as err:
        raise _invalid(err, path) from None
    except yaml.YAMLError as err:  # pragma: no cover - libyaml marks its errors; decode() refuses NUL
        raise MetricValidationError([Problem(path, 1, 1, f"invalid YAML: {err}")]) from None
    if problems:
        raise MetricValidationError(problems)
    return events


# --- rendering -----------------------------------------------------------------------------

# Characters a written scalar escapes (double-quoted) or avoids (block): the complement of
# [\t\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff],
# written as the few ranges it is. The negated class compiles in ~5 ms, on every command's
# start-up; this one in a tenth of that (tests/unit/test_yamltext.py checks it is the same set).
_NOT_PRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def _loads_as(rendered: str, value: Any) -> bool:
    try:
        loaded = yaml.load(f"k: {rendered}\n", Loader=_Loader)
    except yaml.YAMLError:
        return False
    return isinstance(loaded, dict) and _same(loaded.get("k"), value)


def _same(a: Any, b: Any) -> bool:
    # bool is an int in Python: True == 1 must not count as a faithful round trip.
    return type(a) is type(b) and a == b


def double_quoted(s: str) -> str:
    """A YAML double-quoted scalar holding exactly `s` (JSON escapes are valid YAML)."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif _NOT_PRINTABLE.match(ch):
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _block_literal(s: str, indent: str, newline: str) -> str | None:
    """`|-`/`|` block for s, or None when a block scalar cannot hold it exactly."""
    if s.endswith("\n\n") or not s.strip("\n") or s.startswith(("\n", " ", "\t")):
        return None
    if _NOT_PRINTABLE.search(s) or "\r" in s:
        return None
    body = s[:-1] if s.endswith("\n") else s
    lines = body.split("\n")
    if any(line != line.rstrip(" \t") for line in lines):
        return None  # trailing white space is invisible and editors strip it: quote instead
    chomp = "" if s.endswith("\n") else "-"
    content = newline.join(indent + line if line else "" for line in lines)
    return f"|{chomp}{newline}{content}"


def render_scalar(value: Any, *, indent: str = INDENT, newline: str = "\n") -> str:
    """The text that follows `key: ` for value; multi-line strings become block scalars."""
    if isinstance(value, str):
        if "\n" in value:
            block = _block_literal(value, indent, newline)
            if block is not None and _loads_as(block.replace(newline, "\n"), value):
                return block
            return double_quoted(value)
        # Plain style only when it reads back exactly, has no invisible tab, and YAML 1.1
        # tools (editors, other parsers) would not read it as a boolean either.
        if value and "\t" not in value and value.lower() not in YAML11_BOOLS and _loads_as(value, value):
            return value
        return double_quoted(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render_scalar(v) for v in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__}")


# --- editing --------------------------------------------------------------------------------


def _line_end(text: str, index: int) -> int:
    nl = text.find("\n", index)
    return len(text) if nl < 0 else nl + 1


def _split_trailing_blank_lines(chunk: str) -> tuple[str, str]:
    lines = chunk.splitlines(keepends=True)
    keep = len(lines)
    while keep > 0 and not lines[keep - 1].strip():
        keep -= 1
    return "".join(lines[:keep]), "".join(lines[keep:])


_BLOCK_HEADER = re.compile(r"[|>][0-9+-]*([ \t]+#[^\r\n]*)?")


def set_field(doc: Document, key: str, value: Any, *, after: tuple[str, ...] = ()) -> str:
    """Text of doc with top-level `key` set to value, every other byte untouched.

    A missing key is inserted after the first present key in `after` (else at the end).
    """
    if key not in doc.spans:
        return _insert_field(doc, key, value, after)
    text, nl, span = doc.text, doc.newline, doc.spans[key]
    separator = text[span.start + len(key) : span.value_start]
    if "\n" in separator or not separator.startswith(":"):
        separator = ": "
    old_value = text[span.value_start : span.value_end]
    if span.block:
        # Replace up to the value's last content line; blank lines after it are layout.
        body, _ = _split_trailing_blank_lines(text[span.start : span.value_end])
        end = span.start + len(body)
        header = _BLOCK_HEADER.match(old_value)
        trailer = header.group(1) or "" if header else ""
        indent = _block_indent(old_value)
    else:
        # Keep what follows the value on its line (alignment spaces, a `# comment`).
        end = _line_end(text, span.value_end)
        trailer = text[span.value_end : end].rstrip("\r\n")
        end = span.value_end + len(trailer)
        indent = INDENT
    rendered = render_scalar(value, indent=indent, newline=nl)
    if rendered.startswith("|"):
        first, _, content = rendered.partition(nl)
        new = f"{key}:{separator[1:] or ' '}{first}{trailer.rstrip()}{nl}{content}"
    else:
        new = f"{key}{separator}{rendered}{trailer}"
    if span.block:
        new += nl
    return text[: span.start] + new + text[end:]


def _block_indent(old_value: str) -> str:
    for line in old_value.splitlines()[1:]:
        if line.strip():
            return line[: len(line) - len(line.lstrip(" "))] or INDENT
    return INDENT


def _insert_field(doc: Document, key: str, value: Any, after: tuple[str, ...]) -> str:
    text, nl = doc.text, doc.newline
    line = f"{key}: {render_scalar(value, newline=nl)}{nl}"
    anchor = next((k for k in after if k in doc.spans), None)
    if anchor is None:
        if text and not text.endswith("\n"):
            return text + nl + line
        return text + line
    span = doc.spans[anchor]
    if span.block:
        body, _ = _split_trailing_blank_lines(text[span.start : span.value_end])
        at = span.start + len(body)
    else:
        at = _line_end(text, span.value_end)
        if at == len(text) and not text.endswith("\n"):
            return text + nl + line
    return text[:at] + line + text[at:]


def render_document(fields: Mapping[str, Any], *, header: str = "") -> str:
    """A new file: one `key: value` per field, in the given order."""
    parts = [header] if header else []
    for key, value in fields.items():
        if isinstance(value, Mapping):
            parts.append(f"{key}:\n")
            for sub, subvalue in value.items():
                parts.append(f"{INDENT}{sub}: {render_scalar(subvalue, indent=INDENT * 2)}\n")
        else:
            parts.append(f"{key}: {render_scalar(value)}\n")
    return "".join(parts)

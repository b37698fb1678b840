"""Metric files on disk: discover, load (schema + semantic checks), edit, write atomically."""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cekura_gitops import schema, yamltext
from cekura_gitops.errors import MetricValidationError, Problem
from cekura_gitops.metric import IDENTITY_FIELDS, MANAGED_FIELDS, Metric, normalise

SUFFIXES = (".yaml", ".yml")
T = TypeVar("T")
SCHEMA_COMMENT = "# yaml-language-server: $schema={url}\n"


@dataclass(frozen=True)
class MetricFile:
    """A loaded, valid metric file: its text (for surgical edits) and its record."""

    path: Path
    display: str
    text: str
    doc: yamltext.Document
    metric: Metric


def parse_metric(
    text: str, display: str, *, file_stem: str | None = None, identity_only: bool = False
) -> MetricFile:
    """Text -> MetricFile, raising MetricValidationError with every problem found.

    identity_only: check the YAML and the identity fields (id, slug, project) only, for a
    command that uses nothing else (`list`); every other command checks everything.
    """
    doc = yamltext.parse(text, display)
    problems = schema.check("metric", doc, display, identity_only=identity_only)
    if problems:
        raise MetricValidationError(problems)
    if not identity_only:
        problems = _semantic_problems(doc, display, file_stem)
    if problems:
        raise MetricValidationError(problems)
    metric = Metric.from_dict(doc.data, display)
    return MetricFile(Path(display), display, text, doc, metric)


def parse_blob(raw: bytes | None, display: str, *, file_stem: str) -> MetricFile | None:
    """A metric file as git holds it at some revision (None: not there), with every check
    validate makes; raises MetricValidationError."""
    if raw is None:
        return None
    return parse_metric(yamltext.decode(raw, display), display, file_stem=file_stem)


def check_text(text: str, display: str, *, file_stem: str | None) -> MetricFile:
    """`validate`'s verdict on text about to be written or committed as a metric file.

    Every check a file on disk gets (size, encoding, YAML, schema, field limits,
    semantics), so that nothing is proposed or written that validate, plan and apply
    would refuse once it is merged. Raises MetricValidationError.
    """
    decoded = yamltext.decode(text.encode("utf-8"), display)
    return parse_metric(decoded, display, file_stem=file_stem)


def _semantic_problems(doc: yamltext.Document, path: str, stem: str | None) -> list[Problem]:
    data, out = doc.data, []

    def at(key: str, message: str) -> None:
        line, col = doc.key_positions.get(key, (1, 1))
        out.append(Problem(path, line, col, message))

    slug = data["slug"]
    if stem is not None and stem != slug:
        at(
            "slug",
            f"file name {stem!r} does not match slug {slug!r}: rename the file to {slug}.yaml",
        )
    trigger = data.get("evaluation_trigger")
    if "trigger_type" in data and trigger is not None and trigger != "custom":
        at(
            "trigger_type",
            f"trigger_type is only used with evaluation_trigger: custom (this is {trigger!r})",
        )
    if trigger == "custom" and "trigger_type" not in data:
        at(
            "evaluation_trigger",
            "evaluation_trigger is custom: set trigger_type (llm_judge or custom_code)",
        )
    if data.get("trigger_type") == "llm_judge" and not data.get("evaluation_trigger_prompt", "x"):
        at(
            "evaluation_trigger_prompt",
            "trigger_type llm_judge needs a non-empty evaluation_trigger_prompt",
        )
    if data.get("type") == "custom_code" and not data.get("custom_code"):
        at("type", "type custom_code needs the Python code in custom_code")
    if data.get("eval_type") == "enum" and not data.get("enum_values"):
        at("eval_type", "eval_type enum needs enum_values")
    if "id" not in data:
        missing = [k for k in ("project", "name", "type", "eval_type") if k not in data]
        if missing:
            at(
                "slug",
                f"a new metric (no id) needs {', '.join(missing)} so that apply can create it",
            )
    return out


def read_metric_file(path: Path, display: str | None = None, *, identity_only: bool = False) -> MetricFile:
    """Load one file from disk; every failure is a MetricValidationError naming the file."""
    display = display or str(path)
    try:
        if path.is_dir():
            raise MetricValidationError([Problem(display, 1, 1, "is a directory, not a metric file")])
        if not path.is_file():
            # A FIFO or a device would block or never end: read regular files only.
            raise MetricValidationError([Problem(display, 1, 1, "is not a regular file")])
        size = path.stat().st_size
        if size > yamltext.MAX_FILE_BYTES:
            raise MetricValidationError(
                [Problem(display, 1, 1, f"file is {size:,} bytes; metric files are limited to 1 MiB")]
            )
        raw = path.read_bytes()
    except OSError as err:
        raise MetricValidationError([Problem(display, 1, 1, f"cannot read: {err.strerror}")]) from None
    text = yamltext.decode(raw, display)
    loaded = parse_metric(text, display, file_stem=_stem(path), identity_only=identity_only)
    return MetricFile(path, display, loaded.text, loaded.doc, loaded.metric)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def discover(paths: Sequence[Path], root: Path) -> tuple[list[Path], list[Problem]]:
    """Metric files named by paths (directories are searched one level deep)."""
    found: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir() and not path.name.endswith(SUFFIXES):
            for child in sorted(path.iterdir()):
                if child.name.endswith(SUFFIXES) and not child.name.startswith("."):
                    found.append(child)
        elif path.exists() or path.is_symlink():
            found.append(path)
        else:
            problems.append(Problem(display_path(path, root), 1, 1, "no such file or directory"))
    real_root = root.resolve()
    kept = []
    for path in found:
        try:
            outside = path.is_symlink() and not _inside(path.resolve(), real_root)
        except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
            shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
            problems.append(Problem(shown, 1, 1, "is a symlink that cannot be resolved (a loop?)"))
            continue
        if outside:
            problems.append(
                Problem(display_path(path, root), 1, 1, "is a symlink pointing outside the repository")
            )
        else:
            kept.append(path)
    return kept, problems


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def display_path(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


class PathNamer:
    """display_path for many files in few folders: the root and each folder resolve once."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()
        self._folders: dict[Path, str | None] = {}  # folder -> its name relative to the root

    def __call__(self, path: Path) -> str:
        if not path.is_absolute() or os.path.islink(path):
            return display_path(path, self._root)  # a symlink is named as where it points
        parent = path.parent
        if parent not in self._folders:
            try:
                self._folders[parent] = str(parent.resolve().relative_to(self._root))
            except ValueError:
                self._folders[parent] = None
        folder = self._folders[parent]
        if folder is None:
            return str(path)
        return path.name if folder == "." else f"{folder}{os.sep}{path.name}"


def load_metrics(
    paths: Sequence[Path],
    root: Path,
    *,
    identity_only: bool = False,
) -> list[MetricFile]:
    """Every metric file under paths, or MetricValidationError listing every problem."""
    with _no_cycle_collection():
        files, problems = discover(paths, root)
        loaded: list[MetricFile] = []
        name = PathNamer(root)
        for path in files:
            try:
                loaded.append(read_metric_file(path, name(path), identity_only=identity_only))
            except MetricValidationError as err:
                problems.extend(err.problems)
        problems.extend(duplicate_problems(loaded))
        if problems:
            raise MetricValidationError(problems)
        return sorted(loaded, key=lambda f: f.metric.slug)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector while files load.

    Loading keeps every parsed file, so each full collection walks all the files loaded
    so far, and full collections come every time the heap grows by a quarter: at 10,000
    files that is about a third of the loading time, for cycles that loading does not
    make (its objects are freed by reference counting). The collector runs again after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def identity_claims(
    items: Iterable[tuple[T, Mapping[str, Any]]],
) -> dict[tuple[str, Any], list[tuple[T, Any]]]:
    """Who claims each metric id and slug: {(key, folded value): [(item, value), ...]}.

    Slugs name files and branches: on case-insensitive file systems and in git's loose
    refs, `Foo` and `foo` are the same name, so string values are folded.
    """
    claims: dict[tuple[str, Any], list[tuple[T, Any]]] = {}
    for item, data in items:
        for key in ("id", "slug"):
            value = data.get(key)
            if value is not None:
                folded = value.lower() if isinstance(value, str) else value
                claims.setdefault((key, folded), []).append((item, value))
    return claims


def duplicate_problems(files: Iterable[MetricFile]) -> list[Problem]:
    """Two files claiming the same metric id or slug."""
    problems: list[Problem] = []
    identities = ((f, {"id": f.metric.id, "slug": f.metric.slug}) for f in files)
    for (key, _), claimants in identity_claims(identities).items():
        first = claimants[0][0]
        for f, value in claimants[1:]:
            line, col = f.doc.key_positions.get(key, (1, 1))
            problems.append(
                Problem(f.display, line, col, f"duplicate {key} {value!r}: also in {first.display}")
            )
    return problems


def edit_fields(text: str, display: str, changes: Mapping[str, Any]) -> str:
    """Text with each changed top-level field rewritten in place; equal values keep their bytes."""
    for key, value in changes.items():
        doc = yamltext.parse(text, display)
        if key in doc.data and normalise(doc.data[key]) == normalise(value):
            continue
        order = (*IDENTITY_FIELDS, *MANAGED_FIELDS)
        before = order[: order.index(key)] if key in order else order
        text = yamltext.set_field(doc, key, value, after=tuple(reversed(before)))
    return text


def render_new(fields: Mapping[str, Any], *, schema_url: str | None = None) -> str:
    """A fresh metric file's text."""
    header = SCHEMA_COMMENT.format(url=schema_url) if schema_url else ""
    return yamltext.render_document(fields, header=header)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file in the same directory, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

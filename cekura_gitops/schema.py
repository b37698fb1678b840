"""The JSON Schemas shipped with the package, and one way to check a document against them."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from cekura_gitops.errors import Problem
from cekura_gitops.yamltext import Document


@cache
def schema(name: str) -> dict[str, Any]:
    """The named schema (`metric` or `config`) as data."""
    text = resources.files("cekura_gitops").joinpath(f"schemas/{name}.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(name: str) -> Any:
    return _strict(schema(name))


def _strict(document: dict[str, Any]) -> Any:
    import jsonschema  # lazy: keeps `--help` fast

    base = jsonschema.Draft202012Validator
    # JSON Schema counts 1.0 as an integer; a metric id of 1.0 would build `/metrics/1.0/`.
    strict = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    strict_validator = jsonschema.validators.extend(base, type_checker=strict)  # type: ignore[no-untyped-call]
    return strict_validator(document)


IDENTITY = ("id", "slug", "project")


@cache
def _identity_schema(name: str) -> dict[str, Any]:
    """The part of a schema that covers the identity fields only (what `list` prints)."""
    full = schema(name)
    return {
        "type": "object",
        "required": [k for k in full.get("required", []) if k in IDENTITY],
        "properties": {k: v for k, v in full["properties"].items() if k in IDENTITY},
    }


@cache
def _identity_validator(name: str) -> Any:
    return _strict(_identity_schema(name))


MAX_UNKNOWN_FIELDS = 20  # per mapping; a hostile file may hold 100k keys


def check(name: str, doc: Document, path: str, *, identity_only: bool = False) -> list[Problem]:
    """Every schema violation in doc, each at the line and column it points to.

    identity_only checks the identity fields (id, slug, project) alone: enough for a command
    that prints nothing else, and a fraction of the cost of the whole schema.
    """
    problems: list[Problem] = []
    if fits(_identity_schema(name) if identity_only else schema(name), doc.data):
        return problems
    validator = _identity_validator(name) if identity_only else _validator(name)
    for error in validator.iter_errors(doc.data):
        where = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            allowed = set(error.schema.get("properties", {}))
            instance = error.instance if isinstance(error.instance, dict) else {}
            unknown = [key for key in instance if key not in allowed]
            for key in unknown[:MAX_UNKNOWN_FIELDS]:
                line, col = _key_position(doc, (*where, key))
                hint = _closest(str(key), allowed)
                problems.append(Problem(path, line, col, f"unknown field {key!r}{hint}"))
            if len(unknown) > MAX_UNKNOWN_FIELDS:
                line, col = _key_position(doc, (*where, unknown[MAX_UNKNOWN_FIELDS]))
                more = len(unknown) - MAX_UNKNOWN_FIELDS
                problems.append(Problem(path, line, col, f"... and {more} more unknown field(s)"))
            continue
        line, col = doc.position(where)
        field = ".".join(str(p) for p in where) or "file"
        problem = Problem(path, line, col, f"{field}: {_message(error)}")
        if problem not in problems:
            problems.append(problem)
    return problems


_IGNORED = frozenset({"description", "title", "$id", "$schema"})
_KEYWORDS = frozenset(
    {"type", "enum", "pattern", "minLength", "maxLength", "minimum", "items", "minItems", "uniqueItems"}
    | {"properties", "additionalProperties", "required"}
)


def fits(schema_doc: Any, value: Any) -> bool:
    """True only when value certainly satisfies schema_doc: a fast path for valid files.

    It knows the few keywords our schemas use and answers False (so the caller runs the full
    validator, which also words the errors) at anything else or any doubt, e.g. 1 vs 1.0.
    """
    if not isinstance(schema_doc, dict) or not _KEYWORDS.issuperset(set(schema_doc) - _IGNORED):
        return False
    want = schema_doc.get("type")
    if want is not None and not any(_is(t, value) for t in (want if isinstance(want, list) else [want])):
        return False
    if "enum" in schema_doc and not any(type(value) is type(e) and value == e for e in schema_doc["enum"]):
        return False
    if isinstance(value, str):
        return _fits_string(schema_doc, value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "minimum" not in schema_doc or value >= schema_doc["minimum"]
    if isinstance(value, list):
        return _fits_array(schema_doc, value)
    if isinstance(value, dict):
        return _fits_object(schema_doc, value)
    return True


def _is(kind: str, value: Any) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    expected = {"string": str, "boolean": bool, "array": list, "object": dict}.get(kind)
    if kind == "null":
        return value is None
    return expected is not None and isinstance(value, expected)


def _fits_string(schema_doc: dict[str, Any], value: str) -> bool:
    import re

    if len(value) < schema_doc.get("minLength", 0) or len(value) > schema_doc.get("maxLength", len(value)):
        return False
    return "pattern" not in schema_doc or re.search(schema_doc["pattern"], value) is not None


def _fits_array(schema_doc: dict[str, Any], value: list[Any]) -> bool:
    if len(value) < schema_doc.get("minItems", 0):
        return False
    if schema_doc.get("uniqueItems"):
        if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            return False
        if len(set(value)) != len(value):
            return False
    return "items" not in schema_doc or all(fits(schema_doc["items"], v) for v in value)


def _fits_object(schema_doc: dict[str, Any], value: dict[Any, Any]) -> bool:
    if not all(isinstance(k, str) for k in value):
        return False
    if any(k not in value for k in schema_doc.get("required", ())):
        return False
    properties = schema_doc.get("properties", {})
    extra = schema_doc.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            if not fits(properties[key], item):
                return False
        elif extra is False or (extra is not True and not fits(extra, item)):
            return False
    return True


def _key_position(doc: Document, where: tuple[Any, ...]) -> tuple[int, int]:
    if len(where) == 1 and where[0] in doc.key_positions:
        return doc.key_positions[where[0]]
    line, col = doc.position(where)
    return line, max(1, col)


def _closest(key: str, allowed: set[str]) -> str:
    import difflib

    match = difflib.get_close_matches(key, sorted(allowed), n=1)
    return f" (did you mean {match[0]!r}?)" if match else f"; allowed: {', '.join(sorted(allowed))}"


def _message(error: Any) -> str:
    # Our own words for every check the schemas use: a message must not change with the
    # installed jsonschema release (tests and users' CI greps rely on it).
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "enum":
        return f"{instance!r} is not one of {', '.join(map(str, value))}"
    if kind == "type":
        got = type(instance).__name__.replace("NoneType", "null").replace("str", "string")
        return f"expected {value}, got {got} ({_short(instance)})"
    if kind == "pattern" and error.absolute_path and error.absolute_path[-1] == "slug":
        return (
            f"{_short(instance)} is not a valid slug: use letters, digits, '_' and '-', "
            "starting and ending with a letter or digit"
        )
    if kind in ("pattern", "oneOf", "anyOf") and error.schema.get("description"):
        return f"{_short(instance)} is not valid: {error.schema['description']}"
    if kind == "required":
        missing = [name for name in value if isinstance(instance, dict) and name not in instance]
        # One error per missing field, each carrying the whole list: check() drops repeats.
        return ", ".join(map(repr, missing)) + (" is required" if len(missing) == 1 else " are required")
    bounds = {
        "minimum": f"{_short(instance)} is less than the minimum of {value}",
        "maximum": f"{_short(instance)} is greater than the maximum of {value}",
        "minLength": f"is too short ({len(instance) if isinstance(instance, str) else 0} "
        f"characters; at least {value})",
        "maxLength": f"is too long ({len(instance) if isinstance(instance, str) else 0} "
        f"characters; at most {value})",
        "minItems": f"needs at least {value} item(s)",
        "uniqueItems": f"{_short(instance)} lists an item twice",
        "pattern": f"{_short(instance)} is not valid (must match {value})",
    }
    return bounds.get(kind, str(error.message))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

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
    import jsonschema  # lazy: keeps `--help` fast

    base = jsonschema.Draft202012Validator
    # JSON Schema counts 1.0 as an integer; a metric id of 1.0 would build `/metrics/1.0/`.
    strict = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    strict_validator = jsonschema.validators.extend(base, type_checker=strict)  # type: ignore[no-untyped-call]
    return strict_validator(schema(name))


MAX_UNKNOWN_FIELDS = 20  # per mapping; a hostile file may hold 100k keys


def check(name: str, doc: Document, path: str) -> list[Problem]:
    """Every schema violation in doc, each at the line and column it points to."""
    problems: list[Problem] = []
    for error in _validator(name).iter_errors(doc.data):
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

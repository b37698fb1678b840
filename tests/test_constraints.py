"""constraints.txt pins every package `pip install '.[test]'` pulls in, for this Python.

The README's test command and .ci/run install with `-c constraints.txt`; a dependency
added to pyproject.toml without a pin would make a fresh machine resolve whatever is
newest that day (a new PyYAML once reworded an error and failed the suite).
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    """Package -> pinned version, for the running Python (markers evaluated)."""
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        (spec,) = requirement.specifier  # exactly one `==` pin per line
        assert spec.operator == "==", line
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{name} pinned twice for this Python"
        pins[name] = spec.version
    return pins


def _closure(root: str, extras: set[str]) -> set[str]:
    """Every distribution `pip install root[extras]` installs here, root excluded."""
    seen: set[str] = set()
    todo: list[tuple[str, set[str]]] = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            marker = requirement.marker
            contexts = [{**default_environment(), "extra": extra} for extra in (wanted or {""})]
            if marker is not None and not any(marker.evaluate(ctx) for ctx in contexts):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency not in seen:
                seen.add(dependency)
                todo.append((dependency, set(requirement.extras)))
    return seen


def test_every_test_dependency_is_pinned_for_this_python() -> None:
    pins = _pins()
    needed = _closure("cekura-gitops", {"test"})
    assert needed, "cekura-gitops is not installed: pip install -c constraints.txt -e '.[test]'"
    unpinned = sorted(needed - set(pins))
    assert not unpinned, f"add pins to constraints.txt for: {', '.join(unpinned)}"


def test_ci_and_the_readme_install_with_the_constraints() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"pip install [^\n]*-c constraints\.txt '\.\[test\]'", ci)
    assert "pip install -c constraints.txt '.[test]' && python -m pytest" in readme

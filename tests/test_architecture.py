"""The layers hold (docs/architecture.md): the import contracts in pyproject.toml pass.

`.ci/run` runs `lint-imports` in its lint step; this test holds the same contracts in the
suite, so that a change that breaks them fails wherever the tests run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def test_the_contracts_declare_the_layers_and_forbid_loops() -> None:
    contracts = _contracts()
    (layers,) = [c for c in contracts if c["type"] == "layers"]
    order = [str(layer).split(":")[0].strip().strip("()") for layer in layers["layers"]]
    assert order.index("cli") < order.index("commands") < order.index("clients") < order.index("cekura")
    assert order.index("cekura") < order.index("redaction")  # the domain sits below the adapters
    assert order[-1] == "errors"
    assert any(c["type"] == "acyclic_siblings" for c in contracts)


def test_imports_point_down_and_never_in_a_circle() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_pre_commit_runs_the_linters_ci_runs() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff", "ruff-format", "mypy", "lint-imports"} <= set(hooks)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in ("ruff check", "ruff format", "mypy", "lint-imports"):
        assert command in ci

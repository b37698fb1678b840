"""No function in the package is over 60 lines, except data tables (#12).

A long function mixes jobs a reader has to pull apart; split it into functions named for
what each part does. Only a function that is a table of data (the sandbox's seed) may be
longer, and it is named here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cekura_gitops"
MAX_LINES = 60
# Data tables: line after line of values, nothing to split.
DATA_TABLES = frozenset({"sandbox/seed.py:seed"})


def long_functions(root: Path, max_lines: int = MAX_LINES) -> dict[str, int]:
    """{"path:name": lines} for every function or method over max_lines, from `def` to its end."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > max_lines:
                    found[f"{path.relative_to(root).as_posix()}:{node.name}"] = lines
    return found


def test_no_function_is_over_60_lines_outside_data_tables() -> None:
    too_long = {name: n for name, n in long_functions(PACKAGE).items() if name not in DATA_TABLES}
    assert not too_long, f"split these functions (lines): {too_long}"


def test_each_data_table_still_exists_and_is_long() -> None:
    # An entry left behind after its table shrank or moved would excuse a future function.
    assert set(long_functions(PACKAGE)) >= DATA_TABLES


def test_the_check_counts_a_long_function(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}")
    assert long_functions(tmp_path) == {"m.py:long": MAX_LINES + 1}

"""`cekura-gitops validate`: offline schema and semantic checks of metric files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cekura_gitops import metric_files
from cekura_gitops.console import Console
from cekura_gitops.errors import MetricValidationError
from cekura_gitops.settings import Settings


def validate(settings: Settings, console: Console, paths: Sequence[str]) -> int:
    """Check every metric file; report every problem; 0 when all are valid, else 1."""
    targets = [Path(p) for p in paths] or [settings.metrics_dir]
    try:
        files = metric_files.load_metrics(targets, settings.root)
    except MetricValidationError as err:
        for problem in err.problems:
            console.error(str(problem), file=problem.path, line=problem.line, col=problem.col)
        count = len({p.path for p in err.problems})
        console.err(f"{len(err.problems)} problem(s) in {count} file(s).")
        if settings.json_output:
            console.emit_json(
                {
                    "valid": False,
                    "problems": [
                        {"path": p.path, "line": p.line, "col": p.col, "message": p.message}
                        for p in err.problems
                    ],
                }
            )
        return 1
    if settings.json_output:
        console.emit_json(
            {
                "valid": True,
                "metrics": [{"slug": f.metric.slug, "id": f.metric.id, "path": f.display} for f in files],
            }
        )
    else:
        console.say(f"{len(files)} metric file(s) valid.")
    return 0

"""`cekura-gitops list`: the managed metrics, e.g. for a GitHub Actions matrix."""

from __future__ import annotations

import json

from cekura_gitops.console import Console
from cekura_gitops.metricsdir import load_files
from cekura_gitops.selection import in_shard
from cekura_gitops.settings import Settings


def list_metrics(settings: Settings, console: Console, *, shard: tuple[int, int] | None = None) -> int:
    """Print slug, id and path of every managed metric (in the shard, if given)."""
    # list prints identities only, so it checks those (and the YAML), not the whole schema.
    files = [f for f in load_files(settings, identity_only=True) if in_shard(f.metric.slug, shard)]
    rows = [{"slug": f.metric.slug, "id": f.metric.id, "path": f.display} for f in files]
    slugs = [r["slug"] for r in rows]
    if settings.github_output:
        from cekura_gitops import actions

        actions.write_outputs(settings.github_output, {"slugs": json.dumps(slugs), "count": str(len(slugs))})
    if settings.json_output:
        console.emit_json({"metrics": rows, "slugs": slugs})
    else:
        console.table(("slug", "id", "path"), [(r["slug"], r["id"] or "new", r["path"]) for r in rows])
    return 0

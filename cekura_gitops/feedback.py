"""The Lab's labels for a metric: how many there are, and a fingerprint of them.

The optimiser is deterministic on a fixed set of annotations (cekura-api.md §3), so an
unchanged fingerprint means a new run would only spend time and credits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from cekura_gitops.replies import JSONObject


def _test_set_id(review: JSONObject) -> int | None:
    test_set = review.get("test_set")
    if isinstance(test_set, Mapping):
        value = test_set.get("id")
        return int(value) if isinstance(value, int) else None
    return int(test_set) if isinstance(test_set, int) else None


def relevant(reviews: Sequence[JSONObject], test_set_ids: Sequence[int] | None) -> list[JSONObject]:
    """The reviews the optimiser would read (all, or those of the chosen test sets)."""
    if test_set_ids is None:
        return list(reviews)
    wanted = set(test_set_ids)
    return [r for r in reviews if _test_set_id(r) in wanted]


def annotated(reviews: Sequence[JSONObject]) -> int:
    """Reviews a human labelled (expected_value set)."""
    return sum(1 for r in reviews if r.get("expected_value") not in (None, ""))


def fingerprint(reviews: Sequence[JSONObject]) -> str:
    """Stable digest of what the optimiser learns from: ids, labels, feedback, edit times."""
    rows = sorted(
        (
            str(r.get("id")),
            json.dumps(r.get("expected_value"), sort_keys=True, default=str),
            str(r.get("feedback") or ""),
            str(r.get("updated_at") or ""),
        )
        for r in reviews
    )
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]

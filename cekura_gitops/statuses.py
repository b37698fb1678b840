"""The per-metric status vocabularies of `sync`, `apply` and `pull` (their `--json` "status" values).

Here, below the commands, because the dashboard reports both commands' statuses; `plan`'s
own vocabulary is `changes.PlanStatus`. Each value is a JSON and PR-body string: never
rename one.
"""

from __future__ import annotations

import enum

__all__ = ["ApplyStatus", "PullStatus", "SyncStatus"]


class SyncStatus(enum.Enum):
    PROPOSED = "proposed"
    UPDATED = "updated"
    NO_CHANGE = "no-change"
    NOT_IMPROVED = "not-improved"
    NO_NEW_FEEDBACK = "no-new-feedback"
    NOT_ENOUGH_FEEDBACK = "not-enough-feedback"
    DRIFT = "drift"
    IN_FLIGHT = "in-flight"
    SKIPPED_EDITED = "skipped-edited"
    SKIPPED_CAP = "skipped-cap"
    OSCILLATION = "oscillation"
    REJECTED = "rejected"
    # The proposal would make a file validate/plan/apply refuse (over 1 MiB, a field over
    # its limit): handled like a regression, since a rerun on the same labels proposes the
    # same text; the detail names the problem.
    INVALID_PROPOSAL = "invalid-proposal"
    MISSING_LIVE = "missing-live"
    INTERRUPTED = "interrupted"
    ERROR = "error"


class PullStatus(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED_DIRTY = "skipped-dirty"
    ERROR = "error"

    @property
    def failed(self) -> bool:
        """A result that makes pull exit 1."""
        return self in (PullStatus.SKIPPED_DIRTY, PullStatus.ERROR)


class ApplyStatus(enum.Enum):
    APPLIED = "applied"
    IN_SYNC = "in-sync"
    CONFLICT = "conflict"
    CREATED = "created"
    DELETED = "deleted"
    ERROR = "error"
    # --dry-run reports would-apply / would-create instead of applied / created: nothing was.
    WOULD_APPLY = "would-apply"
    WOULD_CREATE = "would-create"

    @property
    def failed(self) -> bool:
        """A result that makes apply exit 1 and keeps the applied marker where it was."""
        return self in (ApplyStatus.CONFLICT, ApplyStatus.ERROR)

    @property
    def verb(self) -> str:
        """How the text report says it: `would apply`, else the value itself."""
        return self.value.replace("-", " ", 1) if self.value.startswith("would-") else self.value

"""The metric record: identity, managed fields, and this tool's own optimiser settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# Writable fields of Cekura's PatchedMetricEditSerializerV2 that a metric file may manage,
# in the order a new file lists them.
MANAGED_FIELDS: tuple[str, ...] = (
    "name",
    "type",
    "eval_type",
    "enum_values",
    "description",
    "prompt",
    "custom_code",
    "evaluation_trigger",
    "trigger_type",
    "evaluation_trigger_prompt",
    "evaluation_trigger_custom_code",
    "observability_enabled",
    "simulation_enabled",
    "sampling_enabled",
    "audio_enabled",
    "agents",
)
IDENTITY_FIELDS: tuple[str, ...] = ("id", "slug", "project")


@dataclass(frozen=True)
class OptimiserSettings:
    """The file's `optimiser:` block; None means "use the config default"."""

    enabled: bool | None = None
    test_set_ids: tuple[int, ...] | None = None
    min_feedback: int | None = None
    auto_apply: bool | None = None
    critical: bool | None = None
    holdout: float | None = None
    holdout_min: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> OptimiserSettings:
        data = data or {}
        ids = data.get("test_set_ids")
        return cls(
            enabled=data.get("enabled"),
            test_set_ids=tuple(ids) if ids is not None else None,
            min_feedback=data.get("min_feedback"),
            auto_apply=data.get("auto_apply"),
            critical=data.get("critical"),
            holdout=data.get("holdout"),
            holdout_min=data.get("holdout_min"),
        )


@dataclass(frozen=True)
class Metric:
    """One metric file, validated. `fields` holds only the managed fields the file sets."""

    slug: str
    id: int | None
    project: int | None
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    optimiser: OptimiserSettings = field(default_factory=OptimiserSettings)
    path: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "") -> Metric:
        managed = {k: _freeze(data[k]) for k in MANAGED_FIELDS if k in data}
        return cls(
            slug=str(data["slug"]),
            id=data.get("id"),
            project=data.get("project"),
            fields=MappingProxyType(managed),
            optimiser=OptimiserSettings.from_dict(data.get("optimiser")),
            path=path,
        )

    @property
    def label(self) -> str:
        return f"{self.slug} (#{self.id})" if self.id is not None else self.slug


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def thaw(value: Any) -> Any:
    """A field value as JSON and YAML write it: the tuple a Metric keeps a list as, a list again."""
    return list(value) if isinstance(value, tuple) else value


def normalise(value: Any) -> Any:
    """The form two values are compared in: line endings folded, sequences as tuples."""
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n")
    if isinstance(value, (list, tuple)):
        return tuple(normalise(v) for v in value)
    return value


def live_value(live: Mapping[str, Any], name: str) -> Any:
    """A managed field's live value, normalised; absent and null are the same."""
    return normalise(live.get(name))

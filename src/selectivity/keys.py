"""What `selectivity keys` lists: every key of the config classes, grouped by the command it
configures, with its declared type, its default as `--set` would write it, and its one-line
meaning (declared beside the field with `config._key`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from selectivity.catalog import format_eps
from selectivity.config import EvalConfig, SweepConfig, TrainConfig

__all__ = ["CONFIG_GROUPS", "KeyInfo", "describe_keys"]

# The configs by the command they configure, in the order `selectivity keys` lists them.
CONFIG_GROUPS: dict[str, type] = {
    "train": TrainConfig,
    "evaluate": EvalConfig,
    "sweep": SweepConfig,
}


@dataclass(frozen=True)
class KeyInfo:
    """One config key as `selectivity keys` shows it."""

    name: str
    type: str  # as declared, e.g. "tuple[int, ...] | None"
    default: str  # as --set would write it: "none", "true", "1,2,3"
    meaning: str


def _value_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(_value_text(item) for item in value)
    if isinstance(value, float):
        # Attack radii are whole or half 8-bit grey levels: 8/255 reads better than 0.0313725.
        return format_eps(value)
    return str(value)


def describe_keys() -> dict[str, list[KeyInfo]]:
    """group ("train", "evaluate", "sweep") -> its keys in declaration order, with type, default
    and one-line meaning ("" for a field not declared with `_key`; a test forbids that)."""
    return {
        group: [
            KeyInfo(
                item.name,
                str(item.type),
                _value_text(item.default),
                item.metadata.get("meaning", ""),
            )
            for item in fields(cls)
        ]
        for group, cls in CONFIG_GROUPS.items()
    }

"""The robustness-training methods a sweep may grid over, by name: the one list the report reads
(`METHODS`, their strength columns `METHOD_KEYS`) and the regularizer's stand-in `REGULARIZER`.

A method's strength is a TrainConfig key (0 = method off), the one `selectivity.catalog.TRAINING_METHODS`
names; this module adds only how the report says it. A column is present in a results table
only where it was swept; a missing value in it means the key's default, 0. Plain data: no pandas.
"""

from __future__ import annotations

from dataclasses import dataclass

from selectivity.catalog import TRAINING_METHODS

__all__ = ["METHODS", "METHOD_KEYS", "REGULARIZER", "Method"]


@dataclass(frozen=True)
class Method:
    """A robustness-training method: its name, strength column (0 = off) and how to say it."""

    name: str
    key: str
    title: str
    strength_label: str  # axis label: the strength and its units
    variant_key: str = ""  # a trial column that splits the method into variants (the attack)


# How the report says each method of `catalog.TRAINING_METHODS`: title, strength axis label and
# the trial column that splits it into variants. A method added there without a line here fails
# at import, not in a half-drawn report.
_SAID: dict[str, tuple[str, str, str]] = {
    "noise": (
        "Gaussian-noise augmentation",
        "training noise σ  (noise_std, pixel scale [0, 1])",
        "",
    ),
    "mix": ("Corruption-mix augmentation", "corruption-mix severity  (mix_severity)", ""),
    "adversarial": (
        "Adversarial training",
        "training ε  (adv_eps, L∞, pixel scale [0, 1])",
        "adv_method",
    ),
}

METHODS: tuple[Method, ...] = tuple(
    Method(name, key, *_SAID[name]) for name, key in TRAINING_METHODS.items()
)

# The experiment of the papers: the regularizer's scale is its "strength".
REGULARIZER = Method("alpha", "alpha", "Regularizer (α)", "regularizer scale α")

# The strength columns, in the order of `METHODS`.
METHOD_KEYS: tuple[str, ...] = tuple(method.key for method in METHODS)

"""The range of every numeric key, and the one check that reads them: a number out of its key's
range, or a list key that gives a value twice, is a one-line `ConfigError` before anything is
written (`config`'s dataclasses call `check_values` when they are built).

Plain data and one loop: imports nothing of the package but errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from selectivity.errors import ConfigError

__all__ = ["EVAL_RANGES", "SWEEP_RANGES", "TRAIN_RANGES", "check_values", "range_text"]

# Key -> (lowest, highest, whether lowest itself is refused): what `check_values` asks of every
# number a key holds (each item of a list key); none and "auto" pass (their own checks apply).
_SEED = (0, 2**32 - 1, False)  # what numpy's and torch's generators take
_POSITIVE = (0.0, math.inf, True)
_NOT_NEGATIVE = (0.0, math.inf, False)
# torch's optimizers take lr, momentum and weight decay as float32: above, the first step overflows
_FLOAT32_MAX = 3.4028234663852886e38
_PIXELS = (0.0, 1.0, False)  # [0, 1] pixel units
TRAIN_RANGES: dict[str, tuple[float, float, bool]] = {
    "alpha": (-math.inf, math.inf, False),
    "seed": _SEED,
    **dict.fromkeys(("lr", "lr_gamma"), (0.0, _FLOAT32_MAX, True)),
    **dict.fromkeys(("momentum", "weight_decay"), (0.0, _FLOAT32_MAX, False)),
    "image_size": (8, 1024, False),
    "mix_width": (1, 16, False),
    "noise_std": _PIXELS,
    "adv_eps": _PIXELS,
    "adv_step_size": _POSITIVE,
    **dict.fromkeys(("noise_prob", "adv_fraction"), (0.0, 1.0, False)),
    "mix_severity": (0, 5, False),
    "adv_steps": (1, math.inf, False),
    "checkpoint_pgd_steps": (1, math.inf, False),
    "checkpoint_samples": (1, math.inf, False),
    "eval_batch_size": (1, math.inf, False),
}
EVAL_RANGES: dict[str, tuple[float, float, bool]] = {
    "corruption_seed": _SEED,
    "fgsm_eps": _PIXELS,
    "pgd_eps": _PIXELS,
    "autoattack_eps": _PIXELS,
    "pgd_step_size": _POSITIVE,
    "jacobian_projections": (1, math.inf, False),
    "gradient_max_units": (1, math.inf, False),
    "dimensionality_pgd_steps": (0, math.inf, False),
    "severities": (1, 5, False),
    "dimensionality_severity": (1, 5, False),
    "pgd_steps": (0, math.inf, False),
    "dimensionality_variance": (0.0, 1.0, True),
    "max_samples": (2, math.inf, False),
    "masking_eps": _PIXELS,
    "autoattack_samples": (1, math.inf, False),
}
SWEEP_RANGES = {
    "alphas": TRAIN_RANGES["alpha"],
    "seeds": _SEED,
    "workers": (1, math.inf, False),
    "cpus_per_trial": _POSITIVE,
    "gpus_per_trial": _NOT_NEGATIVE,
}


def range_text(low: float, high: float, open_low: bool) -> str:
    if high == _FLOAT32_MAX:
        return f"a number {'>' if open_low else '>='} {low:g}, at most 3.4e38 (float32)"
    if math.isinf(low):
        return "a finite number"
    if math.isinf(high):
        number = "" if isinstance(low, int) else "a finite number "
        return f"{number}{'>' if open_low else '>='} {low:g}"
    if isinstance(low, int) and isinstance(high, int):
        return f"in {low}..{high}"
    return f"in {'(' if open_low else '['}{low:g}, {high:g}]"


def check_values(config: Any, ranges: Mapping[str, tuple[float, float, bool]]) -> None:
    """One-line ConfigError for a number out of its key's range, or a list key that gives a
    value twice (a duplicate would be measured, and averaged, twice)."""
    for item in fields(config):
        value = getattr(config, item.name)
        if isinstance(value, tuple):
            _check(
                len(set(value)) == len(value),
                f"{item.name} has duplicates: {','.join(map(str, value))} (each value once)",
            )
        if item.name not in ranges:
            continue
        low, high, open_low = ranges[item.name]
        for number in value if isinstance(value, tuple) else (value,):
            if number is None or number == "auto":  # "auto": the key's rule (adv_step, pgd_step)
                continue
            above = _finite(number) and (low < number if open_low else low <= number)
            _check(
                above and number <= high,
                f"{item.name} must be {range_text(low, high, open_low)}"
                f"{' or auto' if 'str' in str(item.type) else ''}, got {number!r}",
            )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)

"""The small settings the tests share: digits training of seconds, evaluations on a few images.

A test that asserts a size from these reads it from here (`TINY_EVAL["max_samples"]`), so a
setting changes in one place. What a test is about stays spelled out in the test itself.
"""

from __future__ import annotations

from typing import Any

from selectivity.config import TrainConfig, build, train_preset

# The digits net's model, data set, batch sizes and learning rate (and its 12 epochs, which
# every use below replaces).
DIGITS: dict[str, Any] = train_preset("digits")


def fast(epochs: int = 1, *milestones: int) -> dict[str, Any]:
    """Training keys for `epochs` epochs on one thread, the lr dropping after `milestones`."""
    return {"epochs": epochs, "milestones": milestones, "num_threads": 1}


def digits_config(**overrides: Any) -> TrainConfig:
    """The digits preset for three epochs (the lr drops once, after the second), one thread."""
    return build(TrainConfig, DIGITS, fast(3, 2), overrides)


def set_options(keys: dict[str, Any]) -> list[str]:
    """`keys` as the CLI's `--set key=value` options (tuples as comma lists, `()` as empty)."""

    def text(value: Any) -> str:
        return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

    return [f"--set={key}={text(value)}" for key, value in keys.items()]


# AutoAttack's white-box pair on 16 images, 5 iterations, one target class: the part, its PGD
# and the masking flags all run, in about a second. Without it an evaluation of the full suite
# (a sweep's default) runs the standard ensemble, FAB-T and Square included: minutes.
TINY_AUTOATTACK: dict[str, Any] = {
    "autoattack_attacks": ("apgd-ce", "apgd-t"),
    "autoattack_samples": 16,
    "autoattack_iterations": 5,
    "autoattack_target_classes": 1,
}

# Every evaluation part on 40 images (20 for the analyses), one FGSM radius beside the clean
# one, PGD of one step: seconds on the digits net. No corruptions unless a test names some.
TINY_EVAL: dict[str, Any] = {
    "max_samples": 40,
    "analysis_samples": 20,
    "fgsm_eps": (0.0, 8 / 255),
    "pgd_eps": 8 / 255,
    "pgd_step_size": 2 / 255,
    "pgd_steps": (0, 1),
    "dimensionality_pgd_steps": 1,
    "gradient_max_units": 2,
    **TINY_AUTOATTACK,
}

# A sweep of one-epoch digits trials, one after the other, each evaluated as TINY_EVAL.
TINY_SWEEP: dict[str, Any] = {**DIGITS, **fast(1), **TINY_EVAL, "workers": 1}

"""Names shared across layers, as plain data: what a config key may name, without loading what
the name stands for.

The modules that implement these (corruptions, worstcase, robust, probe) import their names
from here, and `config` checks keys against them, so validating a config needs neither torch nor
the modules above it. This module imports nothing of the package.

Also here: eps as text (`format_eps`, `pixel_text`), one way everywhere a radius is written.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ADV_METHODS",
    "AUTOATTACK_ATTACKS",
    "AUTOATTACK_VERSIONS",
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTIONS",
    "CORRUPTION_FAMILIES",
    "CORRUPTION_TABLES",
    "TRAINING_METHODS",
    "TRAINING_SUBSET",
    "UNIT_TYPE_NAMES",
    "corruption_family",
    "format_eps",
    "heldout_corruptions",
    "in_grey_levels",
    "pixel_text",
]

# The 19 corruptions of Hendrycks & Dietterich (2019) in their conventional order: the 15 of the
# benchmark, then the 4 extra ones released for validation.
CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
    "speckle_noise",
    "gaussian_blur",
    "spatter",
    "saturate",
)

# The 15 of the benchmark (CIFAR-10-C, Tiny-ImageNet-C, ImageNet-C); the other 4 are extras.
BENCHMARK_CORRUPTIONS: tuple[str, ...] = CORRUPTIONS[:15]

# The benchmark's four families (Hendrycks & Dietterich 2019), each extra corruption in the family
# of what it resembles. Brightness is weather there, though `corruptions.digital` implements it
# (an HSV operation, like saturate).
CORRUPTION_FAMILIES: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"),
    "weather": ("snow", "frost", "fog", "brightness", "spatter"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate"),
}

# What corruption-mix training (`selectivity.robust.corruption_mix`) draws from by default: the
# extra noise and blur corruptions. Families are held out whole (`heldout_corruptions`): an extra
# corruption overlaps its family's benchmark ones in parameters (speckle_noise at severity 5
# gaussian_noise at 4-5, gaussian_blur defocus_blur), so names being disjoint is not enough.
# Training on noise and blur holds out weather and digital, 8 of the 15 (README "Held-out
# corruptions" says why this way round).
TRAINING_SUBSET: tuple[str, ...] = ("speckle_noise", "gaussian_blur")


def corruption_family(name: str) -> str:
    """The family (noise, blur, weather, digital) of corruption `name`; KeyError if unknown."""
    for family, members in CORRUPTION_FAMILIES.items():
        if name in members:
            return family
    raise KeyError(f"unknown corruption {name!r}")


def heldout_corruptions(
    trained: Iterable[str], evaluated: Iterable[str] = BENCHMARK_CORRUPTIONS
) -> tuple[str, ...]:
    """The corruptions of `evaluated` held out of training on `trained`: the benchmark ones whose
    family no trained operation belongs to (the extras never count, trained on or not), in
    `evaluated`'s order."""
    families = {corruption_family(name) for name in trained}
    return tuple(
        name
        for name in evaluated
        if name in BENCHMARK_CORRUPTIONS and corruption_family(name) not in families
    )


# The severity parameter tables (`selectivity.corruptions.tables.TABLES`), by benchmark.
CORRUPTION_TABLES: tuple[str, ...] = ("cifar10", "tinyimagenet", "imagenet")

# AutoAttack (`selectivity.worstcase`): each version's ensemble, in the order the package runs
# it, and every attack that `autoattack_attacks` may name.
AUTOATTACK_VERSIONS: dict[str, tuple[str, ...]] = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "rand": ("apgd-ce", "apgd-dlr"),
}
AUTOATTACK_ATTACKS: tuple[str, ...] = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")

# Robustness-training methods (`selectivity.robust`) -> the TrainConfig key of their strength
# (0: off); a sweep grids over these keys to compare methods.
TRAINING_METHODS: dict[str, str] = {
    "noise": "noise_std",
    "mix": "mix_severity",
    "adversarial": "adv_eps",
}
# The attacks adversarial training runs (`adv_method`).
ADV_METHODS: tuple[str, ...] = ("pgd", "fgsm")

# The activation module types the `unit_types` key names, in lower case
# (`selectivity.probe.UNIT_TYPE_NAMES` maps each to its torch.nn class).
UNIT_TYPE_NAMES: tuple[str, ...] = (
    "relu",
    "relu6",
    "gelu",
    "silu",
    "mish",
    "elu",
    "celu",
    "selu",
    "hardswish",
    "leaky_relu",
    "prelu",
    "rrelu",
)

# Radii are quoted in 8-bit grey levels (8/255); halves occur too (the papers' FGSM 0.5/255).
_GREY_LEVELS = 255


def format_eps(eps: float, digits: int | None = None) -> str:
    """An L-inf radius in [0, 1] pixel units as text: the one eps formatter.

    The short decimal where it is exact ('0', '0.1', '0.5'), else 'k/255' where `eps` is k/255
    bit for bit for a whole or half number k of grey levels ('4/255', '0.5/255'), else the
    shortest decimal that reads back exactly ('0.0123'), or with `digits` significant digits
    when given (labels and tables, where a long decimal would not be read). Without `digits`
    the text reads back as exactly `eps`: `config` parses 'k/255', so `--set key=<text>` gives
    the same float.
    """
    eps = float(eps)
    short = f"{eps:g}"
    if float(short) == eps:
        return short
    levels = f"{round(eps * _GREY_LEVELS * 2) / 2:g}"
    if float(levels) / _GREY_LEVELS == eps:
        return f"{levels}/{_GREY_LEVELS}"
    return repr(eps) if digits is None else f"{eps:.{digits}g}"


def in_grey_levels(key: str) -> bool:
    """Whether config key `key` is a distance in [0, 1] pixel units, written in grey levels by
    `format_eps` (trial folders, key listings): the radii (`*eps`) and attack steps
    (`*step_size`). Other floats (lr, noise_std, alpha) keep their decimal form."""
    return key.endswith(("eps", "step_size"))


def pixel_text(value: float, digits: int = 3) -> str:
    """A distance in [0, 1] pixel units, also in grey levels, for reading: '0.0314 (8/255)'.

    Rounded to `digits` significant digits (the grey levels to 3): for messages, not for
    reading back (`format_eps` is exact).
    """
    return f"{value:.{digits}g} ({value * _GREY_LEVELS:.3g}/{_GREY_LEVELS})"

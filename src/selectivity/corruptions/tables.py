"""Severity parameter tables of CIFAR-10-C, Tiny-ImageNet-C and ImageNet-C.

Values are those of the public generators (Hendrycks & Dietterich 2019), as collected in
`shared/reference/corruption-parameters.md`; severity s selects element s - 1. Units follow the
generators: images in [0, 1] unless a field says pixels.

Table-level constants the generators hard-code:
- `fog_mapsize`: side of the plasma fractal (cropped to the image).
- `frost_scale`: resize factor of the frost textures before the random crop.
- `elastic_fraction`: elastic_transform's (alpha, sigma, affine shift) are these fractions times
  the image side (the generators multiply by IMSIZE = 32 or 64). ImageNet-C multiplies by 244 on
  224-pixel images (its own comment: "244 should have been 224"); its fractions are stored
  pre-multiplied by 244/224 so that a 224-pixel image gets the published pixel values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

# The names live in the catalog (torch-free, for config); re-exported where they always were.
from selectivity.catalog import CORRUPTIONS, TRAINING_SUBSET

__all__ = ["CORRUPTIONS", "TABLES", "TRAINING_SUBSET", "Table", "get_table", "table_for_size"]


def _zooms(stop: float, step: float = 0.01) -> tuple[float, ...]:
    # np.arange exactly as the generators call it: float steps make e.g. arange(1, 1.06, 0.01)
    # end at 1.06, so the element count must come from the same call.
    return tuple(float(z) for z in np.arange(1, stop, step))


@dataclass(frozen=True)
class Table:
    """One benchmark's severity parameters: `params[name][severity - 1]`."""

    name: str
    params: Mapping[str, tuple[Any, ...]]
    fog_mapsize: int
    frost_scale: float

    def __post_init__(self) -> None:
        missing = set(CORRUPTIONS) - set(self.params)
        if missing:
            raise ValueError(f"table {self.name!r} lacks {sorted(missing)}")
        for name, levels in self.params.items():
            if len(levels) != 5:
                raise ValueError(
                    f"table {self.name!r}: {name} needs 5 severities, has {len(levels)}"
                )


_CIFAR10 = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": (_zooms(1.06), _zooms(1.11), _zooms(1.16), _zooms(1.21), _zooms(1.26)),
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "elastic_transform": (
        (0, 0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    ),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1),
    "spatter": (
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    ),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
}

_TINYIMAGENET = {
    "gaussian_noise": (0.04, 0.08, 0.12, 0.15, 0.18),
    "shot_noise": (250, 100, 50, 30, 15),
    "impulse_noise": (0.01, 0.02, 0.05, 0.08, 0.14),
    "defocus_blur": ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),
    "glass_blur": ((0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)),
    "motion_blur": ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)),
    "zoom_blur": (_zooms(1.06), _zooms(1.11), _zooms(1.16), _zooms(1.21), _zooms(1.26)),
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.8),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6),
    ),
    "frost": ((1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)),
    "fog": ((0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "elastic_transform": (
        (0, 0, 0.08),
        (0.05, 0.3, 0.06),
        (0.1, 0.08, 0.06),
        (0.1, 0.03, 0.03),
        (0.16, 0.03, 0.02),
    ),
    "pixelate": (0.9, 0.8, 0.7, 0.6, 0.5),
    "jpeg_compression": (65, 58, 50, 40, 25),
    "speckle_noise": (0.15, 0.2, 0.25, 0.3, 0.35),
    "gaussian_blur": (0.5, 0.75, 1, 1.25, 1.5),
    "spatter": (
        (0.62, 0.1, 0.7, 0.7, 0.6, 0),
        (0.65, 0.1, 0.8, 0.7, 0.6, 0),
        (0.65, 0.3, 1, 0.69, 0.6, 0),
        (0.65, 0.1, 0.7, 0.68, 0.6, 1),
        (0.65, 0.1, 0.5, 0.67, 0.6, 1),
    ),
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)),
}

_IMAGENET_ELASTIC_SCALE = 244 / 224

_IMAGENET = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60, 25, 12, 5, 3),
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "zoom_blur": (
        _zooms(1.11),
        _zooms(1.16),
        _zooms(1.21, 0.02),
        _zooms(1.26, 0.02),
        _zooms(1.31, 0.03),
    ),
    "snow": (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ),
    "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
    "fog": ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    # The reference documents only the first ImageNet-C row; the other four are the generator's
    # remaining rows as published (alpha, sigma, affine), all times 244.
    "elastic_transform": tuple(
        tuple(v * _IMAGENET_ELASTIC_SCALE for v in row)
        for row in (
            (2, 0.7, 0.1),
            (2, 0.08, 0.2),
            (0.05, 0.01, 0.02),
            (0.07, 0.01, 0.02),
            (0.12, 0.01, 0.02),
        )
    ),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    "jpeg_compression": (25, 18, 15, 10, 7),
    "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),
    "gaussian_blur": (1, 2, 3, 4, 6),
    "spatter": (
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    ),
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
}

TABLES: Mapping[str, Table] = MappingProxyType(
    {
        "cifar10": Table("cifar10", MappingProxyType(_CIFAR10), fog_mapsize=32, frost_scale=0.2),
        "tinyimagenet": Table(
            "tinyimagenet", MappingProxyType(_TINYIMAGENET), fog_mapsize=64, frost_scale=0.3
        ),
        "imagenet": Table(
            "imagenet", MappingProxyType(_IMAGENET), fog_mapsize=256, frost_scale=1.0
        ),
    }
)


def table_for_size(image_size: int) -> str:
    """The table whose benchmark images are closest in size: "cifar10" up to 48 px, "tinyimagenet"
    up to 128 px, "imagenet" above. `image_size` is the image side in pixels."""
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if image_size <= 48:
        return "cifar10"
    if image_size <= 128:
        return "tinyimagenet"
    return "imagenet"


def get_table(name: str) -> Table:
    """The `Table` called `name`; ValueError naming the choices otherwise."""
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(
            f"unknown corruption table {name!r}; choose one of {', '.join(TABLES)}"
        ) from None

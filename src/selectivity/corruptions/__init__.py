"""The corruption generator: CIFAR-10-C, Tiny-ImageNet-C and ImageNet-C corruptions on tensors.

`corrupt(images, name, severity)` applies one of the 19 corruptions of Hendrycks & Dietterich
(2019) to a batch of float images (N, C, H, W) in [0, 1] on any device, with the severity table of
the benchmark whose image size is closest (`table_for_size`), or the one named.
`generate_corruption_set` writes a whole set in the CIFAR-10-C layout.

The functions follow the public generators step by step (same parameters, same order of
operations, same 8-bit quantisation points, same border rules); they differ only in where the
generators call a library that is not a dependency here (ImageMagick, OpenCV, scikit-image), and
each family module says how that call is reproduced. Random draws come from a torch.Generator, so
the generated sets are reproducible but are not the published files (the generators used numpy's
unseeded global RNG); evaluate on the published files where comparability with the literature
matters.

Families: `noise`, `blur`, `weather`, `digital`; parameter tables: `tables`.
"""

from __future__ import annotations

from selectivity.corruptions.apply import corrupt, runnable_corruptions
from selectivity.corruptions.generate import generate_corruption_set, generate_from_dataset
from selectivity.corruptions.tables import (
    CORRUPTIONS,
    TABLES,
    TRAINING_SUBSET,
    table_for_size,
)
from selectivity.corruptions.weather import FrostTexturesMissing

__all__ = [
    "CORRUPTIONS",
    "TABLES",
    "TRAINING_SUBSET",
    "FrostTexturesMissing",
    "corrupt",
    "generate_corruption_set",
    "generate_from_dataset",
    "runnable_corruptions",
    "table_for_size",
]

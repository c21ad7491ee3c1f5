"""scikit-learn's handwritten digits (bundled, nothing to download)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from selectivity.data.images import (
    DataSplits,
    ImageSet,
    channel_stats,
    register_dataset,
)


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (images (1797, 8, 8) float64 grey levels 0-16, labels (1797,)
    int64), exactly as `sklearn.datasets.load_digits` gives them.

    Read from the file scikit-learn bundles, without importing scikit-learn: that import takes
    1.5 s, paid by every trial process and command run on digits (the file takes 5 ms). Where
    the file is not where scikit-learn has always kept it, scikit-learn reads it.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if bundled.is_file():
            table = np.loadtxt(bundled, delimiter=",")  # 64 pixels, then the label
            return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    return bunch.images, bunch.target


@register_dataset("digits")
def load_digits(
    data_dir: str | None = None, seed: int = 0, image_size: int | None = None
) -> DataSplits:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels), scaled to [0, 1].

    Resized bilinearly to `image_size` (default 16). The test split (20%) is fixed for every
    seed, so results of different seeds are comparable; validation (10%) is drawn per seed.
    """
    size = image_size or 16
    grey, target = digits_arrays()
    images = torch.from_numpy(grey).float().div_(16.0).unsqueeze(1)  # (N, 1, 8, 8)
    if size != 8:
        images = F.interpolate(
            images, size=(size, size), mode="bilinear", align_corners=False
        ).clamp_(0, 1)
    labels = torch.from_numpy(target).long()
    n = len(labels)
    fixed = np.random.default_rng(12345).permutation(n)
    n_test = n // 5
    test_idx, rest = fixed[:n_test], fixed[n_test:]
    per_seed = np.random.default_rng(seed).permutation(rest)
    n_val = n // 10
    val_idx, train_idx = per_seed[:n_val], per_seed[n_val:]
    full = ImageSet(images, labels)
    train = full.subset(train_idx)
    mean, std = channel_stats(train)
    return DataSplits(
        name="digits",
        train=train,
        val=full.subset(val_idx),
        test=full.subset(test_idx),
        num_classes=10,
        class_names=[str(i) for i in range(10)],
        mean=mean,
        std=std,
        augment=None,
    )

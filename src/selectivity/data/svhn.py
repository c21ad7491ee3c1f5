"""SVHN cropped digits, the ``.mat`` files (format 2)."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from selectivity.data.images import (
    DataError,
    DataSplits,
    crop_only,
    default_data_dir,
    register_dataset,
    resize_uint8,
    splits_from_arrays,
)
from selectivity.files import one_line

_SVHN_HINT = "the cropped-digits .mat files (format 2) from the SVHN site"


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 32, 32, 3) images and int64 (N,) labels in 0..9 from one SVHN .mat file."""
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(f"SVHN not found: expected {path} ({_SVHN_HINT})")
    try:
        content = loadmat(path)
    except Exception as error:  # scipy raises ValueError, TypeError, MatReadError...
        raise DataError(f"malformed SVHN file {path}: {one_line(error, with_type=True)}") from None
    images, labels = content.get("X"), content.get("y")
    if (
        images is None
        or labels is None
        or images.ndim != 4
        or images.shape[:3] != (32, 32, 3)
        or labels.size != images.shape[3]
    ):
        raise DataError(
            f"malformed SVHN file {path}: expected X of shape (32, 32, 3, N) and y of N labels"
        )
    # The files store digit 0 as label 10.
    labels = labels.reshape(-1).astype(np.int64) % 10
    return np.ascontiguousarray(images.transpose(3, 0, 1, 2), dtype=np.uint8), labels


@register_dataset("svhn")
def load_svhn(
    data_dir: str | os.PathLike | None = None, seed: int = 0, image_size: int | None = None
) -> DataSplits:
    """SVHN cropped digits: ``train_32x32.mat`` (73,257 images) and ``test_32x32.mat`` (26,032).

    Validation is 10% of each class of the training file, drawn per seed; the test file is the
    test set. No flip in the augmentation (digits are not mirror-symmetric): crop only.
    """
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if not (root / "train_32x32.mat").is_file() and (root / "svhn" / "train_32x32.mat").is_file():
        root = root / "svhn"
    train_images, train_labels = _read_svhn(root / "train_32x32.mat")
    test_images, test_labels = _read_svhn(root / "test_32x32.mat")
    size = image_size or 32
    return splits_from_arrays(
        "svhn",
        resize_uint8(train_images, size),
        train_labels,
        resize_uint8(test_images, size),
        test_labels,
        [str(i) for i in range(10)],
        seed,
        augment=partial(crop_only, padding=max(1, size // 8)),
    )

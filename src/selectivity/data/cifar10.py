"""CIFAR-10, the python version as published (``cifar-10-batches-py/``)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from selectivity.data.images import (
    DataError,
    DataSplits,
    augment_for,
    find_published_root,
    register_dataset,
    resize_uint8,
    splits_from_arrays,
)
from selectivity.files import one_line

CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_HINT = "the python version from the CIFAR-10 site, unpacked"
_CIFAR10_PIXELS = 3 * 32 * 32

# The only globals a CIFAR pickle may name: numpy arrays, and the codec that protocol-2 pickles
# written by Python 3 use for bytes. Anything else is refused, so a tampered file cannot run code.
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _find_cifar10(data_dir: str | os.PathLike | None) -> Path:
    return find_published_root(data_dir, CIFAR10_FOLDER, "data_batch_1", "CIFAR-10", _CIFAR10_HINT)


def _unpickle_cifar(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"CIFAR-10 file not found: expected {path} ({_CIFAR10_HINT})")
    try:
        with open(path, "rb") as f:
            # encoding="bytes": the published files are Python 2 pickles with bytes keys.
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as error:  # whatever a damaged pickle raises, it is a bad file
        raise DataError(
            f"malformed CIFAR-10 file {path}: expected a python pickle ({one_line(error, with_type=True)})"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(
            f"malformed CIFAR-10 file {path}: expected a pickled dict, found {type(obj).__name__}"
        )
    return obj


def _read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file -> (uint8 (N, 32, 32, 3), int64 (N,))."""
    batch = _unpickle_cifar(path)
    if b"data" not in batch or b"labels" not in batch:
        found = ", ".join(repr(k) for k in batch)
        raise DataError(
            f"malformed CIFAR-10 batch {path}: expected the keys b'data' and b'labels', found {found}"
        )
    data = batch[b"data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != _CIFAR10_PIXELS
    ):
        found = (
            f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        )
        raise DataError(
            f"malformed CIFAR-10 batch {path}: expected b'data' uint8 (N, {_CIFAR10_PIXELS}), found {found}"
        )
    try:
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise DataError(
            f"malformed CIFAR-10 batch {path}: b'labels' is not a list of ints ({one_line(error, with_type=True)})"
        ) from None
    if labels.shape != (data.shape[0],):
        raise DataError(
            f"malformed CIFAR-10 batch {path}: expected {data.shape[0]} labels (one per row of b'data'), found shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(
            f"malformed CIFAR-10 batch {path}: expected labels in 0..9, found {labels.min()}..{labels.max()}"
        )
    # Each row holds the R, G and B planes in turn, each 32 rows of 32 pixels: (N, C, H, W) -> NHWC.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def _read_cifar10_names(path: Path) -> list[str]:
    meta = _unpickle_cifar(path)
    names = meta.get(b"label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise DataError(
            f"malformed CIFAR-10 file {path}: expected b'label_names', a list of 10 names"
        )
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


@register_dataset("cifar10")
def load_cifar10(
    data_dir: str | os.PathLike | None = None, seed: int = 0, image_size: int | None = None
) -> DataSplits:
    """CIFAR-10, python version: 50k training images of 32x32x3, 10 classes, 10k test images.

    data_dir: the ``cifar-10-batches-py`` folder or its parent (default: `default_data_dir()`).
    Splits: validation is 10% of each class of the 50k training images (500 per class, 5,000 in
    all), drawn per seed, so every seed sees balanced classes; train is the other 45,000. Test is
    the official ``test_batch`` in its published order (the order CIFAR-10-C follows).
    Images stay uint8 NHWC in memory (~150 MB); `image_size` other than 32 resizes them (bilinear).
    mean/std: per-channel statistics of this seed's training split, in [0, 1] units (they differ
    from the usual CIFAR-10 constants only in the fourth decimal).
    augment: random flip + random crop of the 4-px zero-padded image.
    """
    folder = _find_cifar10(data_dir)
    # The meta file first: a missing file is reported before 150 MB are read.
    class_names = _read_cifar10_names(folder / "batches.meta")
    parts = [_read_cifar10_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    train_images = np.concatenate([p[0] for p in parts])  # also makes the NHWC view contiguous
    train_labels = np.concatenate([p[1] for p in parts])
    test_images, test_labels = _read_cifar10_batch(folder / "test_batch")
    test_images = np.ascontiguousarray(test_images)
    size = image_size or 32
    train_images = resize_uint8(train_images, size)
    test_images = resize_uint8(test_images, size)

    return splits_from_arrays(
        "cifar10",
        train_images,
        train_labels,
        test_images,
        test_labels,
        class_names,
        seed,
        augment=augment_for(size),
    )

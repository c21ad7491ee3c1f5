"""Tiny ImageNet as published (``tiny-imagenet-200/``); decoded JPEGs are cached (`decode`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from selectivity.data.decode import decoded_cached, is_jpeg
from selectivity.data.images import (
    DataError,
    DataSplits,
    ImageSet,
    augment_for,
    find_published_root,
    labels_tensor,
    per_class_split,
    register_dataset,
    resize_uint8,
    uint8_channel_stats,
)

TINYIMAGENET_FOLDER = "tiny-imagenet-200"
_TINY_HINT = "Tiny ImageNet as published, unpacked"


def _find_tinyimagenet(data_dir: str | os.PathLike | None) -> Path:
    return find_published_root(
        data_dir, TINYIMAGENET_FOLDER, "wnids.txt", "Tiny ImageNet", _TINY_HINT
    )


def _read_wnids(root: Path) -> list[str]:
    path = root / "wnids.txt"
    wnids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not wnids:
        raise DataError(
            f"malformed Tiny ImageNet file {path}: expected one wnid per line, found none"
        )
    if len(set(wnids)) != len(wnids):
        duplicate = next(w for w in wnids if wnids.count(w) > 1)
        raise DataError(
            f"malformed Tiny ImageNet file {path}: expected each wnid once, {duplicate} appears twice"
        )
    return wnids


def _tiny_train_files(root: Path, wnids: list[str]) -> tuple[list[Path], np.ndarray]:
    """Training files in class order, then file-name order; labels = position in wnids.txt."""
    paths: list[Path] = []
    labels: list[int] = []
    for label, wnid in enumerate(wnids):
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise DataError(
                f"Tiny ImageNet training images not found: expected the folder {folder} (one per line of {root / 'wnids.txt'})"
            )
        files = sorted(p for p in folder.iterdir() if is_jpeg(p))
        if not files:
            raise DataError(f"Tiny ImageNet training images not found: expected {folder}/*.JPEG")
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


def _tiny_val_files(root: Path, wnids: list[str]) -> tuple[list[Path], np.ndarray]:
    """Official validation files in the order of val_annotations.txt, with their labels."""
    path = root / "val" / "val_annotations.txt"
    if not path.is_file():
        raise DataError(
            f"Tiny ImageNet validation labels not found: expected {path} ({_TINY_HINT})"
        )
    index = {w: i for i, w in enumerate(wnids)}
    paths: list[Path] = []
    labels: list[int] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(
                f"malformed Tiny ImageNet file {path} line {number}: expected tab-separated file, wnid, x0, y0, x1, y1"
            )
        name, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in index:
            raise DataError(
                f"malformed Tiny ImageNet file {path} line {number}: wnid {wnid} is not in {root / 'wnids.txt'}"
            )
        image = root / "val" / "images" / name
        if not image.is_file():
            raise DataError(
                f"Tiny ImageNet validation image not found: expected {image} (named in {path} line {number})"
            )
        paths.append(image)
        labels.append(index[wnid])
    if not paths:
        raise DataError(
            f"malformed Tiny ImageNet file {path}: expected one line per validation image, found none"
        )
    return paths, np.asarray(labels, dtype=np.int64)


@register_dataset("tinyimagenet")
def load_tinyimagenet(
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    image_size: int | None = None,
    val_per_class: int = 50,
) -> DataSplits:
    """Tiny ImageNet: 200 classes of 64x64x3 images, 500 training and 50 validation images each.

    data_dir: the ``tiny-imagenet-200`` folder or its parent (default: `default_data_dir()`).
    Class index = position in wnids.txt; `class_names` are the wnids (what Tiny-ImageNet-C folders
    are named by: pass them to `corruptions.store.open_corrupted`).
    Splits: `val_per_class` (50) training images of each class are held out for validation, drawn
    per seed; train is the rest (450 per class, 90k in all); the official val set
    (``val/images`` labelled by ``val/val_annotations.txt``, in that file's order) is the test set.
    Greyscale JPEGs are converted to RGB. `image_size` other than 64 resizes (bilinear).
    Decoding all 110k JPEGs takes about a minute; the decoded uint8 (N, 64, 64, 3) arrays are
    cached as ``<root>/.selectivity-cache/{train,val}-<fingerprint>.npy`` (1.2 GB + 123 MB), or in
    the user cache dir if the data folder is read-only, and reused while the file list is unchanged.
    mean/std: per-channel statistics of this seed's training split, in [0, 1] units.
    augment: random flip + random crop of the 8-px zero-padded image (the CIFAR recipe's 1/8 of
    the side, scaled to 64 px).
    """
    root = _find_tinyimagenet(data_dir)
    wnids = _read_wnids(root)
    train_paths, train_labels = _tiny_train_files(root, wnids)
    test_paths, test_labels = _tiny_val_files(root, wnids)
    counts = np.bincount(train_labels, minlength=len(wnids))
    short = int(np.argmin(counts))
    if counts[short] <= val_per_class:
        raise DataError(
            f"Tiny ImageNet class {wnids[short]} has {counts[short]} training images in "
            f"{root / 'train' / wnids[short] / 'images'}; expected more than the {val_per_class} held out for validation"
        )
    # Listing and decoding happen before the split: a bad file is reported whatever the seed.
    all_train = decoded_cached(train_paths, root, "train")
    test_images = np.array(decoded_cached(test_paths, root, "val"))  # 123 MB: kept in memory
    train_idx, val_idx = per_class_split(train_labels, np.full(len(wnids), val_per_class), seed)
    # Fancy indexing copies the selected rows out of the memory-mapped cache into RAM.
    train_images = np.asarray(all_train[train_idx])
    val_images = np.asarray(all_train[val_idx])
    size = image_size or train_images.shape[1]
    train_images, val_images, test_images = (
        resize_uint8(a, size) for a in (train_images, val_images, test_images)
    )
    mean, std = uint8_channel_stats(train_images)
    return DataSplits(
        name="tinyimagenet",
        train=ImageSet(train_images, labels_tensor(train_labels[train_idx])),
        val=ImageSet(val_images, labels_tensor(train_labels[val_idx])),
        test=ImageSet(test_images, labels_tensor(test_labels)),
        num_classes=len(wnids),
        class_names=wnids,
        mean=mean,
        std=std,
        augment=augment_for(size),
    )

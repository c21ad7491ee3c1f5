"""A user's own images: one folder per class."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from selectivity.data.decode import decode_to_size
from selectivity.data.images import (
    DataError,
    DataSplits,
    augment_for,
    per_class_split,
    register_dataset,
    splits_from_arrays,
)

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
_FOLDER_HINT = "one sub-folder of images per class, under train/ and test/ (or directly, then 20% are held out for test)"


def _entries(folder: Path) -> list[os.DirEntry]:
    """The entries of `folder`; DataError (one line) when it cannot be listed.

    Path.glob and Path.iterdir-based filters skip a folder they cannot read without a word,
    which would make an unreadable class an empty one. os.access catches what listing does not
    (a folder readable but not searchable, whose files could then not be opened).
    """
    if not os.access(folder, os.R_OK | os.X_OK):
        raise DataError(f"cannot read the image folder {folder}: permission denied")
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as error:
        raise DataError(
            f"cannot read the image folder {folder}: {error.strerror or error}"
        ) from None


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _class_images(
    folder: Path, class_names: list[str] | None = None
) -> tuple[list[Path], np.ndarray, list[str]]:
    """Every image of each class folder, labelled by the class's index. Without `class_names`
    (the split that defines the classes) the classes are `folder`'s sub-folders, and each must
    hold an image; with them (the test split), a class may be absent."""
    classes = class_names or sorted(
        e.name for e in _entries(folder) if _is_folder(e) and not e.name.startswith(".")
    )
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        files = (
            sorted(
                folder / name / e.name
                for e in _entries(folder / name)
                if Path(e.name).suffix.lower() in _IMAGE_SUFFIXES and not e.name.startswith(".")
            )
            if (folder / name).is_dir()
            else []
        )
        if not files and class_names is None and len(classes) >= 2:
            raise DataError(
                f"class folder {folder / name} holds no images ({', '.join(sorted(_IMAGE_SUFFIXES))})"
            )
        paths += files
        labels += [index] * len(files)
    if len(classes) < 2 or not paths:
        raise DataError(
            f"image folder {folder} has {len(classes)} class folder(s) and {len(paths)} images: expected {_FOLDER_HINT}"
        )
    return paths, np.asarray(labels, dtype=np.int64), classes


@register_dataset("folder")
def load_image_folder(
    data_dir: str | os.PathLike | None = None, seed: int = 0, image_size: int | None = None
) -> DataSplits:
    """Any images, one sub-folder per class: ``DIR/train/<class>/*`` and ``DIR/test/<class>/*``.

    Without train/ and test/, ``DIR/<class>/*`` is split: a fixed 20% of each class for test (the
    same for every seed), then 10% of each class of the rest for validation, drawn per seed.
    Class ids follow the sorted train class-folder names. Images are decoded as RGB; they must
    share one size unless `image_size` is set, which resizes each one. Augmentation: flip + crop.
    """
    if data_dir is None:
        raise DataError(f"dataset 'folder' needs data_dir: {_FOLDER_HINT}")
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root} ({_FOLDER_HINT})")
    if (root / "train").is_dir() and (root / "test").is_dir():
        train_paths, train_labels, classes = _class_images(root / "train")
        test_paths, test_labels, _ = _class_images(root / "test", classes)
    else:
        paths, labels, classes = _class_images(root)
        counts = np.bincount(labels, minlength=len(classes))
        rest, test = per_class_split(labels, counts // 5, seed=12345)
        train_paths, train_labels = [paths[i] for i in rest], labels[rest]
        test_paths, test_labels = [paths[i] for i in test], labels[test]
    train_images = decode_to_size(train_paths, image_size)
    test_images = decode_to_size(test_paths, image_size)
    if test_images.shape[1:] != train_images.shape[1:]:
        raise DataError(
            f"test images are {test_images.shape[2]}x{test_images.shape[1]}, train images {train_images.shape[2]}x{train_images.shape[1]}: set image_size"
        )
    return splits_from_arrays(
        "folder",
        train_images,
        train_labels,
        test_images,
        test_labels,
        classes,
        seed,
        augment=augment_for(train_images.shape[1]),
    )

"""Corruption sets on disk: the CIFAR-10-C and Tiny-ImageNet-C layouts, read memory-mapped.

- CIFAR-10-C layout (also what ``selectivity corrupt`` writes): ``<root>/<name>.npy`` uint8
  (S*N, H, W, C), severity s in rows [(s-1)*N, s*N), and ``<root>/labels.npy`` (S*N,), S = 5.
- Tiny-ImageNet-C layout: ``<root>/<name>/<severity>/<wnid>/*.JPEG``, decoded once and cached like
  Tiny ImageNet (`data.decoded_cached`).

The layout is guessed from the files (`stored_corruptions`, `open_corrupted`); `root` may also be a
folder holding ``CIFAR-10-C/`` or ``Tiny-ImageNet-C/`` as the published archives unpack. Every
missing, incomplete or malformed file raises `DataError` with one line naming what was expected
where. Generating a set: `selectivity.corruptions.generate_corruption_set`.
"""

from __future__ import annotations

import errno
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from selectivity.data import DataError, ImageSet, decoded_cached, is_jpeg, labels_tensor
from selectivity.files import atomic_path, one_line

__all__ = [
    "NUM_SEVERITIES",
    "follows_test_order",
    "is_complete",
    "open_corrupted",
    "save_json",
    "save_npy",
    "stored_corruptions",
    "write_rows",
]

# Severities per corruption in CIFAR-10-C, Tiny-ImageNet-C and what `selectivity corrupt` writes.
NUM_SEVERITIES = 5


_NPY_LAYOUT = "npy"
_FOLDER_LAYOUT = "folders"
# Folder names the published archives unpack to; a root holding one of them is accepted too.
_CORRUPTION_FOLDERS = ("CIFAR-10-C", "Tiny-ImageNet-C")
_LAYOUTS_HINT = "<name>.npy files + labels.npy (CIFAR-10-C layout) or <name>/<severity>/<wnid>/*.JPEG (Tiny-ImageNet-C layout)"


def _severity_folders(folder: Path) -> list[Path]:
    return [d for d in folder.iterdir() if d.is_dir() and d.name.isdigit()]


def _npy_names(root: Path) -> list[str]:
    return sorted(
        p.stem for p in root.glob("*.npy") if p.stem != "labels" and not p.name.startswith(".")
    )


def _folder_names(root: Path) -> list[str]:
    return sorted(
        d.name
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(".") and _severity_folders(d)
    )


def _layout_of(root: Path) -> str | None:
    if (root / "labels.npy").is_file():
        return _NPY_LAYOUT
    if _npy_names(root):
        raise DataError(
            f"CIFAR-10-C labels not found: expected {root / 'labels.npy'} beside the <name>.npy files"
        )
    if _folder_names(root):
        return _FOLDER_LAYOUT
    return None


def _corruption_root(root: str | os.PathLike) -> tuple[Path, str]:
    """(folder holding the corruptions, layout) for `root` or a published folder inside it."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"corruption set not found: expected a folder {root} holding {_LAYOUTS_HINT}"
        )
    layout = _layout_of(root)
    if layout is not None:
        return root, layout
    for name in _CORRUPTION_FOLDERS:
        if (root / name).is_dir() and (layout := _layout_of(root / name)) is not None:
            return root / name, layout
    raise DataError(f"no corruption set found: expected {root} to hold {_LAYOUTS_HINT}")


def stored_corruptions(root: str | os.PathLike) -> list[str]:
    """Sorted names of the corruptions under `root` (either layout, detected from the files).

    `root` is the corruption folder itself or a folder holding ``CIFAR-10-C/`` or
    ``Tiny-ImageNet-C/``. Raises DataError when neither layout is found.
    """
    folder, layout = _corruption_root(root)
    return _npy_names(folder) if layout == _NPY_LAYOUT else _folder_names(folder)


def is_complete(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether `path` is a readable .npy of exactly `shape` and `dtype` (a writer's finished file;
    a missing, truncated or differently shaped one is not)."""
    if not path.is_file():
        return False
    try:
        existing = np.load(path, mmap_mode="r")
    except (ValueError, OSError):
        return False
    return existing.shape == shape and existing.dtype == dtype


def _load_npy_mmap(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        # np.load would take any other file for a pickle and answer with a misleading message.
        raise DataError(
            f"malformed corruption file {path}: expected a .npy array, found no NumPy header"
        )
    try:
        return np.load(path, mmap_mode="r")
    except Exception as error:  # truncated header, not an .npy at all, object arrays
        raise DataError(
            f"malformed corruption file {path}: expected a .npy array ({one_line(error, with_type=True)})"
        ) from None


def _open_npy_corruption(
    root: Path,
    corruption: str,
    severity: int,
    class_names: Sequence[str] | None,
    expected: ImageSet | None,
) -> ImageSet:
    path = root / f"{corruption}.npy"
    labels_path = root / "labels.npy"
    if not path.is_file():
        raise DataError(
            f"corruption {corruption!r} not found: expected {path} (found: {', '.join(_npy_names(root)) or 'none'})"
        )
    images = _load_npy_mmap(path)
    all_labels = _load_npy_mmap(labels_path)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(
            f"malformed corruption file {path}: expected uint8 (S*N, H, W, C), found {images.dtype} {images.shape}"
        )
    if all_labels.ndim != 1 or not np.issubdtype(all_labels.dtype, np.integer):
        raise DataError(
            f"malformed labels file {labels_path}: expected integers (S*N,), found {all_labels.dtype} {all_labels.shape}"
        )
    rows = images.shape[0]
    if all_labels.shape[0] != rows:
        raise DataError(
            f"{labels_path} holds {all_labels.shape[0]} labels; expected {rows}, one per image row of {path}"
        )
    if expected is not None:
        n = len(expected)
        if rows != NUM_SEVERITIES * n:
            raise DataError(
                f"{labels_path} holds {rows} labels; expected {NUM_SEVERITIES * n}, one per severity (1..{NUM_SEVERITIES}) "
                f"and clean test image ({n})"
            )
        c, h, w = expected.image_shape
        if tuple(images.shape[1:]) != (h, w, c):
            found = "x".join(map(str, images.shape[1:]))
            raise DataError(
                f"{path} holds {found} (H x W x C) images; expected {h}x{w}x{c} like the clean test set"
            )
    else:
        if rows == 0 or rows % NUM_SEVERITIES:
            raise DataError(
                f"{path} holds {rows} rows; expected {NUM_SEVERITIES} severities of equal size"
            )
        n = rows // NUM_SEVERITIES
    if not 1 <= severity <= NUM_SEVERITIES:
        raise DataError(
            f"severity {severity} not in {path}: expected 1..{NUM_SEVERITIES} (blocks of {n} rows)"
        )
    lo, hi = (severity - 1) * n, severity * n
    labels = np.asarray(all_labels[lo:hi], dtype=np.int64)
    if expected is not None:
        clean = expected.labels.cpu().numpy()
        wrong = np.flatnonzero(labels != clean)
        if wrong.size:
            i = int(wrong[0])
            raise DataError(
                f"labels in {labels_path} rows [{lo}, {hi}) (severity {severity}) do not match the clean test labels: "
                f"row {lo + i} is {labels[i]}, clean test image {i} is {clean[i]}"
            )
    if (
        class_names is not None
        and labels.size
        and (labels.min() < 0 or labels.max() >= len(class_names))
    ):
        raise DataError(
            f"labels in {labels_path} rows [{lo}, {hi}) run {labels.min()}..{labels.max()}; expected 0..{len(class_names) - 1}"
        )
    # A basic slice of a memmap is a memmap: nothing is read until a batch asks for its rows.
    return ImageSet(images[lo:hi], labels_tensor(labels))


def _open_folder_corruption(
    root: Path,
    corruption: str,
    severity: int,
    class_names: Sequence[str] | None,
    expected: ImageSet | None,
) -> ImageSet:
    if class_names is None:
        raise DataError(
            f"Tiny-ImageNet-C labels come from the <wnid> folders in {root}: pass class_names, the wnid list in wnids.txt order"
        )
    folder = root / corruption
    if not folder.is_dir():
        raise DataError(
            f"corruption {corruption!r} not found: expected the folder {folder} (found: {', '.join(_folder_names(root)) or 'none'})"
        )
    severity_folder = folder / str(severity)
    if not severity_folder.is_dir():
        raise DataError(
            f"severity {severity} of {corruption!r} not found: expected the folder {severity_folder}"
        )
    index = {w: i for i, w in enumerate(class_names)}
    paths: list[Path] = []
    labels: list[int] = []
    # Sorted wnid folders, then sorted files: a fixed order, so the cache fingerprint is stable.
    for class_folder in sorted(
        d for d in severity_folder.iterdir() if d.is_dir() and not d.name.startswith(".")
    ):
        if class_folder.name not in index:
            raise DataError(
                f"unknown class folder {class_folder}: expected one of the {len(index)} wnids passed as class_names"
            )
        files = sorted(p for p in class_folder.iterdir() if is_jpeg(p))
        paths += files
        labels += [index[class_folder.name]] * len(files)
    if not paths:
        raise DataError(f"no images found: expected {severity_folder}/<wnid>/*.JPEG")
    images = decoded_cached(paths, root, f"{corruption}-s{severity}")
    if expected is not None:
        c, h, w = expected.image_shape
        if tuple(images.shape[1:]) != (h, w, c):
            found = "x".join(map(str, images.shape[1:]))
            raise DataError(
                f"{severity_folder} holds {found} (H x W x C) images; expected {h}x{w}x{c} like the clean test set"
            )
    return ImageSet(images, labels_tensor(np.asarray(labels, dtype=np.int64)))


def open_corrupted(
    root: str | os.PathLike,
    corruption: str,
    severity: int,
    class_names: Sequence[str] | None = None,
    expected: ImageSet | None = None,
) -> ImageSet:
    """One corruption at one severity (1..5) as an ImageSet of uint8 (N, H, W, C) images.

    CIFAR-10-C layout: ``<root>/<corruption>.npy`` uint8 (S*N, H, W, C), rows [(s-1)*N, s*N) for
    severity s, and ``<root>/labels.npy`` (S*N,). Opened with mmap_mode="r": the ImageSet holds a
    np.memmap slice and rows are read only when batched. S = 5; N = len(expected) when given
    (the file must then hold exactly 5 x N rows), else rows / 5.
    Tiny-ImageNet-C layout: ``<root>/<corruption>/<severity>/<wnid>/*.JPEG``; label = position of
    the wnid in `class_names` (required: the Tiny ImageNet wnids, e.g. `DataSplits.class_names`).
    Decoded once and cached like Tiny ImageNet, then memory-mapped (in memory if no cache can be
    written). Order: wnid folders sorted, then file names.
    expected: the clean test ImageSet. Checked against it: image shape (H, W, C) for both layouts;
    for the .npy layout also that the labels file holds S x len(expected) rows and that this
    severity's labels equal the clean test labels (CIFAR-10-C follows test-set order). Tiny-
    ImageNet-C's images are not the Tiny ImageNet val images, so its labels are not compared.
    Any mismatch, missing file or folder raises DataError naming what was expected where.
    """
    folder, layout = _corruption_root(root)
    opener = _open_npy_corruption if layout == _NPY_LAYOUT else _open_folder_corruption
    return opener(folder, corruption, int(severity), class_names, expected)


def follows_test_order(root: str | os.PathLike) -> bool:
    """Whether `root` itself holds ``.npy`` files: the CIFAR-10-C layout, whose rows follow the
    clean test set's order, so `open_corrupted` can check them against it. Published
    Tiny-ImageNet-C images are not the Tiny ImageNet val images; their order is not matched."""
    return any(Path(root).glob("*.npy"))


# --- writing the CIFAR-10-C layout ----------------------------------------------------------


def save_npy(path: Path, array: np.ndarray) -> None:
    """`array` as the .npy `path`, written under a temporary name and renamed."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.save(handle, array)


def save_json(path: Path, payload: dict) -> None:
    """`payload` as indented JSON in `path`, written under a temporary name and renamed."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2) + "\n")


def write_rows(path: Path, shape: tuple[int, ...], blocks: Iterable[np.ndarray]) -> None:
    """The uint8 .npy `path` of `shape`, from row blocks given in file order, atomically.

    Rows are appended as they come, so the whole array never sits in memory. The file is not
    memory-mapped: a full disk under a mapping kills the process with SIGBUS, while plain writes
    raise OSError; and its size is reserved first, so a full disk fails before any block is
    computed. ValueError when the blocks do not hold exactly `shape`.
    """
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        if math.prod(shape) == 0:
            np.save(handle, np.zeros(shape, dtype=np.uint8))
            return
        np.lib.format.write_array_header_1_0(
            handle,
            {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                "fortran_order": False,
                "shape": shape,
            },
        )
        _reserve(handle, handle.tell() + math.prod(shape))
        rows = 0
        for block in blocks:
            if block.dtype != np.uint8 or block.shape[1:] != shape[1:]:
                raise ValueError(f"{path}: a block of {block.dtype} {block.shape} in {shape} uint8")
            handle.write(np.ascontiguousarray(block).data.cast("B"))
            rows += len(block)
        if rows != shape[0]:
            raise ValueError(f"{path}: {rows} rows written, {shape[0]} expected")


def _reserve(handle: BinaryIO, size: int) -> None:
    """Allocate `size` bytes of the open file now, so a full disk fails before any computing."""
    try:
        os.posix_fallocate(handle.fileno(), 0, size)
    except AttributeError:
        pass  # no posix_fallocate (macOS, Windows): a full disk surfaces at the write instead
    except OSError as error:
        # Some file systems cannot preallocate; the writes then find a full disk themselves.
        if error.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise

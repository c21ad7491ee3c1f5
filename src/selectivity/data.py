"""Data sets as in-memory (or memory-mapped) image arrays with fixed, seeded splits.

Every loader returns a `DataSplits` of `ImageSet`s. Batches come out as float32 (N, C, H, W) in
[0, 1] and int64 labels; augmentation is done on batches of tensors (on the training device),
so there is no DataLoader and no torchvision.

Data sets (`load_dataset(name, data_dir, seed, image_size)`):

- ``digits``: scikit-learn's 8x8 digits (bundled, nothing to download).
- ``cifar10``: the python version of CIFAR-10 as published (``cifar-10-batches-py/``).
- ``tinyimagenet``: Tiny ImageNet as published (``tiny-imagenet-200/``); decoded JPEGs are cached
  as ``.npy`` files (see `load_tinyimagenet`).

Corruption sets (CIFAR-10-C, Tiny-ImageNet-C) are read by `selectivity.corruptions.store`, which
shares the JPEG decoding cache below (`decoded_cached`).

Where files live: ``data_dir`` when given, else ``$SELECTIVITY_DATA``, else ``./data``. Decoded-JPEG
caches go to ``<data root>/.selectivity-cache/`` when that folder is writable, else to
``$SELECTIVITY_CACHE_DIR`` (default ``$XDG_CACHE_HOME/selectivity`` or ``~/.cache/selectivity``),
else they are skipped with a warning. Every missing or malformed file raises `DataError` with one
line naming what was expected where.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from selectivity.files import atomic_path, one_line

__all__ = [
    "DataError",
    "DataSplits",
    "ImageSet",
    "default_data_dir",
    "flip_and_crop",
    "list_datasets",
    "load_cifar10",
    "load_dataset",
    "load_tinyimagenet",
    "register_dataset",
]


class DataError(ValueError):
    """A data folder is missing or malformed; the message says what was expected where."""


@dataclass(frozen=True)
class ImageSet:
    """Images and labels.

    images: a numpy array (N, H, W, C) (possibly memory-mapped: read batch by batch) or a tensor
        (N, C, H, W), C = 1 or 3; uint8 (0..255, scaled to [0, 1] here) or floating point
        already in [0, 1] (taken as is). labels: int64 (N,).
    Anything else raises DataError at construction: float values outside [0, 1] (0..255 floats
    would otherwise be read as 255x too bright, and [0, 1] floats scaled again 255x too dark),
    other dtypes, or a channel axis that does not fit the layout (NCHW given as numpy, NHWC as a
    tensor).
    """

    images: np.ndarray | Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        images = self.images
        if isinstance(images, Tensor):
            layout, axis, other, flipped = "a tensor", 1, 3, "(N, H, W, C)"
            floating, integral = images.is_floating_point(), images.dtype == torch.uint8
            wanted = "(N, C, H, W)"
        elif isinstance(images, np.ndarray):
            layout, axis, other, flipped = "a numpy array", 3, 1, "(N, C, H, W)"
            floating = np.issubdtype(images.dtype, np.floating)
            integral = images.dtype == np.uint8
            wanted = "(N, H, W, C)"
        else:
            raise DataError(
                f"ImageSet images must be a numpy array (N, H, W, C) or a tensor (N, C, H, W), "
                f"got {type(images).__name__}"
            )
        shape = tuple(images.shape)
        if len(shape) != 4:
            raise DataError(f"ImageSet images as {layout} must be {wanted}, got shape {shape}")
        if shape[axis] not in (1, 3):
            hint = (
                f"; it looks like {flipped}: transpose it to {wanted}"
                if shape[other] in (1, 3)
                else ""
            )
            raise DataError(
                f"ImageSet images as {layout} must be {wanted} with C = 1 or 3, "
                f"got shape {shape}{hint}"
            )
        if not (floating or integral):
            raise DataError(
                f"ImageSet images must be uint8 (0..255) or floating point in [0, 1], "
                f"got dtype {images.dtype}"
            )
        count = images.size if isinstance(images, np.ndarray) else images.numel()
        if floating and count:
            low, high = float(images.min()), float(images.max())
            if not (low >= 0.0 and high <= 1.0):
                scale = " (0..255 values? divide by 255 or pass uint8)" if high > 1 else ""
                raise DataError(
                    f"ImageSet float images must lie in [0, 1], got range [{low:.4g}, {high:.4g}]"
                    f"{scale}"
                )
        if len(self.labels) != shape[0]:
            raise DataError(f"ImageSet has {shape[0]} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        if isinstance(self.images, Tensor):
            return tuple(self.images.shape[1:])  # type: ignore[return-value]
        _n, h, w, c = self.images.shape
        return (c, h, w)

    def batch(
        self, indices: np.ndarray | Tensor | slice, device: torch.device | str = "cpu"
    ) -> tuple[Tensor, Tensor]:
        """(x float32 (B, C, H, W) in [0, 1], y int64 (B,)) on `device`."""
        if isinstance(indices, Tensor):
            indices = indices.cpu().numpy()
        if isinstance(self.images, Tensor):
            x = self.images[torch.as_tensor(indices) if not isinstance(indices, slice) else indices]
            if x.dtype == torch.uint8:
                x = x.to(device).float().div_(255)
        else:
            if not isinstance(indices, slice):
                indices = np.asarray(indices)
            rows = np.ascontiguousarray(self.images[indices])
            if not rows.flags.writeable:
                # A slice of a read-only memmap: torch cannot wrap read-only memory, so the uint8
                # rows are copied (cheap next to the float conversion below).
                rows = np.array(rows)
            # uint8 travels to the device and is converted there: 4x less to copy.
            x = torch.from_numpy(rows).to(device).permute(0, 3, 1, 2).float()
            if rows.dtype == np.uint8:
                x = x.div_(255)
        y = self.labels[indices if isinstance(indices, slice) else torch.as_tensor(indices)]
        return x.to(device), y.to(device)

    def batches(
        self,
        batch_size: int,
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self)
        chunks: list[np.ndarray] | list[slice]
        if shuffle:
            order = torch.randperm(n, generator=generator).numpy()
            # Sorted within a batch: memory-mapped reads stay sequential; order inside a batch
            # does not matter to the loss.
            chunks = [np.sort(order[i : i + batch_size]) for i in range(0, n, batch_size)]
        else:
            chunks = [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
        for chunk in chunks:
            size = (chunk.stop - chunk.start) if isinstance(chunk, slice) else len(chunk)
            if drop_last and size < batch_size:
                break
            yield self.batch(chunk, device)

    def subset(self, indices: np.ndarray) -> ImageSet:
        indices = np.asarray(indices)
        images = (
            self.images[torch.as_tensor(indices)]
            if isinstance(self.images, Tensor)
            else self.images[indices]
        )
        return ImageSet(images, self.labels[torch.as_tensor(indices)])


@dataclass(frozen=True)
class DataSplits:
    name: str
    train: ImageSet
    val: ImageSet
    test: ImageSet
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    # Per-channel statistics of the training images, for the model's input normalisation.
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    # Batch augmentation for training: (x, generator) -> x. None: no augmentation.
    augment: Callable[[Tensor, torch.Generator | None], Tensor] | None = None

    @property
    def in_channels(self) -> int:
        return self.train.image_shape[0]

    @property
    def image_size(self) -> int:
        return self.train.image_shape[1]


def flip_and_crop(
    x: Tensor, generator: torch.Generator | None = None, padding: int = 4, flip: bool = True
) -> Tensor:
    """Random horizontal flip (unless flip=False) and random crop of the zero-padded image, per sample.

    x: (N, C, H, W). Random numbers come from `generator` on the CPU so runs are reproducible on
    any device.
    """
    n, _, h, w = x.shape
    flipped = (torch.rand(n, generator=generator) < 0.5) & flip
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    x = torch.where(flipped.to(x.device).view(n, 1, 1, 1), x.flip(3), x)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).to(x.device)  # (N, H)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).to(x.device)  # (N, W)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    # Advanced indexing gathers each sample's crop in one op: (N, H, W, C) -> (N, C, H, W).
    return (
        padded.permute(0, 2, 3, 1)[batch, rows.unsqueeze(2), cols.unsqueeze(1)]
        .permute(0, 3, 1, 2)
        .contiguous()
    )


def _channel_stats(images: ImageSet) -> tuple[tuple[float, ...], tuple[float, ...]]:
    total = torch.zeros(images.image_shape[0], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    count = 0
    for x, _ in images.batches(2048):
        total += x.double().sum(dim=(0, 2, 3))
        total_sq += x.double().pow(2).sum(dim=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


_LOADERS: dict[str, Callable[..., DataSplits]] = {}


def register_dataset(name: str) -> Callable:
    def add(loader: Callable[..., DataSplits]) -> Callable[..., DataSplits]:
        _LOADERS[name] = loader
        return loader

    return add


def list_datasets() -> list[str]:
    return sorted(_LOADERS)


def load_dataset(
    name: str, data_dir: str | None = None, seed: int = 0, image_size: int | None = None
) -> DataSplits:
    """Load a data set by name. `seed` fixes the train/validation split (drawn per seed)."""
    if name not in _LOADERS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(list_datasets())}")
    return _LOADERS[name](data_dir=data_dir, seed=seed, image_size=image_size)


@register_dataset("digits")
def load_digits(
    data_dir: str | None = None, seed: int = 0, image_size: int | None = None
) -> DataSplits:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels), scaled to [0, 1].

    Resized bilinearly to `image_size` (default 16). The test split (20%) is fixed for every
    seed, so results of different seeds are comparable; validation (10%) is drawn per seed.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    size = image_size or 16
    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images).float().div_(16.0).unsqueeze(1)  # (N, 1, 8, 8)
    if size != 8:
        images = F.interpolate(
            images, size=(size, size), mode="bilinear", align_corners=False
        ).clamp_(0, 1)
    labels = torch.from_numpy(bunch.target).long()
    n = len(labels)
    fixed = np.random.default_rng(12345).permutation(n)
    n_test = n // 5
    test_idx, rest = fixed[:n_test], fixed[n_test:]
    per_seed = np.random.default_rng(seed).permutation(rest)
    n_val = n // 10
    val_idx, train_idx = per_seed[:n_val], per_seed[n_val:]
    full = ImageSet(images, labels)
    train = full.subset(train_idx)
    mean, std = _channel_stats(train)
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


# --------------------------------------------------------------------------------------------
# Shared helpers: locations, caches, decoding, splits, statistics (the public ones, such as
# decoded_cached, also serve `corruptions.store`)
# --------------------------------------------------------------------------------------------

# Folder created inside a data root for decoded-JPEG caches. Hidden, so that it can never be
# taken for a class or corruption folder.
CACHE_DIR_NAME = ".selectivity-cache"
_JPEG_SUFFIXES = (".jpeg", ".jpg")


def default_data_dir() -> Path:
    """Where data sets are looked for when no `data_dir` is given: ``$SELECTIVITY_DATA`` or ``./data``."""
    return Path(os.environ.get("SELECTIVITY_DATA", "data"))


def _user_cache_dir() -> Path:
    """Fallback cache folder for read-only data folders."""
    if os.environ.get("SELECTIVITY_CACHE_DIR"):
        return Path(os.environ["SELECTIVITY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "selectivity"


def is_jpeg(path: Path) -> bool:
    return path.suffix.lower() in _JPEG_SUFFIXES and not path.name.startswith(".")


def _save_npy_atomic(path: Path, array: np.ndarray) -> bool:
    """Write `array` to `path` as .npy under a temporary name, then rename; False if not writable.

    The rename makes the file appear whole or not at all, so a reader (another process of a
    sweep, or a run killed mid-write) never sees a truncated cache.
    """
    try:
        with atomic_path(path) as temporary, open(temporary, "wb") as stream:
            np.save(stream, array)
        return True
    except OSError:
        return False


def _fingerprint(paths: Sequence[Path], base: Path) -> str:
    """16 hex digits identifying a file list: relative paths and sizes, in order.

    Part of the cache file name, so adding, removing or replacing (with another size) an image
    gives a new cache instead of a stale one. Relative paths: the cache next to the data stays
    valid when the whole folder moves.
    """
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.relative_to(base).as_posix()}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def _cache_candidates(base: Path, name: str) -> list[Path]:
    """Cache file locations in order of preference: next to the data, then the user cache dir."""
    # In the shared user cache the data folder's absolute path keeps two copies apart.
    owner = hashlib.sha256(str(base.resolve()).encode()).hexdigest()[:12]
    return [base / CACHE_DIR_NAME / name, _user_cache_dir() / f"{owner}-{name}"]


def _decode_one(path: Path) -> np.ndarray:
    """One image file -> uint8 (H, W, 3) RGB; greyscale, palette and CMYK files are converted."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (
        Exception
    ) as error:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        raise DataError(f"cannot decode image {path}: {one_line(error, with_type=True)}") from None


def _decode_images(paths: Sequence[Path]) -> np.ndarray:
    """Decode image files into one uint8 (N, H, W, 3) array; all must share the first one's size.

    Threads: PIL releases the GIL inside its JPEG decoder, so threads overlap the decoding
    without the start-up and copying cost of processes (~0.6 ms per 64x64 JPEG here: about a
    minute for Tiny ImageNet's 110k).
    """
    first = _decode_one(paths[0])
    out = np.empty((len(paths), *first.shape), dtype=np.uint8)
    out[0] = first

    def work(start: int, stop: int) -> None:
        for i in range(start, stop):
            image = _decode_one(paths[i])
            if image.shape != first.shape:
                raise DataError(
                    f"image {paths[i]} is {image.shape[1]}x{image.shape[0]} pixels; "
                    f"expected {first.shape[1]}x{first.shape[0]} like {paths[0]}"
                )
            out[i] = image

    chunk = 512
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        futures = [
            pool.submit(work, s, min(s + chunk, len(paths))) for s in range(1, len(paths), chunk)
        ]
        try:
            for future in futures:
                future.result()
        except BaseException:
            # Fail fast: the first bad file is the answer, the rest need not be decoded.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return out


def _open_cache(path: Path, count: int) -> np.ndarray | None:
    """A cache file memory-mapped if it holds `count` uint8 (H, W, 3) images, else None."""
    if not path.is_file():
        return None
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None  # a damaged cache is rebuilt, never trusted
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[0] != count or array.shape[3] != 3:
        return None
    return array


def decoded_cached(paths: Sequence[Path], base: Path, tag: str) -> np.ndarray:
    """uint8 (N, H, W, 3) pixels of `paths`, in order, decoded once and cached as .npy.

    Reused when a cache for exactly this file list (names and sizes) exists; the result is then a
    read-only np.memmap. Without a writable cache location the decoded array is returned in memory.
    """
    name = f"{tag}-{_fingerprint(paths, base)}.npy"
    candidates = _cache_candidates(base, name)
    for candidate in candidates:
        cached = _open_cache(candidate, len(paths))
        if cached is not None:
            return cached
    images = _decode_images(paths)
    for candidate in candidates:
        if _save_npy_atomic(candidate, images):
            # Re-opened memory-mapped: the decode buffer is freed and every later read goes
            # through the page cache, like a reuse would.
            return np.load(candidate, mmap_mode="r")
    warnings.warn(
        f"could not write a decoded-image cache to {candidates[0].parent} or {candidates[1].parent}; "
        "the images will be decoded again next time",
        stacklevel=3,
    )
    return images


def _per_class_split(
    labels: np.ndarray, val_counts: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out `val_counts[c]` random samples of each class c for validation.

    labels: int (N,). Returns (train indices, val indices), each sorted ascending, disjoint and
    together covering range(N). The draw depends only on `seed` and the labels.
    """
    rng = np.random.default_rng(seed)
    held = [
        rng.choice(np.flatnonzero(labels == c), size=int(k), replace=False)
        for c, k in enumerate(val_counts)
    ]
    val = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    keep = np.ones(len(labels), dtype=bool)
    keep[val] = False
    return np.flatnonzero(keep), val


def _uint8_channel_stats(
    images: np.ndarray, chunk: int = 4096
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (population, over all pixels) of uint8 (N, H, W, C), in [0, 1] units.

    From exact per-channel histograms of the 256 grey levels: no float copy of the whole set, no
    rounding drift, and 5x faster than summing (45k CIFAR images: ~0.5 s).
    """
    c = images.shape[3]
    hist = np.zeros((c, 256), dtype=np.int64)
    for start in range(0, images.shape[0], chunk):
        block = np.asarray(images[start : start + chunk]).reshape(-1, c)
        for channel in range(c):
            hist[channel] += np.bincount(block[:, channel], minlength=256)
    levels = np.arange(256, dtype=np.float64) / 255.0
    count = hist.sum(axis=1).astype(np.float64)
    mean = hist @ levels / count
    var = hist @ (levels * levels) / count - mean**2
    std = np.sqrt(np.maximum(var, 1e-12))
    return tuple(mean.tolist()), tuple(std.tolist())


def _resize_uint8(images: np.ndarray, size: int, chunk: int = 1024) -> np.ndarray:
    """uint8 (N, H, W, C) -> uint8 (N, size, size, C), bilinear with antialiasing; unchanged if same size."""
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images
    out = np.empty((n, size, size, c), dtype=np.uint8)
    for start in range(0, n, chunk):
        # np.array copies: the input may be a read-only memmap, which torch cannot wrap.
        x = torch.from_numpy(np.array(images[start : start + chunk])).permute(0, 3, 1, 2).float()
        y = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        out[start : start + chunk] = (
            y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        )
    return out


def _augment_for(size: int) -> Callable[[Tensor, torch.Generator | None], Tensor]:
    """flip_and_crop with padding of 1/8 of the side: 4 px at 32 (the CIFAR recipe), 8 px at 64."""
    # functools.partial of a module-level function: picklable, so it travels to worker processes.
    return partial(flip_and_crop, padding=max(1, size // 8))


def labels_tensor(labels: np.ndarray) -> Tensor:
    """int64 (N,) tensor owning a copy: labels may come from a read-only memmap."""
    return torch.from_numpy(np.array(labels, dtype=np.int64))


# --------------------------------------------------------------------------------------------
# CIFAR-10 (python version)
# --------------------------------------------------------------------------------------------

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


def _find_published_root(
    data_dir: str | os.PathLike | None, folder_name: str, marker: str, what: str, hint: str
) -> Path:
    """The folder holding `marker`: `data_dir` itself or its `folder_name` child (default data dir)."""
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    for folder in (base, base / folder_name):
        if (folder / marker).is_file():
            return folder
    folder = base if base.name == folder_name else base / folder_name
    raise DataError(f"{what} not found: expected {folder / marker} ({hint})")


def _find_cifar10(data_dir: str | os.PathLike | None) -> Path:
    return _find_published_root(data_dir, CIFAR10_FOLDER, "data_batch_1", "CIFAR-10", _CIFAR10_HINT)


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
    train_images = _resize_uint8(train_images, size)
    test_images = _resize_uint8(test_images, size)

    return _splits_from_arrays(
        "cifar10",
        train_images,
        train_labels,
        test_images,
        test_labels,
        class_names,
        seed,
        augment=_augment_for(size),
    )


# --------------------------------------------------------------------------------------------
# Tiny ImageNet
# --------------------------------------------------------------------------------------------

TINYIMAGENET_FOLDER = "tiny-imagenet-200"
_TINY_HINT = "Tiny ImageNet as published, unpacked"


def _find_tinyimagenet(data_dir: str | os.PathLike | None) -> Path:
    return _find_published_root(
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
    train_idx, val_idx = _per_class_split(train_labels, np.full(len(wnids), val_per_class), seed)
    # Fancy indexing copies the selected rows out of the memory-mapped cache into RAM.
    train_images = np.asarray(all_train[train_idx])
    val_images = np.asarray(all_train[val_idx])
    size = image_size or train_images.shape[1]
    train_images, val_images, test_images = (
        _resize_uint8(a, size) for a in (train_images, val_images, test_images)
    )
    mean, std = _uint8_channel_stats(train_images)
    return DataSplits(
        name="tinyimagenet",
        train=ImageSet(train_images, labels_tensor(train_labels[train_idx])),
        val=ImageSet(val_images, labels_tensor(train_labels[val_idx])),
        test=ImageSet(test_images, labels_tensor(test_labels)),
        num_classes=len(wnids),
        class_names=wnids,
        mean=mean,
        std=std,
        augment=_augment_for(size),
    )


# --------------------------------------------------------------------------------------------
# SVHN (cropped digits, the .mat format)
# --------------------------------------------------------------------------------------------

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
    return _splits_from_arrays(
        "svhn",
        _resize_uint8(train_images, size),
        train_labels,
        _resize_uint8(test_images, size),
        test_labels,
        [str(i) for i in range(10)],
        seed,
        augment=partial(crop_only, padding=max(1, size // 8)),
    )


def crop_only(x: Tensor, generator: torch.Generator | None = None, padding: int = 4) -> Tensor:
    """Random crop of the zero-padded image, no flip: for digits and text."""
    return flip_and_crop(x, generator, padding, flip=False)


def _splits_from_arrays(
    name: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    class_names: list[str],
    seed: int,
    augment: Callable[[Tensor, torch.Generator | None], Tensor] | None,
) -> DataSplits:
    """DataSplits with 10% of each training class held out for validation, drawn per seed."""
    counts = np.bincount(train_labels, minlength=len(class_names))
    train_idx, val_idx = _per_class_split(train_labels, counts // 10, seed)
    full = ImageSet(train_images, labels_tensor(train_labels))
    train = full.subset(train_idx)
    mean, std = _uint8_channel_stats(train.images)  # type: ignore[arg-type]
    return DataSplits(
        name=name,
        train=train,
        val=full.subset(val_idx),
        test=ImageSet(test_images, labels_tensor(test_labels)),
        num_classes=len(class_names),
        class_names=class_names,
        mean=mean,
        std=std,
        augment=augment,
    )


# --------------------------------------------------------------------------------------------
# A user's own images: one folder per class
# --------------------------------------------------------------------------------------------

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
_FOLDER_HINT = "one sub-folder of images per class, under train/ and test/ (or directly, then 20% are held out for test)"


def _class_images(
    folder: Path, class_names: list[str] | None = None
) -> tuple[list[Path], np.ndarray, list[str]]:
    classes = class_names or sorted(
        d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")
    )
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        files = (
            sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
            if (folder / name).is_dir()
            else []
        )
        paths += files
        labels += [index] * len(files)
    if len(classes) < 2 or not paths:
        raise DataError(
            f"image folder {folder} has {len(classes)} class folder(s) and {len(paths)} images: expected {_FOLDER_HINT}"
        )
    return paths, np.asarray(labels, dtype=np.int64), classes


def _decode_to_size(paths: Sequence[Path], size: int | None) -> np.ndarray:
    """uint8 (N, H, W, 3); with `size`, every image is resized to size x size (bilinear) first."""
    if size is None:
        return _decode_images(paths)
    from PIL import Image

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        image = Image.fromarray(_decode_one(path))
        out[i] = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
    return out


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
        rest, test = _per_class_split(labels, counts // 5, seed=12345)
        train_paths, train_labels = [paths[i] for i in rest], labels[rest]
        test_paths, test_labels = [paths[i] for i in test], labels[test]
    train_images = _decode_to_size(train_paths, image_size)
    test_images = _decode_to_size(test_paths, image_size)
    if test_images.shape[1:] != train_images.shape[1:]:
        raise DataError(
            f"test images are {test_images.shape[2]}x{test_images.shape[1]}, train images {train_images.shape[2]}x{train_images.shape[1]}: set image_size"
        )
    return _splits_from_arrays(
        "folder",
        train_images,
        train_labels,
        test_images,
        test_labels,
        classes,
        seed,
        augment=_augment_for(train_images.shape[1]),
    )

"""Image containers, splits, augmentation, channel statistics and the data-set registry.

`ImageSet` holds images and labels; `DataSplits` a data set's train/val/test sets with their
statistics and augmentation. Loaders register themselves by name with `register_dataset` (the
modules beside this one) and `load_dataset` calls them. Nothing here reads files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from selectivity.errors import SelectivityError
from selectivity.registry import Registry

# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


class DataError(SelectivityError, ValueError):
    """A data folder is missing or malformed; the message says what was expected where."""


@dataclass(frozen=True)
class ImageSet:
    """Images and labels.

    images: a numpy array (N, H, W, C) (possibly memory-mapped: read batch by batch) or a tensor
        (N, C, H, W), any number of channels C (grey and RGB images have 1 or 3; only the
        corruptions need those); uint8 (0..255, scaled to [0, 1] here) or floating point
        already in [0, 1] (taken as is). labels: int64 (N,).
    Anything else raises DataError at construction: float values outside [0, 1] (0..255 floats
    would otherwise be read as 255x too bright, and [0, 1] floats scaled again 255x too dark),
    other dtypes, or a layout that looks transposed (a channel axis other than 1 or 3 where the
    other end has 1 or 3: NCHW given as numpy, NHWC as a tensor).
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
        if shape[axis] not in (1, 3) and shape[other] in (1, 3):
            raise DataError(
                f"ImageSet images as {layout} must be {wanted}, got shape {shape}; it looks "
                f"like {flipped}: transpose it to {wanted}"
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


# --------------------------------------------------------------------------------------------
# Augmentation and channel statistics (on batches of tensors)
# --------------------------------------------------------------------------------------------


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


def crop_only(x: Tensor, generator: torch.Generator | None = None, padding: int = 4) -> Tensor:
    """Random crop of the zero-padded image, no flip: for digits and text."""
    return flip_and_crop(x, generator, padding, flip=False)


def augment_for(size: int) -> Callable[[Tensor, torch.Generator | None], Tensor]:
    """flip_and_crop with padding of 1/8 of the side: 4 px at 32 (the CIFAR recipe), 8 px at 64."""
    # functools.partial of a module-level function: picklable, so it travels to worker processes.
    return partial(flip_and_crop, padding=max(1, size // 8))


def channel_stats(images: ImageSet) -> tuple[tuple[float, ...], tuple[float, ...]]:
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


# --------------------------------------------------------------------------------------------
# The registry: loaders register by name, load_dataset calls them
# --------------------------------------------------------------------------------------------

_LOADERS: Registry[Callable[..., DataSplits]] = Registry("dataset", DataError)


def register_dataset(name: str) -> Callable[[Callable[..., DataSplits]], Callable[..., DataSplits]]:
    """Decorator: a loader `(data_dir, seed, image_size) -> DataSplits` under `name`."""
    return _LOADERS.register(name)


def list_datasets() -> list[str]:
    return _LOADERS.names()


def load_dataset(
    name: str, data_dir: str | None = None, seed: int = 0, image_size: int | None = None
) -> DataSplits:
    """Load a data set by name. `seed` fixes the train/validation split (drawn per seed)."""
    return _LOADERS.get(name)(data_dir=data_dir, seed=seed, image_size=image_size)


# --------------------------------------------------------------------------------------------
# Shared by the loaders: locations, splits, uint8 statistics and resizing
# --------------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """Where data sets are looked for when no `data_dir` is given: ``$SELECTIVITY_DATA`` or ``./data``."""
    return Path(os.environ.get("SELECTIVITY_DATA", "data"))


def find_published_root(
    data_dir: str | os.PathLike | None, folder_name: str, marker: str, what: str, hint: str
) -> Path:
    """The folder holding `marker`: `data_dir` itself or its `folder_name` child (default data dir)."""
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    for folder in (base, base / folder_name):
        if (folder / marker).is_file():
            return folder
    folder = base if base.name == folder_name else base / folder_name
    raise DataError(f"{what} not found: expected {folder / marker} ({hint})")


def per_class_split(
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


def uint8_channel_stats(
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


def resize_uint8(images: np.ndarray, size: int, chunk: int = 1024) -> np.ndarray:
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


def labels_tensor(labels: np.ndarray) -> Tensor:
    """int64 (N,) tensor owning a copy: labels may come from a read-only memmap."""
    return torch.from_numpy(np.array(labels, dtype=np.int64))


def splits_from_arrays(
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
    train_idx, val_idx = per_class_split(train_labels, counts // 10, seed)
    full = ImageSet(train_images, labels_tensor(train_labels))
    train = full.subset(train_idx)
    mean, std = uint8_channel_stats(train.images)  # type: ignore[arg-type]
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

"""Data sets as in-memory (or memory-mapped) image arrays with fixed, seeded splits.

Every loader returns a `DataSplits` of `ImageSet`s. Batches come out as float32 (N, C, H, W) in
[0, 1] and int64 labels; augmentation is done on batches of tensors (on the training device),
so there is no DataLoader and no torchvision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ImageSet", "DataSplits", "DataError", "load_dataset", "list_datasets", "flip_and_crop", "register_dataset"]


class DataError(ValueError):
    """A data folder is missing or malformed; the message says what was expected where."""


@dataclass(frozen=True)
class ImageSet:
    """Images and labels.

    images: uint8 (N, H, W, C) (numpy, possibly memory-mapped: read batch by batch) or a float
        tensor (N, C, H, W) in [0, 1]. labels: int64 (N,).
    """

    images: np.ndarray | Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        if isinstance(self.images, Tensor):
            return tuple(self.images.shape[1:])  # type: ignore[return-value]
        n, h, w, c = self.images.shape
        return (c, h, w)

    def batch(self, indices: np.ndarray | Tensor | slice, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """(x float32 (B, C, H, W) in [0, 1], y int64 (B,)) on `device`."""
        if isinstance(indices, Tensor):
            indices = indices.cpu().numpy()
        if isinstance(self.images, Tensor):
            x = self.images[torch.as_tensor(indices) if not isinstance(indices, slice) else indices]
        else:
            if not isinstance(indices, slice):
                indices = np.asarray(indices)
            # uint8 travels to the device and is converted there: 4x less to copy.
            x = torch.from_numpy(np.ascontiguousarray(self.images[indices])).to(device).permute(0, 3, 1, 2).float().div_(255)
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

    def subset(self, indices: np.ndarray) -> "ImageSet":
        indices = np.asarray(indices)
        images = self.images[torch.as_tensor(indices)] if isinstance(self.images, Tensor) else self.images[indices]
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


def flip_and_crop(x: Tensor, generator: torch.Generator | None = None, padding: int = 4) -> Tensor:
    """Random horizontal flip and random crop of the zero-padded image, per sample.

    x: (N, C, H, W). Random numbers come from `generator` on the CPU so runs are reproducible on
    any device.
    """
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    x = torch.where(flip.to(x.device).view(n, 1, 1, 1), x.flip(3), x)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).to(x.device)  # (N, H)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).to(x.device)  # (N, W)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    # Advanced indexing gathers each sample's crop in one op: (N, H, W, C) -> (N, C, H, W).
    return padded.permute(0, 2, 3, 1)[batch, rows.unsqueeze(2), cols.unsqueeze(1)].permute(0, 3, 1, 2).contiguous()


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


def load_dataset(name: str, data_dir: str | None = None, seed: int = 0, image_size: int | None = None) -> DataSplits:
    """Load a data set by name. `seed` fixes the train/validation split (drawn per seed)."""
    if name not in _LOADERS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(list_datasets())}")
    return _LOADERS[name](data_dir=data_dir, seed=seed, image_size=image_size)


@register_dataset("digits")
def load_digits(data_dir: str | None = None, seed: int = 0, image_size: int | None = None) -> DataSplits:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels), scaled to [0, 1].

    Resized bilinearly to `image_size` (default 16). The test split (20%) is fixed for every
    seed, so results of different seeds are comparable; validation (10%) is drawn per seed.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    size = image_size or 16
    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images).float().div_(16.0).unsqueeze(1)  # (N, 1, 8, 8)
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)
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

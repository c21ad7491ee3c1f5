"""A user's data as an `ImageSet`: a torch Dataset, a DataLoader, a pair of tensors, or batches.

    as_images(data) -> ImageSet             images (N, C, H, W) float in [0, 1], labels (N,)
    count_classes(data, labels, given)      the number of classes
    labelled(data, num_classes) -> Labelled  both, with class names when the data has them

Everything that measures a data set (`measure`, `evaluate`, the corruption generator) sees one
`ImageSet`, so a data set is read once, in a fixed order, and measured in that order. The images
are held in memory as one tensor: right for test sets (10k CIFAR images are 123 MB as float32),
not for whole training sets. A `DataLoader` is read with its own batches, but one that shuffles
(`shuffle=True`, a `RandomSampler`) is refused rather than read in a new order on every pass:
give its `dataset` instead. Each image must already be a float tensor in [0, 1] (a transform
such as `ToTensor` does this; normalisation belongs inside the model); uint8 images, values
outside [0, 1], a rank other than (C, H, W) per image and an empty set are refused with one line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import (
    DataLoader,
    Dataset,
    RandomSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

from selectivity.data.images import DataError, DataSplits, ImageSet

__all__ = ["Labelled", "as_images", "count_classes", "labelled"]


@dataclass(frozen=True)
class Labelled:
    """A test set as measurements need it: images, the number of classes, their names."""

    images: ImageSet
    num_classes: int
    class_names: list[str] = field(default_factory=list)


def labelled(data: Any, num_classes: int | None = None) -> Labelled:
    """`data` (see the module docstring; a `DataSplits` gives its test split) with its class count.

    num_classes: given, labels must lie in [0, num_classes); None: from the data (its `classes`
    attribute, as torchvision data sets have, else the largest label + 1).
    """
    if isinstance(data, DataSplits):
        if num_classes is not None and num_classes != data.num_classes:
            raise DataError(f"num_classes={num_classes} but {data.name} has {data.num_classes}")
        return Labelled(data.test, data.num_classes, list(data.class_names))
    images = as_images(data)
    count = count_classes(data, images.labels, num_classes)
    names = _class_names(data)
    return Labelled(images, count, names if len(names) == count else [])


def as_images(data: Any) -> ImageSet:
    """`data` as an ImageSet of float (N, C, H, W) images in [0, 1] and int64 (N,) labels.

    data: an ImageSet (returned as is), a DataSplits (its test split), a pair of tensors
    (images, labels), a torch Dataset of (image, label) items, a DataLoader (not shuffling), or
    any iterable of (images, labels) batches. Raises DataError with one line otherwise.
    """
    if isinstance(data, ImageSet):
        return data
    if isinstance(data, DataSplits):
        return data.test
    if _is_pair(data):
        return _checked(torch.as_tensor(data[0]), torch.as_tensor(data[1]), "the images tensor")
    if isinstance(data, DataLoader):
        if isinstance(data.sampler, (RandomSampler, SubsetRandomSampler, WeightedRandomSampler)):
            raise DataError(
                f"the DataLoader shuffles ({type(data.sampler).__name__}): each pass would see "
                "other images or another order; pass its dataset, or a DataLoader with "
                "shuffle=False"
            )
        return _from_batches(data, "the DataLoader's batches")
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        return _from_items(data)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, Tensor)):
        return _from_batches(data, "the batches")
    raise DataError(
        f"cannot read images from a {type(data).__name__}: give a torch Dataset, a DataLoader, "
        "a pair of tensors (images, labels) or an iterable of (images, labels) batches"
    )


def count_classes(data: Any, labels: Tensor, num_classes: int | None = None) -> int:
    """The number of classes: `num_classes` when given (labels must fit it), else the length of
    `data.classes` when the data has one, else the largest label + 1."""
    largest = int(labels.max()) if len(labels) else -1
    if int(labels.min()) < 0:
        raise DataError(f"labels must be class indices >= 0, got {int(labels.min())}")
    if num_classes is None:
        names = _class_names(data)
        num_classes = len(names) if names else largest + 1
        source = "the data's classes attribute"
    else:
        source = "num_classes"
    if num_classes < 2:
        raise DataError(f"selectivity needs at least 2 classes, got {num_classes}")
    if largest >= num_classes:
        raise DataError(f"label {largest} does not fit {num_classes} classes ({source})")
    return num_classes


def _class_names(data: Any) -> list[str]:
    """`data.classes` (torchvision's data sets, also through a DataLoader), else []."""
    source = data.dataset if isinstance(data, DataLoader) else data
    names = getattr(source, "classes", None)
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        return list(names)
    return []


def _is_pair(data: Any) -> bool:
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(part, Tensor) for part in data)
    )


def _from_items(dataset: Dataset) -> ImageSet:
    """Read every (image, label) item in index order."""
    count = len(dataset)  # type: ignore[arg-type]  # checked by the caller
    if count == 0:
        raise DataError("the data set is empty")
    images, labels = [], []
    for index in range(count):
        item = dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(
                f"a Dataset item must be (image, label), got {type(item).__name__} at index {index}"
            )
        images.append(torch.as_tensor(item[0]))
        labels.append(torch.as_tensor(item[1]))
    if {tuple(image.shape) for image in images}.__len__() > 1:
        raise DataError("the data set's images differ in shape; resize them to one size")
    return _checked(torch.stack(images), torch.stack(labels), "each image", per_item=True)


def _from_batches(batches: Iterable[Any], what: str) -> ImageSet:
    """Concatenate (images, labels) batches in the order they come."""
    images, labels = [], []
    for batch in batches:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise DataError(f"{what} must be (images, labels) pairs, got {type(batch).__name__}")
        images.append(torch.as_tensor(batch[0]))
        labels.append(torch.as_tensor(batch[1]).reshape(-1))
    if not images:
        raise DataError(f"{what} held no images: the data set is empty")
    if len({tuple(x.shape[1:]) for x in images}) > 1:
        raise DataError(f"{what} differ in image shape; resize the images to one size")
    return _checked(torch.cat(images), torch.cat(labels), "the batches' images")


def _checked(images: Tensor, labels: Tensor, what: str, per_item: bool = False) -> ImageSet:
    """An ImageSet of float images in [0, 1] (N, C, H, W), or DataError saying what is wrong."""
    if len(images) == 0:
        raise DataError("the data set is empty")
    rank = images.ndim - 1 if per_item else images.ndim
    wanted = "(C, H, W)" if per_item else "(N, C, H, W)"
    shape = tuple(images.shape[1:]) if per_item else tuple(images.shape)
    if rank != (3 if per_item else 4):
        raise DataError(f"{what} must be {wanted}, got shape {shape}")
    if not images.is_floating_point():
        raise DataError(
            f"images must be float in [0, 1]; got {str(images.dtype).removeprefix('torch.')} "
            "(divide by 255, or use a transform such as ToTensor)"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.ndim != 1:
        raise DataError(
            f"labels must be integer class indices, one per image; got {labels.dtype} of "
            f"shape {tuple(labels.shape)}"
        )
    low, high = float(images.min()), float(images.max())
    if not (low >= 0.0 and high <= 1.0):
        raise DataError(
            f"images must be float in [0, 1]; got values in [{low:.4g}, {high:.4g}] "
            "(normalisation belongs inside the model: see --normalize / models.Normalize)"
        )
    return ImageSet(images.float().cpu().contiguous(), labels.to(torch.int64).cpu())

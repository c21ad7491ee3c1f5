"""A user's data as an `ImageSet`: a torch Dataset, a DataLoader, a pair of tensors, batches,
a list of (image, label) pairs, dicts as Hugging Face pipelines give them, PIL images.

    as_images(data) -> ImageSet             images (N, C, H, W) float in [0, 1], labels (N,)
    count_classes(data, labels, given)      the number of classes
    labelled(data, num_classes) -> Labelled  both, with class names and notes
    Keyed(data, image="img", label="label")  dict items or batches under other key names

Everything that measures a data set (`measure`, `evaluate`, the corruption generator) sees one
`ImageSet`, so a data set is read once, in a fixed order, and measured in that order. The images
are held in memory as one tensor: right for test sets (10k CIFAR images are 123 MB as float32),
not for whole training sets. A `DataLoader` is read with its own batches, but one that shuffles
(`shuffle=True`, a `RandomSampler`) is refused rather than read in a new order on every pass:
give its `dataset` instead. Each image must already be a float tensor in [0, 1] (a transform
such as `ToTensor` does this; normalisation belongs inside the model); uint8 images, values
outside [0, 1], a rank other than (C, H, W) per image and an empty set are refused with one line.

Forms read besides tensors (as a researcher with a Hugging Face or torchvision pipeline has them):
- Items or batches that are dicts: the image under "pixel_values" and the label under "labels"
  (`IMAGE_KEY`, `LABEL_KEY`, what Hugging Face image processors and Trainer collators use);
  other names with `Keyed(data, image=..., label=...)`.
- PIL images (a Dataset without a ToTensor transform): 8-bit modes are scaled by 1/255 ("1" and
  "L" give one channel, "RGB" three, "RGBA" and "LA" keep alpha as a channel, palette and other
  colour modes are converted to RGB), "I;16" by 1/65535, "I" and "F" taken as they are.
- A list (or any iterable) of (image, label) pairs whose labels are single numbers: one image
  each, not batches.
Any channel count is read (selectivity, attacks and the Jacobian take any; the corruptions need
grey or RGB images and say so). A DataLoader that leaves images out (drop_last=True) is read as
it batches, with a `DroppedImagesWarning` and a note in `Labelled.notes` saying how many.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import (
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

from selectivity.data.images import DataError, DataSplits, ImageSet

__all__ = [
    "IMAGE_KEY",
    "LABEL_KEY",
    "DroppedImagesWarning",
    "Keyed",
    "Labelled",
    "as_images",
    "count_classes",
    "dropped_note",
    "labelled",
]

# The keys of dict items and batches, as Hugging Face image processors and collators name them.
IMAGE_KEY = "pixel_values"
LABEL_KEY = "labels"


class DroppedImagesWarning(UserWarning):
    """A DataLoader's batches leave some of its data set's images out (drop_last=True)."""


@dataclass(frozen=True)
class Keyed:
    """`data` whose items or batches are dicts holding the image under `image` and the label
    under `label` (default `IMAGE_KEY`, `LABEL_KEY`): `Keyed(hf_dataset, "img", "label")`."""

    data: Any
    image: str = IMAGE_KEY
    label: str = LABEL_KEY


@dataclass(frozen=True)
class Labelled:
    """A test set as measurements need it: images, the number of classes, their names, and
    notes for the table (images a DataLoader left out)."""

    images: ImageSet
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    notes: tuple[str, ...] = ()


def labelled(data: Any, num_classes: int | None = None) -> Labelled:
    """`data` (see the module docstring; a `DataSplits` gives its test split) with its class count.

    num_classes: given, labels must lie in [0, num_classes); None: from the data (its `classes`
    attribute, as torchvision data sets have, else the largest label + 1).
    """
    if isinstance(data, DataSplits):
        if num_classes is not None and num_classes != data.num_classes:
            raise DataError(f"num_classes={num_classes} but {data.name} has {data.num_classes}")
        return Labelled(data.test, data.num_classes, list(data.class_names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedImagesWarning)
        images = as_images(data)
    source = data.data if isinstance(data, Keyed) else data
    count = count_classes(source, images.labels, num_classes)
    names = _class_names(source)
    note = dropped_note(source, len(images))
    if note is not None:
        warnings.warn(note, DroppedImagesWarning, stacklevel=2)
    return Labelled(images, count, names if len(names) == count else [], (note,) if note else ())


def as_images(data: Any) -> ImageSet:
    """`data` as an ImageSet of float (N, C, H, W) images in [0, 1] and int64 (N,) labels.

    data: an ImageSet (returned as is), a DataSplits (its test split), a pair of tensors
    (images, labels), a torch Dataset of (image, label) items or dicts, a DataLoader (not
    shuffling), a list of (image, label) pairs, any iterable of (images, labels) batches or dict
    batches, or any of these in a `Keyed` (module docstring). Raises DataError with one line
    otherwise.
    """
    keys = (data.image, data.label) if isinstance(data, Keyed) else (IMAGE_KEY, LABEL_KEY)
    data = data.data if isinstance(data, Keyed) else data
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
        images = _from_batches(data, "the DataLoader's batches", keys)
        note = dropped_note(data, len(images))
        if note is not None:
            warnings.warn(note, DroppedImagesWarning, stacklevel=2)
        return images
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        return _from_items(data, keys)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, Tensor, Mapping)):
        return _from_batches(data, "the batches", keys)
    raise DataError(
        f"cannot read images from a {type(data).__name__}: give a torch Dataset, a DataLoader, "
        "a pair of tensors (images, labels), a list of (image, label) pairs or an iterable of "
        "(images, labels) batches"
    )


def dropped_note(data: Any, read: int) -> str | None:
    """A note when `data` is a DataLoader over its whole data set (in order) whose batches gave
    only `read` of the data set's images (drop_last=True); None otherwise."""
    if not isinstance(data, DataLoader) or not isinstance(data.sampler, SequentialSampler):
        return None
    total = len(data.dataset) if hasattr(data.dataset, "__len__") else read
    if read >= total:
        return None
    return (
        f"the DataLoader drops its last incomplete batch (drop_last=True): {total - read} of "
        f"{total} images were left out; pass its dataset, or drop_last=False, to measure all"
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


def _is_pil(image: Any) -> bool:
    return type(image).__module__.startswith("PIL.") and hasattr(image, "mode")


def _pil_tensor(image: Any) -> Tensor:
    """A PIL image as float (C, H, W) in [0, 1] (module docstring: the modes)."""
    mode = image.mode
    if mode == "1":
        image, mode = image.convert("L"), "L"
    elif mode not in ("L", "LA", "RGB", "RGBA", "I;16", "I", "F"):
        image, mode = image.convert("RGB"), "RGB"
    array = np.asarray(image)
    scale = {"I;16": 65535.0, "I": 1.0, "F": 1.0}.get(mode, 255.0)
    tensor = torch.from_numpy(array.astype(np.float32) / np.float32(scale))
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def _pair(item: Any, keys: tuple[str, str], what: str) -> tuple[Any, Any]:
    """(image(s), label(s)) of an item or batch: a pair, or a dict under `keys`."""
    if isinstance(item, Mapping):
        missing = [key for key in keys if key not in item]
        if missing:
            raise DataError(
                f"{what} are dicts with keys {', '.join(map(str, item))}, not {missing[0]!r}: "
                "give the key names with selectivity.data.Keyed(data, image=..., label=...)"
            )
        return item[keys[0]], item[keys[1]]
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise DataError(f"{what} must be (image, label) pairs or dicts, got {type(item).__name__}")
    return item[0], item[1]


def _image(image: Any) -> Tensor:
    return _pil_tensor(image) if _is_pil(image) else torch.as_tensor(image)


def _is_single(label: Any) -> bool:
    """Whether a label is one number (an item's), not a batch's labels."""
    return isinstance(label, (int, np.integer)) or (
        isinstance(label, (Tensor, np.ndarray)) and label.ndim == 0
    )


def _from_items(dataset: Any, keys: tuple[str, str]) -> ImageSet:
    """Read every (image, label) item in index order."""
    count = len(dataset)
    if count == 0:
        raise DataError("the data set is empty")
    images, labels = [], []
    for index in range(count):
        image, label = _pair(dataset[index], keys, f"the Dataset's items (index {index})")
        images.append(_image(image))
        labels.append(torch.as_tensor(label))
    if {tuple(image.shape) for image in images}.__len__() > 1:
        raise DataError("the data set's images differ in shape; resize them to one size")
    return _checked(torch.stack(images), torch.stack(labels), "each image", per_item=True)


def _from_batches(batches: Iterable[Any], what: str, keys: tuple[str, str]) -> ImageSet:
    """Concatenate (images, labels) batches in the order they come; an (image, label) pair
    with a single-number label is a batch of one."""
    images, labels = [], []
    for batch in batches:
        image, label = _pair(batch, keys, what)
        if _is_single(label) and (_is_pil(image) or torch.as_tensor(image).ndim == 3):
            images.append(_image(image).unsqueeze(0))
        else:
            images.append(_image(image))
        labels.append(torch.as_tensor(label).reshape(-1))
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

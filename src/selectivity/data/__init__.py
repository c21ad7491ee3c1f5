"""Data sets as in-memory (or memory-mapped) image arrays with fixed, seeded splits.

Every loader returns a `DataSplits` of `ImageSet`s. Batches come out as float32 (N, C, H, W) in
[0, 1] and int64 labels; augmentation is done on batches of tensors (on the training device),
so there is no DataLoader and no torchvision.

Data sets (`load_dataset(name, data_dir, seed, image_size)`):

- ``digits``: scikit-learn's 8x8 digits (bundled, nothing to download).
- ``cifar10``: the python version of CIFAR-10 as published (``cifar-10-batches-py/``).
- ``tinyimagenet``: Tiny ImageNet as published (``tiny-imagenet-200/``); decoded JPEGs are cached
  as ``.npy`` files (see `load_tinyimagenet`).
- ``svhn``: SVHN cropped digits, the ``.mat`` files.
- ``folder``: a user's images, one sub-folder per class.

A user's own data (a torch Dataset, a DataLoader, a pair of tensors, batches, dict batches,
PIL images, a list of (image, label) pairs) becomes an `ImageSet` through `as_images` /
`labelled` (module `adapt`), wherever an ImageSet is taken.

Corruption sets (CIFAR-10-C, Tiny-ImageNet-C) are read by `selectivity.corruptions.store`, which
shares the JPEG decoding cache (`decoded_cached`).

Where files live: ``data_dir`` when given, else ``$SELECTIVITY_DATA``, else ``./data``. Decoded-JPEG
caches go to ``<data root>/.selectivity-cache/`` when that folder is writable, else to
``$SELECTIVITY_CACHE_DIR`` (default ``$XDG_CACHE_HOME/selectivity`` or ``~/.cache/selectivity``),
else they are skipped with a warning. Every missing or malformed file raises `DataError` with one
line naming what was expected where.

Modules (imports point one way): `images` (containers, splits, augmentation, statistics, the
registry) <- `decode` (decoding, the decoded-array cache) <- one module per source (`digits`,
`cifar10`, `tinyimagenet`, `svhn`, `folder`), each registering itself when this package is
imported.
"""

from selectivity.data.adapt import (
    IMAGE_KEY,
    LABEL_KEY,
    DroppedImagesWarning,
    Keyed,
    Labelled,
    as_images,
    count_classes,
    labelled,
)
from selectivity.data.cifar10 import CIFAR10_FOLDER as CIFAR10_FOLDER
from selectivity.data.cifar10 import load_cifar10
from selectivity.data.decode import CACHE_DIR_NAME as CACHE_DIR_NAME
from selectivity.data.decode import decoded_cached as decoded_cached
from selectivity.data.decode import is_jpeg as is_jpeg
from selectivity.data.digits import load_digits as load_digits
from selectivity.data.folder import load_image_folder as load_image_folder
from selectivity.data.images import (
    DataError,
    DataSplits,
    ImageSet,
    default_data_dir,
    flip_and_crop,
    list_datasets,
    load_dataset,
    register_dataset,
)
from selectivity.data.images import crop_only as crop_only
from selectivity.data.images import labels_tensor as labels_tensor
from selectivity.data.svhn import load_svhn as load_svhn
from selectivity.data.tinyimagenet import TINYIMAGENET_FOLDER as TINYIMAGENET_FOLDER
from selectivity.data.tinyimagenet import load_tinyimagenet

__all__ = [
    "IMAGE_KEY",
    "LABEL_KEY",
    "DataError",
    "DataSplits",
    "DroppedImagesWarning",
    "ImageSet",
    "Keyed",
    "Labelled",
    "as_images",
    "count_classes",
    "default_data_dir",
    "flip_and_crop",
    "labelled",
    "list_datasets",
    "load_cifar10",
    "load_dataset",
    "load_tinyimagenet",
    "register_dataset",
]

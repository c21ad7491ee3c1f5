"""Writers of tiny data sets in exactly the published layouts, shared by the tests.

CIFAR-10: Python-2-style pickles with bytes keys, b"data" uint8 (N, 3072) holding R, G, B planes.
Tiny ImageNet: wnids.txt, words.txt, train/<wnid>/images/*.JPEG, val/images + val_annotations.txt.
CIFAR-10-C: <name>.npy uint8 (S*N, H, W, C) + labels.npy. Tiny-ImageNet-C: <name>/<s>/<wnid>/*.JPEG.
SVHN: train_32x32.mat / test_32x32.mat (X (32, 32, 3, N), y (N, 1) with 10 for digit 0).
Folder: <root>/<class>/*.png.
Every image carries its class (a colour) and an id (pixels or brightness), so label mapping,
split membership and order can be read back from the loaded arrays.
"""

import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from selectivity.data import ImageSet

CIFAR_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
PER_BATCH = 20  # 5 batches -> 100 training images, 10 per class
N_TEST = 10
# Deliberately not in sorted order: the class index must be the position in wnids.txt.
WNIDS = ["n03000003", "n01000001", "n02000002"]
WORDS = {
    "n03000003": "gamma ray, g",
    "n01000001": "alpha, a",
    "n02000002": "beta",
    "n09999999": "unused",
}
TINY_PER_CLASS = 6
TINY_VAL = [
    (0, 9),
    (1, 9),
    (2, 9),
    (1, 8),
    (2, 8),
]  # (class, id) of val images; one more is greyscale
TINY_SIZE = 64


# --------------------------------------------------------------------------------------------
# Writers of the published formats
# --------------------------------------------------------------------------------------------


def cifar_row(image_id: int, label: int) -> np.ndarray:
    """One b"data" row: R, G, B planes of 32x32, row-major."""
    planes = np.empty((3, 32, 32), dtype=np.uint8)
    planes[0], planes[1], planes[2] = 10 + 20 * label, 200 - 15 * label, 7 * label
    planes[0, 1, 2] = 255  # asymmetric marker (row 1, column 2): catches an H/W transpose
    planes[1, 31, 30], planes[1, 31, 31] = image_id // 256, image_id % 256
    return planes.reshape(-1)


def cifar_id(image: np.ndarray) -> int:
    """Image id from an NHWC uint8 image written by cifar_row."""
    return int(image[31, 30, 1]) * 256 + int(image[31, 31, 1])


def cifar_label(image: np.ndarray) -> int:
    return (int(image[0, 0, 0]) - 10) // 20


def dump(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def cifar_batch(ids, labels) -> dict:
    return {
        b"batch_label": b"a batch",
        b"labels": list(labels),
        b"data": np.stack([cifar_row(i, label) for i, label in zip(ids, labels, strict=True)]),
        b"filenames": [f"img_{i}.png".encode() for i in ids],
    }


def write_cifar(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    dump(
        folder / "batches.meta",
        {
            b"num_cases_per_batch": PER_BATCH,
            b"label_names": [n.encode() for n in CIFAR_NAMES],
            b"num_vis": 3072,
        },
    )
    for b in range(1, 6):
        ids = list(range((b - 1) * PER_BATCH, b * PER_BATCH))
        dump(folder / f"data_batch_{b}", cifar_batch(ids, [i % 10 for i in ids]))
    test_ids = [1000 + i for i in range(N_TEST)]
    dump(folder / "test_batch", cifar_batch(test_ids, [(3 * i) % 10 for i in range(N_TEST)]))
    return folder


def tiny_colour(label: int, image_id: int) -> tuple[int, int, int]:
    colour = [20, 20, 20]
    colour[label] = 100 + 10 * image_id
    return tuple(colour)


def decode_tiny(image: np.ndarray) -> tuple[int, int]:
    """(class, id) of an image written with tiny_colour (solid colours survive JPEG to +-2)."""
    means = image.reshape(-1, 3).mean(axis=0)
    label = int(np.argmax(means))
    return label, round((means[label] - 100) / 10)


def save_jpeg(path: Path, colour, size: int = TINY_SIZE, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), colour).save(path, "JPEG", quality=95)


def write_tiny(root: Path) -> Path:
    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (folder / "words.txt").write_text("".join(f"{w}\t{t}\n" for w, t in WORDS.items()))
    for label, wnid in enumerate(WNIDS):
        for k in range(TINY_PER_CLASS):
            save_jpeg(
                folder / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", tiny_colour(label, k)
            )
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    lines = []
    for i, (label, k) in enumerate(TINY_VAL):
        save_jpeg(folder / "val" / "images" / f"val_{i}.JPEG", tiny_colour(label, k))
        lines.append(f"val_{i}.JPEG\t{WNIDS[label]}\t0\t0\t63\t63")
    grey = len(TINY_VAL)
    save_jpeg(
        folder / "val" / "images" / f"val_{grey}.JPEG", 77, mode="L"
    )  # greyscale, as some are
    lines.append(f"val_{grey}.JPEG\t{WNIDS[0]}\t1\t2\t60\t61")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return folder


def write_cifar_c(root: Path, n: int = 4, size: int = 8) -> tuple[Path, ImageSet]:
    """CIFAR-10-C layout: row (s-1)*n + i of every corruption holds the value 40*s + i."""
    root.mkdir(parents=True, exist_ok=True)
    clean_labels = np.array([3, 1, 0, 2][:n] + list(range(max(0, n - 4))), dtype=np.int64)
    expected = ImageSet(np.zeros((n, size, size, 3), np.uint8), torch.from_numpy(clean_labels))
    rows = np.concatenate(
        [
            np.full((n, size, size, 3), 40 * s, np.uint8)
            + np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
            for s in range(1, 6)
        ]
    )
    for name in ("fog", "brightness"):
        np.save(root / f"{name}.npy", rows)
    np.save(root / "labels.npy", np.tile(clean_labels, 5))
    return root, expected


def write_tiny_c(root: Path) -> Path:
    """Tiny-ImageNet-C layout: fog at severities 1 and 2, brightness at 1; 2 images per class."""
    for name, severities in (("fog", (1, 2)), ("brightness", (1,))):
        for s in severities:
            for label, wnid in enumerate(WNIDS):
                for k in range(2):
                    save_jpeg(
                        root / name / str(s) / wnid / f"{wnid}_{k}.JPEG", tiny_colour(label, k + s)
                    )
    return root


def write_svhn(folder, n_train=200, n_test=20):
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        labels = (np.arange(n) % 10) + 1  # 1..10, 10 standing for digit 0, as published
        images = np.zeros((32, 32, 3, n), dtype=np.uint8)
        images[0, 0, 0, :] = labels * 20  # a per-label marker pixel at the top-left corner
        savemat(folder / name, {"X": images, "y": labels.reshape(-1, 1).astype(np.uint8)})


def write_folder(root, classes=("cat", "dog", "eel"), per_class=10, size=(12, 10)):
    from PIL import Image

    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((size[1], size[0], 3), 40 * index + i, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")

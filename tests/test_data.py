"""Data loaders and corruption readers on tiny files written in the exact published layouts.

CIFAR-10: Python-2-style pickles with bytes keys, b"data" uint8 (N, 3072) holding R, G, B planes.
Tiny ImageNet: wnids.txt, words.txt, train/<wnid>/images/*.JPEG, val/images + val_annotations.txt.
CIFAR-10-C: <name>.npy uint8 (S*N, H, W, C) + labels.npy. Tiny-ImageNet-C: <name>/<s>/<wnid>/*.JPEG.
Every image carries its class (a colour) and an id (pixels or brightness), so label mapping,
split membership and order can be read back from the loaded arrays.
"""

import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from layouts import (
    CIFAR_NAMES,
    N_TEST,
    PER_BATCH,
    TINY_PER_CLASS,
    TINY_SIZE,
    TINY_VAL,
    WNIDS,
    cifar_id,
    cifar_label,
    decode_tiny,
    dump,
    save_jpeg,
    tiny_colour,
    write_cifar,
    write_cifar_c,
    write_folder,
    write_svhn,
    write_tiny,
    write_tiny_c,
)
from messages import raises, warns
from selectivity.corruptions.store import follows_test_order, open_corrupted, stored_corruptions
from selectivity.data import (
    DataError,
    ImageSet,
    flip_and_crop,
    list_datasets,
    load_cifar10,
    load_dataset,
    load_tinyimagenet,
)
from selectivity.data import decode as decoding


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root)
    return root


# --------------------------------------------------------------------------------------------
# Registry and the digits loader
# --------------------------------------------------------------------------------------------


def test_registry_lists_the_real_datasets_and_digits_still_loads():
    assert {"digits", "cifar10", "tinyimagenet"} <= set(list_datasets())
    digits = load_dataset("digits", seed=0)
    assert digits.train.image_shape == (1, 16, 16) and digits.num_classes == 10
    with raises(DataError, "unknown dataset", "imagenet"):
        load_dataset("imagenet")


def test_digits_read_from_the_bundled_file_are_scikit_learns_and_need_no_sklearn_import(
    monkeypatch,
):
    import sys

    from sklearn.datasets import load_digits

    from selectivity.data.digits import digits_arrays

    bunch = load_digits()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # importing it would fail
    images, labels = digits_arrays()
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(labels, bunch.target)
    assert images.dtype == bunch.images.dtype and labels.dtype == np.int64
    # Where scikit-learn keeps no such file, its own loader reads the digits.
    monkeypatch.delitem(sys.modules, "sklearn.datasets")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    images, labels = digits_arrays()
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(labels, bunch.target)


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


def test_cifar10_shapes_range_labels_and_names(cifar_root):
    splits = load_dataset("cifar10", str(cifar_root), seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (90, 10, N_TEST)
    assert splits.num_classes == 10 and splits.class_names == CIFAR_NAMES
    assert splits.in_channels == 3 and splits.image_size == 32
    for part in (splits.train, splits.val, splits.test):
        assert isinstance(part.images, np.ndarray) and part.images.dtype == np.uint8
        assert part.images.shape[1:] == (32, 32, 3)
        # The class colour survives pickle -> planes -> NHWC, for every image.
        assert [cifar_label(im) for im in part.images] == part.labels.tolist()
        x, y = part.batch(np.arange(len(part)))
        assert x.dtype == torch.float32 and x.shape == (len(part), 3, 32, 32)
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert torch.all(x[:, 0, 1, 2] == 1.0) and torch.all(x[:, 0, 2, 1] < 1.0)  # no transpose
        assert torch.allclose(x[:, 1, 0, 0], (200 - 15 * y).float() / 255)
    # Validation is balanced: 10% of each class.
    assert torch.bincount(splits.val.labels, minlength=10).tolist() == [1] * 10
    # The test set keeps the published order (CIFAR-10-C rows follow it).
    assert [cifar_id(im) for im in splits.test.images] == [1000 + i for i in range(N_TEST)]
    assert splits.test.labels.tolist() == [(3 * i) % 10 for i in range(N_TEST)]
    assert splits.augment is not None and splits.augment.keywords == {"padding": 4}


def test_cifar10_stats_come_from_the_training_split(cifar_root):
    splits = load_cifar10(cifar_root, seed=0)
    x = torch.from_numpy(splits.train.images).double().div(255)
    mean = x.mean(dim=(0, 1, 2))
    std = x.std(dim=(0, 1, 2), unbiased=False)
    assert np.allclose(splits.mean, mean.numpy(), atol=1e-9) and np.allclose(
        splits.std, std.numpy(), atol=1e-9
    )


def test_cifar10_accepts_the_folder_itself_and_resizes(cifar_root):
    parent = load_cifar10(cifar_root, seed=3)
    itself = load_cifar10(cifar_root / "cifar-10-batches-py", seed=3)
    assert np.array_equal(parent.train.images, itself.train.images)
    small = load_cifar10(cifar_root, seed=3, image_size=16)
    assert small.train.image_shape == (3, 16, 16) and small.test.images.dtype == np.uint8
    assert small.augment.keywords == {"padding": 2}


def test_cifar10_split_per_seed_reproducible_and_disjoint(cifar_root):
    def ids(part):
        return sorted(cifar_id(im) for im in part.images)

    a, again, b = (load_cifar10(cifar_root, seed=s) for s in (0, 0, 1))
    assert ids(a.val) == ids(again.val) and ids(a.train) == ids(again.train)
    assert ids(a.val) != ids(b.val)
    for splits in (a, b):
        assert not set(ids(splits.train)) & set(ids(splits.val))
        assert sorted(ids(splits.train) + ids(splits.val)) == list(range(5 * PER_BATCH))
    # The test set does not depend on the seed.
    assert np.array_equal(a.test.images, b.test.images)


def _garbage(folder: Path) -> Path:
    (folder / "data_batch_2").write_bytes(b"this is not a pickle")
    return folder / "data_batch_2"


def _wrong_width(folder: Path) -> Path:
    dump(folder / "data_batch_4", {b"data": np.zeros((3, 1000), np.uint8), b"labels": [0, 1, 2]})
    return folder / "data_batch_4"


def _no_labels(folder: Path) -> Path:
    dump(folder / "data_batch_5", {b"data": np.zeros((3, 3072), np.uint8)})
    return folder / "data_batch_5"


def _short_labels(folder: Path) -> Path:
    dump(folder / "test_batch", {b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]})
    return folder / "test_batch"


def _label_range(folder: Path) -> Path:
    dump(folder / "data_batch_1", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    return folder / "data_batch_1"


def _foreign_object(folder: Path) -> Path:
    # A pickle naming any class but numpy's arrays is refused, not executed.
    dump(
        folder / "data_batch_3",
        OrderedDict({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}),
    )
    return folder / "data_batch_3"


def _names_missing(folder: Path) -> Path:
    dump(folder / "batches.meta", {b"num_vis": 3072})
    return folder / "batches.meta"


def _delete(name: str):
    def damage(folder: Path) -> Path:
        (folder / name).unlink()
        return folder / name

    return damage


@pytest.mark.parametrize(
    "damage",
    [
        _delete("data_batch_3"),
        _delete("test_batch"),
        _delete("batches.meta"),
        _garbage,
        _wrong_width,
        _no_labels,
        _short_labels,
        _label_range,
        _foreign_object,
        _names_missing,
    ],
)
def test_cifar10_malformed_files_name_the_expected_path(tmp_path, damage):
    path = damage(write_cifar(tmp_path))
    with pytest.raises(DataError) as error:
        load_cifar10(tmp_path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message


def test_cifar10_reads_pickles_naming_numpy_core(tmp_path):
    # The published files were pickled by NumPy 1.x, whose arrays name numpy.core.multiarray
    # (NumPy 2 writes numpy._core): both must load through the restricted unpickler.
    folder = write_cifar(tmp_path)
    for path in folder.iterdir():
        raw = path.read_bytes()
        if b"numpy._core.multiarray" in raw:
            path.write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
            assert b"numpy.core.multiarray\n_reconstruct" in path.read_bytes()
    splits = load_cifar10(tmp_path)
    assert [cifar_label(im) for im in splits.test.images] == splits.test.labels.tolist()


def test_cifar10_missing_folder_names_the_first_batch(tmp_path):
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", str(tmp_path))
    message = str(error.value)
    assert (
        str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in message
        and "python version" in message
    )


# --------------------------------------------------------------------------------------------
# Tiny ImageNet
# --------------------------------------------------------------------------------------------


def test_tinyimagenet_layout_labels_and_greyscale(tmp_path):
    write_tiny(tmp_path)
    splits = load_tinyimagenet(tmp_path, seed=0, val_per_class=2)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 6, len(TINY_VAL) + 1)
    assert splits.class_names == WNIDS and splits.num_classes == 3
    assert splits.train.image_shape == (3, TINY_SIZE, TINY_SIZE)
    assert splits.augment.keywords == {"padding": 8}
    for part in (splits.train, splits.val):
        assert [decode_tiny(im)[0] for im in part.images] == part.labels.tolist()
        x, _ = part.batch(np.arange(len(part)))
        assert x.shape == (len(part), 3, 64, 64) and x.min() >= 0 and x.max() <= 1
    # Test = the official val set, in val_annotations.txt order, labelled by wnid position.
    assert splits.test.labels.tolist() == [c for c, _ in TINY_VAL] + [0]
    assert [decode_tiny(im) for im in splits.test.images[:-1]] == TINY_VAL
    grey = splits.test.images[-1].astype(int)
    assert np.all(grey[..., 0] == grey[..., 1]) and np.all(grey[..., 1] == grey[..., 2])
    assert abs(grey.mean() - 77) <= 2


def test_tinyimagenet_split_per_seed_and_disjoint(tmp_path):
    write_tiny(tmp_path)

    def members(part):
        return sorted(decode_tiny(im) for im in part.images)

    a, again, b = (load_tinyimagenet(tmp_path, seed=s, val_per_class=2) for s in (0, 0, 1))
    assert members(a.val) == members(again.val) and members(a.val) != members(b.val)
    everything = sorted((c, k) for c in range(3) for k in range(TINY_PER_CLASS))
    for splits in (a, b):
        assert not set(members(splits.train)) & set(members(splits.val))
        assert sorted(members(splits.train) + members(splits.val)) == everything
        assert torch.bincount(splits.val.labels).tolist() == [2, 2, 2]


def test_tinyimagenet_cache_is_written_atomically_reused_and_invalidated(tmp_path, monkeypatch):
    root = write_tiny(tmp_path)
    calls = []
    decode = decoding._decode_images
    monkeypatch.setattr(
        decoding, "_decode_images", lambda paths: calls.append(len(paths)) or decode(paths)
    )
    first = load_tinyimagenet(tmp_path, seed=0, val_per_class=2)
    assert sorted(calls) == [len(TINY_VAL) + 1, 3 * TINY_PER_CLASS]
    cache = sorted(p.name for p in (root / ".selectivity-cache").iterdir())
    assert len(cache) == 2 and all(n.endswith(".npy") for n in cache)  # no temporary files left

    calls.clear()
    second = load_tinyimagenet(tmp_path, seed=0, val_per_class=2)
    assert calls == []  # nothing decoded: both arrays came from the cache
    assert np.array_equal(first.train.images, second.train.images)
    assert np.array_equal(first.test.images, second.test.images)

    # A new training image changes the file list: the training cache is rebuilt, val's is reused.
    save_jpeg(root / "train" / WNIDS[1] / "images" / "extra.JPEG", tiny_colour(1, 7))
    third = load_tinyimagenet(tmp_path, seed=0, val_per_class=2)
    assert calls == [3 * TINY_PER_CLASS + 1] and len(third.train) == 13


def test_tinyimagenet_cache_falls_back_to_user_dir_then_memory(tmp_path, monkeypatch):
    root = write_tiny(tmp_path / "data")
    # A file where the cache folder would go makes the data folder unusable for caching (this
    # works even as root, where a read-only chmod would not).
    (root / ".selectivity-cache").write_text("")
    user = tmp_path / "user-cache"
    monkeypatch.setenv("SELECTIVITY_CACHE_DIR", str(user))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_tinyimagenet(root, val_per_class=2)
    assert len(list(user.glob("*.npy"))) == 2

    blocked = tmp_path / "blocked"
    blocked.write_text("")
    monkeypatch.setenv("SELECTIVITY_CACHE_DIR", str(blocked / "cache"))
    (root / "val" / "images" / "val_0.JPEG").unlink()  # not cached anywhere yet
    text = (root / "val" / "val_annotations.txt").read_text().splitlines()
    (root / "val" / "val_annotations.txt").write_text("\n".join(text[1:]))
    with warns(UserWarning, "cache"):
        splits = load_tinyimagenet(root, val_per_class=2)
    assert len(splits.test) == len(TINY_VAL)


def test_tinyimagenet_default_holdout_needs_enough_images(tmp_path):
    root = write_tiny(tmp_path)
    with pytest.raises(DataError) as error:
        load_dataset("tinyimagenet", str(tmp_path))
    assert str(root / "train" / WNIDS[0] / "images") in str(error.value) and "50" in str(
        error.value
    )


def _tiny_damages():
    def no_wnids(root):
        (root / "wnids.txt").unlink()
        return root / "wnids.txt"

    def empty_wnids(root):
        (root / "wnids.txt").write_text("\n")
        return root / "wnids.txt"

    def duplicate_wnid(root):
        (root / "wnids.txt").write_text("\n".join(WNIDS + WNIDS[:1]))
        return root / "wnids.txt"

    def missing_class(root):
        (root / "wnids.txt").write_text("\n".join([*WNIDS, "n04000004"]))
        return root / "train" / "n04000004" / "images"

    def empty_class(root):
        for p in (root / "train" / WNIDS[2] / "images").iterdir():
            p.unlink()
        return root / "train" / WNIDS[2] / "images"

    def no_annotations(root):
        (root / "val" / "val_annotations.txt").unlink()
        return root / "val" / "val_annotations.txt"

    def unknown_wnid(root):
        with open(root / "val" / "val_annotations.txt", "a") as f:
            f.write("val_0.JPEG\tn05000005\t0\t0\t1\t1\n")
        return root / "val" / "val_annotations.txt"

    def bad_annotation(root):
        with open(root / "val" / "val_annotations.txt", "a") as f:
            f.write("val_0.JPEG\n")
        return root / "val" / "val_annotations.txt"

    def missing_val_image(root):
        (root / "val" / "images" / "val_1.JPEG").unlink()
        return root / "val" / "images" / "val_1.JPEG"

    def corrupt_jpeg(root):
        path = root / "train" / WNIDS[1] / "images" / f"{WNIDS[1]}_3.JPEG"
        path.write_bytes(b"\xff\xd8 not really a jpeg")
        return path

    def wrong_size(root):
        path = root / "val" / "images" / "val_2.JPEG"
        save_jpeg(path, (1, 2, 3), size=32)
        return path

    return [
        no_wnids,
        empty_wnids,
        duplicate_wnid,
        missing_class,
        empty_class,
        no_annotations,
        unknown_wnid,
        bad_annotation,
        missing_val_image,
        corrupt_jpeg,
        wrong_size,
    ]


@pytest.mark.parametrize("damage", _tiny_damages(), ids=lambda f: f.__name__)
def test_tinyimagenet_malformed_files_name_the_expected_path(tmp_path, damage):
    path = damage(write_tiny(tmp_path))
    with pytest.raises(DataError) as error:
        load_tinyimagenet(tmp_path, val_per_class=2)
    message = str(error.value)
    assert str(path) in message and "\n" not in message


# --------------------------------------------------------------------------------------------
# CIFAR-10-C layout
# --------------------------------------------------------------------------------------------


def test_npy_corruptions_are_memory_mapped_per_severity(tmp_path):
    root, expected = write_cifar_c(tmp_path / "CIFAR-10-C")
    assert stored_corruptions(root) == ["brightness", "fog"]
    assert stored_corruptions(tmp_path) == ["brightness", "fog"]  # the parent works too
    for check in (expected, None):
        fog = open_corrupted(root, "fog", 3, expected=check)
        assert isinstance(fog.images, np.memmap)  # a view of the file, not a copy
        assert fog.images.shape == (4, 8, 8, 3)
        assert [int(im[0, 0, 0]) for im in fog.images] == [120, 121, 122, 123]
        assert fog.labels.tolist() == expected.labels.tolist()
    x, y = fog.batch(slice(0, 4))
    assert x.shape == (4, 3, 8, 8) and torch.allclose(
        x[:, 2, 5, 5], torch.tensor([120.0, 121, 122, 123]) / 255
    )
    assert y.dtype == torch.int64


def test_only_the_npy_layout_follows_the_test_order(tmp_path):
    root, _ = write_cifar_c(tmp_path / "CIFAR-10-C")
    assert follows_test_order(root)
    assert not follows_test_order(write_tiny_c(tmp_path / "Tiny-ImageNet-C"))


def test_npy_corruptions_match_a_loaded_clean_test_set(tmp_path, cifar_root):
    splits = load_cifar10(cifar_root)
    root = tmp_path / "c"
    root.mkdir()
    np.save(root / "snow.npy", np.concatenate([splits.test.images] * 5))
    np.save(root / "labels.npy", np.tile(splits.test.labels.numpy(), 5))
    snow = open_corrupted(root, "snow", 5, expected=splits.test)
    assert np.array_equal(snow.images, splits.test.images) and torch.equal(
        snow.labels, splits.test.labels
    )


def _npy_damages():
    def missing_corruption(root, expected):
        return root / "snow.npy", {"corruption": "snow"}

    def wrong_count(root, expected):
        five = ImageSet(np.zeros((5, 8, 8, 3), np.uint8), torch.zeros(5, dtype=torch.long))
        return root / "labels.npy", {"expected": five}

    def wrong_labels(root, expected):
        other = ImageSet(expected.images, expected.labels.flip(0))
        return root / "labels.npy", {"expected": other}

    def wrong_shape(root, expected):
        big = ImageSet(np.zeros((4, 16, 16, 3), np.uint8), expected.labels)
        return root / "fog.npy", {"expected": big}

    def bad_severity(root, expected):
        return root / "fog.npy", {"severity": 6}

    def not_npy(root, expected):
        (root / "fog.npy").write_bytes(b"garbage")
        return root / "fog.npy", {}

    def float_images(root, expected):
        np.save(root / "fog.npy", np.zeros((20, 8, 8, 3), np.float32))
        return root / "fog.npy", {}

    def labels_rows(root, expected):
        np.save(root / "labels.npy", np.zeros(19, np.int64))
        return root / "labels.npy", {}

    return [
        missing_corruption,
        wrong_count,
        wrong_labels,
        wrong_shape,
        bad_severity,
        not_npy,
        float_images,
        labels_rows,
    ]


@pytest.mark.parametrize("damage", _npy_damages(), ids=lambda f: f.__name__)
def test_npy_corruption_errors_name_the_expected_file(tmp_path, damage):
    root, expected = write_cifar_c(tmp_path)
    path, overrides = damage(root, expected)
    args = {"corruption": "fog", "severity": 3, "expected": expected} | overrides
    with pytest.raises(DataError) as error:
        open_corrupted(root, args["corruption"], args["severity"], expected=args["expected"])
    message = str(error.value)
    assert str(path) in message and "\n" not in message


def test_corruption_root_errors(tmp_path):
    with raises(DataError, str(tmp_path / "nowhere"), "folder"):
        stored_corruptions(tmp_path / "nowhere")
    with raises(DataError, str(tmp_path), "CIFAR-10-C"):
        stored_corruptions(tmp_path)
    np.save(tmp_path / "fog.npy", np.zeros((5, 2, 2, 3), np.uint8))
    with pytest.raises(DataError) as error:
        stored_corruptions(tmp_path)
    assert str(tmp_path / "labels.npy") in str(error.value)


# --------------------------------------------------------------------------------------------
# Tiny-ImageNet-C layout
# --------------------------------------------------------------------------------------------


def test_folder_corruptions_labels_from_wnids_and_cache(tmp_path, monkeypatch):
    root = write_tiny_c(tmp_path / "Tiny-ImageNet-C")
    assert stored_corruptions(tmp_path) == ["brightness", "fog"]
    expected = ImageSet(np.zeros((1, 64, 64, 3), np.uint8), torch.zeros(1, dtype=torch.long))
    fog = open_corrupted(tmp_path, "fog", 2, class_names=WNIDS, expected=expected)
    assert isinstance(fog.images, np.memmap) and fog.images.shape == (6, 64, 64, 3)
    # Folders are visited in sorted wnid order; the label is the position in the wnid list.
    order = sorted(range(3), key=lambda c: WNIDS[c])
    assert fog.labels.tolist() == [c for c in order for _ in range(2)]
    assert [decode_tiny(im) for im in fog.images] == [(c, k + 2) for c in order for k in range(2)]
    assert len(list((root / ".selectivity-cache").glob("fog-s2-*.npy"))) == 1

    monkeypatch.setattr(
        decoding, "_decode_images", lambda paths: pytest.fail("decoded again despite the cache")
    )
    again = open_corrupted(root, "fog", 2, class_names=WNIDS)
    assert np.array_equal(again.images, fog.images) and torch.equal(again.labels, fog.labels)


def _folder_damages():
    def no_class_names(root):
        return root, {"class_names": None}

    def unknown_wnid(root):
        return root / "fog" / "1" / WNIDS[2], {"class_names": WNIDS[:2]}

    def missing_severity(root):
        return root / "fog" / "3", {"severity": 3}

    def missing_corruption(root):
        return root / "snow", {"corruption": "snow"}

    def wrong_shape(root):
        small = ImageSet(np.zeros((1, 32, 32, 3), np.uint8), torch.zeros(1, dtype=torch.long))
        return root / "fog" / "1", {"expected": small}

    def empty_severity(root):
        (root / "fog" / "4").mkdir()
        return root / "fog" / "4", {"severity": 4}

    return [
        no_class_names,
        unknown_wnid,
        missing_severity,
        missing_corruption,
        wrong_shape,
        empty_severity,
    ]


@pytest.mark.parametrize("damage", _folder_damages(), ids=lambda f: f.__name__)
def test_folder_corruption_errors_name_the_expected_path(tmp_path, damage):
    root = write_tiny_c(tmp_path)
    path, overrides = damage(root)
    args = {"corruption": "fog", "severity": 1, "class_names": WNIDS, "expected": None} | overrides
    with pytest.raises(DataError) as error:
        open_corrupted(
            root,
            args["corruption"],
            args["severity"],
            class_names=args["class_names"],
            expected=args["expected"],
        )
    message = str(error.value)
    assert str(path) in message and "\n" not in message


# --------------------------------------------------------------------------------------------
# flip_and_crop
# --------------------------------------------------------------------------------------------


def _shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """image (C, H, W) moved by (dy, dx) with zeros shifted in: out[y, x] = image[y + dy, x + dx]."""
    _, h, w = image.shape
    out = torch.zeros_like(image)
    ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    out[:, yd, xd] = image[:, ys, xs]
    return out


def test_flip_and_crop_is_a_shifted_possibly_flipped_copy():
    x = torch.rand(24, 3, 12, 12) + 0.1  # no zeros inside: padding shows as exact zeros
    out = flip_and_crop(x, torch.Generator().manual_seed(0), padding=3)
    assert out.shape == x.shape and out.dtype == x.dtype
    flipped = 0
    for image, result in zip(x, out, strict=True):
        matches = [
            (flip, dy, dx)
            for flip in (False, True)
            for dy in range(-3, 4)
            for dx in range(-3, 4)
            if torch.equal(result, _shifted(image.flip(2) if flip else image, dy, dx))
        ]
        assert matches, "output is not a zero-padded shift of the (flipped) input"
        flipped += matches[0][0]
    assert 0 < flipped < len(x)  # both branches of the flip are taken


def test_flip_and_crop_without_padding_only_flips_and_is_reproducible():
    x = torch.rand(64, 2, 6, 6)
    out = flip_and_crop(x, torch.Generator().manual_seed(1), padding=0)
    same = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    flip = torch.tensor([torch.equal(o, i.flip(2)) for o, i in zip(out, x, strict=True)])
    assert torch.all(same | flip) and 10 < int(flip.sum()) < 54
    again = flip_and_crop(x, torch.Generator().manual_seed(1), padding=0)
    other = flip_and_crop(x, torch.Generator().manual_seed(2), padding=0)
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_flip_and_crop_at_64_pixels_with_8_px_padding():
    x = torch.ones(4, 3, 64, 64)
    out = flip_and_crop(x, torch.Generator().manual_seed(0), padding=8)
    assert out.shape == (4, 3, 64, 64)
    # Each image keeps at least (64 - 8)^2 original pixels; a shift shows as zero rows/columns.
    assert torch.all(out.sum(dim=(1, 2, 3)) >= 3 * 56 * 56)


# --- SVHN (.mat) and a user's image folder ------------------------------------------------------


def test_svhn_mat_files(tmp_path):
    write_svhn(tmp_path)
    splits = load_dataset("svhn", str(tmp_path), seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (180, 20, 20)
    x, y = splits.test.batch(slice(0, 20))
    assert x.shape == (20, 3, 32, 32)
    # Label 10 is digit 0; the marker written for file label l is l * 20.
    assert torch.equal((x[:, 0, 0, 0] * 255).round().long(), torch.where(y == 0, 10, y) * 20)
    assert splits.augment is not None
    missing = tmp_path / "empty"
    missing.mkdir()
    with raises(DataError, "train_32x32.mat"):
        load_dataset("svhn", str(missing))


def test_image_folder_split_and_labels(tmp_path):
    write_folder(tmp_path / "imgs")
    a = load_dataset("folder", str(tmp_path / "imgs"), seed=0)
    b = load_dataset("folder", str(tmp_path / "imgs"), seed=1)
    assert a.class_names == ["cat", "dog", "eel"] and a.num_classes == 3
    assert (len(a.test), len(a.train) + len(a.val)) == (6, 24)
    assert a.train.image_shape == (3, 10, 12)
    xa, ya = a.test.batch(slice(0, 6))
    xb, _ = b.test.batch(slice(0, 6))
    assert torch.equal(xa, xb)  # the test split does not depend on the seed
    assert torch.equal(((xa[:, 0, 0, 0] * 255).round().long() // 40), ya)


def test_image_folder_with_train_and_test_and_resizing(tmp_path):
    write_folder(tmp_path / "imgs" / "train", per_class=20)
    write_folder(tmp_path / "imgs" / "test", per_class=3, size=(7, 7))
    with raises(DataError, "image_size"):
        load_dataset("folder", str(tmp_path / "imgs"))
    splits = load_dataset("folder", str(tmp_path / "imgs"), image_size=8)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54, 6, 9)
    assert splits.test.image_shape == (3, 8, 8)


def test_image_folder_errors(tmp_path):
    with raises(DataError, "data_dir"):
        load_dataset("folder")
    with raises(DataError, str(tmp_path / "nope"), "not found"):
        load_dataset("folder", str(tmp_path / "nope"))
    (tmp_path / "one" / "only").mkdir(parents=True)
    with raises(DataError, str(tmp_path / "one"), "1 class"):
        load_dataset("folder", str(tmp_path / "one"))


def test_float_images_in_unit_range_give_the_numbers_of_their_uint8_originals():
    from selectivity import create_model
    from selectivity.measure import measure_selectivity

    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)
    labels = torch.from_numpy(rng.integers(0, 4, size=40))
    as_uint8 = ImageSet(raw, labels)
    as_float = ImageSet(raw.astype(np.float32) / 255, labels)  # once scaled 255x too dark
    as_tensor = ImageSet(torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous(), labels)
    x, _ = as_uint8.batch(slice(0, 40))
    assert torch.allclose(as_float.batch(slice(0, 40))[0], x, atol=1e-6)
    assert torch.equal(as_tensor.batch(slice(0, 40))[0], x)
    torch.manual_seed(0)
    model = create_model("digitsnet", 4, in_channels=3)
    first = measure_selectivity(model, as_uint8, 4)
    second = measure_selectivity(model, as_float, 4)
    assert second.accuracy == first.accuracy
    assert second.network == pytest.approx(first.network, abs=1e-5)


@pytest.mark.parametrize(
    "images, words",
    [
        (np.full((4, 8, 8, 3), 200.0), ("[0, 1]", "0..255")),
        (np.full((4, 8, 8, 3), -0.5, np.float32), ("[0, 1]",)),
        (np.full((4, 8, 8, 3), np.nan, np.float32), ("[0, 1]",)),
        (np.zeros((4, 8, 8, 3), np.int64), ("int64", "uint8", "floating point")),
        (np.zeros((4, 3, 8, 8), np.uint8), ("(N, C, H, W)",)),
        (torch.zeros(4, 8, 8, 3), ("(N, H, W, C)",)),
        (torch.zeros(4, 8, 8), ("(N, C, H, W)",)),
        ([[0.0]], ("numpy array", "tensor")),
    ],
)
def test_images_that_would_give_wrong_numbers_are_refused(images, words):
    with raises(DataError, *words):
        ImageSet(images, torch.zeros(4, dtype=torch.long))


def test_labels_must_match_the_images():
    with raises(DataError, "4 images", "3 labels"):
        ImageSet(np.zeros((4, 8, 8, 3), np.uint8), torch.zeros(3, dtype=torch.long))

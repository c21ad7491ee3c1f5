"""Writing a whole corruption set to disk in the CIFAR-10-C layout.

    <out_dir>/<name>.npy     uint8 (S * N, H, W, C); rows [i N, (i + 1) N) hold severities[i]
                             (severity s for the default 1..5), images in input order
    <out_dir>/labels.npy     int64 (S * N,): the labels repeated once per severity
    <out_dir>/metadata.json  table, seed, severities, image shape, batch size, finished corruptions

Pixels are truncated to uint8 as the published driver does (np.uint8(x * 255)).

Every file is written under a temporary name in the same folder and renamed when complete, so a
file that exists under its final name is whole; an interrupted run leaves no partial file and a
rerun skips the finished ones. Each (corruption, severity) draws from its own generator, seeded
from (seed, name, severity), so any subset of corruptions regenerates bit for bit, given the same
batch size (draws are made per batch) and device.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from selectivity.corruptions.apply import check_request, corrupt, runnable_corruptions
from selectivity.corruptions.ops import truncate_to_uint8
from selectivity.corruptions.store import (
    NUM_SEVERITIES,
    is_complete,
    save_json,
    save_npy,
    stored_corruptions,
    write_rows,
)
from selectivity.corruptions.tables import CORRUPTIONS, get_table, table_for_size
from selectivity.data import DataError, ImageSet, as_images, load_dataset
from selectivity.files import (
    read_json,
    refuse_other_contents,
    remove_stale_temporaries,
)

__all__ = [
    "corruption_source",
    "derived_seed",
    "generate_corruption_set",
    "generate_from_dataset",
    "stored_corruption_set",
]

# Settings that must agree for files of one folder to belong to one set.
_IDENTITY_KEYS = (
    "table",
    "seed",
    "severities",
    "image_shape",
    "num_images",
    "batch_size",
    "labels_sha256",
)


def derived_seed(seed: int, name: str, severity: int) -> int:
    """A 63-bit seed for one (corruption, severity), independent of which others are generated."""
    digest = hashlib.sha256(f"{int(seed)}/{name}/{int(severity)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _check_names(corruptions: Iterable[str] | None) -> list[str]:
    if corruptions is None:
        return list(runnable_corruptions())
    names = list(dict.fromkeys(corruptions))
    for name in names:
        check_request(name, 1)
    # The conventional order, whatever order they were asked in.
    return [name for name in CORRUPTIONS if name in names]


def _check_severities(severities: Sequence[int]) -> list[int]:
    levels = list(severities)
    if not levels or len(set(levels)) != len(levels):
        raise ValueError(
            f"severities must be a non-empty list of distinct integers from 1 to {NUM_SEVERITIES}, "
            f"got {levels!r}"
        )
    for s in levels:
        check_request(CORRUPTIONS[0], s)
    return levels


def _check_shape(images: ImageSet, batch_size: int) -> tuple[int, int, int]:
    """The images' (C, H, W), after refusing a batch size below 1 and other than 1 or 3 channels."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    c, h, w = images.image_shape
    if c not in (1, 3):
        raise DataError(
            f"corruptions are defined for grey or RGB images (1 or 3 channels), got {c} channels "
            "(selectivity, attacks and the Jacobian take any channel count)"
        )
    return c, h, w


def generate_corruption_set(
    images: ImageSet | Any,
    out_dir: str | os.PathLike,
    seed: int = 0,
    corruptions: Iterable[str] | None = None,
    severities: Sequence[int] = tuple(range(1, NUM_SEVERITIES + 1)),
    table: str | None = None,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    progress: bool = True,
    num_threads: int | None = 1,
) -> list[str]:
    """Write a corruption set of `images` into `out_dir` (layout in the module docstring).

    images: an ImageSet, or anything `data.as_images` reads (a Dataset, a DataLoader, tensors).
    corruptions: names (None: `runnable_corruptions()`), written in the conventional order.
    severities: which levels, in the order their row blocks appear. table: severity table (None:
    by image size). batch_size: images per `corrupt` call; part of the set's identity, since draws
    are made per batch. device: where the corruptions are computed. num_threads: torch's intra-op
    threads while generating, restored afterwards (None: leave as set). The corruptions are many
    small operations on batches; on a CPU shared with other work one thread is several times
    faster than two, since every parallel operation waits for a busy core.
    Files already complete are skipped. A folder holding a set made with other settings (table,
    seed, severities, image shape, image count, batch size or labels) raises FolderError (a
    FileError, a ValueError), and a metadata.json that is not a JSON object FileError.
    Returns the paths of the corruption files written by this call, in order.
    """
    images = as_images(images)
    names = _check_names(corruptions)
    levels = _check_severities(severities)
    c, h, w = _check_shape(images, batch_size)
    table_name = get_table(table).name if table is not None else table_for_size(max(h, w))
    n = len(images)
    labels = images.labels.detach().cpu().to(torch.int64).numpy()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)

    identity = _set_identity(table_name, seed, levels, (h, w, c), batch_size, labels)
    meta_path = out / "metadata.json"
    _refuse_other_set(out, meta_path, identity)

    shape = (len(levels) * n, h, w, c)

    def finished() -> list[str]:
        return [
            name
            for name in CORRUPTIONS
            if is_complete(out / f"{name}.npy", shape, np.dtype(np.uint8))
        ]

    def write_metadata() -> None:
        save_json(
            meta_path,
            {
                **identity,
                "format": "CIFAR-10-C: <name>.npy uint8 (S*N, H, W, C), labels.npy int64 (S*N,)",
                "corruptions": finished(),
            },
        )

    labels_path = out / "labels.npy"
    if not is_complete(labels_path, (len(levels) * n,), np.dtype(np.int64)):
        save_npy(labels_path, np.tile(labels, len(levels)))
    write_metadata()

    todo = [
        name for name in names if not is_complete(out / f"{name}.npy", shape, np.dtype(np.uint8))
    ]
    written: list[str] = []
    with (
        _torch_threads(num_threads),
        tqdm(
            total=len(todo) * len(levels) * math.ceil(n / batch_size),
            disable=not progress,
            unit="batch",
        ) as bar,
    ):
        for name in todo:
            path = out / f"{name}.npy"
            blocks = _corrupted_blocks(
                images, name, levels, seed, table_name, batch_size, device, bar
            )
            write_rows(path, shape, blocks)
            written.append(str(path))
            write_metadata()
    return written


def _set_identity(
    table_name: str,
    seed: int,
    levels: list[int],
    image_shape: tuple[int, int, int],
    batch_size: int,
    labels: np.ndarray,
) -> dict[str, Any]:
    """What makes two corruption sets the same set: recorded in metadata.json, and compared."""
    return {
        "table": table_name,
        "seed": int(seed),
        "severities": levels,
        "image_shape": list(image_shape),
        "num_images": len(labels),
        "batch_size": int(batch_size),
        "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
    }


def _refuse_other_set(out: Path, meta_path: Path, identity: dict) -> None:
    """FolderError when `out` already holds a corruption set made with other settings."""
    if not meta_path.is_file():
        return
    existing = read_json(
        meta_path,
        "; it records which corruption set this folder holds: restore it or use another folder",
    )
    # The record holds more than the identity (the corruptions written so far).
    refuse_other_contents(
        out,
        "a corruption set made with other settings",
        {k: existing.get(k) for k in _IDENTITY_KEYS},
        identity,
        "use another folder",
    )


@contextlib.contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `num_threads` (None: left alone), restored after."""
    before = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _corrupted_blocks(
    images: ImageSet,
    name: str,
    levels: list[int],
    seed: int,
    table_name: str,
    batch_size: int,
    device: str | torch.device,
    bar: tqdm,
) -> Iterator[np.ndarray]:
    """The rows of corruption `name` in file order: uint8 (batch, H, W, C) blocks, severity by
    severity, each severity drawn from its own derived seed."""
    n = len(images)
    for severity in levels:
        bar.set_description(f"{name} s{severity}")
        generator = torch.Generator().manual_seed(derived_seed(seed, name, severity))
        for start in range(0, n, batch_size):
            x, _ = images.batch(slice(start, min(start + batch_size, n)), device)
            y = corrupt(x, name, severity, generator=generator, table=table_name)
            yield truncate_to_uint8(y).permute(0, 2, 3, 1).contiguous().cpu().numpy()
            bar.update(1)


def generate_from_dataset(
    out_dir: str | os.PathLike,
    dataset: str,
    data_dir: str | None = None,
    image_size: int | None = None,
    split: str = "test",
    **generate: Any,
) -> tuple[list[str], int]:
    """Write the corruption set of one split (test or val) of a registered data set into `out_dir`:
    `generate_corruption_set` of that split, with the keyword arguments `generate` (seed,
    corruptions, severities, table, device, progress). Returns (the files written by this call,
    the number of images).

    The splits are drawn with seed 0: the test split does not depend on the seed (a
    trained run's own val split does), so trials of any seed share the test set's corruptions.
    """
    data = load_dataset(dataset, data_dir, 0, image_size)
    images = getattr(data, split)
    return generate_corruption_set(images, out_dir, **generate), len(images)


def stored_corruption_set(
    directory: str | os.PathLike, wanted: Sequence[str] | None = None
) -> tuple[Path, list[str]]:
    """(folder, the corruptions of it to evaluate) of a corruption set on disk (CIFAR-10-C or
    Tiny-ImageNet-C layout, or one `generate_corruption_set` wrote), reading only its listing.

    wanted: only these corruptions (None: all the set has). Raises DataError for a folder that is
    missing or holds no corruption set, or a wanted corruption the set lacks; an evaluation asks
    this before any other work, so a wrong folder fails at once.
    """
    root = Path(directory)
    return root, _chosen(root, stored_corruptions(root), wanted)


def corruption_source(
    images: ImageSet,
    directory: str | os.PathLike | None,
    generate_into: Path | None,
    wanted: Sequence[str] | None = None,
    **generate: Any,
) -> tuple[Path, list[str]]:
    """(folder of a corruption set, the corruptions of it to evaluate), for an evaluation.

    directory: a set on disk (`stored_corruption_set`); else generate_into: generate the set of
    `images` there (or complete it) with the keyword arguments `generate` (seed, table, device,
    progress). wanted: only these corruptions (None: all the set has, or all that can run).
    Raises DataError for a requested corruption the set lacks, or a folder with no corruption set.
    """
    if directory is not None:
        return stored_corruption_set(directory, wanted)
    if generate_into is None:
        raise ValueError("corruption_source needs a directory or a folder to generate into")
    names = list(wanted or runnable_corruptions())
    generate_corruption_set(images, generate_into, corruptions=names, **generate)
    return generate_into, _chosen(generate_into, names, wanted)


def _chosen(root: Path, names: list[str], wanted: Sequence[str] | None) -> list[str]:
    """The `wanted` corruptions of the set in `root` holding `names`; DataError as above."""
    if wanted is not None:
        missing = sorted(set(wanted) - set(names))
        if missing:
            raise DataError(
                f"corruption(s) {', '.join(missing)} not found in {root}; it has {', '.join(names) or 'none'}"
            )
        names = [n for n in names if n in wanted]
    if not names:
        raise DataError(
            f"no corruption sets found in {root}: expected <name>.npy with labels.npy, or <name>/<severity>/<wnid>/*.JPEG"
        )
    return names

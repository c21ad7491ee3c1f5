"""Networks compared with each other across a sweep, from the unit responses each trial stored.

The off-axis question of the regularizer paper: did lowering selectivity change what a layer
represents, or only rotate it among the units? Each trial's evaluation stores its layers'
unit responses to a fixed set of test images (the `representations` part, identical images for
every trial); here they are compared with no model loaded.

    write_representations(path, responses, labels, indices)   RUN_DIR/evaluation/representations.npz
    read_representations(path) -> Representations
    similarity_table(trials) -> DataFrame                       the rows below, for `sweep.gather`

Pairs (our rule): a trial of alpha != 0 is compared with the alpha = 0 trial that has the same
seed and the same value of every other swept key (the reference, PWCCA's X), layer by layer:
metrics `pwcca` and `linear_cka` (`selectivity.similarity`). Each alpha = 0 trial gets the
seed-to-seed level the others are read against: `pwcca_seed_baseline` and
`linear_cka_seed_baseline`, its mean similarity (as X) to the alpha = 0 trials of the other seeds
with the same other keys. A trial without a reference, or without stored responses, gets no
rows, and the table's `attrs["notes"]` says so.
"""

from __future__ import annotations

import hashlib
import io
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from selectivity import schema
from selectivity.files import write_bytes
from selectivity.similarity import similarity_rows

__all__ = [
    "REPRESENTATIONS",
    "Representations",
    "images_digest",
    "read_representations",
    "similarity_table",
    "write_representations",
]

# The file of a trial's stored responses, in its evaluation folder.
REPRESENTATIONS = "representations.npz"
SIMILARITY = ("pwcca", "linear_cka")


@dataclass(frozen=True)
class Representations:
    """One network's unit responses to N fixed test images.

    responses: layer -> (N, U) float32, in network order; labels (N,) int64; indices (N,) int64:
    the images' positions in the test set; images: a digest of the images themselves, so that
    two trials are compared only on the same pixels.
    """

    responses: dict[str, np.ndarray]
    labels: np.ndarray
    indices: np.ndarray
    images: str

    def same_images(self, other: Representations) -> bool:
        return (
            self.images == other.images
            and np.array_equal(self.indices, other.indices)
            and np.array_equal(self.labels, other.labels)
        )

    def tensors(self) -> dict[str, Tensor]:
        return {layer: torch.from_numpy(values) for layer, values in self.responses.items()}


def images_digest(images: Tensor) -> str:
    """sha256 of a batch of images (any shape), as float32 bytes in C order."""
    data = images.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()


def write_representations(
    path: Path,
    responses: Mapping[str, Tensor],
    labels: Tensor,
    indices: np.ndarray,
    images: str,
) -> Path:
    """Write `responses` (layer -> (N, U), stored as float32) with the images' labels (N,),
    test-set positions (N,) and digest (`images_digest`) to `path`, atomically (.npz)."""
    arrays: dict[str, np.ndarray] = {
        "layers": np.array(list(responses), dtype=str),
        "labels": labels.detach().cpu().numpy().astype(np.int64),
        "indices": np.asarray(indices, dtype=np.int64),
        "images": np.array(images),
    }
    for position, values in enumerate(responses.values()):
        arrays[f"unit_{position}"] = values.detach().to("cpu", torch.float32).numpy()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return write_bytes(path, buffer.getvalue())


def read_representations(path: Path) -> Representations:
    """The responses `write_representations` wrote to `path`; ValueError when it holds none."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            layers = [str(name) for name in stored["layers"]]
            return Representations(
                {layer: stored[f"unit_{i}"] for i, layer in enumerate(layers)},
                stored["labels"],
                stored["indices"],
                str(stored["images"]),
            )
    except (KeyError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"{path} holds no stored responses ({error})") from None


def _group(values: Mapping[str, Any], leave_out: Sequence[str]) -> tuple:
    return tuple((key, values[key]) for key in values if key not in leave_out)


def _rows(metric_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        schema.row(r["metric"], r["value"], layer=r["layer"], split="test", samples=r["samples"])
        for r in metric_rows
    ]


def _baseline(reference: Representations, others: list[Representations]) -> list[dict[str, Any]]:
    """Rows `<metric>_seed_baseline` per layer: mean over `others` of the similarity of
    `reference` (as X) to each, over the finite values (NaN when none is finite)."""
    values: dict[tuple[str, str], list[float]] = {}
    samples: dict[str, int] = {}
    for other in others:
        for r in similarity_rows(reference.tensors(), other.tensors()):
            values.setdefault((r["metric"], r["layer"]), []).append(r["value"])
            samples[r["layer"]] = r["samples"]
    rows = []
    for (metric, layer), found in values.items():
        finite = [v for v in found if not math.isnan(v)]
        mean = sum(finite) / len(finite) if finite else math.nan
        rows.append(
            schema.row(
                f"{metric}_seed_baseline", mean, layer=layer, split="test", samples=samples[layer]
            )
        )
    return rows


def similarity_table(trials: Sequence[tuple[Mapping[str, Any], Path]]) -> pd.DataFrame:
    """The similarity rows of a sweep's finished trials (module docstring for the pairs).

    trials: (values, folder) per trial, values holding alpha, seed and every other swept key;
    each folder's stored responses are read from FOLDER/evaluation/representations.npz.
    Returns the schema's columns and `trial` (the trial's position in `trials`), rows grouped
    by trial in `trials` order, layers in network order; `attrs["notes"]` says which trials
    got no rows, and why.
    """
    stored: dict[int, Representations] = {}
    missing, unreadable = [], []
    for position, (_, folder) in enumerate(trials):
        path = Path(folder) / "evaluation" / REPRESENTATIONS
        try:
            stored[position] = read_representations(path)
        except FileNotFoundError:
            missing.append(position)
        except (OSError, ValueError):
            unreadable.append(position)
    references = {
        _group(values, ("alpha",)): position
        for position, (values, _) in enumerate(trials)
        if float(values["alpha"]) == 0.0
    }
    notes = _availability_notes(trials, references, missing, unreadable)
    frames, mismatched, orphans, baselines = [], 0, 0, 0
    for position, (values, _) in enumerate(trials):
        if position not in stored:
            continue
        mine = stored[position]
        if float(values["alpha"]) == 0.0:
            group = _group(values, ("alpha", "seed"))
            others = [
                stored[p]
                for p, (v, _) in enumerate(trials)
                if p != position
                and p in stored
                and float(v["alpha"]) == 0.0
                and _group(v, ("alpha", "seed")) == group
            ]
            comparable = [other for other in others if mine.same_images(other)]
            mismatched += len(others) - len(comparable)
            rows = _baseline(mine, comparable) if comparable else []
            baselines += bool(rows)
        else:
            reference = references.get(_group(values, ("alpha",)))
            if reference is None:
                orphans += 1
                continue
            if reference not in stored:
                continue
            if not stored[reference].same_images(mine):
                mismatched += 1
                continue
            rows = _rows(similarity_rows(stored[reference].tensors(), mine.tensors()))
        frames.append(schema.frame(rows).assign(trial=position))
    if orphans and references:
        notes.append(
            f"{orphans} trial(s) have no alpha = 0 trial of the same seed and keys: "
            "no pwcca / linear_cka rows for them"
        )
    if references and stored and not baselines:
        notes.append(
            "no pwcca_seed_baseline / linear_cka_seed_baseline rows: they need alpha = 0 trials "
            "of at least two seeds with the same other keys"
        )
    if mismatched:
        notes.append(
            f"{mismatched} pair(s) of trials stored responses to different test images: "
            "not compared"
        )
    table = (
        pd.concat(frames, ignore_index=True)
        if frames
        else schema.frame([]).assign(trial=pd.Series([], dtype="int64"))
    )
    table.attrs["notes"] = notes
    return table


def _availability_notes(
    trials: Sequence[tuple[Mapping[str, Any], Path]],
    references: Mapping[tuple, int],
    missing: list[int],
    unreadable: list[int],
) -> list[str]:
    notes = []
    if trials and not references:
        notes.append(
            "no alpha = 0 trial: no pwcca / linear_cka rows (each trial is compared with the "
            "alpha = 0 network of its seed)"
        )
    if missing:
        notes.append(
            f"{len(missing)} trial(s) stored no unit responses (evaluation/{REPRESENTATIONS}; "
            "representations or evaluate off): no similarity rows for them"
        )
    if unreadable:
        notes.append(
            f"{len(unreadable)} trial(s) hold an unreadable evaluation/{REPRESENTATIONS}: no "
            "similarity rows for them; delete it and evaluate again to rebuild it"
        )
    return notes

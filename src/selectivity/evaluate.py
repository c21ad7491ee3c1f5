"""Everything the papers measure about one trained network, as one tidy table.

    evaluate_model(model, data, EvalConfig, out_dir=...) -> DataFrame (`selectivity.schema`)
        any nn.Module on [0, 1] images, any data (Dataset, DataLoader, tensors, DataSplits)
    evaluate(run_dir, EvalConfig)   the same for the best checkpoint of a run folder

The work is split into parts, listed in order in `_PARTS` (clean, each corruption, fgsm, pgd,
jacobian, gradients, dimensionality), each a function of one `_Context`. With an `out_dir`,
each finished part is written to `OUT_DIR/evaluation/<part>.parquet`, so an interrupted
evaluation resumes at the first unfinished part; `OUT_DIR/evaluation.parquet` is assembled from
the parts at the end. Parts are keyed by the evaluation config and what was evaluated: changing
it starts afresh, and a note in the table's notes names the keys that changed. Every row says what produced it (split, samples, attack step size). Metric
names and keys: `selectivity.schema` and docs/results.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from selectivity import attacks, corruptions, masking, schema, stability, worstcase
from selectivity.config import EvalConfig, TrainConfig, build, suite_defaults, to_dict
from selectivity.corruptions.generate import corruption_source
from selectivity.corruptions.store import follows_test_order, open_corrupted
from selectivity.corruptions.tables import TRAINING_SUBSET
from selectivity.data import DataSplits, ImageSet, Labelled, labelled, load_dataset
from selectivity.files import (
    atomic_path,
    differing_keys,
    read_json,
    read_table,
    remove_stale_temporaries,
    write_text,
)
from selectivity.measure import (
    accuracy,
    accuracy_under_attack,
    dataset_jacobian_norm,
    layer_activations,
    measure_selectivity,
    model_device,
    pgd_over_steps,
    unmeasured_relu_note,
)
from selectivity.metrics import pca_dimensionality
from selectivity.models import eval_mode
from selectivity.probe import Sites, unwrap
from selectivity.runs import check_data, load_model, resolve_device

__all__ = ["eval_config", "evaluate", "evaluate_model", "run_settings"]

# Bumped when the rows of a part change, so that parts written by an older version are redone.
_TABLE_VERSION = 2

# The rows of a part, each as `_row` makes it.
Rows = list[dict[str, Any]]


def eval_config(suite: str = "full", *overrides: dict[str, Any]) -> EvalConfig:
    """The EvalConfig of a suite (`quick` or `full`) with key overrides applied on top."""
    return build(EvalConfig, suite_defaults(suite), *overrides)


def _row(metric: str, value: float, **keys: Any) -> dict[str, Any]:
    """One row: `keys` are schema.KEYS and schema.SETTINGS (absent ones become null)."""
    unknown = set(keys) - set(schema.KEYS) - set(schema.SETTINGS)
    assert not unknown, unknown
    return {"metric": metric, "value": float(value), **keys}


def _pgd(config: EvalConfig, steps: int) -> tuple[attacks.PGD, float]:
    """(the PGD attack of a run of `steps` steps, its step size in [0, 1] pixel units)."""
    step = config.pgd_step(steps)
    # A step of 0 (auto with eps or steps 0) leaves the attack the identity; PGD needs a
    # positive step to be built, and with eps = 0 or no steps it never takes one.
    return attacks.PGD(config.pgd_eps, step if step > 0 else 1.0, steps), step


def _sample_indices(count: int, limit: int | str | None) -> np.ndarray:
    """A fixed subset (same for every run, so trials are compared on the same images).

    limit: a count, or None / "all" for every index."""
    if limit is None or isinstance(limit, str) or limit >= count:  # str: "all" (validated)
        return np.arange(count)
    return np.sort(np.random.default_rng(0).permutation(count)[:limit])


def _dimensionality_corruption(config: EvalConfig, dataset: str | None) -> str:
    if config.dimensionality_corruption is not None:
        return config.dimensionality_corruption
    # The papers' representative corruptions: brightness on Tiny ImageNet-C, motion blur on CIFAR-10-C.
    return "brightness" if dataset == "tinyimagenet" else "motion_blur"


class _Parts:
    """Finished parts on disk, keyed by a hash of the evaluation config (no folder: none kept)."""

    def __init__(self, run_dir: Path | None, key: dict[str, Any]):
        # Keys in which the evaluation found here, and replaced, differed; None: none replaced.
        self.replaced: list[str] | None = None
        self.folder = run_dir / "evaluation" if run_dir is not None else None
        if self.folder is None:
            return
        fingerprint = hashlib.sha256(
            json.dumps(key, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        stamp = self.folder / "config.json"
        previous = read_json(stamp, self._advice) if stamp.is_file() else {}
        if self.folder.exists() and previous.get("fingerprint") != fingerprint:
            self.replaced = _differing(previous.get("config"), key)
            try:
                shutil.rmtree(self.folder)
            except OSError as error:
                # rmtree names only the entry it failed on, without its folder.
                raise OSError(error.errno, error.strerror, str(self.folder)) from error
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.folder)  # of an evaluation killed while writing
        write_text(
            stamp,
            json.dumps({"fingerprint": fingerprint, "config": key}, indent=2, default=str) + "\n",
        )

    @property
    def replaced_note(self) -> str | None:
        if self.replaced is None:
            return None
        return (
            f"replaced the evaluation in {self.folder}, made with other settings "
            f"({', '.join(self.replaced)})"
        )

    @property
    def _advice(self) -> str:
        return f"; delete {self.folder} to evaluate afresh"

    def get(self, name: str, compute: Callable[[], list[dict[str, Any]]]) -> pd.DataFrame:
        if self.folder is None:
            return schema.frame(compute())
        path = self.folder / f"{name}.parquet"
        if path.exists():
            return read_table(path, schema.COLUMNS, self._advice)
        frame = schema.frame(compute())
        with atomic_path(path) as temporary:
            frame.to_parquet(temporary, index=False)
        return frame


def _differing(recorded: Any, key: dict[str, Any]) -> list[str]:
    """The names of the keys of a parts stamp's `config` that differ from `key`."""
    if not isinstance(recorded, dict):
        return ["no settings recorded"]
    current = json.loads(json.dumps(key, default=str))  # as the stamp stores it
    names = []
    for name in differing_keys(recorded, current):
        old, new = recorded.get(name), current.get(name)
        # A nested config is named by its keys that differ, not by its own name.
        if isinstance(old, dict) and isinstance(new, dict):
            names += differing_keys(old, new)
        else:
            names.append(name)
    return names or ["an older version of selectivity"]


def evaluate(
    run_dir: str | Path,
    config: EvalConfig,
    device: str | None = None,
    progress: bool = True,
    clean_only: bool = False,
) -> pd.DataFrame:
    """Evaluate the best checkpoint of a run; write and return RUN_DIR/evaluation.parquet.

    clean_only: only the clean part (test and validation accuracy, chance, selectivity with its
    live mean and silent fraction), for sweeps that study selectivity and accuracy without
    robustness.
    """
    run_dir = Path(run_dir)
    train_config, model, checkpoint = load_model(run_dir, "best", "cpu")
    device_ = resolve_device(device or train_config.device)
    model = model.to(device_)
    data = load_dataset(
        train_config.dataset, train_config.data_dir, train_config.seed, train_config.image_size
    )
    check_data(checkpoint, data, run_dir / "checkpoint_best.pt")
    return evaluate_model(
        model, data, config, **run_settings(train_config, checkpoint, run_dir), device=device_,
        progress=progress, clean_only=clean_only,
    )  # fmt: skip


def run_settings(train_config: TrainConfig, best: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The keyword arguments of `evaluate_model` for the run in `run_dir` whose best checkpoint
    is `best`: its layers, batch size, seed and data set, the checkpoint's validation accuracy,
    and parts keyed by the checkpoint's epoch."""
    return {
        "out_dir": run_dir,
        "layers": train_config.units(),
        "batch_size": train_config.eval_batch_size,
        "seed": train_config.seed,
        "dataset": train_config.dataset,
        "val_accuracy": best.get("val_accuracy", math.nan),
        "identity": {"checkpoint_epoch": best.get("epoch")},
        "trained_corruptions": train_config.mix_subset(),
    }


def evaluate_model(
    model: nn.Module,
    data: Any,
    config: EvalConfig | None = None,
    *,
    num_classes: int | None = None,
    out_dir: str | Path | None = None,
    layers: Sites = None,
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | str | None = None,
    dataset: str | None = None,
    val_accuracy: float | None = None,
    identity: dict[str, Any] | None = None,
    trained_corruptions: Sequence[str] = TRAINING_SUBSET,
    progress: bool = False,
    clean_only: bool = False,
) -> pd.DataFrame:
    """Evaluate any `model` on test data; return the tidy table of `selectivity.schema`.

    model: an nn.Module taking float (N, C, H, W) images in [0, 1] (normalisation inside it; a
        `torch.compile`d one runs as its original module); put in eval mode. data: a DataSplits
        (its test split), or anything `data.as_images` reads: a torch Dataset, a non-shuffling
        DataLoader, a pair of tensors (images, labels), batches. num_classes: None takes it from
        the data. config: what to measure (default EvalConfig(), the full suite). Corruptions:
        `config.corruptions_dir`, or `config.generate_corruptions` from the test images (into
        OUT_DIR/corruptions, or a temporary folder removed afterwards); neither skips them.
    out_dir: None writes nothing; a folder gets OUT_DIR/evaluation.parquet and each finished part
        in OUT_DIR/evaluation/, so an interrupted evaluation resumes. Parts are keyed by the
        config and `identity` (None: a digest of the weights, the test data and these settings).
    layers: which outputs are units (names or a `probe.Units`; default every nn.ReLU call
        site). batch_size: images per forward; seed: the random streams of the attacks'
        projections and corruptions. device: where to run (the model is moved there; default
        its own). dataset: the data set's name (picks the dimensionality corruption);
        val_accuracy: a row for the checkpoint's validation accuracy, when given.
    trained_corruptions: corruptions the model may have trained on (the corruption mix's
        operations): `corruption_accuracy_heldout_mean` leaves them out.
    clean_only: only the clean part (accuracy, chance, selectivity, silent fraction).
    The table's `attrs["notes"]` says what was skipped or replaced.
    """
    model = unwrap(model)
    config = config if config is not None else EvalConfig()
    device_ = torch.device(device) if device is not None else model_device(model)
    model.to(device_).eval()
    test = labelled(data, num_classes)
    run_dir = Path(out_dir) if out_dir is not None else None
    if run_dir is not None:
        remove_stale_temporaries(run_dir)  # of a run or an evaluation killed while writing
    key = identity if identity is not None else _identity(model, test, layers, batch_size, seed)
    parts = _Parts(run_dir, {"eval": to_dict(config), **key, "table": _TABLE_VERSION})
    notes = [parts.replaced_note] if parts.replaced_note else []
    note = unmeasured_relu_note(model, test.images, layers)
    notes += [note] if note else []
    if config.autoattack_version != "off" and not clean_only:
        notes += worstcase.skipped_attacks_note(config, test.num_classes)
    # Without an out_dir, a temporary folder for what parts keep while they run (a generated
    # corruption set, AutoAttack's state files).
    scratch = run_dir is None and not clean_only
    with tempfile.TemporaryDirectory(prefix="selectivity-") if scratch else nullcontext() as tmp:
        work = run_dir or Path(tmp or ".")
        context = _Context.of(
            model, data, test, config, layers, batch_size, seed, dataset, val_accuracy, device_,
            progress, work,
        )  # fmt: skip
        frames = _run_parts(context, parts, notes, work, clean_only)
    if clean_only:
        return _write_table(run_dir, frames, notes)
    # Corrupted and attacked accuracy are measured on the `max_samples` subset: normalise by
    # clean accuracy on the same images, not on the whole test set.
    subset = context.test
    clean_on_subset = (
        accuracy(model, subset, context.batch, device_) if len(subset) < len(test.images) else None
    )
    frames.append(
        schema.frame(
            _derived_rows(
                pd.concat(frames, ignore_index=True), clean_on_subset, tuple(trained_corruptions)
            )
        )
    )
    return _write_table(run_dir, frames, notes)


def _run_parts(
    c: _Context, parts: _Parts, notes: list[str], folder: Path, clean_only: bool
) -> list[pd.DataFrame]:
    """The frames of the parts in `_PARTS` order (only the clean part when `clean_only`); a
    generated corruption set goes to FOLDER/corruptions."""
    frames: list[pd.DataFrame] = []
    for name, part in _PARTS:
        if clean_only and name != "clean":
            break
        if part is not None:
            frames.append(parts.get(name, partial(part, c)))
            continue
        # The corruption set is found (or generated) only once the clean part is done.
        if c.config.corruptions_dir is None and not c.config.generate_corruptions:
            notes.append(
                "corruptions skipped: give --corruptions-dir DIR or --generate-corruptions"
            )
            continue
        root, corruption_names = corruption_source(
            c.whole,
            c.config.corruptions_dir,
            folder / "corruptions",
            c.config.corruptions,
            seed=c.config.corruption_seed,
            table=c.config.corruption_table,
            device=c.device,
            progress=c.progress,
        )
        for corruption in tqdm(
            corruption_names, desc="corruptions", disable=not c.progress, leave=False
        ):
            measure = partial(_corruption, c, root, corruption)
            frames.append(parts.get(f"{name}-{corruption}", measure))
    return frames


def _identity(
    model: nn.Module, test: Labelled, layers: Sites, batch_size: int, seed: int
) -> dict[str, Any]:
    """What an evaluation's parts depend on besides its config: digests of the weights and of
    the test set, and the settings that change results."""
    weights = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        weights.update(name.encode())
        weights.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    images = hashlib.sha256(test.images.labels.numpy().tobytes())
    for x, _ in test.images.batches(1024):
        images.update(x.numpy().tobytes())
    return {
        "weights_sha256": weights.hexdigest(),
        "data_sha256": images.hexdigest(),
        "num_classes": test.num_classes,
        "layers": repr(layers),
        "batch_size": batch_size,
        "seed": seed,
    }


@dataclass(frozen=True)
class _Context:
    """What the parts of one evaluation read, built once.

    whole: the test set; test: its `max_samples` subset (attacks and corruptions run on it);
    analysis: its `analysis_samples` subset (Jacobian, gradients, dimensionality).
    """

    model: nn.Module
    config: EvalConfig
    device: torch.device
    progress: bool
    layers: Sites  # None: every ReLU call site
    batch: int
    seed: int
    dataset: str | None
    val_accuracy: float | None
    val_samples: int | None
    num_classes: int
    class_names: list[str]
    whole: ImageSet
    test: ImageSet
    analysis: ImageSet
    folder: Path  # OUT_DIR/evaluation (or a temporary one): where a part keeps its state

    @classmethod
    def of(
        cls,
        model: nn.Module,
        data: Any,
        test: Labelled,
        config: EvalConfig,
        layers: Sites,
        batch: int,
        seed: int,
        dataset: str | None,
        val_accuracy: float | None,
        device: torch.device,
        progress: bool,
        work: Path,
    ) -> _Context:
        whole = test.images
        return cls(
            model=model,
            config=config,
            device=device,
            progress=progress,
            layers=layers,
            batch=batch,
            seed=seed,
            dataset=dataset if dataset is not None else getattr(data, "name", None),
            val_accuracy=val_accuracy,
            val_samples=len(data.val) if isinstance(data, DataSplits) else None,
            num_classes=test.num_classes,
            class_names=test.class_names,
            whole=whole,
            test=whole.subset(_sample_indices(len(whole), config.max_samples)),
            analysis=whole.subset(_sample_indices(len(whole), config.analysis_samples)),
            folder=work / "evaluation",
        )

    def generator(self) -> torch.Generator:
        """A fresh random stream, equal for every part that draws."""
        return torch.Generator().manual_seed(self.seed)

    @property
    def on_test(self) -> dict[str, Any]:
        """The keys of a row measured on `test`."""
        return {"split": "test", "samples": len(self.test)}

    @property
    def on_analysis(self) -> dict[str, Any]:
        """The keys of a row measured on `analysis`."""
        return {"split": "test", "samples": len(self.analysis)}


def _clean(c: _Context) -> Rows:
    """Accuracy and selectivity (network and per layer) over the whole clean test set, as in the
    papers: both from one pass; chance accuracy; the checkpoint's validation accuracy."""
    result = measure_selectivity(c.model, c.whole, c.num_classes, c.layers, c.batch, c.device)
    whole = {"split": "test", "samples": len(c.whole)}
    rows = [_row("test_accuracy", result.accuracy, **whole)]
    if c.val_accuracy is not None:
        rows.append(_row("val_accuracy", c.val_accuracy, split="val", samples=c.val_samples))
    rows += [
        _row("chance_accuracy", 1 / c.num_classes),
        _row("selectivity", result.network, **whole),
        _row("selectivity_live", result.network_live, **whole),
        _row("silent_fraction", result.silent_fraction, **whole),
    ]
    for metric, values in (
        ("selectivity", result.layer_means()),
        ("selectivity_live", result.layer_live_means()),
        ("silent_fraction", result.layer_silent_fractions()),
    ):
        rows += [_row(metric, value, layer=name, **whole) for name, value in values.items()]
    return rows


def _corruption(c: _Context, root: Path, name: str) -> Rows:
    """Accuracy on corruption `name` of the set in `root`, per severity, on `max_samples`."""
    rows = []
    for severity in c.config.severities:
        corrupted = open_corrupted(
            root,
            name,
            severity,
            class_names=c.class_names or None,
            expected=c.whole if follows_test_order(root) else None,
        )
        subset = corrupted.subset(_sample_indices(len(corrupted), c.config.max_samples))
        rows.append(
            _row(
                "corruption_accuracy",
                accuracy(c.model, subset, c.batch, c.device),
                corruption=name,
                severity=severity,
                split="test",
                samples=len(subset),
            )
        )
    return rows


def _fgsm(c: _Context) -> Rows:
    """Accuracy under FGSM, per eps."""
    return [
        _row(
            "fgsm_accuracy",
            accuracy_under_attack(c.model, c.test, attacks.FGSM(eps), c.batch, c.device),
            eps=eps,
            step_size=eps,  # FGSM's one step is eps
            **c.on_test,
        )
        for eps in tqdm(c.config.fgsm_eps, desc="fgsm", disable=not c.progress, leave=False)
    ]


def _pgd_rows(c: _Context) -> Rows:
    """Accuracy under PGD and how far it moved the images (L-inf), per number of steps."""
    attack, step = _pgd(c.config, max(c.config.pgd_steps))
    scores = pgd_over_steps(c.model, c.test, attack, c.config.pgd_steps, c.batch, c.device)
    keys = {"eps": c.config.pgd_eps, "step_size": step, **c.on_test}
    rows = []
    for steps, score in scores.items():
        rows += [
            _row("pgd_accuracy", score.accuracy, steps=steps, **keys),
            _row("pgd_linf_mean", score.linf_mean, steps=steps, **keys),
            _row("pgd_linf_max", score.linf_max, steps=steps, **keys),
        ]
    return rows


def _jacobian(c: _Context) -> Rows:
    """The input-output Jacobian's norm, estimated from random projections."""
    value = dataset_jacobian_norm(
        c.model,
        c.analysis,
        min(c.batch, 256),
        c.device,
        c.config.jacobian_projections,
        c.generator(),
    )
    return [_row("jacobian_norm", value, **c.on_analysis)]


def _gradients(c: _Context) -> Rows:
    """Gradient variability per layer, across samples and across units."""
    x, _ = c.analysis.batch(slice(0, len(c.analysis)), c.device)
    with eval_mode(c.model):
        variability = stability.layer_gradient_variability(
            c.model, x, c.layers, c.config.gradient_max_units, c.generator()
        )
    rows = []
    for name, (across_samples, across_units) in variability.items():
        rows += [
            _row("gradient_variability_samples", across_samples, layer=name, **c.on_analysis),
            _row("gradient_variability_units", across_units, layer=name, **c.on_analysis),
        ]
    return rows


def _dimensionality(c: _Context) -> Rows:
    """PCA dimensionality per layer of the clean activations, and of how a corruption and a PGD
    attack change them."""
    x, y = c.analysis.batch(slice(0, len(c.analysis)), c.device)
    variance = c.config.dimensionality_variance
    clean = layer_activations(c.model, c.analysis, c.layers, c.batch, c.device)
    rows = _dimensionality_rows("dimensionality", clean, variance, **c.on_analysis)
    name = _dimensionality_corruption(c.config, c.dataset)
    severity = c.config.dimensionality_severity
    corrupted = corruptions.corrupt(
        x.cpu(), name, severity, c.generator(), table=c.config.corruption_table
    ).to(c.device)
    changed = layer_activations(c.model, ImageSet(corrupted, y), c.layers, c.batch, c.device)
    rows += _dimensionality_rows(
        "dimensionality_corruption",
        {k: clean[k] - changed[k] for k in clean},
        variance,
        corruption=name,
        severity=severity,
        **c.on_analysis,
    )
    del changed
    attack, step = _pgd(c.config, c.config.dimensionality_pgd_steps)
    adversarial = layer_activations(
        c.model,
        c.analysis,
        c.layers,
        c.batch,
        c.device,
        transform=lambda xb, yb: attack(c.model, xb, yb),
    )
    rows += _dimensionality_rows(
        "dimensionality_adversarial",
        {k: clean[k] - adversarial[k] for k in clean},
        variance,
        eps=c.config.pgd_eps,
        steps=c.config.dimensionality_pgd_steps,
        step_size=step,
        **c.on_analysis,
    )
    return rows


def _dimensionality_rows(
    metric: str, matrices: dict[str, Tensor], variance: float, **keys: Any
) -> Rows:
    """A `metric` row per layer of `matrices` (layer -> [N, D]), each with the largest value N
    samples can show for that layer beside it."""
    rows = []
    for layer, matrix in matrices.items():
        n, d = matrix.shape
        rows += [
            _row(metric, pca_dimensionality(matrix, variance), layer=layer, **keys),
            _row("dimensionality_cap", dimensionality_cap(n, d), layer=layer, **keys),
        ]
    return rows


# The parts, in the order they run and resume; each is written to evaluation/<name>.parquet.
# None marks where the corruption parts go: one per corruption of the set, named
# corruption-<corruption>, each measured by `_corruption`.
_PARTS: list[tuple[str, Callable[[_Context], Rows] | None]] = [
    ("clean", _clean),
    ("corruption", None),
    ("fgsm", _fgsm),
    ("pgd", _pgd_rows),
    ("autoattack", worstcase.autoattack_rows),
    ("jacobian", _jacobian),
    ("gradients", _gradients),
    ("dimensionality", _dimensionality),
]


def dimensionality_cap(samples: int, dims: int) -> float:
    """min(N - 1, D) / D: the largest PCA dimensionality N centred samples of D dims can show.

    N centred rows span at most N - 1 directions, so with N - 1 < D the measure cannot exceed
    (N - 1) / D whatever the representation; a value near the cap says N bounds it, not the
    network.
    """
    return min(samples - 1, dims) / dims


def _write_table(
    run_dir: Path | None, frames: list[pd.DataFrame], notes: list[str]
) -> pd.DataFrame:
    table = pd.concat(frames, ignore_index=True)
    if run_dir is not None:
        with atomic_path(run_dir / "evaluation.parquet") as temporary:
            table.to_parquet(temporary, index=False)
    table.attrs["notes"] = notes
    return table


def _derived_rows(
    table: pd.DataFrame, clean_accuracy: float | None = None, trained_on: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Mean corrupted accuracy (also over the corruptions not in `trained_on`, the run's
    corruption-mix training subset), and corrupted, FGSM and PGD accuracy relative to clean.

    clean_accuracy: on the images the attacks and corruptions ran on; None: they ran on the whole
    test set, whose `test_accuracy` row is used. Each relative row keeps its source row's keys.
    """
    if clean_accuracy is None:
        clean_accuracy = float(table.loc[table["metric"] == "test_accuracy", "value"].iloc[0])

    def relative(value: float) -> float:
        return value / clean_accuracy if clean_accuracy > 0 else math.nan

    def keys(row: pd.Series) -> dict[str, Any]:
        return {k: None if pd.isna(row[k]) else row[k] for k in (*schema.KEYS, *schema.SETTINGS)}

    rows = []
    corrupted = table[table["metric"] == "corruption_accuracy"]
    if len(corrupted):
        mean = float(corrupted["value"].mean())
        settings = {"split": "test", "samples": int(corrupted["samples"].max())}
        rows += [
            _row("corruption_accuracy_mean", mean, **settings),
            _row("corruption_accuracy_relative", relative(mean), **settings),
        ]
        held_out = corrupted[~corrupted["corruption"].isin(trained_on)]
        if len(held_out):
            rows.append(
                _row(
                    "corruption_accuracy_heldout_mean", float(held_out["value"].mean()), **settings
                )
            )
    for attack in ("fgsm", "pgd"):
        for _, row in table[table["metric"] == f"{attack}_accuracy"].iterrows():
            rows.append(_row(f"{attack}_accuracy_relative", relative(row["value"]), **keys(row)))
    return rows + masking.flag_rows(table)

"""Everything the papers measure about one trained network, as one tidy table.

    evaluate(run_dir, EvalConfig) -> DataFrame with the columns of `selectivity.schema`
    evaluate_model(model, data, EvalConfig, run_dir, ...)   the same for a model in memory

The work is split into parts, listed in order in `_PARTS` (clean, each corruption, fgsm, pgd,
jacobian, gradients, dimensionality), each a function of one `_Context`. Each finished part is
written to `RUN_DIR/evaluation/<part>.parquet`, so an interrupted evaluation resumes at the first
unfinished part; `RUN_DIR/evaluation.parquet` is assembled from the parts at the end. Parts are
keyed by the evaluation config: changing it starts afresh, and a note in the table's notes names
the keys that changed. Every row says what produced it (split, samples, attack step size). Metric
names and keys: `selectivity.schema` and docs/results.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
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
from selectivity.corruptions.store import follows_test_order, open_corrupted, stored_corruptions
from selectivity.data import DataError, DataSplits, ImageSet, load_dataset
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
    pgd_over_steps,
)
from selectivity.metrics import pca_dimensionality
from selectivity.models import eval_mode
from selectivity.runs import check_data, load_model, resolve_device

__all__ = ["eval_config", "evaluate", "evaluate_model", "summarise_evaluation"]

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


def _dimensionality_corruption(config: EvalConfig, dataset: str) -> str:
    if config.dimensionality_corruption is not None:
        return config.dimensionality_corruption
    # The papers' representative corruptions: brightness on Tiny ImageNet-C, motion blur on CIFAR-10-C.
    return "brightness" if dataset == "tinyimagenet" else "motion_blur"


class _Parts:
    """Finished parts on disk, keyed by a hash of the evaluation config."""

    def __init__(self, run_dir: Path, key: dict[str, Any]):
        self.folder = run_dir / "evaluation"
        fingerprint = hashlib.sha256(
            json.dumps(key, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        stamp = self.folder / "config.json"
        # Keys in which the evaluation found here, and replaced, differed; None: none replaced.
        self.replaced: list[str] | None = None
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

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.parquet"

    def get(self, name: str, compute: Callable[[], list[dict[str, Any]]]) -> pd.DataFrame:
        path = self.path(name)
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


def _corruption_source(
    run_dir: Path, config: EvalConfig, data: DataSplits, device: torch.device, progress: bool
) -> tuple[Path | None, list[str], str | None]:
    """(folder of the corruption set, corruptions to evaluate, note) or (None, [], why not)."""
    if config.corruptions_dir is not None:
        root = Path(config.corruptions_dir)
        names = stored_corruptions(root)
    elif config.generate_corruptions:
        root = run_dir / "corruptions"
        names = list(config.corruptions or corruptions.runnable_corruptions())
        corruptions.generate_corruption_set(
            data.test,
            root,
            seed=config.corruption_seed,
            corruptions=names,
            table=config.corruption_table,
            device=device,
            progress=progress,
        )
    else:
        return None, [], "corruptions skipped: give --corruptions-dir DIR or --generate-corruptions"
    if config.corruptions is not None:
        missing = sorted(set(config.corruptions) - set(names))
        if missing:
            raise DataError(
                f"corruption(s) {', '.join(missing)} not found in {root}; it has {', '.join(names) or 'none'}"
            )
        names = [n for n in names if n in config.corruptions]
    if not names:
        raise DataError(
            f"no corruption sets found in {root}: expected <name>.npy with labels.npy, or <name>/<severity>/<wnid>/*.JPEG"
        )
    return root, names, None


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
        model, data, config, run_dir, train_config, checkpoint, device_, progress, clean_only
    )


def evaluate_model(
    model: nn.Module,
    data: DataSplits,
    config: EvalConfig,
    run_dir: Path,
    train_config: TrainConfig,
    best: dict[str, Any],
    device: torch.device,
    progress: bool = True,
    clean_only: bool = False,
) -> pd.DataFrame:
    """Evaluate a trained `model` (on `device`; put in eval mode) on the data it was trained on;
    write and return RUN_DIR/evaluation.parquet, with the finished parts in RUN_DIR/evaluation/.

    train_config: the run's config (layers, batch size, seed, data set); best: the record of the
    checkpoint whose weights `model` holds (its `epoch` keys the parts, its `val_accuracy` is a
    row). clean_only: as in `evaluate`.
    """
    run_dir = Path(run_dir)
    remove_stale_temporaries(run_dir)  # of a run or an evaluation killed while writing
    model.eval()
    context = _Context.of(model, data, config, train_config, best, device, progress, run_dir)
    parts = _Parts(
        run_dir,
        {
            "eval": to_dict(config),
            "checkpoint_epoch": best.get("epoch"),
            "table": _TABLE_VERSION,
        },
    )
    frames: list[pd.DataFrame] = []
    notes = [parts.replaced_note] if parts.replaced_note else []
    for name, part in _PARTS:
        if clean_only and name != "clean":
            return _write_table(run_dir, frames, notes)
        if part is not None:
            frames.append(parts.get(name, partial(part, context)))
            continue
        # The corruption set is found (or generated) only once the clean part is done.
        root, corruption_names, note = _corruption_source(run_dir, config, data, device, progress)
        notes += [note] if note else []
        for corruption in tqdm(
            corruption_names, desc="corruptions", disable=not progress, leave=False
        ):
            assert root is not None  # the names are empty when there is no corruption set
            measure = partial(_corruption, context, root, corruption)
            frames.append(parts.get(f"{name}-{corruption}", measure))
    # Corrupted and attacked accuracy are measured on the `max_samples` subset: normalise by
    # clean accuracy on the same images, not on the whole test set.
    test = context.test
    clean_on_subset = (
        accuracy(model, test, context.batch, device) if len(test) < len(data.test) else None
    )
    frames.append(
        schema.frame(_derived_rows(pd.concat(frames, ignore_index=True), clean_on_subset))
    )
    return _write_table(run_dir, frames, notes)


@dataclass(frozen=True)
class _Context:
    """What the parts of one evaluation read, built once.

    test: the `max_samples` subset of the test split (attacks and corruptions run on it);
    analysis: the `analysis_samples` subset (Jacobian, gradients, dimensionality).
    """

    model: nn.Module
    data: DataSplits
    config: EvalConfig
    device: torch.device
    progress: bool
    layers: tuple[str, ...] | None  # None: every ReLU call site
    batch: int
    seed: int
    dataset: str
    val_accuracy: float
    test: ImageSet
    analysis: ImageSet
    folder: Path  # RUN_DIR/evaluation: where a part keeps its own state (AutoAttack's)

    @classmethod
    def of(
        cls,
        model: nn.Module,
        data: DataSplits,
        config: EvalConfig,
        train_config: TrainConfig,
        best: dict[str, Any],
        device: torch.device,
        progress: bool,
        run_dir: Path,
    ) -> _Context:
        return cls(
            model=model,
            data=data,
            config=config,
            device=device,
            progress=progress,
            layers=train_config.selectivity_layers,
            batch=train_config.eval_batch_size,
            seed=train_config.seed,
            dataset=train_config.dataset,
            val_accuracy=best.get("val_accuracy", math.nan),
            test=data.test.subset(_sample_indices(len(data.test), config.max_samples)),
            analysis=data.test.subset(_sample_indices(len(data.test), config.analysis_samples)),
            folder=run_dir / "evaluation",
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
    result = measure_selectivity(
        c.model, c.data.test, c.data.num_classes, c.layers, c.batch, c.device
    )
    whole = {"split": "test", "samples": len(c.data.test)}
    rows = [
        _row("test_accuracy", result.accuracy, **whole),
        _row("val_accuracy", c.val_accuracy, split="val", samples=len(c.data.val)),
        _row("chance_accuracy", 1 / c.data.num_classes),
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
            class_names=c.data.class_names,
            expected=c.data.test if follows_test_order(root) else None,
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
_PARTS: tuple[tuple[str, Callable[[_Context], Rows] | None], ...] = (
    ("clean", _clean),
    ("corruption", None),
    ("fgsm", _fgsm),
    ("pgd", _pgd_rows),
    ("autoattack", worstcase.autoattack_rows),
    ("jacobian", _jacobian),
    ("gradients", _gradients),
    ("dimensionality", _dimensionality),
)


def dimensionality_cap(samples: int, dims: int) -> float:
    """min(N - 1, D) / D: the largest PCA dimensionality N centred samples of D dims can show.

    N centred rows span at most N - 1 directions, so with N - 1 < D the measure cannot exceed
    (N - 1) / D whatever the representation; a value near the cap says N bounds it, not the
    network.
    """
    return min(samples - 1, dims) / dims


def _write_table(run_dir: Path, frames: list[pd.DataFrame], notes: list[str]) -> pd.DataFrame:
    table = pd.concat(frames, ignore_index=True)
    with atomic_path(run_dir / "evaluation.parquet") as temporary:
        table.to_parquet(temporary, index=False)
    table.attrs["notes"] = notes
    return table


def _derived_rows(table: pd.DataFrame, clean_accuracy: float | None = None) -> list[dict[str, Any]]:
    """Mean corrupted accuracy, and corrupted, FGSM and PGD accuracy relative to clean accuracy.

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
    for attack in ("fgsm", "pgd"):
        for _, row in table[table["metric"] == f"{attack}_accuracy"].iterrows():
            rows.append(_row(f"{attack}_accuracy_relative", relative(row["value"]), **keys(row)))
    return rows + masking.flag_rows(table)


def _pixels(value: float) -> str:
    """A distance in [0, 1] pixel units, also in grey levels: '0.0314 (8/255)'."""
    return f"{value:.3g} ({value * 255:.3g}/255)"


def summarise_evaluation(table: pd.DataFrame) -> list[str]:
    """A few lines for the terminal: the headline numbers of an evaluation table, each with the
    settings that decide it (sample counts, attack step sizes, how far PGD actually went)."""
    return [
        *_headline_lines(table),
        *_fgsm_lines(table),
        *_pgd_lines(table),
        *masking.flag_lines(table),
        *_dimensionality_lines(table),
    ]


def _rows_of(table: pd.DataFrame, metric: str, **keys: Any) -> pd.DataFrame:
    """The rows of `metric` whose `keys` have the given values (None: null)."""
    rows = table[table["metric"] == metric]
    for key, wanted in keys.items():
        rows = rows[rows[key].isna()] if wanted is None else rows[rows[key] == wanted]
    return rows


def _samples(table: pd.DataFrame, metric: str) -> str:
    """'test, N=359' for the first row of `metric`, '' when it has no sample count."""
    rows = _rows_of(table, metric)
    if not len(rows) or pd.isna(rows["samples"].iloc[0]):
        return ""
    return f"{rows['split'].iloc[0]}, N={int(rows['samples'].iloc[0])}"


def _headline_lines(table: pd.DataFrame) -> list[str]:
    """One line per whole-network number present: its value and the samples it was measured on."""
    lines = []
    for label, metric in (
        ("clean accuracy", "test_accuracy"),
        ("chance accuracy", "chance_accuracy"),
        ("selectivity mu_SI", "selectivity"),
        ("mu_SI over live units", "selectivity_live"),
        ("silent units (fraction)", "silent_fraction"),
        ("corrupted accuracy (mean)", "corruption_accuracy_mean"),
        ("corrupted / clean", "corruption_accuracy_relative"),
        ("Jacobian norm", "jacobian_norm"),
    ):
        rows = _rows_of(table, metric, layer=None)
        if len(rows):
            where = _samples(table, metric)
            lines.append(
                f"{label:<28} {float(rows['value'].iloc[0]):.4f}"
                + (f"  ({where})" if where else "")
            )
    return lines


def _fgsm_lines(table: pd.DataFrame) -> list[str]:
    fgsm = table[table["metric"] == "fgsm_accuracy"]
    if not len(fgsm):
        return []
    return [
        "FGSM accuracy by eps*255     "
        + "  ".join(f"{e * 255:g}:{v:.3f}" for e, v in zip(fgsm["eps"], fgsm["value"], strict=True))
        + f"  (step = eps; {_samples(table, 'fgsm_accuracy')})"
    ]


def _pgd_lines(table: pd.DataFrame) -> list[str]:
    """PGD accuracy by steps with its eps and step size; whether the eps-ball was reached."""
    pgd = table[table["metric"] == "pgd_accuracy"]
    if not len(pgd):
        return []
    eps, step = float(pgd["eps"].iloc[0]), float(pgd["step_size"].iloc[0])
    lines = [
        f"PGD accuracy by steps (eps*255={eps * 255:g}, step {_pixels(step)}; "
        f"{_samples(table, 'pgd_accuracy')})  "
        + "  ".join(f"{int(s)}:{v:.3f}" for s, v in zip(pgd["steps"], pgd["value"], strict=True))
    ]
    reached = _rows_of(table, "pgd_linf_max")
    if len(reached):
        furthest = float(reached["value"].max())
        binds = (
            "the eps-ball binds"
            if furthest >= eps * (1 - 1e-4)
            else "the eps-ball never binds: the attack is weaker than its eps"
        )
        lines.append(f"PGD reached L-inf (max)      {_pixels(furthest)} of eps: {binds}")
    return lines


def _dimensionality_lines(table: pd.DataFrame) -> list[str]:
    """First and last layer of each dimensionality measure, with the caps N samples set."""
    lines = []
    cap = _rows_of(table, "dimensionality_cap")
    for metric in ("dimensionality", "dimensionality_corruption", "dimensionality_adversarial"):
        rows = table[table["metric"] == metric]
        if len(rows):
            note = (
                f" (N={int(rows['samples'].iloc[0])}: cap first {cap['value'].iloc[0]:.3f}, "
                f"last {cap['value'].iloc[-1]:.3f})"
                if len(cap)
                else ""
            )
            lines.append(
                f"{metric:<28} first layer {rows['value'].iloc[0]:.3f}, "
                f"last layer {rows['value'].iloc[-1]:.3f}{note}"
            )
    return lines

"""Everything the papers measure about one trained network, as one tidy table.

    evaluate(run_dir, EvalConfig) -> DataFrame (metric, layer, corruption, severity, eps, steps, value)

The work is split into parts (clean, each corruption, fgsm, pgd, jacobian, gradients,
dimensionality). Each finished part is written to `RUN_DIR/evaluation/<part>.parquet`, so an
interrupted evaluation resumes at the first unfinished part; `RUN_DIR/evaluation.parquet` is
assembled from the parts at the end. Parts are keyed by the evaluation config: changing it
starts afresh. Metric names and keys: docs/results.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from selectivity import attacks, corruptions, stability
from selectivity.config import EvalConfig, build, suite_defaults, to_dict
from selectivity.data import DataError, DataSplits, load_dataset, open_corrupted
from selectivity.data import available_corruptions as published_corruptions
from selectivity.files import atomic_path, write_text
from selectivity.measure import accuracy, measure_selectivity
from selectivity.metrics import pca_dimensionality
from selectivity.models import eval_mode
from selectivity.probe import ActivationProbe
from selectivity.runs import load_model, resolve_device

__all__ = ["COLUMNS", "eval_config", "evaluate", "summarise_evaluation"]

COLUMNS = ["metric", "layer", "corruption", "severity", "eps", "steps", "value"]


def eval_config(suite: str = "full", *overrides: dict[str, Any]) -> EvalConfig:
    """The EvalConfig of a suite (`quick` or `full`) with key overrides applied on top."""
    return build(EvalConfig, suite_defaults(suite), *overrides)


def _row(
    metric: str,
    value: float,
    layer: str | None = None,
    corruption: str | None = None,
    severity: int | None = None,
    eps: float | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    return {
        "metric": metric,
        "layer": layer,
        "corruption": corruption,
        "severity": severity,
        "eps": eps,
        "steps": steps,
        "value": float(value),
    }


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    # Nullable dtypes, so a column stays typed in Parquet even when every value is missing.
    return frame.astype(
        {
            "metric": "string",
            "layer": "string",
            "corruption": "string",
            "severity": "Int64",
            "eps": "Float64",
            "steps": "Int64",
            "value": "float64",
        }
    )


def _sample_indices(count: int, limit: int | None) -> np.ndarray:
    """A fixed subset (same for every run, so trials are compared on the same images)."""
    if limit is None or limit >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).permutation(count)[:limit])


def _dimensionality_corruption(config: EvalConfig, dataset: str) -> str:
    if config.dimensionality_corruption is not None:
        return config.dimensionality_corruption
    # The papers' representative corruptions: brightness on Tiny ImageNet-C, motion blur on CIFAR-10-C.
    return "brightness" if dataset == "tinyimagenet" else "motion_blur"


@torch.no_grad()
def _layer_activations(
    model: nn.Module,
    images: Tensor,
    layers,
    batch_size: int,
    transform: Callable[[Tensor, int], Tensor] | None = None,
) -> dict[str, Tensor]:
    """Layer -> (N, D) flattened activations on `images` (N, C, H, W), optionally transformed first."""
    chunks: dict[str, list[Tensor]] = {}
    with (
        eval_mode(model),
        ActivationProbe(model, layers=layers, reduce=lambda a: a.flatten(1), detach=True) as probe,
    ):
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size]
            if transform is not None:
                with torch.enable_grad():
                    x = transform(x, start)
            model(x)
            for name, value in probe.activations.items():
                chunks.setdefault(name, []).append(value)
    return {name: torch.cat(parts) for name, parts in chunks.items()}


class _Parts:
    """Finished parts on disk, keyed by a hash of the evaluation config."""

    def __init__(self, run_dir: Path, key: dict[str, Any]):
        self.folder = run_dir / "evaluation"
        fingerprint = hashlib.sha256(
            json.dumps(key, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        stamp = self.folder / "config.json"
        if self.folder.exists() and (
            not stamp.exists() or json.loads(stamp.read_text()).get("fingerprint") != fingerprint
        ):
            try:
                shutil.rmtree(self.folder)
            except OSError as error:
                # rmtree names only the entry it failed on, without its folder.
                raise OSError(error.errno, error.strerror, str(self.folder)) from error
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text(
            stamp,
            json.dumps({"fingerprint": fingerprint, "config": key}, indent=2, default=str) + "\n",
        )

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.parquet"

    def get(self, name: str, compute: Callable[[], list[dict[str, Any]]]) -> pd.DataFrame:
        path = self.path(name)
        if path.exists():
            return pd.read_parquet(path)
        frame = _frame(compute())
        with atomic_path(path) as temporary:
            frame.to_parquet(temporary, index=False)
        return frame


def _corruption_source(
    run_dir: Path, config: EvalConfig, data: DataSplits, device: torch.device, progress: bool
) -> tuple[Path | None, list[str], str | None]:
    """(folder of the corruption set, corruptions to evaluate, note) or (None, [], why not)."""
    if config.corruptions_dir is not None:
        root = Path(config.corruptions_dir)
        names = published_corruptions(root)
    elif config.generate_corruptions:
        root = run_dir / "corruptions"
        names = list(config.corruptions or corruptions.available_corruptions())
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

    clean_only: only the clean part (test and validation accuracy, selectivity per layer), for
    sweeps that study selectivity and accuracy without robustness.
    """
    run_dir = Path(run_dir)
    train_config, model, checkpoint = load_model(run_dir, "best", "cpu")
    device_ = resolve_device(device or train_config.device)
    model = model.to(device_)
    data = load_dataset(
        train_config.dataset, train_config.data_dir, train_config.seed, train_config.image_size
    )
    layers = train_config.selectivity_layers
    batch = train_config.eval_batch_size
    test = data.test.subset(_sample_indices(len(data.test), config.max_samples))
    analysis = data.test.subset(_sample_indices(len(data.test), config.analysis_samples))
    generator = lambda: torch.Generator().manual_seed(train_config.seed)  # noqa: E731 - a fresh, equal stream per part
    parts = _Parts(run_dir, {"eval": to_dict(config), "checkpoint_epoch": checkpoint.get("epoch")})
    frames: list[pd.DataFrame] = []
    notes: list[str] = []

    def clean() -> list[dict[str, Any]]:
        # Selectivity over the whole clean test set, as in the papers; accuracy from the same pass.
        result = measure_selectivity(model, data.test, data.num_classes, layers, batch, device_)
        rows = [
            _row("test_accuracy", result.accuracy),
            _row("val_accuracy", checkpoint.get("val_accuracy", math.nan)),
            _row("selectivity", result.network),
        ]
        rows += [
            _row("selectivity", mean, layer=name) for name, mean in result.layer_means().items()
        ]
        return rows

    frames.append(parts.get("clean", clean))
    if clean_only:
        return _write_table(run_dir, frames, notes)

    root, names, note = _corruption_source(run_dir, config, data, device_, progress)
    if note:
        notes.append(note)
    for name in tqdm(names, desc="corruptions", disable=not progress, leave=False):

        def one_corruption(name: str = name) -> list[dict[str, Any]]:
            rows = []
            for severity in config.severities:
                corrupted = open_corrupted(
                    root,
                    name,
                    severity,
                    class_names=data.class_names,
                    expected=data.test if _matches_test(root) else None,
                )
                subset = corrupted.subset(_sample_indices(len(corrupted), config.max_samples))
                rows.append(
                    _row(
                        "corruption_accuracy",
                        accuracy(model, subset, batch, device_),
                        corruption=name,
                        severity=severity,
                    )
                )
            return rows

        frames.append(parts.get(f"corruption-{name}", one_corruption))

    def fgsm() -> list[dict[str, Any]]:
        return [
            _row(
                "fgsm_accuracy",
                attacks.accuracy_under_attack(model, test, attacks.FGSM(eps), batch, device_),
                eps=eps,
            )
            for eps in tqdm(config.fgsm_eps, desc="fgsm", disable=not progress, leave=False)
        ]

    frames.append(parts.get("fgsm", fgsm))

    def pgd() -> list[dict[str, Any]]:
        attack = attacks.PGD(config.pgd_eps, config.pgd_step_size, max(config.pgd_steps))
        scores = attacks.accuracy_over_steps(model, test, attack, config.pgd_steps, batch, device_)
        return [
            _row("pgd_accuracy", value, eps=config.pgd_eps, steps=steps)
            for steps, value in scores.items()
        ]

    frames.append(parts.get("pgd", pgd))

    def jacobian() -> list[dict[str, Any]]:
        value = stability.dataset_jacobian_norm(
            model, analysis, min(batch, 256), device_, config.jacobian_projections, generator()
        )
        return [_row("jacobian_norm", value)]

    frames.append(parts.get("jacobian", jacobian))

    def gradients() -> list[dict[str, Any]]:
        x, _ = analysis.batch(slice(0, len(analysis)), device_)
        with eval_mode(model):
            variability = stability.layer_gradient_variability(
                model, x, layers, config.gradient_max_units, generator()
            )
        rows = []
        for name, (across_samples, across_units) in variability.items():
            rows += [
                _row("gradient_variability_samples", across_samples, layer=name),
                _row("gradient_variability_units", across_units, layer=name),
            ]
        return rows

    frames.append(parts.get("gradients", gradients))

    def dimensionality() -> list[dict[str, Any]]:
        x, y = analysis.batch(slice(0, len(analysis)), device_)
        variance = config.dimensionality_variance
        clean_acts = _layer_activations(model, x, layers, batch)
        rows = [
            _row("dimensionality", pca_dimensionality(acts, variance), layer=name)
            for name, acts in clean_acts.items()
        ]
        name, severity = (
            _dimensionality_corruption(config, train_config.dataset),
            config.dimensionality_severity,
        )
        corrupted = corruptions.corrupt(
            x.cpu(), name, severity, generator(), table=config.corruption_table
        ).to(device_)
        changed = _layer_activations(model, corrupted, layers, batch)
        rows += [
            _row(
                "dimensionality_corruption",
                pca_dimensionality(clean_acts[k] - changed[k], variance),
                layer=k,
                corruption=name,
                severity=severity,
            )
            for k in clean_acts
        ]
        del changed
        pgd = attacks.PGD(config.pgd_eps, config.pgd_step_size, config.dimensionality_pgd_steps)
        adversarial = _layer_activations(
            model,
            x,
            layers,
            batch,
            transform=lambda xb, start: pgd(model, xb, y[start : start + xb.shape[0]]),
        )
        rows += [
            _row(
                "dimensionality_adversarial",
                pca_dimensionality(clean_acts[k] - adversarial[k], variance),
                layer=k,
                eps=config.pgd_eps,
                steps=config.dimensionality_pgd_steps,
            )
            for k in clean_acts
        ]
        return rows

    frames.append(parts.get("dimensionality", dimensionality))

    # Corrupted accuracy is measured on the `max_samples` subset: normalise by clean accuracy on
    # the same images, not on the whole test set.
    clean_on_subset = (
        accuracy(model, test, batch, device_) if names and len(test) < len(data.test) else None
    )
    frames.append(_frame(_derived_rows(pd.concat(frames, ignore_index=True), clean_on_subset)))
    return _write_table(run_dir, frames, notes)


def _write_table(run_dir: Path, frames: list[pd.DataFrame], notes: list[str]) -> pd.DataFrame:
    table = pd.concat(frames, ignore_index=True)
    with atomic_path(run_dir / "evaluation.parquet") as temporary:
        table.to_parquet(temporary, index=False)
    table.attrs["notes"] = notes
    return table


def _matches_test(root: Path) -> bool:
    """Published Tiny-ImageNet-C images are not the val images; only the npy layout is matched."""
    return any(root.glob("*.npy"))


def _derived_rows(table: pd.DataFrame, clean_accuracy: float | None = None) -> list[dict[str, Any]]:
    """Mean corrupted accuracy and its ratio to clean accuracy (of the whole test set by default)."""
    corrupted = table.loc[table["metric"] == "corruption_accuracy", "value"]
    if corrupted.empty:
        return []
    if clean_accuracy is None:
        clean_accuracy = float(table.loc[table["metric"] == "test_accuracy", "value"].iloc[0])
    mean = float(corrupted.mean())
    return [
        _row("corruption_accuracy_mean", mean),
        _row(
            "corruption_accuracy_relative",
            mean / clean_accuracy if clean_accuracy > 0 else math.nan,
        ),
    ]


def summarise_evaluation(table: pd.DataFrame) -> list[str]:
    """A few lines for the terminal: the headline numbers of an evaluation table."""

    def value(metric: str, **keys: Any) -> float | None:
        rows = table[table["metric"] == metric]
        for key, wanted in keys.items():
            rows = rows[rows[key].isna()] if wanted is None else rows[rows[key] == wanted]
        return float(rows["value"].iloc[0]) if len(rows) else None

    lines = []
    for label, metric in (
        ("clean accuracy", "test_accuracy"),
        ("selectivity mu_SI", "selectivity"),
        ("corrupted accuracy (mean)", "corruption_accuracy_mean"),
        ("corrupted / clean", "corruption_accuracy_relative"),
        ("Jacobian norm", "jacobian_norm"),
    ):
        found = value(metric, layer=None)
        if found is not None:
            lines.append(f"{label:<28} {found:.4f}")
    fgsm = table[table["metric"] == "fgsm_accuracy"]
    if len(fgsm):
        lines.append(
            "FGSM accuracy by eps*255     "
            + "  ".join(
                f"{e * 255:g}:{v:.3f}" for e, v in zip(fgsm["eps"], fgsm["value"], strict=True)
            )
        )
    pgd = table[table["metric"] == "pgd_accuracy"]
    if len(pgd):
        lines.append(
            f"PGD accuracy by steps (eps*255={float(pgd['eps'].iloc[0]) * 255:g})  "
            + "  ".join(
                f"{int(s)}:{v:.3f}" for s, v in zip(pgd["steps"], pgd["value"], strict=True)
            )
        )
    for metric in ("dimensionality", "dimensionality_corruption", "dimensionality_adversarial"):
        rows = table[table["metric"] == metric]
        if len(rows):
            lines.append(
                f"{metric:<28} first layer {rows['value'].iloc[0]:.3f}, last layer {rows['value'].iloc[-1]:.3f}"
            )
    return lines

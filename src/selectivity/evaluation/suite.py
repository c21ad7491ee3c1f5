"""What each part of an evaluation measures: a function of one `Context` returning rows.

PARTS                      (name, measure) in the order the parts run and resume
derived_rows(table, ...)   the rows computed from the others: means, relative accuracy, flags
dimensionality_cap(n, d)   the largest PCA dimensionality n samples of d dims can show
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from torch import Tensor
from tqdm.auto import tqdm

from selectivity import attacks, corruptions, masking, schema, stability
from selectivity.catalog import (
    CORRUPTION_FAMILIES,
    TRAINING_SUBSET,
    corruption_family,
    heldout_corruptions,
)
from selectivity.comparison import REPRESENTATIONS, images_digest, write_representations
from selectivity.config import EvalConfig
from selectivity.corruptions.store import follows_test_order, open_corrupted
from selectivity.data import ImageSet
from selectivity.evaluation.autoattack import autoattack_rows
from selectivity.evaluation.context import Context, fixed_subset, pgd_attack, sample_indices
from selectivity.measure import (
    ablation_rows,
    accuracy,
    accuracy_under_attack,
    dataset_jacobian_norm,
    layer_activations,
    measure_selectivity,
    pgd_over_steps,
    unit_responses,
)
from selectivity.metrics import pca_dimensionality
from selectivity.models import eval_mode
from selectivity.offaxis import rotated_selectivity_rows
from selectivity.schema import Rows, row

__all__ = ["PARTS", "corruption_rows", "derived_rows", "dimensionality_cap", "heldout_note"]


def _dimensionality_corruption(config: EvalConfig, dataset: str | None) -> str:
    if config.dimensionality_corruption is not None:
        return config.dimensionality_corruption
    # The papers' representative corruptions: brightness on Tiny ImageNet-C, motion blur on CIFAR-10-C.
    return "brightness" if dataset == "tinyimagenet" else "motion_blur"


def _clean(c: Context) -> Rows:
    """Accuracy and selectivity (network and per layer) over the whole clean test set, as in the
    papers: both from one pass; chance accuracy; the checkpoint's validation accuracy."""
    result = measure_selectivity(c.model, c.whole, c.num_classes, c.layers, c.batch, c.device)
    whole = {"split": "test", "samples": len(c.whole)}
    rows = [row("test_accuracy", result.accuracy, **whole)]
    if c.val_accuracy is not None:
        rows.append(row("val_accuracy", c.val_accuracy, split="val", samples=c.val_samples))
    rows += [
        row("chance_accuracy", 1 / c.num_classes),
        row("selectivity", result.network, **whole),
        row("selectivity_live", result.network_live, **whole),
        row("silent_fraction", result.silent_fraction, **whole),
    ]
    for metric, values in (
        ("selectivity", result.layer_means()),
        ("selectivity_live", result.layer_live_means()),
        ("silent_fraction", result.layer_silent_fractions()),
    ):
        rows += [row(metric, value, layer=name, **whole) for name, value in values.items()]
    return rows


def _offaxis(c: Context) -> Rows:
    """Per layer, the mean SI in the most selective rotated basis found (`offaxis`) beside the
    mean SI of the units as they are, on the analysis images; layer None: means over layers."""
    if not c.config.offaxis:
        return []
    responses, labels = unit_responses(c.model, c.analysis, c.layers, c.batch, c.device)
    found = rotated_selectivity_rows(
        responses,
        labels,
        c.num_classes,
        restarts=c.config.offaxis_restarts,
        steps=c.config.offaxis_steps,
        seed=c.seed,
    )
    return [row(r["metric"], r["value"], layer=r["layer"], **c.on_analysis) for r in found]


def _ablation(c: Context) -> Rows:
    """Accuracy on the analysis images as units are silenced in order of their SI, per layer and
    for the whole network. The order is the SI the clean part reports (whole test set)."""
    if not c.config.ablation:
        return []
    selectivity = measure_selectivity(c.model, c.whole, c.num_classes, c.layers, c.batch, c.device)
    return ablation_rows(
        c.model,
        c.analysis,
        selectivity,
        c.config.ablation_fractions,
        c.config.ablation_draws,
        c.seed,
        c.batch,
        c.device,
    )


def _representations(c: Context) -> Rows:
    """No rows: each layer's unit responses (N, U) to the representation images, stored in
    the evaluation folder for `comparison` to compare trials with (the same images for all)."""
    if not c.config.representations:
        return []
    limit = c.config.representation_samples
    indices = sample_indices(len(c.whole), c.config.analysis_samples if limit is None else limit)
    images = c.whole.subset(indices)
    responses, labels = unit_responses(c.model, images, c.layers, c.batch, c.device)
    digest = images_digest(images.batch(slice(0, len(images)))[0])
    write_representations(c.folder / REPRESENTATIONS, responses, labels, indices, digest)
    return []


def corruption_rows(c: Context, root: Path, name: str) -> Rows:
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
        subset = fixed_subset(corrupted, c.config.max_samples)
        rows.append(
            row(
                "corruption_accuracy",
                accuracy(c.model, subset, c.batch, c.device),
                corruption=name,
                severity=severity,
                split="test",
                samples=len(subset),
            )
        )
    return rows


def _fgsm(c: Context) -> Rows:
    """Accuracy under FGSM, per eps."""
    return [
        row(
            "fgsm_accuracy",
            accuracy_under_attack(c.model, c.test, attacks.FGSM(eps), c.batch, c.device),
            eps=eps,
            step_size=eps,  # FGSM's one step is eps
            **c.on_test,
        )
        for eps in tqdm(c.config.fgsm_eps, desc="fgsm", disable=not c.progress, leave=False)
    ]


def _pgd_rows(c: Context) -> Rows:
    """Accuracy under PGD and how far it moved the images (L-inf), per number of steps."""
    attack, step = pgd_attack(c.config, max(c.config.pgd_steps))
    scores = pgd_over_steps(c.model, c.test, attack, c.config.pgd_steps, c.batch, c.device)
    keys = {"eps": c.config.pgd_eps, "step_size": step, **c.on_test}
    rows = []
    for steps, score in scores.items():
        rows += [
            row("pgd_accuracy", score.accuracy, steps=steps, **keys),
            row("pgd_linf_mean", score.linf_mean, steps=steps, **keys),
            row("pgd_linf_max", score.linf_max, steps=steps, **keys),
        ]
    return rows


def _jacobian(c: Context) -> Rows:
    """The input-output Jacobian's norm, estimated from random projections."""
    value = dataset_jacobian_norm(
        c.model,
        c.analysis,
        min(c.batch, 256),
        c.device,
        c.config.jacobian_projections,
        c.generator(),
    )
    return [row("jacobian_norm", value, **c.on_analysis)]


def _gradients(c: Context) -> Rows:
    """Gradient variability per layer: across samples, across units, and across the samples
    where each unit fires (`stability`)."""
    x, _ = c.analysis.batch(slice(0, len(c.analysis)), c.device)
    with eval_mode(c.model):
        variability = stability.layer_gradient_variability_measures(
            c.model, x, c.layers, c.config.gradient_max_units, c.generator()
        )
    rows = []
    for name, measures in variability.items():
        rows += [
            row("gradient_variability_samples", measures.samples, layer=name, **c.on_analysis),
            row("gradient_variability_units", measures.units, layer=name, **c.on_analysis),
            row("gradient_variability_active", measures.active, layer=name, **c.on_analysis),
        ]
    return rows


def _dimensionality(c: Context) -> Rows:
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
    attack, step = pgd_attack(c.config, c.config.dimensionality_pgd_steps)
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
            row(metric, pca_dimensionality(matrix, variance), layer=layer, **keys),
            row("dimensionality_cap", dimensionality_cap(n, d), layer=layer, **keys),
        ]
    return rows


# The parts, in the order they run and resume; each is written to evaluation/<name>.parquet.
# None marks where the corruption parts go: one per corruption of the set, named
# corruption-<corruption>, each measured by `corruption_rows`.
PARTS: list[tuple[str, Callable[[Context], Rows] | None]] = [
    ("clean", _clean),
    ("representations", _representations),
    ("offaxis", _offaxis),
    ("ablation", _ablation),
    ("corruption", None),
    ("fgsm", _fgsm),
    ("pgd", _pgd_rows),
    ("autoattack", autoattack_rows),
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


def heldout_note(trained_on: tuple[str, ...], evaluated: tuple[str, ...]) -> str | None:
    """A note when corruption-mix operations other than the default `TRAINING_SUBSET` share a
    family with evaluated benchmark corruptions: `corruption_accuracy_heldout_mean` then leaves
    that family out. None when they do not, or for the default (README "Held-out corruptions")."""
    if tuple(trained_on) == TRAINING_SUBSET:
        return None
    kept = heldout_corruptions(trained_on, evaluated)
    left_out = [name for name in heldout_corruptions((), evaluated) if name not in kept]
    if not left_out:
        return None
    families = sorted({corruption_family(name) for name in left_out})
    shared = ", ".join(
        f"{family} ({', '.join(n for n in trained_on if n in CORRUPTION_FAMILIES[family])})"
        for family in families
    )
    return (
        f"mix_corruptions shares the {shared} famil{'y' if len(families) == 1 else 'ies'} with "
        f"evaluated corruptions: corruption_accuracy_heldout_mean leaves out "
        f"{', '.join(left_out)}; held out: {', '.join(kept) or 'none'}"
    )


def derived_rows(
    table: pd.DataFrame, clean_accuracy: float | None = None, trained_on: tuple[str, ...] = ()
) -> Rows:
    """Mean corrupted accuracy (also over the held-out corruptions: the benchmark ones of the
    families that `trained_on`, the run's corruption-mix operations, leave out; a
    `corruption_heldout` row per evaluated corruption says which), and corrupted, FGSM and PGD
    accuracy relative to clean.

    clean_accuracy: on the images the attacks and corruptions ran on; None: they ran on the whole
    test set, whose `test_accuracy` row is used. Each relative row keeps its source row's keys.
    """
    if clean_accuracy is None:
        clean_accuracy = float(schema.metric_rows(table, "test_accuracy")["value"].iloc[0])

    def relative(value: float) -> float:
        return value / clean_accuracy if clean_accuracy > 0 else math.nan

    def keys(source: pd.Series) -> dict[str, Any]:
        return {
            k: None if pd.isna(source[k]) else source[k] for k in (*schema.KEYS, *schema.SETTINGS)
        }

    rows = []
    corrupted = schema.metric_rows(table, "corruption_accuracy")
    if len(corrupted):
        mean = float(corrupted["value"].mean())
        settings = {"split": "test", "samples": int(corrupted["samples"].max())}
        rows += [
            row("corruption_accuracy_mean", mean, **settings),
            row("corruption_accuracy_relative", relative(mean), **settings),
        ]
        evaluated = tuple(dict.fromkeys(corrupted["corruption"]))
        kept = heldout_corruptions(trained_on, evaluated)
        rows += [
            row("corruption_heldout", name in kept, corruption=name, split="test")
            for name in evaluated
        ]
        held_out = corrupted[corrupted["corruption"].isin(kept)]
        if len(held_out):
            rows.append(
                row("corruption_accuracy_heldout_mean", float(held_out["value"].mean()), **settings)
            )
    for attack in ("fgsm", "pgd"):
        for _, source in schema.metric_rows(table, f"{attack}_accuracy").iterrows():
            rows.append(
                row(f"{attack}_accuracy_relative", relative(source["value"]), **keys(source))
            )
    return rows + masking.flag_rows(table)

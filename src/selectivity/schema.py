"""The results schema, defined once: every writer and reader of a result table imports it.

A result table is tidy: one measurement per row. `KEYS` say what was measured (which layer,
corruption, severity, attack radius, attack steps, fraction of units silenced, random draw);
`SETTINGS` say how (which split, on how many
images, with which attack step size), so that a number never travels without what decided it.
A sweep's `results.parquet` adds its trial columns in front: one per key the sweep swept, `TRIAL`
(alpha and seed) always among them; `trial_columns` names them. docs/results.md describes every
column and metric with its units.

This module imports pandas only (no torch), so the report path can read it anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

__all__ = [
    "COLUMNS",
    "DTYPES",
    "KEYS",
    "METRICS",
    "SETTINGS",
    "TRIAL",
    "TRIAL_STATUS",
    "Rows",
    "frame",
    "metric_rows",
    "row",
    "trial_columns",
]

# The trial columns every sweep table has; a sweep over other keys adds one column per key.
TRIAL = ("alpha", "seed")
# What trials.parquet says of each trial, after its trial columns.
TRIAL_STATUS = ("status", "reason", "seconds")
KEYS = ("layer", "corruption", "severity", "eps", "steps", "fraction", "draw")
SETTINGS = ("split", "samples", "step_size")
COLUMNS = ("metric", *KEYS, *SETTINGS, "value")

# Nullable dtypes, so a column stays typed in Parquet even when every value is missing.
DTYPES = {
    "metric": "string",
    "layer": "string",
    "corruption": "string",
    "severity": "Int64",
    "eps": "Float64",
    "steps": "Int64",
    "fraction": "Float64",
    "draw": "Int64",
    "split": "string",
    "samples": "Int64",
    "step_size": "Float64",
    "value": "float64",
}

# metric -> one line: the keys it sets and what its value means (units).
METRICS = {
    "test_accuracy": "clean test accuracy, fraction in [0, 1]",
    "val_accuracy": "clean validation accuracy of the kept checkpoint (README: which epoch)",
    "chance_accuracy": "1 / number of classes: the accuracy of a constant guess",
    "selectivity": "mu_SI (layer null) or a layer's mean SI; silent units count as 0 (the papers')",
    "selectivity_live": "the same over units that fire on the split (silent units left out)",
    "silent_fraction": "fraction of a layer's units that never fire on the split; layer null: mean",
    "corruption_accuracy": "accuracy on one corruption at one severity",
    "corruption_accuracy_mean": "mean corruption_accuracy over all corruptions and severities",
    "corruption_accuracy_relative": "corruption_accuracy_mean / clean accuracy on the same images",
    "corruption_accuracy_heldout_mean": "the mean over benchmark corruptions of untrained families",
    "corruption_heldout": "1: the corruption is in the held-out mean; 0: not (trained family, extra)",
    "fgsm_accuracy": "accuracy under FGSM at eps",
    "fgsm_accuracy_relative": "fgsm_accuracy / clean accuracy on the same images",
    "pgd_accuracy": "accuracy under PGD at eps after steps",
    "pgd_accuracy_relative": "pgd_accuracy / clean accuracy on the same images",
    "pgd_linf_mean": "mean over images of the L-inf distance PGD reached, [0, 1] pixel units",
    "pgd_linf_max": "largest L-inf distance PGD reached over the images",
    "jacobian_norm": "mean over images of the Frobenius norm of d logits / d input",
    "gradient_variability_samples": "input-unit gradient variability across samples (README)",
    "gradient_variability_units": "input-unit gradient variability across units (README)",
    "gradient_variability_active": "across samples, over the samples where each unit fires (README)",
    "dimensionality": "PCA dimensionality (90% variance) of clean activations, fraction of dims",
    "dimensionality_corruption": "the same, of clean minus corrupted activations",
    "dimensionality_adversarial": "the same, of clean minus PGD activations",
    "dimensionality_cap": "min(N - 1, D) / D: the largest dimensionality N samples can show",
    "autoattack_accuracy": "accuracy after the whole AutoAttack ensemble at eps (eps 0: clean)",
    "autoattack_accuracy_apgd-ce": "accuracy left after APGD-CE, cumulative (RobustBench's order)",
    "autoattack_accuracy_apgd-dlr": "accuracy left after APGD-DLR (rand version), cumulative",
    "autoattack_accuracy_apgd-t": "accuracy left after APGD-T (targeted DLR), cumulative",
    "autoattack_accuracy_fab": "accuracy left after FAB (untargeted), cumulative",
    "autoattack_accuracy_fab-t": "accuracy left after FAB-T, cumulative",
    "autoattack_accuracy_square": "accuracy left after Square (black-box), cumulative",
    "autoattack_zero_gradient_points": "AutoAttack's check: points its DLR attacks found with zero gradient",
    "autoattack_randomized_warning": "AutoAttack's check found a randomised model at eps (1 / 0)",
    "autoattack_ran_standard": "1: the standard version ran as published; 0: a custom selection",
    "autoattack_ran_rand": "1: the rand version (EOT) ran as published; 0: it did not",
    "autoattack_switched_to_rand": "1: the model was randomised and rand ran instead of standard",
    "autoattack_iterations": "APGD and FAB iterations that ran",
    "autoattack_eot_samples": "gradient samples per APGD step (20: rand version, 1: otherwise)",
    "autoattack_target_classes": "APGD-T and FAB-T target classes that ran",
    "autoattack_square_queries": "Square's queries per image that ran",
    "masking_output_change": "share of images whose outputs changed between two passes",
    "masking_pgd_accuracy": "accuracy under the evaluation's PGD on the AutoAttack images",
    "masking_pgd_loss": "its mean cross-entropy (nats) over images correct before the attack",
    "masking_autoattack_below_pgd": "flag: 1 flagged, 0 not, NaN not testable (masking.py)",
    "masking_square_stronger": "flag: Square beats the white-box attacks (1 / 0 / NaN)",
    "masking_large_eps": "flag: accuracy stays high at eps >= 0.5 (1 / 0 / NaN)",
    "masking_fgsm_stronger": "flag: FGSM beats PGD at PGD's eps (1 / 0 / NaN)",
    "masking_zero_gradient_share": "share of images correct before PGD with a zero input gradient",
    "masking_stuck_share": "share of them whose loss and margin PGD did not move",
    "masking_flat_loss": "flag: PGD's loss does not rise with steps (1 / 0 / NaN)",
    "masking_zero_gradient": "flag: many images with a zero input gradient (1 / 0 / NaN)",
    "masking_stuck": "flag: many images' loss unmoved by PGD (1 / 0 / NaN)",
    "masking_randomized": "flag: outputs change between two passes (1 / 0 / NaN)",
    "masking_autoattack_zero_gradient": "flag: AutoAttack's zero-gradient check fired (1 / 0 / NaN)",
    "masking_autoattack_randomized": "flag: AutoAttack's randomness check fired (1 / 0 / NaN)",
    "selectivity_rotated": "mean SI in the best rotated basis found (layer; null: mean of layers)",
    "selectivity_axis": "mean SI of the units as they are, on the same images as the bound",
    "ablation_accuracy_most": "accuracy with the most selective fraction of units silenced",
    "ablation_accuracy_least": "accuracy with the least selective fraction of units silenced",
    "ablation_accuracy_random": "accuracy with a random fraction of units silenced (per draw)",
    "pwcca": "PWCCA of a layer to the same layer of the alpha = 0 network of the same seed",
    "linear_cka": "linear CKA of a layer to the same layer of that alpha = 0 network",
    "pwcca_seed_baseline": "an alpha = 0 network's mean PWCCA to the other seeds' alpha = 0 ones",
    "linear_cka_seed_baseline": "the same in linear CKA",
}


# Rows of a result table, each as `row` makes it; `frame` turns them into the table.
Rows = list[dict[str, Any]]


def row(metric: str, value: float, **keys: Any) -> dict[str, Any]:
    """One row: `metric`, its value as a float, and `keys` from KEYS and SETTINGS (absent ones
    become null in `frame`). A key outside them is a programming error (AssertionError)."""
    unknown = set(keys) - set(KEYS) - set(SETTINGS)
    assert not unknown, unknown
    return {"metric": metric, "value": float(value), **keys}


def frame(rows: Iterable[Mapping[str, Any]], extra: Iterable[str] = ()) -> pd.DataFrame:
    """Rows (dicts; absent columns become null) -> a DataFrame with the schema's columns and dtypes.

    `extra` names further columns to keep in front (a sweep's trial columns).
    """
    extra = tuple(extra)
    table = pd.DataFrame(list(rows), columns=[*extra, *COLUMNS])
    return table.astype({column: DTYPES[column] for column in COLUMNS})


def metric_rows(table: pd.DataFrame, metric: str, **keys: Any) -> pd.DataFrame:
    """The rows of `metric` in a result table whose `keys` have the given values (None: null)."""
    rows = table[table["metric"] == metric]
    for key, wanted in keys.items():
        rows = rows[rows[key].isna()] if wanted is None else rows[rows[key] == wanted]
    return rows


def trial_columns(table: pd.DataFrame) -> tuple[str, ...]:
    """The columns that identify a trial in a sweep's results.parquet or trials.parquet, in table
    order: every column that is not the schema's (`COLUMNS`) nor a status (`TRIAL_STATUS`).
    They are alpha and seed, and one column per other key the sweep swept (noise_std, lr, ...):
    rows of one trial agree on all of them, and two trials differ in at least one."""
    return tuple(c for c in table.columns if c not in COLUMNS and c not in TRIAL_STATUS)

"""The verdict machinery both claim lists share (`papers`: the papers' findings; `methods`: the
robustness-training methods'): a claim's statistic on trials with its percentile-bootstrap CI and
p-value, the verdict from that CI, the contrast between the extreme and the zero level, the blank
row a claims table starts from, the Holm adjustment over every claim of a report (`holm_verdicts`)
and the mark on a verdict that another reading of the same claim changes (`hangs_on`).

Trials are frames with columns x and y (and the trial columns); each trial is one training run
with its own seed, the resampling unit. Reads tables only: pandas, numpy, scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from selectivity.report.stats import (
    CONFIDENCE,
    bootstrap_test,
    per_trial,
    percentile_bootstrap,
    spearman,
    trial_columns,
)

__all__ = [
    "MIN_ALPHAS",
    "MIN_SAMPLES",
    "MIN_TRIALS",
    "READINGS",
    "SILENT_SPREAD",
    "by_layer",
    "contrast_ci",
    "fewest_samples",
    "hangs_on",
    "holm",
    "holm_verdicts",
    "replaced",
    "silent_layers",
    "statistic_ci",
    "statistic_test",
    "untested_row",
    "verdict_of",
]

# Correlation claims need a spread of alphas and enough trials for a CI to mean anything.
MIN_TRIALS = 6
MIN_ALPHAS = 3
# A metric measured on fewer images than this per trial is too noisy to carry a verdict.
MIN_SAMPLES = 100
# A layer "where units fall silent" for a claim: its silent fraction spans at least this much
# (max - min over the claim's trials); such a layer gets its own reading of the claim.
SILENT_SPREAD = 0.1
# The other readings of a claim whose verdict, where it differs from the claim's own, marks it:
# verdict column -> words.
READINGS = {
    "verdict_live": "μ_SI over live units",
    "verdict_silent_rule": "the silent-unit rule",
}


def _difference_of_means(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def contrast_ci(
    trials: pd.DataFrame,
    confidence: float,
    n_resamples: int,
    seed: int,
    column: str = "alpha",
    largest: bool = False,
) -> tuple[float, float, float]:
    """Mean y at the most negative alpha minus mean y at alpha = 0, with a bootstrapped CI.

    `column`, `largest`: the same at the largest value of another column (a method's strength).
    The two groups of trials are resampled each on its own (unpaired: different trials).
    """
    end = trials[column].max() if largest else trials[column].min()
    if not (end > 0 if largest else end < 0) or not (trials[column] == 0).any():
        return (math.nan, math.nan, math.nan)
    a = trials.loc[trials[column] == end, "y"].to_numpy(dtype=float)
    b = trials.loc[trials[column] == 0, "y"].to_numpy(dtype=float)
    low, high = percentile_bootstrap(
        (a, b), _difference_of_means, False, confidence, n_resamples, seed
    )
    return (float(a.mean() - b.mean()), low, high)


def verdict_of(estimate: float, low: float, high: float, expected: int) -> tuple[str, str]:
    """supported / contradicted when the CI excludes 0, inconclusive when it does not."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "inconclusive", "no usable bootstrap interval"
    if low > 0 or high < 0:
        found = 1 if low > 0 else -1
        if found == expected:
            return "supported", "95% CI excludes 0 in the paper's direction"
        return "contradicted", "95% CI excludes 0 in the direction opposite to the paper"
    return "inconclusive", "95% CI includes 0"


def statistic_test(
    trials: pd.DataFrame, kind: str, confidence: float, n_resamples: int, seed: int
) -> tuple[float, float, float, float]:
    """The claim's statistic on trials (columns x, y), its bootstrapped CI over trials and the
    bootstrap p-value of "statistic = 0" from the same replicates (`stats.bootstrap_test`):
    (estimate, low, high, p).

    Trials are the resampling unit (x and y of a trial stay together): every trial is an
    independent training run with its own seed. Resampling within each alpha instead (keeping the
    design fixed) was tried and rejected: with 3 seeds per alpha it shrinks the bootstrap variance
    by 2/3 and gave ~12% false "supported/contradicted" verdicts on pure noise, against ~5% for
    plain resampling.
    """
    if trials.empty:
        return (math.nan, math.nan, math.nan, math.nan)
    y = trials["y"].to_numpy(dtype=float)
    if kind == "paired":
        estimate = float(y.mean())
        low, high, p = bootstrap_test((y,), np.mean, False, confidence, n_resamples, seed)
    else:
        x = trials["x"].to_numpy(dtype=float)
        estimate = float(spearman(x, y))
        low, high, p = bootstrap_test((x, y), spearman, True, confidence, n_resamples, seed)
    return (estimate, low, high, p)


def statistic_ci(
    trials: pd.DataFrame, kind: str, confidence: float, n_resamples: int, seed: int
) -> tuple[float, float, float]:
    """`statistic_test` without the p-value: (estimate, low, high)."""
    return statistic_test(trials, kind, confidence, n_resamples, seed)[:3]


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the order given; a missing (NaN) p counts as 1.

    The i-th smallest of m p-values is multiplied by m - i + 1, then made non-decreasing in
    that order and capped at 1. Rejecting where the adjusted p < a keeps the chance of any false
    rejection among the m tests below a, whatever their dependence.
    """
    p = np.asarray(p_values, dtype=float)
    p = np.where(np.isfinite(p), p, 1.0)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def holm_verdicts(claims: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """`claims` with p_holm and verdict_holm over every row tested (verdict not "not tested").

    The family is every claim of the table (a report's papers' and methods' claims together).
    A supported or contradicted verdict stands when its Holm-adjusted p is below 1 - confidence,
    and becomes inconclusive otherwise; the adjustment never strengthens a verdict. Rows without
    a p-value are left out of the family and read "no p-value".
    """
    out = claims.copy()
    if out.empty:
        return out
    p_values = (
        out["p_value"].to_numpy(dtype=float) if "p_value" in out else np.full(len(out), math.nan)
    )
    run = (out["verdict"] != "not tested").to_numpy()
    # A claim whose test gives no p-value (a bootstrap CI of a count or a similarity gap) is
    # not in the family: counting it as p = 1 would weaken every other claim's adjustment.
    tested = run & np.isfinite(p_values)
    adjusted = np.full(len(out), math.nan)
    adjusted[tested] = holm(p_values[tested])
    out["p_holm"] = adjusted
    decided = out["verdict"].isin(["supported", "contradicted"]).to_numpy()
    keep = decided & (adjusted < 1.0 - confidence)
    out["verdict_holm"] = np.where(
        keep,
        out["verdict"],
        np.where(tested, "inconclusive", np.where(run, "no p-value", "not tested")),
    )
    return out


def hangs_on(row: dict) -> str:
    """The other readings (`READINGS`) whose verdict differs from the row's, in words; empty when
    every reading agrees or the claim was not tested. A reading the table does not allow (no
    selectivity_live: "not tested") changes nothing."""
    if row["verdict"] == "not tested":
        return ""
    return "; ".join(
        f"{words}: {row[column]}"
        for column, words in READINGS.items()
        if row.get(column) not in ("", None, "not tested") and row[column] != row["verdict"]
    )


def silent_layers(table: pd.DataFrame, trials: pd.DataFrame) -> list[tuple[object, float, float]]:
    """The layers where units fall silent across `trials` (frames of trial columns): (layer,
    lowest, highest silent fraction) for each layer whose `silent_fraction` spans at least
    SILENT_SPREAD, in network order; none when the table has no per-layer silent_fraction."""
    try:
        silent = per_trial(table, "silent_fraction", ("layer",))
    except ValueError:
        return []
    silent = silent[silent["layer"].notna()]
    columns = trial_columns(silent)
    merged = trials[columns].merge(silent, on=columns)
    spans = merged.groupby("layer", sort=False)["value"].agg(["min", "max"])
    return [
        (layer, float(r["min"]), float(r["max"]))
        for layer, r in spans.iterrows()
        if r["max"] - r["min"] >= SILENT_SPREAD
    ]


def replaced(
    trials: pd.DataFrame,
    table: pd.DataFrame,
    target: str,
    metric: str,
    where: dict[str, object] | None = None,
) -> pd.DataFrame:
    """`trials` with column `target` (x or y) replaced by `metric`'s per-trial value (`where`:
    one layer's, say), trials lacking it dropped; ValueError when the metric is absent."""
    values = per_trial(table, metric, (), where)
    columns = trial_columns(values)
    out = trials.drop(columns=[target]).merge(values.rename(columns={"value": target}), on=columns)
    return out.dropna(subset=[target]).sort_values(columns).reset_index(drop=True)


def by_layer(
    table: pd.DataFrame,
    trials: pd.DataFrame,
    read: Callable[[str, dict[str, object]], tuple[float, str]],
) -> str:
    """A claim read on each layer where units fall silent (`silent_layers`), in words:
    `read(metric, where)` gives (estimate, verdict) with that layer's mu_SI (metric selectivity)
    and mu_SI over its live units (selectivity_live) in place of the network's, or raises
    ValueError when the table lacks them."""
    layers = silent_layers(table, trials)
    readings: dict[object, list[str]] = {layer: [] for layer, _, _ in layers}
    absent = []
    for metric, words in (("selectivity", "layer μ_SI"), ("selectivity_live", "live units")):
        found: dict[object, tuple[float, str] | None] = {}
        for layer in readings:
            try:
                found[layer] = read(metric, {"layer": layer})
            except ValueError:
                found[layer] = None
        if layers and not any(found.values()):
            absent.append(f"no per-layer {metric} in the table")  # said once, not per layer
            continue
        for layer, reading in found.items():
            if reading is None:
                readings[layer].append(f"{words}: not in the table")
                continue
            estimate, verdict = reading
            numbers = f" (ρ = {estimate:.2f})" if np.isfinite(estimate) else ""
            readings[layer].append(f"{words}: {verdict}{numbers}")
    parts = [
        f"{layer} (silent {low:.0%}–{high:.0%}): {', '.join(readings[layer])}"
        for layer, low, high in layers
    ]
    return "; ".join(parts + absent)


def fewest_samples(table: pd.DataFrame, metrics: Sequence[str]) -> float:
    """The smallest recorded sample count of `metrics`' rows; NaN when none is recorded."""
    counts = table.loc[table["metric"].isin(list(metrics)), "samples"].dropna()
    return float(counts.min()) if not counts.empty else math.nan


def untested_row(**fields: object) -> dict:
    """A claims-table row before testing: verdict "not tested", numbers NaN, counts 0.

    `fields` set the claim's own columns (claim, key, source, x, statistic, expected,
    verdict_rule, trials_used, ...); fields not among the columns are appended after them.
    """
    row: dict = {
        "claim": "",
        "key": "",
        "source": "",
        "x": "",
        "statistic": "",
        "expected": "",
        "estimate": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "check_statistic": "",
        "check_estimate": math.nan,
        "check_ci_low": math.nan,
        "check_ci_high": math.nan,
        "verdict_rule": "",
        "trials_used": "trials near chance left out",
        "n_trials": 0,
        "n_alphas": 0,
        "seeds_per_alpha": "",
        "n_collapsed_left_out": 0,
        "direction": "",
        "contrast": math.nan,
        "contrast_low": math.nan,
        "contrast_high": math.nan,
        "verdict": "not tested",
        "p_value": math.nan,
        "p_holm": math.nan,
        "verdict_holm": "not tested",
        "live_estimate": math.nan,
        "live_ci_low": math.nan,
        "live_ci_high": math.nan,
        "verdict_live": "",
        "n_silent_left_out": 0,
        "verdict_silent_rule": "",
        "by_layer": "",
        "hangs_on": "",
        "note": "",
    }
    row.update(fields)
    return row

"""What each robustness-training method gained per corruption, and whether a held-out gain comes
from a few corruptions.

A method's gain on a corruption is the mean accuracy on it (over severities, per trial) at the
method's largest strength minus at strength 0, with a percentile-bootstrap CI over trials (the
two groups resampled each on its own). The corruptions a method trained on are named by
`trained_on`: the corruption mix's operations are `mix_corruptions` where the sweep records it
as a trial column, else the documented `catalog.TRAINING_SUBSET` (results.parquet has no per-trial
record of the operations otherwise); noise training trains on gaussian_noise. Held out: as the
evaluation's `corruption_accuracy_heldout_mean` counts it (`catalog.heldout_corruptions`), a
benchmark corruption of a family none of the trained corruptions belongs to.

Reads tables only: pandas and numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from selectivity.catalog import TRAINING_SUBSET, heldout_corruptions
from selectivity.report.methods import Experiment
from selectivity.report.stats import (
    CONFIDENCE,
    N_RESAMPLES,
    appearance_order,
    per_trial,
    percentile_bootstrap,
)

__all__ = ["CONCENTRATED_SHARE", "concentration_note", "corruption_gains", "trained_on"]

# A held-out gain is "from one or two corruptions" when those carry more than this share of it.
CONCENTRATED_SHARE = 0.5


def trained_on(experiment: Experiment) -> tuple[frozenset[str], str]:
    """The corruptions `experiment`'s method trained on, and the words saying where that came from.

    Mix: the `mix_corruptions` trial column where the sweep swept it (names joined by commas or
    a list), else `TRAINING_SUBSET`; noise: gaussian_noise; other methods: none.
    """
    name = experiment.method.name
    if name == "noise":
        return frozenset({"gaussian_noise"}), "noise training trains on gaussian_noise"
    if name != "mix":
        return frozenset(), ""
    table = experiment.table
    if "mix_corruptions" in table.columns:
        names: set[str] = set()
        for value in table.loc[table[experiment.method.key] > 0, "mix_corruptions"].dropna():
            items = value.split(",") if isinstance(value, str) else list(value)
            names |= {str(item).strip() for item in items if str(item).strip()}
        if names:
            return frozenset(names), "the mix's operations from the mix_corruptions column"
    return frozenset(TRAINING_SUBSET), (
        "the mix's operations taken as TRAINING_SUBSET (results.parquet records no "
        "mix_corruptions): held out = every other corruption, by name"
    )


def _difference_of_means(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def corruption_gains(
    experiment: Experiment,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """Per corruption: the method's gain in accuracy (largest strength minus strength 0).

    Columns: corruption (in the table's order), gain, ci_low, ci_high, trained (the method
    trained on it, `trained_on`), held_out (not trained on). Empty when the experiment has no
    corruption_accuracy rows or lacks strength 0 or a strength above it.
    """
    columns = ["corruption", "gain", "ci_low", "ci_high", "trained", "held_out"]
    key = experiment.method.key
    try:
        values = per_trial(experiment.table, "corruption_accuracy", ("corruption",))
    except ValueError:
        return pd.DataFrame(columns=columns)
    strongest = values[key].max()
    if not strongest > 0 or not (values[key] == 0).any():
        return pd.DataFrame(columns=columns)
    trained, _ = trained_on(experiment)
    held_out = set(heldout_corruptions(trained, values["corruption"].unique()))
    records = []
    for corruption in appearance_order(values["corruption"]):
        rows = values[values["corruption"] == corruption]
        top = rows.loc[rows[key] == strongest, "value"].dropna().to_numpy(dtype=float)
        base = rows.loc[rows[key] == 0, "value"].dropna().to_numpy(dtype=float)
        if top.size == 0 or base.size == 0:
            continue
        low, high = percentile_bootstrap(
            (top, base), _difference_of_means, False, confidence, n_resamples, seed
        )
        records.append(
            {
                "corruption": corruption,
                "gain": float(top.mean() - base.mean()),
                "ci_low": low,
                "ci_high": high,
                "trained": corruption in trained,
                "held_out": corruption in held_out,
            }
        )
    return pd.DataFrame.from_records(records, columns=columns)


def concentration_note(
    gains: pd.DataFrame, pool: Sequence[str] | None = None, what: str = ""
) -> str:
    """A note when more than CONCENTRATED_SHARE of the total gain over `pool` (corruption names;
    None: the held-out ones) comes from one or two corruptions; empty otherwise, or when the total
    gain is not positive. `what` names the gain in the note ("held-out gain")."""
    if gains.empty:
        return ""
    chosen = gains[gains["held_out"]] if pool is None else gains[gains["corruption"].isin(pool)]
    total = float(chosen["gain"].sum())
    if len(chosen) < 2 or not (total > 0 and math.isfinite(total)):
        return ""
    ranked = chosen.sort_values("gain", ascending=False, kind="stable")
    for count in (1, 2):
        top = ranked.head(count)
        share = float(top["gain"].sum()) / total
        if share > CONCENTRATED_SHARE and count < len(chosen):
            names = " and ".join(top["corruption"])
            return (
                f"{share:.0%} of the {what or 'gain'} comes from {names} "
                f"(of {len(chosen)} corruptions; see Gains per corruption)"
            )
    return ""

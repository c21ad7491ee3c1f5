"""Checks of what a results table allows to trust: collapsed trials, the settings behind a
figure's numbers, whether PGD's radius binds, and dimensionality near its sample-count cap.

`find_collapsed` finds the collapsed trials: the claims leave out those near chance
(`Collapse.near_chance`) and read the claim again without those with mostly silent layers
(`Collapse.silent_only`); the `..._text` functions give the sentences that figure captions carry.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from selectivity.report.stats import eps_text, load_results, metric_rows, per_trial, trial_columns
from selectivity.schema import SETTINGS, TRIAL

__all__ = [
    "BINDS_RTOL",
    "COLLAPSE_ACCURACY_MARGIN",
    "COLLAPSE_SILENT_FRACTION",
    "DIMENSIONALITY_METRICS",
    "NEAR_CAP",
    "Collapse",
    "find_collapsed",
    "near_cap_text",
    "pgd_binding_text",
    "settings_text",
]

# A trial is collapsed (protocol §11) when its network stopped being a working classifier: clean
# test accuracy at most this fraction of the way from chance to perfect, or more than this share
# of some layer's units silent on the test set. Silent units score SI 0 by the formula, so such
# trials drag mu_SI and accuracy down together and would decide correlations on their own.
COLLAPSE_ACCURACY_MARGIN = 0.1
COLLAPSE_SILENT_FRACTION = 0.5
# Dimensionality within this fraction of its cap min(N - 1, D) / D reflects N, not the network.
NEAR_CAP = 0.1
# PGD's radius binds when some image reached the eps-ball's surface (float tolerance).
BINDS_RTOL = 1e-3


@dataclass(frozen=True)
class Collapse:
    """The collapsed trials of a table (`find_collapsed`) and what could not be checked.

    trials: one row per collapsed trial, columns `columns` (alpha, seed and any other trial
    column) and reason (the criteria it meets, with its numbers). unchecked: one sentence per
    criterion that could not be applied, and why. n_trials: trials in the table. applied: the
    criteria applied to at least one trial.
    """

    trials: pd.DataFrame
    unchecked: tuple[str, ...]
    n_trials: int
    applied: tuple[str, ...] = ("accuracy near chance", "silent units")
    columns: tuple[str, ...] = TRIAL

    def keys(self) -> set[tuple]:
        """The collapsed trials as tuples of their `columns` values."""
        return set(self.trials[list(self.columns)].itertuples(index=False, name=None))

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Which rows of `frame` (holding the trial columns) belong to a collapsed trial.

        A merge rather than tuples in a set, so a null trial key matches itself.
        """
        columns = list(self.columns)
        if self.trials.empty or frame.empty:
            return np.zeros(len(frame), dtype=bool)
        marked = frame[columns].merge(
            self.trials[columns].drop_duplicates(), on=columns, how="left", indicator=True
        )
        return (marked["_merge"] == "both").to_numpy()

    def near_chance(self) -> Collapse:
        """Only the trials collapsed by accuracy (near chance), whatever their silent units.

        Every claim uses this (the report's one collapse policy): a network that no longer
        classifies measures nothing, while silent units are part of what alpha or a method does
        to mu_SI (they count 0, as in the papers); the claims' live-unit and silent-unit readings
        show what the silent units decide."""
        accuracy = self.trials["reason"].str.contains("clean accuracy", regex=False)
        applied = tuple(a for a in self.applied if a == "accuracy near chance")
        unchecked = tuple(u for u in self.unchecked if u.startswith("accuracy near chance"))
        trials = self.trials[accuracy].reset_index(drop=True)
        return Collapse(trials, unchecked, self.n_trials, applied, self.columns)

    def silent_only(self) -> Collapse:
        """The trials with more than COLLAPSE_SILENT_FRACTION of a layer's units silent whose
        accuracy is not near chance: the ones the claims keep and their silent-unit reading (a
        sensitivity check) leaves out too."""
        accuracy = self.trials["reason"].str.contains("clean accuracy", regex=False)
        applied = tuple(a for a in self.applied if a == "silent units")
        unchecked = tuple(u for u in self.unchecked if u.startswith("silent units"))
        trials = self.trials[~accuracy].reset_index(drop=True)
        return Collapse(trials, unchecked, self.n_trials, applied, self.columns)

    def leave_out(
        self, frame: pd.DataFrame, what: str = "collapsed trial(s)"
    ) -> tuple[pd.DataFrame, int, list[str]]:
        """`frame` without its collapsed trials, how many rows went, and the notes a claim
        carries: the count (of `what`), and whether collapse could be checked at all."""
        left_out = self.mask(frame)
        n_left_out = int(left_out.sum())
        notes = [f"{n_left_out} {what} left out"] if n_left_out else []
        if not self.applied:
            notes.append(
                "collapse not checked (see Collapsed trials): a collapsed trial may decide this"
            )
        elif self.unchecked:
            notes.append("collapse only partly checked (see Collapsed trials)")
        return frame[~left_out], n_left_out, notes


def find_collapsed(results: pd.DataFrame | str | os.PathLike) -> Collapse:
    """Trials whose network collapsed (protocol §11), by two criteria, each where it can be applied.

    - accuracy: clean `test_accuracy` <= chance + COLLAPSE_ACCURACY_MARGIN * (1 - chance), with
      chance the trial's `chance_accuracy` (1 / classes);
    - silent units: more than COLLAPSE_SILENT_FRACTION of some layer's units silent on the split
      (`silent_fraction` per layer; the network-level mean where the table has no layer rows).
    A criterion whose metrics are absent (older tables) is not applied, and `unchecked` says so:
    the number of classes is not guessed.
    """
    table = load_results(results)
    columns = trial_columns(table)
    trials = table[columns].drop_duplicates()
    reasons: list[dict] = []
    unchecked: list[str] = []
    applied: list[str] = []
    present = set(table["metric"])

    absent = [m for m in ("test_accuracy", "chance_accuracy") if m not in present]
    if absent:
        unchecked.append(
            f"accuracy near chance: not checked ({' and '.join(absent)} absent from the table)"
        )
    else:
        try:
            accuracy = per_trial(table, "test_accuracy").merge(
                per_trial(table, "chance_accuracy"), on=columns, suffixes=("", "_chance")
            )
        except ValueError as error:
            unchecked.append(f"accuracy near chance: not checked ({error})")
        else:
            applied.append("accuracy near chance")
            lacking = len(trials) - len(accuracy.dropna(subset=["value", "value_chance"]))
            if lacking:
                unchecked.append(
                    f"accuracy near chance: not checked for {lacking} trial(s) lacking "
                    "test_accuracy or chance_accuracy"
                )
            chance = accuracy["value_chance"]
            accuracy["limit"] = chance + COLLAPSE_ACCURACY_MARGIN * (1.0 - chance)
            for _, r in accuracy[accuracy["value"] <= accuracy["limit"]].iterrows():
                reasons.append(
                    {
                        **{c: r[c] for c in columns},
                        "reason": f"clean accuracy {r['value']:.3f} ≤ {r['limit']:.3f} (chance "
                        f"{r['value_chance']:.3f} + {COLLAPSE_ACCURACY_MARGIN:g} × (1 − chance))",
                    }
                )

    if "silent_fraction" not in present:
        unchecked.append("silent units: not checked (silent_fraction absent from the table)")
    else:
        try:
            rows = metric_rows(table, "silent_fraction")
        except ValueError as error:
            unchecked.append(f"silent units: not checked ({error})")
        else:
            applied.append("silent units")
            layered = rows[rows["layer"].notna()]
            rows = layered if not layered.empty else rows.assign(layer="network mean")
            layers = rows.groupby([*columns, "layer"], dropna=False, sort=False)["value"]
            per = layers.mean().reset_index()
            worst = per.loc[per.groupby(columns, dropna=False, sort=False)["value"].idxmax()]
            lacking = len(trials) - len(worst)
            if lacking:
                unchecked.append(
                    f"silent units: not checked for {lacking} trial(s) lacking silent_fraction"
                )
            for _, r in worst[worst["value"] > COLLAPSE_SILENT_FRACTION].iterrows():
                reasons.append(
                    {
                        **{c: r[c] for c in columns},
                        "reason": f"{r['value']:.0%} of {r['layer']}'s units silent "
                        f"(> {COLLAPSE_SILENT_FRACTION:.0%})",
                    }
                )

    collapsed = pd.DataFrame.from_records(reasons, columns=[*columns, "reason"])
    # Keep each column's type (a seed stays an int, as in the table).
    collapsed = collapsed.astype(trials.dtypes.to_dict())
    # One row per trial, its criteria joined in the order they were applied.
    joined = collapsed.groupby(columns, dropna=False, sort=False)["reason"].agg("; ".join)
    collapsed = joined.reset_index().sort_values(columns).reset_index(drop=True)
    return Collapse(collapsed, tuple(unchecked), len(trials), tuple(applied), tuple(columns))


_SETTING_WORDS = {"split": "split", "samples": "samples per trial", "step_size": "PGD step size"}


def settings_text(table: pd.DataFrame, metrics: Sequence[str]) -> str:
    """The recorded settings (split, sample count, PGD step size) of `metrics`' rows, in words.

    The step size is named only for metrics PGD produces. Says so when the table does not record
    a setting (results written before the settings columns).
    """
    rows = table[table["metric"].isin(list(metrics))]
    pgd = any(m.startswith("pgd") or m == "dimensionality_adversarial" for m in metrics)
    columns = SETTINGS if pgd else tuple(c for c in SETTINGS if c != "step_size")
    words, missing = [], []
    for column in columns:
        values = sorted(set(rows[column].dropna())) if column in rows.columns else []
        if not values:
            missing.append(_SETTING_WORDS[column])
            continue
        shown = [
            str(int(v)) if column == "samples" else f"{v:.3g}" if isinstance(v, float) else str(v)
            for v in values
        ]
        words.append(f"{_SETTING_WORDS[column]} {' / '.join(shown)}")
    if missing:
        words.append(f"{', '.join(missing)} not recorded in this table")
    return "Settings: " + "; ".join(words) + "."


def pgd_binding_text(table: pd.DataFrame, eps: float) -> str:
    """Whether PGD's eps-ball binds at `eps`: from pgd_linf_max (largest L-inf distance reached)."""
    present = set(table["metric"])
    if "pgd_linf_max" not in present:
        return "Whether the ε-ball binds is unknown: pgd_linf_max is absent from this table."
    reached = table[
        (table["metric"] == "pgd_linf_max") & np.isclose(table["eps"].astype(float), eps)
    ]["value"]
    if reached.dropna().empty:
        return f"Whether the ε-ball binds is unknown: no pgd_linf_max rows at ε = {eps_text(eps)}."
    largest = float(reached.max())
    mean = table[(table["metric"] == "pgd_linf_mean") & np.isclose(table["eps"].astype(float), eps)]
    mean_text = f", mean {mean['value'].mean():.3g}" if not mean.empty else ""
    if largest < eps * (1.0 - BINDS_RTOL):
        return (
            f"The ε-ball never binds: the largest L∞ distance PGD reached is {largest:.3g}"
            f"{mean_text} (ε = {eps_text(eps)}), so these accuracies measure step size × steps, not ε."
        )
    return f"The ε-ball binds (largest L∞ distance reached {largest:.3g}{mean_text}, ε = {eps_text(eps)})."


DIMENSIONALITY_METRICS = (
    "dimensionality",
    "dimensionality_corruption",
    "dimensionality_adversarial",
)


def _near_cap(table: pd.DataFrame) -> pd.DataFrame:
    """Dimensionality values within NEAR_CAP of their cap min(N - 1, D) / D, per metric and layer.

    Columns: metric, layer, flagged (trials near the cap), trials, cap (the smallest cap seen).
    Empty when nothing is near the cap; ValueError when the table has no dimensionality_cap.
    """
    columns = [*trial_columns(table), "layer"]
    smallest = metric_rows(table, "dimensionality_cap").groupby(columns, dropna=False, sort=False)
    caps = smallest["value"].min().rename("cap").reset_index()
    records = []
    for metric in DIMENSIONALITY_METRICS:
        if metric not in set(table["metric"]):
            continue
        values = per_trial(table, metric, ("layer",)).merge(caps, on=columns)
        values["near"] = values["value"] >= (1.0 - NEAR_CAP) * values["cap"]
        for layer, group in values.groupby("layer", sort=False):
            if group["near"].any():
                records.append(
                    {
                        "metric": metric,
                        "layer": layer,
                        "flagged": int(group["near"].sum()),
                        "trials": len(group),
                        "cap": float(group["cap"].min()),
                    }
                )
    return pd.DataFrame.from_records(
        records, columns=["metric", "layer", "flagged", "trials", "cap"]
    )


def near_cap_text(table: pd.DataFrame) -> str:
    """The dimensionality values near their sample-count cap, in a sentence for a caption."""
    try:
        near = _near_cap(table)
    except ValueError:
        return (
            "Values near the sample-count cap cannot be flagged: dimensionality_cap is absent "
            "from this table."
        )
    if near.empty:
        return f"No value lies within {NEAR_CAP:.0%} of its cap min(N − 1, D) / D."
    listed = "; ".join(
        f"{r['metric']} at {r['layer']} in {r['flagged']} of {r['trials']} trials (cap {r['cap']:.3g})"
        for _, r in near.iterrows()
    )
    return (
        f"Flagged, within {NEAR_CAP:.0%} of the cap min(N − 1, D) / D that N samples allow (there the "
        f"value reflects N, not the representation): {listed}."
    )

"""From a sweep's results table to figures, a claims table and one self-contained HTML report.

This module reads result tables only (the tidy schema of docs/results.md); it never imports torch
or model code, so a report can be rebuilt anywhere from `results.parquet` alone.

Layout of the module:
- statistics: `bootstrap_ci` (CI of a mean) and `summarise` (the one place that aggregates over
  seeds: values are first averaged within a trial over the keys not grouped by, then the mean and a
  bootstrapped 95% CI are taken over the trials of each group);
- figures: one `plot_<name>(table, ax=None)` per figure of the papers (table: a DataFrame or the
  path of a results file); each raises ValueError naming the metrics it lacks;
- checks: `find_collapsed` (trials whose network collapsed, left out of the selectivity-framed
  claims), the settings that decide a figure's numbers, PGD's radius binding, dimensionality near
  its sample-count cap;
- claims: `evaluate_claims` tests each finding of the papers on the table;
- output: `summary_table` and `write_report`.

Alpha is symmetric around 0 and log-spaced in |alpha|, so every alpha axis is symlog and alpha
colours are blue (alpha < 0, selectivity discouraged), black (alpha = 0) and red (alpha > 0), darker
for larger |alpha|.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Matplotlib writes a font cache into MPLCONFIGDIR at import; keep it out of the user's home when
# nothing was configured (read-only homes, shared CI runners).
if not os.environ.get("MPLCONFIGDIR"):
    os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="selectivity-mpl-")

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, PercentFormatter
from scipy import stats

from selectivity.files import write_bytes
from selectivity.schema import KEYS, SETTINGS, TRIAL

__all__ = [
    "CLAIMS",
    "FIGURES",
    "SOURCES",
    "ClaimSpec",
    "Collapse",
    "FigureSpec",
    "alpha_colors",
    "bootstrap_ci",
    "evaluate_claims",
    "find_collapsed",
    "load_results",
    "plot_accuracy_per_corruption",
    "plot_accuracy_vs_selectivity",
    "plot_clean_vs_corrupted",
    "plot_corruption_vs_alpha",
    "plot_dimensionality",
    "plot_fgsm_accuracy",
    "plot_gradient_variability",
    "plot_jacobian_norm",
    "plot_normalised_accuracy_per_corruption",
    "plot_pgd_accuracy",
    "plot_silent_units",
    "summarise",
    "summary_table",
    "write_report",
]

COLUMNS = (*TRIAL, "metric", *KEYS, *SETTINGS, "value")
N_RESAMPLES = 2000
CONFIDENCE = 0.95
# Correlation claims need a spread of alphas and enough trials for a CI to mean anything.
MIN_TRIALS = 6
MIN_ALPHAS = 3
# A metric measured on fewer images than this per trial is too noisy to carry a verdict.
MIN_SAMPLES = 100
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

# Figures are built on `matplotlib.figure.Figure` directly, never through pyplot: no global
# figure registry to leak, no backend switch forced on the caller; savefig renders with Agg.
_STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8,
    "legend.title_fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
}

ALPHA_LABEL = "regularizer scale α  (< 0 lowers selectivity, > 0 raises it)"
# The papers the claims come from, by the short names used in the report.
SOURCES = {
    "ICML-W 2020": "Leavitt & Morcos, On the relationship between class selectivity, dimensionality, and "
    "robustness (ICML 2020 workshop on uncertainty and robustness)",
    "arXiv:2010.07693": "Leavitt & Morcos, Linking average- and worst-case perturbation robustness via class "
    "selectivity and dimensionality",
    "arXiv:2003.01262": "Leavitt & Morcos, Selectivity considered harmful: evaluating the causal impact of class "
    "selectivity in DNNs",
}
SELECTIVITY_LABEL = r"network selectivity $\mu_{SI}$ (mean class-selectivity index, 0–1)"
DIMENSIONALITY_LABEL = "dimensionality\n(fraction of dims for 90% variance)"


# --------------------------------------------------------------------------------------------
# Table handling and statistics
# --------------------------------------------------------------------------------------------


def load_results(results: pd.DataFrame | str | os.PathLike) -> pd.DataFrame:
    """A results table as a DataFrame in the schema of docs/results.md.

    `results` is a DataFrame or the path of a .parquet or .csv file. Key columns missing from the
    input (and the settings columns split, samples, step_size, absent from older tables) are added
    as nulls and `value` becomes float; `alpha`, `seed`, `metric` and `value` are required.
    """
    if isinstance(results, pd.DataFrame):
        table = results.copy()
    else:
        path = Path(results)
        table = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    missing = [c for c in ("alpha", "seed", "metric", "value") if c not in table.columns]
    if missing:
        raise ValueError(f"results table lacks column(s) {missing}; see docs/results.md")
    for column in (*KEYS, *SETTINGS):
        if column not in table.columns:
            table[column] = np.nan
    table["alpha"] = table["alpha"].astype(float)
    table["value"] = pd.to_numeric(table["value"], errors="coerce").astype(float)
    return table


def bootstrap_ci(
    values: Iterable[float],
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of `values` and its percentile-bootstrap confidence interval: (mean, low, high).

    Non-finite values are ignored. One value (or identical values) gives low = high = mean; no
    values gives NaNs. Deterministic for a given `seed`. The percentile bootstrap is the one the
    paper's plots use (error bars are bootstrapped 95% CIs over seeds); with few seeds it is
    narrower than a t interval, so read it as descriptive.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    x = np.asarray(
        list(values) if not isinstance(values, np.ndarray) else values, dtype=float
    ).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return (mean, mean, mean)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return (mean, float(low), float(high))


def _mask(column: pd.Series, condition: object) -> pd.Series:
    """Rows of `column` meeting `condition`: None = null, callable = predicate, list = membership."""
    if condition is None:
        return column.isna()
    if callable(condition):
        # Predicates may return a Series or an array; null keys never match one.
        hit = pd.Series(np.asarray(condition(column)), index=column.index)
        return column.notna() & hit.fillna(False).astype(bool)
    if isinstance(condition, (list, tuple, set, frozenset, np.ndarray, pd.Index)):
        return column.isin(list(condition))
    # Nullable dtypes compare to NA on null keys; a null key never equals a value.
    return (column == condition).fillna(False).astype(bool)


def _rows(
    table: pd.DataFrame, metric: str, where: Mapping[str, object] | None = None
) -> pd.DataFrame:
    """Rows of one metric, filtered by `where`; ValueError when the metric is absent.

    ValueError too when the metric's rows come from several splits (a test and a val measurement
    averaged together would be a number of neither).
    """
    rows = table[table["metric"] == metric]
    if rows.empty:
        raise ValueError(f"metric {metric!r} is not in the results table")
    splits = sorted(set(rows["split"].dropna())) if "split" in rows.columns else []
    if len(splits) > 1:
        raise ValueError(
            f"metric {metric!r} has rows from several splits {splits}: "
            "filter the table to one split first"
        )
    for column, condition in (where or {}).items():
        rows = rows[_mask(rows[column], condition)]
    if rows.empty:
        raise ValueError(f"metric {metric!r} has no rows matching {dict(where or {})}")
    return rows


def _appearance(series: pd.Series) -> list:
    """Distinct non-null values in order of first appearance (layers in network order)."""
    return list(dict.fromkeys(series.dropna().tolist()))


def _per_trial(
    table: pd.DataFrame,
    metric: str,
    by: Sequence[str] = (),
    where: Mapping[str, object] | None = None,
) -> pd.DataFrame:
    """One value per trial (alpha, seed) and `by` group: the mean over the keys not in `by`.

    `selectivity` has a network-level row (layer null) besides its per-layer rows; when `layer`
    is neither grouped by nor filtered, the network-level rows are used rather than a mixture.
    """
    rows = _rows(table, metric, where)
    if "layer" not in by and "layer" not in (where or {}):
        network = rows["layer"].isna()
        if network.any() and not network.all():
            rows = rows[network]
    keys = list(dict.fromkeys([*TRIAL, *by]))
    return rows.groupby(keys, dropna=False, sort=False)["value"].mean().reset_index()


def _sort(frame: pd.DataFrame, columns: Sequence[str], orders: Mapping[str, list]) -> pd.DataFrame:
    """Sort numerically, except text keys, which keep their order of appearance in the table."""
    if not columns:
        return frame.reset_index(drop=True)

    def key(series: pd.Series) -> pd.Series:
        if series.name in orders:
            position = {value: i for i, value in enumerate(orders[series.name])}
            return series.map(position).astype(float).fillna(-1.0)
        return series

    return frame.sort_values(
        list(columns), key=key, na_position="first", kind="stable"
    ).reset_index(drop=True)


def summarise(
    table: pd.DataFrame,
    metric: str,
    by: Sequence[str] = ("alpha",),
    where: Mapping[str, object] | None = None,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean and bootstrapped CI over seeds of `metric`, per group of `by`.

    Each trial (alpha, seed) first gets one value per `by` group: the mean of its rows over the
    keys not in `by` (e.g. over severities when grouping by corruption). The mean, the percentile
    bootstrap CI (`bootstrap_ci`) and the number n of trials are then taken over those values.
    `where` filters rows first: {column: value | None (null) | list | predicate}.
    Returns columns [*by, "mean", "ci_low", "ci_high", "n"], sorted by `by` (layers and
    corruptions in their order of appearance in the table).
    """
    by = list(by)
    unknown = [c for c in by if c not in table.columns]
    if unknown:
        raise ValueError(f"cannot group by {unknown}: not columns of the results table")
    per = _per_trial(table, metric, by, where)
    rows = table[table["metric"] == metric]
    orders = {c: _appearance(rows[c]) for c in by if c in ("layer", "corruption")}
    records = []
    groups = per.groupby(by, dropna=False, sort=False) if by else [((), per)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        mean, low, high = bootstrap_ci(group["value"].to_numpy(), confidence, n_resamples, seed)
        n = int(np.isfinite(group["value"].to_numpy(dtype=float)).sum())
        records.append(
            {
                **dict(zip(by, key, strict=True)),
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "n": n,
            }
        )
    out = pd.DataFrame.from_records(records, columns=[*by, "mean", "ci_low", "ci_high", "n"])
    return _sort(out, by, orders)


def summary_table(
    table: pd.DataFrame, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> pd.DataFrame:
    """`summarise` for every metric, grouped by alpha and every key and setting that metric sets.

    Columns: metric, alpha, layer, corruption, severity, eps, steps, split, samples, step_size,
    mean, ci_low, ci_high, n. Network-level selectivity appears with a null layer next to the
    per-layer rows. Settings are grouped by, so numbers measured differently never share a mean.
    """
    table = load_results(table)
    parts = []
    for metric in _appearance(table["metric"]):
        rows = table[table["metric"] == metric]
        keys = [c for c in (*KEYS, *SETTINGS) if rows[c].notna().any()]
        part = summarise(table, metric, by=("alpha", *keys), n_resamples=n_resamples, seed=seed)
        part.insert(0, "metric", metric)
        parts.append(part)
    columns = ["metric", "alpha", *KEYS, *SETTINGS, "mean", "ci_low", "ci_high", "n"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat([p.reindex(columns=columns) for p in parts], ignore_index=True)


def _require(
    table: pd.DataFrame, metrics: Sequence[str], figure: str, any_of: bool = False
) -> list[str]:
    """Metrics of `metrics` present in the table; ValueError naming the absent ones otherwise."""
    present = set(table["metric"].unique())
    have = [m for m in metrics if m in present]
    missing = [m for m in metrics if m not in present]
    if (any_of and not have) or (not any_of and missing):
        raise ValueError(
            f"figure {figure!r} needs metric(s) {missing} absent from the results table"
        )
    return have


def _derived(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per-trial values computed here, put back into the results schema so `summarise` reads them."""
    out = frame.copy()
    out["metric"] = metric
    for column in (*KEYS, *SETTINGS):
        if column not in out.columns:
            out[column] = np.nan
    return out[list(COLUMNS)]


def _normalised_corruption_table(table: pd.DataFrame) -> pd.DataFrame:
    """corruption_accuracy / test_accuracy of the same trial, per corruption and severity."""
    corrupted = _rows(table, "corruption_accuracy")
    clean = _per_trial(table, "test_accuracy").rename(columns={"value": "clean"})
    merged = corrupted.merge(clean, on=list(TRIAL), how="inner")
    merged["value"] = merged["value"] / merged["clean"]
    return _derived(merged.drop(columns=["clean"]), "corruption_accuracy_normalised")


# --------------------------------------------------------------------------------------------
# Checks: collapsed trials, settings, PGD's radius, dimensionality's cap
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Collapse:
    """The collapsed trials of a table (`find_collapsed`) and what could not be checked.

    trials: one row per collapsed trial, columns alpha, seed, reason (the criteria it meets, with
    its numbers). unchecked: one sentence per criterion that could not be applied, and why.
    n_trials: trials in the table. applied: the criteria applied to at least one trial.
    """

    trials: pd.DataFrame
    unchecked: tuple[str, ...]
    n_trials: int
    applied: tuple[str, ...] = ("accuracy near chance", "silent units")

    def keys(self) -> set[tuple[float, object]]:
        return set(zip(self.trials["alpha"], self.trials["seed"], strict=True))


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
    trials = table[list(TRIAL)].drop_duplicates()
    reasons: dict[tuple[float, object], list[str]] = {}
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
            accuracy = _per_trial(table, "test_accuracy").merge(
                _per_trial(table, "chance_accuracy"), on=list(TRIAL), suffixes=("", "_chance")
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
            # itertuples keeps each column's type (a seed stays an int).
            for r in accuracy[accuracy["value"] <= accuracy["limit"]].itertuples(index=False):
                reasons.setdefault((r.alpha, r.seed), []).append(
                    f"clean accuracy {r.value:.3f} ≤ {r.limit:.3f} (chance "
                    f"{r.value_chance:.3f} + {COLLAPSE_ACCURACY_MARGIN:g} × (1 − chance))"
                )

    if "silent_fraction" not in present:
        unchecked.append("silent units: not checked (silent_fraction absent from the table)")
    else:
        try:
            rows = _rows(table, "silent_fraction")
        except ValueError as error:
            unchecked.append(f"silent units: not checked ({error})")
        else:
            applied.append("silent units")
            layered = rows[rows["layer"].notna()]
            rows = layered if not layered.empty else rows.assign(layer="network mean")
            per = rows.groupby([*TRIAL, "layer"], sort=False)["value"].mean().reset_index()
            worst = per.loc[per.groupby(list(TRIAL), sort=False)["value"].idxmax()]
            lacking = len(trials) - len(worst)
            if lacking:
                unchecked.append(
                    f"silent units: not checked for {lacking} trial(s) lacking silent_fraction"
                )
            for r in worst[worst["value"] > COLLAPSE_SILENT_FRACTION].itertuples(index=False):
                reasons.setdefault((r.alpha, r.seed), []).append(
                    f"{r.value:.0%} of {r.layer}'s units silent (> {COLLAPSE_SILENT_FRACTION:.0%})"
                )

    collapsed = pd.DataFrame(
        [(a, seed, "; ".join(words)) for (a, seed), words in reasons.items()],
        columns=["alpha", "seed", "reason"],
    )
    collapsed = collapsed.sort_values(["alpha", "seed"]).reset_index(drop=True)
    return Collapse(collapsed, tuple(unchecked), len(trials), tuple(applied))


_SETTING_WORDS = {"split": "split", "samples": "samples per trial", "step_size": "PGD step size"}


def _settings_text(table: pd.DataFrame, metrics: Sequence[str]) -> str:
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


def _pgd_binding_text(table: pd.DataFrame, eps: float) -> str:
    """Whether PGD's eps-ball binds at `eps`: from pgd_linf_max (largest L-inf distance reached)."""
    present = set(table["metric"])
    if "pgd_linf_max" not in present:
        return "Whether the ε-ball binds is unknown: pgd_linf_max is absent from this table."
    reached = table[
        (table["metric"] == "pgd_linf_max") & np.isclose(table["eps"].astype(float), eps)
    ]["value"]
    if reached.dropna().empty:
        return f"Whether the ε-ball binds is unknown: no pgd_linf_max rows at ε = {_fmt_eps(eps)}."
    largest = float(reached.max())
    mean = table[(table["metric"] == "pgd_linf_mean") & np.isclose(table["eps"].astype(float), eps)]
    mean_text = f", mean {mean['value'].mean():.3g}" if not mean.empty else ""
    if largest < eps * (1.0 - BINDS_RTOL):
        return (
            f"The ε-ball never binds: the largest L∞ distance PGD reached is {largest:.3g}"
            f"{mean_text} (ε = {_fmt_eps(eps)}), so these accuracies measure step size × steps, not ε."
        )
    return f"The ε-ball binds (largest L∞ distance reached {largest:.3g}{mean_text}, ε = {_fmt_eps(eps)})."


_DIMENSIONALITY_METRICS = (
    "dimensionality",
    "dimensionality_corruption",
    "dimensionality_adversarial",
)


def _near_cap(table: pd.DataFrame) -> pd.DataFrame:
    """Dimensionality values within NEAR_CAP of their cap min(N - 1, D) / D, per metric and layer.

    Columns: metric, layer, flagged (trials near the cap), trials, cap (the smallest cap seen).
    Empty when nothing is near the cap; ValueError when the table has no dimensionality_cap.
    """
    caps = _rows(table, "dimensionality_cap")
    caps = caps.groupby([*TRIAL, "layer"], sort=False)["value"].min().rename("cap").reset_index()
    records = []
    for metric in _DIMENSIONALITY_METRICS:
        if metric not in set(table["metric"]):
            continue
        values = _per_trial(table, metric, ("layer",)).merge(caps, on=[*TRIAL, "layer"])
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


def _near_cap_text(table: pd.DataFrame) -> str:
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


# --------------------------------------------------------------------------------------------
# Plot helpers
# --------------------------------------------------------------------------------------------


def alpha_colors(alphas: Iterable[float]) -> dict[float, tuple]:
    """Colour per alpha: blues below 0, black at 0, reds above, darker with larger |alpha|."""
    values = sorted({float(a) for a in alphas})
    colors: dict[float, tuple] = {}
    negative = sorted((a for a in values if a < 0), key=abs)
    positive = [a for a in values if a > 0]
    for group, cmap in ((negative, "Blues"), (positive, "Reds")):
        # One alpha on a side gets a middle shade; none (a grid without negative alphas) gets none.
        shades = np.linspace(0.45, 0.95, len(group)) if len(group) > 1 else [0.75] * len(group)
        for a, shade in zip(group, shades, strict=True):
            colors[a] = colormaps[cmap](float(shade))
    if 0.0 in values:
        colors[0.0] = (0.0, 0.0, 0.0, 1.0)
    return colors


def _fmt_alpha(alpha: float) -> str:
    return f"{alpha:g}"


def _fmt_eps(eps: float) -> str:
    """k/255 when eps is a whole number of 8-bit grey levels (the usual way to quote it)."""
    scaled = eps * 255.0
    if eps > 0 and abs(scaled - round(scaled)) < 1e-6:
        return f"{round(scaled)}/255"
    return f"{eps:.3g}"


def _alphas(table: pd.DataFrame) -> list[float]:
    return sorted(set(table["alpha"].dropna().astype(float)))


def _alpha_axis(ax: Axes, alphas: Sequence[float]) -> None:
    """Symlog x-axis: |alpha| is log-spaced and alpha = 0 must sit in the middle, not at -inf."""
    nonzero = [abs(a) for a in alphas if a != 0]
    ax.set_xscale("symlog", linthresh=min(nonzero) if nonzero else 1.0, linscale=0.6)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(ALPHA_LABEL)


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=figsize, layout="constrained").add_subplot()


def _new_panels(
    ax: Sequence[Axes] | None, n: int, figsize: tuple[float, float], sharey: bool = False
) -> list[Axes]:
    if ax is not None:
        axes = list(np.ravel(ax))
        if len(axes) < n:
            raise ValueError(f"this figure needs {n} axes, got {len(axes)}")
        return axes[:n]
    fig = Figure(figsize=figsize, layout="constrained")
    return list(np.atleast_1d(fig.subplots(1, n, sharey=sharey, squeeze=False)[0]))


def _line_ci(
    ax: Axes, x, summary: pd.DataFrame, color, label: str | None = None, marker: str = "o"
) -> None:
    """Mean as a line with markers, its bootstrapped CI as a band."""
    ax.plot(x, summary["mean"], marker=marker, ms=4, lw=1.6, color=color, label=label)
    ax.fill_between(x, summary["ci_low"], summary["ci_high"], color=color, alpha=0.18, lw=0)


def _alpha_legend(target, colors: Mapping[float, tuple], **kwargs) -> None:
    """Legend of alpha colours on an Axes or Figure."""
    handles = [
        Line2D([], [], color=c, marker="o", ms=5, lw=1.6, label=_fmt_alpha(a))
        for a, c in colors.items()
    ]
    target.legend(handles=handles, title="α", frameon=False, **kwargs)


def _outside_legend(ax: Axes, colors: Mapping[float, tuple]) -> None:
    _alpha_legend(ax, colors, loc="center left", bbox_to_anchor=(1.01, 0.5))


def _percent_axis(axis) -> None:
    # decimals=None picks enough digits for the tick spacing (0.725 must not read "73%").
    axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))


def _styled(function: Callable) -> Callable:
    """Run a plot function on a checked table (or a path to one) under the house style.

    rc_context keeps the style local: the caller's rcParams are left as they were.
    """

    @functools.wraps(function)
    def wrapper(table, *args, **kwargs):
        table = load_results(table)
        with matplotlib.rc_context(_STYLE):
            return function(table, *args, **kwargs)

    return wrapper


def _range_text(counts: pd.Series) -> str:
    """ "3" or "2–3": the spread of a count over groups."""
    if counts.empty:
        return "0"
    low, high = int(counts.min()), int(counts.max())
    return f"{low}" if low == high else f"{low}–{high}"


def _n_seeds_text(summary: pd.DataFrame) -> str:
    return f"n = {_range_text(summary['n'])} seeds"


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


@_styled
def plot_accuracy_vs_selectivity(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Clean test accuracy against network selectivity, one point per alpha (paper Fig. A1).

    Points: mean over seeds with bootstrapped 95% CIs on both axes; faint dots are single trials.
    One error-bar container per alpha.
    """
    _require(table, ["selectivity", "test_accuracy"], "accuracy_vs_selectivity")
    ax = _new_axes(ax, (6.4, 4.2))
    colors = alpha_colors(_alphas(table))
    sel = summarise(table, "selectivity")
    acc = summarise(table, "test_accuracy")
    both = sel.merge(acc, on="alpha", suffixes=("_sel", "_acc"))
    trials = _per_trial(table, "selectivity").merge(
        _per_trial(table, "test_accuracy"), on=list(TRIAL)
    )
    ax.scatter(
        trials["value_x"],
        trials["value_y"],
        s=10,
        alpha=0.35,
        lw=0,
        c=[colors[a] for a in trials["alpha"]],
        zorder=1,
    )
    for _, row in both.iterrows():
        ax.errorbar(
            row["mean_sel"],
            row["mean_acc"],
            xerr=[[row["mean_sel"] - row["ci_low_sel"]], [row["ci_high_sel"] - row["mean_sel"]]],
            yerr=[[row["mean_acc"] - row["ci_low_acc"]], [row["ci_high_acc"] - row["mean_acc"]]],
            fmt="o",
            ms=6,
            color=colors[row["alpha"]],
            mec="white",
            mew=0.6,
            elinewidth=1.2,
            zorder=3,
        )
    ax.set_xlabel(SELECTIVITY_LABEL)
    ax.set_ylabel("clean test accuracy")
    _percent_axis(ax.yaxis)
    ax.set_title("Accuracy vs selectivity")
    _outside_legend(ax, {a: colors[a] for a in both["alpha"]})
    return ax


def _metric_vs_alpha(ax: Axes, table: pd.DataFrame, metric: str, alphas: list[float]) -> None:
    """One metric against alpha on `ax`: mean over seeds with its CI band, points coloured by alpha."""
    colors = alpha_colors(alphas)
    summary = summarise(table, metric)
    _line_ci(ax, summary["alpha"], summary, color="0.25")
    ax.scatter(
        summary["alpha"], summary["mean"], c=[colors[a] for a in summary["alpha"]], s=30, zorder=3
    )
    _alpha_axis(ax, alphas)


@_styled
def plot_corruption_vs_alpha(table: pd.DataFrame, ax: Sequence[Axes] | None = None) -> Figure:
    """Mean corrupted accuracy and corrupted / clean accuracy against alpha (Fig. 1a-b, A4a-b).

    One panel per metric present (corruption_accuracy_mean, corruption_accuracy_relative), each
    with one line: mean over seeds, band = bootstrapped 95% CI.
    """
    panels = {
        "corruption_accuracy_mean": (
            "Corrupted accuracy",
            "corrupted test accuracy\n(mean over corruptions, severities)",
        ),
        "corruption_accuracy_relative": (
            "Corrupted / clean accuracy",
            "corrupted / clean accuracy (ratio)",
        ),
    }
    have = _require(table, list(panels), "corruption_vs_alpha", any_of=True)
    axes = _new_panels(ax, len(have), (5.2 * len(have), 4.0))
    alphas = _alphas(table)
    for axis, metric in zip(axes, have, strict=True):
        _metric_vs_alpha(axis, table, metric, alphas)
        title, ylabel = panels[metric]
        axis.set_title(title)
        axis.set_ylabel(ylabel)
        if metric == "corruption_accuracy_mean":
            _percent_axis(axis.yaxis)
    return axes[0].figure


def _three_alphas(alphas: Sequence[float]) -> list[float]:
    """The most negative alpha, 0 (or the alpha closest to it) and the most positive alpha."""
    middle = min(alphas, key=abs)
    return list(dict.fromkeys([min(alphas), middle, max(alphas)]))


def _dodged_points(
    ax: Axes,
    summary: pd.DataFrame,
    category: str,
    order: list,
    alphas: Sequence[float],
    colors: Mapping[float, tuple],
) -> None:
    """Points with CI bars per category, side by side per alpha (one container per alpha)."""
    width = 0.8
    step = width / max(len(alphas), 1)
    positions = {c: i for i, c in enumerate(order)}
    for i, alpha in enumerate(alphas):
        part = summary[summary["alpha"] == alpha]
        x = part[category].map(positions).to_numpy(dtype=float) - width / 2 + step * (i + 0.5)
        ax.errorbar(
            x,
            part["mean"],
            yerr=[part["mean"] - part["ci_low"], part["ci_high"] - part["mean"]],
            fmt="o",
            ms=4,
            lw=0,
            elinewidth=1.1,
            color=colors[alpha],
            label=_fmt_alpha(alpha),
        )
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([str(c).replace("_", " ") for c in order], rotation=40, ha="right")
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.grid(False, axis="x")
    for boundary in np.arange(0.5, len(order) - 1, 1.0):
        ax.axvline(boundary, color="0.9", lw=0.6, zorder=0)


@_styled
def plot_normalised_accuracy_per_corruption(
    table: pd.DataFrame, ax: Axes | None = None, severity: int | None = None
) -> Axes:
    """Corrupted / clean accuracy per corruption for the lowest, zero and highest alpha (Fig. 1c, A4c).

    Each trial's corruption accuracy is divided by its own clean accuracy, then averaged over
    severities (or taken at `severity`). One error-bar container per alpha shown (at most 3).
    """
    _require(table, ["corruption_accuracy", "test_accuracy"], "normalised_accuracy_per_corruption")
    derived = _normalised_corruption_table(table)
    where = None if severity is None else {"severity": severity}
    summary = summarise(
        derived, "corruption_accuracy_normalised", by=("alpha", "corruption"), where=where
    )
    order = _appearance(_rows(table, "corruption_accuracy")["corruption"])
    shown = _three_alphas(_alphas(summary))
    colors = alpha_colors(_alphas(table))
    ax = _new_axes(ax, (max(6.5, 0.5 * len(order) + 3.0), 4.4))
    _dodged_points(ax, summary[summary["alpha"].isin(shown)], "corruption", order, shown, colors)
    ax.set_ylabel("corrupted / clean accuracy (ratio)")
    ax.set_xlabel("corruption")
    which = "mean over severities" if severity is None else f"severity {severity}"
    ax.set_title(f"Normalised accuracy per corruption ({which})")
    ax.legend(title="α", frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax


@_styled
def plot_accuracy_per_corruption(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Corrupted accuracy per corruption (mean over severities) for every alpha (Fig. A2, A5).

    One error-bar container per alpha.
    """
    _require(table, ["corruption_accuracy"], "accuracy_per_corruption")
    summary = summarise(table, "corruption_accuracy", by=("alpha", "corruption"))
    order = _appearance(_rows(table, "corruption_accuracy")["corruption"])
    alphas = _alphas(summary)
    colors = alpha_colors(_alphas(table))
    ax = _new_axes(ax, (max(7.0, 0.6 * len(order) + 3.0), 4.4))
    _dodged_points(ax, summary, "corruption", order, alphas, colors)
    ax.set_ylabel("corrupted test accuracy\n(mean over severities)")
    ax.set_xlabel("corruption")
    _percent_axis(ax.yaxis)
    ax.set_title("Accuracy per corruption")
    ax.legend(title="α", frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax


@_styled
def plot_clean_vs_corrupted(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Clean against corrupted accuracy, per severity (lines) and alpha (fill colour) (Fig. A3, A6).

    Corrupted accuracy is the mean over corruptions at one severity. One line per severity joins
    the alphas in order; marker fill = alpha, marker edge and line = severity; bars = 95% CIs.
    """
    _require(table, ["corruption_accuracy", "test_accuracy"], "clean_vs_corrupted")
    clean = summarise(table, "test_accuracy")
    corrupted = summarise(table, "corruption_accuracy", by=("alpha", "severity"))
    merged = corrupted.merge(clean, on="alpha", suffixes=("", "_clean"))
    severities = sorted(merged["severity"].dropna().unique())
    shades = colormaps["viridis"](np.linspace(0.0, 0.85, max(len(severities), 1)))
    colors = alpha_colors(_alphas(table))
    ax = _new_axes(ax, (6.6, 4.6))
    for severity, shade in zip(severities, shades, strict=True):
        part = merged[merged["severity"] == severity].sort_values("alpha")
        ax.errorbar(
            part["mean_clean"],
            part["mean"],
            xerr=[
                part["mean_clean"] - part["ci_low_clean"],
                part["ci_high_clean"] - part["mean_clean"],
            ],
            yerr=[part["mean"] - part["ci_low"], part["ci_high"] - part["mean"]],
            fmt="none",
            ecolor=shade,
            elinewidth=0.8,
            alpha=0.6,
            zorder=1,
        )
        ax.plot(
            part["mean_clean"],
            part["mean"],
            color=shade,
            lw=1.2,
            zorder=2,
            label=f"severity {int(severity)}",
        )
        ax.scatter(
            part["mean_clean"],
            part["mean"],
            s=42,
            zorder=3,
            linewidths=1.6,
            c=[colors[a] for a in part["alpha"]],
            edgecolors=[shade] * len(part),
        )
    ax.set_xlabel("clean test accuracy")
    ax.set_ylabel("corrupted test accuracy\n(mean over corruptions)")
    _percent_axis(ax.xaxis)
    _percent_axis(ax.yaxis)
    ax.set_title("Clean vs corrupted accuracy")

    # One legend with two sections: constrained layout makes room for a single outside legend
    # but not for a second one added with add_artist.
    def header(text: str) -> Line2D:
        return Line2D([], [], ls="none", label=text)

    severity_handles, _ = ax.get_legend_handles_labels()
    alpha_handles = [
        Line2D([], [], ls="none", marker="o", ms=6, mfc=colors[a], mec="0.5", label=_fmt_alpha(a))
        for a in _alphas(merged)
    ]
    handles = [
        header("severity (line, edge)"),
        *severity_handles,
        header(" "),
        header("α (fill)"),
        *alpha_handles,
    ]
    legend = ax.legend(
        handles=handles,
        frameon=False,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        handlelength=1.6,
    )
    for text in legend.get_texts():
        if text.get_text() in ("severity (line, edge)", "α (fill)"):
            text.set_fontweight("bold")
    return ax


def _lines_by_alpha(ax: Axes, summary: pd.DataFrame, x: str) -> dict[float, tuple]:
    """One mean-with-CI line per alpha of `summary` against its column `x`; returns the colours."""
    alphas = _alphas(summary)
    colors = alpha_colors(alphas)
    for alpha in alphas:
        part = summary[summary["alpha"] == alpha]
        _line_ci(ax, part[x], part, colors[alpha], _fmt_alpha(alpha))
    return colors


@_styled
def plot_fgsm_accuracy(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """FGSM accuracy against eps, one line per alpha (Fig. 2a, A7a)."""
    _require(table, ["fgsm_accuracy"], "fgsm_accuracy")
    summary = summarise(table, "fgsm_accuracy", by=("alpha", "eps"))
    ax = _new_axes(ax, (6.4, 4.2))
    colors = _lines_by_alpha(ax, summary, "eps")
    eps_values = sorted(summary["eps"].dropna().unique())
    if len(eps_values) <= 8:
        ax.set_xticks(eps_values)
        ax.set_xticklabels([_fmt_eps(e) if e > 0 else "0" for e in eps_values])
    ax.set_xlabel("FGSM ε  (L∞ radius, pixel scale [0, 1])")
    ax.set_ylabel("test accuracy under attack")
    _percent_axis(ax.yaxis)
    ax.set_title("FGSM")
    _outside_legend(ax, colors)
    return ax


@_styled
def plot_pgd_accuracy(
    table: pd.DataFrame, ax: Axes | None = None, eps: float | None = None
) -> Axes:
    """PGD accuracy against the number of steps, one line per alpha (Fig. 2b, A7b).

    `eps`: the attack radius to show; by default the largest present (the paper shows one).
    """
    _require(table, ["pgd_accuracy"], "pgd_accuracy")
    rows = _rows(table, "pgd_accuracy")
    radii = sorted(rows["eps"].dropna().unique())
    eps = float(radii[-1]) if eps is None and radii else eps
    where = None if eps is None else {"eps": lambda s: np.isclose(s.astype(float), eps)}
    summary = summarise(table, "pgd_accuracy", by=("alpha", "steps"), where=where)
    ax = _new_axes(ax, (6.4, 4.2))
    colors = _lines_by_alpha(ax, summary, "steps")
    ax.set_xlabel("PGD steps")
    ax.set_ylabel("test accuracy under attack")
    _percent_axis(ax.yaxis)
    ax.set_title("PGD" + ("" if eps is None else f", ε = {_fmt_eps(eps)}"))
    _outside_legend(ax, colors)
    return ax


@_styled
def plot_jacobian_norm(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Input-output Jacobian norm against alpha, one line (Fig. 2c, A7c)."""
    _require(table, ["jacobian_norm"], "jacobian_norm")
    ax = _new_axes(ax, (5.6, 4.0))
    _metric_vs_alpha(ax, table, "jacobian_norm", _alphas(table))
    ax.set_ylabel(
        "Jacobian norm "
        + r"$\|\partial\,\mathrm{logits} / \partial\,\mathrm{input}\|_F$"
        + "\n(mean over test samples)"
    )
    ax.set_title("Input-output Jacobian")
    return ax


@_styled
def plot_dimensionality(table: pd.DataFrame, ax: Sequence[Axes] | None = None) -> Figure:
    """Dimensionality against layer, one line per alpha (Fig. 3, A8).

    Panels for the metrics present: clean activations, clean - corrupted, clean - adversarial
    (each averaged over the perturbation settings in the table). Layers in table order.
    """
    panels = {
        "dimensionality": "Clean activations",
        "dimensionality_corruption": "Change under corruption",
        "dimensionality_adversarial": "Change under adversarial attack",
    }
    have = _require(table, list(panels), "dimensionality", any_of=True)
    layers = _appearance(table.loc[table["metric"].isin(have), "layer"])
    panel_width = min(6.0, max(4.2, 0.22 * len(layers) + 2.0))
    axes = _new_panels(ax, len(have), (panel_width * len(have) + 1.0, 4.8), sharey=True)
    colors = alpha_colors(_alphas(table))
    position = {layer: i for i, layer in enumerate(layers)}
    for axis, metric in zip(axes, have, strict=True):
        summary = summarise(table, metric, by=("alpha", "layer"))
        for alpha in _alphas(summary):
            part = summary[summary["alpha"] == alpha]
            _line_ci(
                axis,
                part["layer"].map(position).to_numpy(dtype=float),
                part,
                colors[alpha],
                _fmt_alpha(alpha),
                marker=".",
            )
        axis.set_xticks(range(len(layers)))
        axis.set_xticklabels(layers, rotation=90, fontsize=7)
        axis.set_xlabel("layer (input → output)")
        axis.set_title(panels[metric])
    axes[0].set_ylabel(DIMENSIONALITY_LABEL)
    fig = axes[0].figure
    _alpha_legend(fig, {a: colors[a] for a in _alphas(table)}, loc="outside right center")
    return fig


@_styled
def plot_gradient_variability(table: pd.DataFrame, ax: Sequence[Axes] | None = None) -> Figure:
    """Input-unit gradient variability across samples and across units against alpha.

    One panel per metric present, one line each: per trial the mean over layers, then the mean
    and bootstrapped 95% CI over seeds.
    """
    panels = {
        "gradient_variability_samples": "across samples",
        "gradient_variability_units": "across units",
    }
    have = _require(table, list(panels), "gradient_variability", any_of=True)
    axes = _new_panels(ax, len(have), (5.2 * len(have), 4.0))
    alphas = _alphas(table)
    for axis, metric in zip(axes, have, strict=True):
        _metric_vs_alpha(axis, table, metric, alphas)
        axis.set_title(f"Input-unit gradient variability {panels[metric]}")
        axis.set_ylabel("variability (a.u., mean over layers)")
    return axes[0].figure


@_styled
def plot_silent_units(table: pd.DataFrame, ax: Sequence[Axes] | None = None) -> Figure:
    """Silent units against alpha, beside mu_SI and mu_SI over live units.

    Left: the fraction of units silent on the split (mean over layers, and the largest layer's
    fraction, which the collapse criterion reads; dotted: COLLAPSE_SILENT_FRACTION). Right: mu_SI
    (silent units score 0, the papers' definition) and, where the table has it, mu_SI over live
    units only. Lines: mean over seeds, bands: bootstrapped 95% CI, as in the other figures.
    """
    _require(table, ["silent_fraction", "selectivity"], "silent_units")
    left, right = _new_panels(ax, 2, (10.4, 4.0))
    for axis in (left, right):
        # Before drawing: limits autoscaled on a linear axis would stay when it turns symlog.
        _alpha_axis(axis, _alphas(table))
    summary = summarise(table, "silent_fraction")
    _line_ci(left, summary["alpha"], summary, "0.25", "mean over layers")
    rows = _rows(table, "silent_fraction")
    if rows["layer"].notna().any():
        per_layer = _per_trial(table, "silent_fraction", ("layer",), {"layer": lambda s: s.notna()})
        worst = per_layer.groupby(list(TRIAL), sort=False)["value"].max().reset_index()
        summary = summarise(_derived(worst, "silent_fraction_max"), "silent_fraction_max")
        _line_ci(left, summary["alpha"], summary, "tab:red", "largest layer", marker="s")
    left.axhline(COLLAPSE_SILENT_FRACTION, color="tab:red", ls=":", lw=1.0)
    left.set_ylim(-0.02, 1.02)
    left.set_ylabel("fraction of units silent")
    _percent_axis(left.yaxis)
    left.set_title("Silent units")
    left.legend(frameon=False)
    summary = summarise(table, "selectivity")
    _line_ci(right, summary["alpha"], summary, "0.25", r"$\mu_{SI}$ (silent units = 0)")
    if "selectivity_live" in set(table["metric"]):
        summary = summarise(table, "selectivity_live")
        _line_ci(right, summary["alpha"], summary, "tab:blue", r"$\mu_{SI}$ over live units", "s")
    right.set_ylabel("network selectivity (0–1)")
    right.set_title("Selectivity")
    right.legend(frameon=False)
    return left.figure


def _seeds(table: pd.DataFrame, metric: str, by: Sequence[str] = ("alpha",)) -> str:
    return _n_seeds_text(summarise(table, metric, by=by, n_resamples=1))


def _settings(table: pd.DataFrame, metric: str, columns: Sequence[str]) -> str:
    """The perturbation settings a metric was averaged over, in words."""
    rows = table[table["metric"] == metric]
    if rows.empty:
        return ""
    combos = rows[list(columns)].drop_duplicates()
    words = []
    for _, combo in combos.iterrows():
        parts = []
        for column in columns:
            value = combo[column]
            if pd.isna(value):
                continue
            if column == "eps":
                parts.append(f"ε = {_fmt_eps(float(value))}")
            elif column == "steps":
                parts.append(f"{int(value)} steps")
            elif column == "severity":
                parts.append(f"severity {int(value)}")
            else:
                parts.append(str(value).replace("_", " "))
        words.append(", ".join(parts))
    return "; ".join(words[:4]) + (f"; … ({len(words)} settings in all)" if len(words) > 4 else "")


def _caption_dimensionality(table: pd.DataFrame) -> str:
    present = set(table["metric"])
    text = "Fraction of PCA dimensions needed for 90% of the variance, per layer; lines: mean per α, bands: bootstrapped 95% CI over seeds."
    if "dimensionality_corruption" in present:
        text += f" Corruption change averaged over: {_settings(table, 'dimensionality_corruption', ('corruption', 'severity'))}."
    if "dimensionality_adversarial" in present:
        text += f" Adversarial change averaged over: {_settings(table, 'dimensionality_adversarial', ('eps', 'steps'))}."
    missing = [
        m
        for m in ("dimensionality", "dimensionality_corruption", "dimensionality_adversarial")
        if m not in present
    ]
    if missing:
        text += f" Panels left out (metric absent): {', '.join(missing)}."
    return f"{text} {_near_cap_text(table)} Paper: Fig. 3, A8."


def _caption_pgd(table: pd.DataFrame) -> str:
    radii = sorted(_rows(table, "pgd_accuracy")["eps"].dropna().unique())
    binding = f" {_pgd_binding_text(table, float(radii[-1]))}" if radii else ""
    return (
        "Accuracy under PGD against the number of steps per α, at the largest ε in the table; bands: "
        f"bootstrapped 95% CI ({_seeds(table, 'pgd_accuracy')}).{binding} Paper: Fig. 2b, A7b."
    )


@dataclass(frozen=True)
class FigureSpec:
    """A report figure: its file name, the function drawing it and a caption built from the table."""

    name: str
    title: str
    draw: Callable[[pd.DataFrame], Axes | Figure]
    caption: Callable[[pd.DataFrame], str]
    settings: tuple[str, ...] = ()  # metrics whose split, sample count, step size decide the figure


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "accuracy_vs_selectivity",
        "Accuracy against selectivity",
        plot_accuracy_vs_selectivity,
        lambda t: (
            "Clean test accuracy against network selectivity; large points: mean per α with bootstrapped "
            f"95% CIs on both axes ({_seeds(t, 'test_accuracy')}), small dots: single trials; collapsed "
            "trials are shown too (see Collapsed trials). Paper: Fig. A1."
        ),
        ("selectivity", "test_accuracy"),
    ),
    FigureSpec(
        "silent_units",
        "Silent units and selectivity against α",
        plot_silent_units,
        lambda t: (
            "Left: fraction of units that never fire on the split, mean over layers and the largest "
            f"layer's (dotted: the collapse threshold, {COLLAPSE_SILENT_FRACTION:.0%}). Right: μ_SI as the "
            "papers define it (a silent unit scores 0) and, where recorded, μ_SI over live units only: "
            "where units fall silent, μ_SI falls by the formula, and the live-unit line shows how "
            "selective the units that still fire are. Bands: "
            f"bootstrapped 95% CI over seeds ({_seeds(t, 'silent_fraction')})."
        ),
        ("silent_fraction", "selectivity", "selectivity_live"),
    ),
    FigureSpec(
        "corruption_vs_alpha",
        "Corruption robustness against α",
        plot_corruption_vs_alpha,
        lambda t: (
            "Mean accuracy over all corruptions and severities, and the same divided by clean accuracy, "
            "against α; bands: bootstrapped 95% CI over seeds"
            f" ({_seeds(t, _require(t, ['corruption_accuracy_mean', 'corruption_accuracy_relative'], 'corruption_vs_alpha', any_of=True)[0])})."
            " Paper: Fig. 1a-b, A4a-b."
        ),
        ("corruption_accuracy_mean", "corruption_accuracy_relative"),
    ),
    FigureSpec(
        "normalised_accuracy_per_corruption",
        "Normalised accuracy per corruption",
        plot_normalised_accuracy_per_corruption,
        lambda t: (
            "Per-corruption accuracy divided by the same trial's clean accuracy, mean over severities, for "
            f"the lowest, zero and highest α; bars: bootstrapped 95% CI ({_seeds(t, 'corruption_accuracy')}). "
            "Paper: Fig. 1c, A4c (the paper's Fig. 1c uses severity 5 only)."
        ),
        ("corruption_accuracy", "test_accuracy"),
    ),
    FigureSpec(
        "accuracy_per_corruption",
        "Accuracy per corruption",
        plot_accuracy_per_corruption,
        lambda t: (
            "Accuracy per corruption, mean over severities, for every α; bars: bootstrapped 95% CI "
            f"({_seeds(t, 'corruption_accuracy')}). Paper: Fig. A2, A5."
        ),
        ("corruption_accuracy",),
    ),
    FigureSpec(
        "clean_vs_corrupted",
        "Clean against corrupted accuracy",
        plot_clean_vs_corrupted,
        lambda t: (
            "Clean against corrupted accuracy (mean over corruptions) per severity; each line joins the α "
            f"values at one severity; bars: bootstrapped 95% CIs ({_seeds(t, 'corruption_accuracy')}). Paper: Fig. A3, A6."
        ),
        ("corruption_accuracy", "test_accuracy"),
    ),
    FigureSpec(
        "fgsm_accuracy",
        "FGSM",
        plot_fgsm_accuracy,
        lambda t: (
            f"Accuracy under FGSM against ε per α; bands: bootstrapped 95% CI ({_seeds(t, 'fgsm_accuracy')}). "
            "Paper: Fig. 2a, A7a."
        ),
        ("fgsm_accuracy",),
    ),
    FigureSpec("pgd_accuracy", "PGD", plot_pgd_accuracy, _caption_pgd, ("pgd_accuracy",)),
    FigureSpec(
        "jacobian_norm",
        "Input-output Jacobian",
        plot_jacobian_norm,
        lambda t: (
            "Frobenius norm of the input-output Jacobian (mean over test samples) against α; band: "
            f"bootstrapped 95% CI ({_seeds(t, 'jacobian_norm')}). Paper: Fig. 2c, A7c."
        ),
        ("jacobian_norm",),
    ),
    FigureSpec(
        "dimensionality",
        "Dimensionality per layer",
        plot_dimensionality,
        _caption_dimensionality,
        _DIMENSIONALITY_METRICS,
    ),
    FigureSpec(
        "gradient_variability",
        "Input-unit gradient variability",
        plot_gradient_variability,
        lambda t: (
            "Input-unit gradient variability across samples and across units (mean over layers per trial) "
            "against α; bands: bootstrapped 95% CI over seeds"
            f" ({_seeds(t, _require(t, ['gradient_variability_samples', 'gradient_variability_units'], 'gradient_variability', any_of=True)[0])})."
            " Paper: arXiv:2010.07693 (abstract)."
        ),
        ("gradient_variability_samples", "gradient_variability_units"),
    ),
)


# --------------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------------


def _early_layers(table: pd.DataFrame, metric: str) -> list:
    """The first half (rounded up) of a layer-wise metric's layers, in network order.

    The paper sees the dimensionality effects in early layers (up to layer 9 of 17 in ResNet18,
    all of ResNet20); the first half is a fixed, model-agnostic reading of "early".
    """
    layers = _appearance(_rows(table, metric)["layer"])
    return layers[: max(1, math.ceil(len(layers) / 2))]


def _trial_metric(
    metric: str, where: Mapping[str, object] | None = None, early: bool = False
) -> Callable:
    """Builder of one value per trial for `metric` (mean over its other keys)."""

    def build(table: pd.DataFrame) -> pd.DataFrame:
        condition = dict(where or {})
        if early:
            condition["layer"] = _early_layers(table, metric)
        return _per_trial(table, metric, (), condition)

    return build


def _adversarial_minus_corruption(table: pd.DataFrame) -> pd.DataFrame:
    """Per trial: early-layer dimensionality of adversarial minus corruption changes."""
    adversarial = _trial_metric("dimensionality_adversarial", early=True)(table)
    corruption = _trial_metric("dimensionality_corruption", early=True)(table)
    merged = adversarial.merge(corruption, on=list(TRIAL), suffixes=("_adv", "_corr"))
    merged["value"] = merged["value_adv"] - merged["value_corr"]
    return merged[[*TRIAL, "value"]]


def _corruption_minus_clean(table: pd.DataFrame) -> pd.DataFrame:
    """Per trial: dimensionality of the corruption change minus that of clean activations.

    Paired per layer within the trial (same layer, same images), then the mean over layers.
    """
    corruption = _per_trial(table, "dimensionality_corruption", ("layer",))
    clean = _per_trial(table, "dimensionality", ("layer",))
    merged = corruption.merge(clean, on=[*TRIAL, "layer"], suffixes=("_corr", "_clean"))
    if merged.empty:
        raise ValueError("dimensionality and dimensionality_corruption share no layer and trial")
    merged["value"] = merged["value_corr"] - merged["value_clean"]
    return merged.groupby(list(TRIAL), sort=False)["value"].mean().reset_index()


def _relative_to_clean(
    metric: str, where: Mapping[str, object], clean_where: Mapping[str, object]
) -> Callable[[pd.DataFrame], tuple[pd.DataFrame, str]]:
    """Builder of one value per trial of accuracy under attack divided by clean accuracy.

    Uses the table's `<metric>_relative` rows (clean accuracy on the same images) when present;
    otherwise divides by the attack's own unperturbed rows (`clean_where`: eps 0 or 0 steps, the
    same images), else by test_accuracy (the attack may have used a subset of the test set).
    Returns (per-trial values, the words saying which).
    """

    def build(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
        relative = f"{metric}_relative"
        if relative in set(table["metric"]):
            return _per_trial(table, relative, (), where), f"{relative} from the table"
        attacked = _per_trial(table, metric, (), where)
        try:
            clean, words = _per_trial(table, metric, (), clean_where), "its unperturbed rows"
        except ValueError:
            clean, words = _per_trial(table, "test_accuracy"), "test_accuracy"
        merged = attacked.merge(clean, on=list(TRIAL), suffixes=("", "_clean"))
        with np.errstate(divide="ignore", invalid="ignore"):
            merged["value"] = merged["value"] / merged["value_clean"]
        return merged[[*TRIAL, "value"]], f"{metric} / {words}, computed here"

    return build


def _nonnegative_alpha(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["alpha"] >= 0]


@dataclass(frozen=True)
class ClaimSpec:
    """One finding of the papers and how it is tested.

    kind "correlation": Spearman rho across trials between x and the per-trial value; x is what
    the claim is about: "alpha" for the regularizer's effect (the manipulated variable, ordinal per
    trial), "selectivity" for claims stated about selectivity (measured network mu_SI per trial).
    kind "paired": the per-trial value is itself a within-trial difference; its mean across trials
    is tested against 0. `expected` is the sign the paper implies.
    frame "selectivity": collapsed trials (`find_collapsed`) are left out, since a collapsed
    network's mu_SI is 0 by the formula rather than by selectivity; frame "regularizer": every
    trial counts, collapse being one of the regularizer's effects.
    `check`: a second per-trial value (with words saying where it came from) whose verdict must
    agree with the first for the claim to be supported or contradicted (accuracy under attack
    relative to clean, so that clean accuracy alone cannot carry an adversarial claim).
    `metrics`: the metrics whose sample counts (samples column) decide whether a verdict can stand.
    """

    key: str
    text: str
    source: str
    y_label: str
    value: Callable[[pd.DataFrame], pd.DataFrame]
    expected: int
    x: str = "selectivity"
    kind: str = "correlation"
    subset: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    sign_words: tuple[str, str] = ("positive", "negative")  # paired claims: what each sign means
    frame: str = "selectivity"
    check: Callable[[pd.DataFrame], tuple[pd.DataFrame, str]] | None = None
    check_label: str = ""
    metrics: tuple[str, ...] = ()


_POSITIVE = {"eps": lambda s: s > 0}
_PGD_POSITIVE = {"eps": lambda s: s > 0, "steps": lambda s: s > 0}

CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        "regularizer_sign",
        "The regularizer moves network selectivity in the sign of α "
        "(negative α lowers it, positive α raises it).",
        "ICML-W 2020: §2, Fig. A1; arXiv:2003.01262",
        "network selectivity",
        _trial_metric("selectivity"),
        +1,
        x="alpha",
        metrics=("selectivity",),
    ),
    ClaimSpec(
        "corruption_relative",
        "Less selective networks keep a larger share of their clean accuracy under "
        "corruption (corrupted / clean accuracy).",
        "ICML-W 2020: Fig. 1b, A4b",
        "corrupted/clean accuracy",
        _trial_metric("corruption_accuracy_relative"),
        -1,
        metrics=("corruption_accuracy_relative", "corruption_accuracy"),
    ),
    ClaimSpec(
        "corruption_mean",
        "Less selective networks are more accurate on corrupted images (mean over "
        "corruptions and severities).",
        "ICML-W 2020: Fig. 1a, A4a",
        "corrupted accuracy",
        _trial_metric("corruption_accuracy_mean"),
        -1,
        metrics=("corruption_accuracy_mean", "corruption_accuracy"),
    ),
    ClaimSpec(
        "fgsm",
        "Less selective networks are less accurate under FGSM attack (mean over ε > 0).",
        "ICML-W 2020: Fig. 2a, A7a",
        "FGSM accuracy",
        _trial_metric("fgsm_accuracy", _POSITIVE),
        +1,
        check=_relative_to_clean("fgsm_accuracy", _POSITIVE, {"eps": 0.0}),
        check_label="FGSM accuracy / clean accuracy",
        metrics=("fgsm_accuracy",),
    ),
    ClaimSpec(
        "pgd",
        "Less selective networks are less accurate under PGD attack (mean over ε > 0, steps > 0).",
        "ICML-W 2020: Fig. 2b, A7b",
        "PGD accuracy",
        _trial_metric("pgd_accuracy", _PGD_POSITIVE),
        +1,
        check=_relative_to_clean("pgd_accuracy", _PGD_POSITIVE, {"steps": 0}),
        check_label="PGD accuracy / clean accuracy",
        metrics=("pgd_accuracy",),
    ),
    ClaimSpec(
        "jacobian",
        "Less selective networks have a larger input-output Jacobian norm (are less stable); "
        "the paper finds the norm inversely related to selectivity.",
        "ICML-W 2020: §3.2, Fig. 2c, A7c",
        "Jacobian norm",
        _trial_metric("jacobian_norm"),
        -1,
        metrics=("jacobian_norm",),
    ),
    ClaimSpec(
        "dimensionality_clean",
        "Less selective networks have higher-dimensional clean representations in "
        "early layers (first half of the layers).",
        "ICML-W 2020: Fig. 3a, A8a; arXiv:2010.07693",
        "early-layer dimensionality",
        _trial_metric("dimensionality", early=True),
        -1,
        metrics=("dimensionality",),
    ),
    ClaimSpec(
        "dimensionality_corruption",
        "In less selective networks, corruption changes early-layer activations "
        "in more dimensions.",
        "ICML-W 2020: Fig. 3b, A8b",
        "early-layer dim. of corruption change",
        _trial_metric("dimensionality_corruption", early=True),
        -1,
        metrics=("dimensionality_corruption",),
    ),
    ClaimSpec(
        "dimensionality_adversarial",
        "In less selective networks, adversarial attacks change early-layer "
        "activations in more dimensions.",
        "ICML-W 2020: Fig. 3c, A8c",
        "early-layer dim. of adversarial change",
        _trial_metric("dimensionality_adversarial", early=True),
        -1,
        metrics=("dimensionality_adversarial",),
    ),
    ClaimSpec(
        "corruption_vs_clean",
        "Corruption-induced changes of activations are higher-dimensional than the clean "
        "representations (per layer, paired within trial).",
        "ICML-W 2020: §3.3, Fig. 3a vs 3b",
        "corruption-change − clean dimensionality",
        _corruption_minus_clean,
        +1,
        kind="paired",
        sign_words=("corruption change higher", "clean higher"),
        metrics=("dimensionality", "dimensionality_corruption"),
    ),
    ClaimSpec(
        "adversarial_vs_corruption",
        "Adversarial changes of early-layer activations are higher-dimensional "
        "than corruption changes.",
        "ICML-W 2020: §3.3, Fig. 3b vs 3c; arXiv:2010.07693",
        "adversarial − corruption dimensionality",
        _adversarial_minus_corruption,
        +1,
        kind="paired",
        sign_words=("adversarial higher", "corruption higher"),
        metrics=("dimensionality_adversarial", "dimensionality_corruption"),
    ),
    ClaimSpec(
        "gradient_samples",
        "More selective networks have input-unit gradients that vary more across samples.",
        "arXiv:2010.07693 abstract",
        "gradient variability (samples)",
        _trial_metric("gradient_variability_samples"),
        +1,
        metrics=("gradient_variability_samples",),
    ),
    ClaimSpec(
        "gradient_units",
        "More selective networks have input-unit gradients that vary more across units.",
        "arXiv:2010.07693 abstract",
        "gradient variability (units)",
        _trial_metric("gradient_variability_units"),
        +1,
        metrics=("gradient_variability_units",),
    ),
    ClaimSpec(
        "accuracy_positive_alpha",
        "Raising selectivity with the regularizer (α ≥ 0 only) lowers clean test accuracy.",
        "arXiv:2003.01262 abstract",
        "clean test accuracy",
        _trial_metric("test_accuracy"),
        -1,
        x="alpha",
        subset=_nonnegative_alpha,
        frame="regularizer",
        metrics=("test_accuracy",),
    ),
)


def _resample_indices(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, n) trial indices drawn with replacement.

    Every trial is an independent training run with its own seed, so trials are the resampling
    unit. Resampling within each alpha instead (keeping the design fixed) was tried and rejected:
    with 3 seeds per alpha it shrinks the bootstrap variance by 2/3 and gave ~12% false
    "supported/contradicted" verdicts on pure noise, against ~5% for plain resampling.
    """
    return rng.integers(0, n, size=(n_resamples, n))


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of each row pair of (B, n) arrays; NaN where a row is constant."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(axis=1) / denominator, np.nan)


def _percentile_ci(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates; NaN when most replicates are undefined."""
    finite = samples[np.isfinite(samples)]
    if finite.size < 0.5 * samples.size or finite.size == 0:
        return (math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return (float(low), float(high))


def _contrast(
    trials: pd.DataFrame, confidence: float, n_resamples: int, seed: int
) -> tuple[float, float, float]:
    """Mean y at the most negative alpha minus mean y at alpha = 0, with a bootstrapped CI."""
    lowest = trials["alpha"].min()
    if not lowest < 0 or not (trials["alpha"] == 0).any():
        return (math.nan, math.nan, math.nan)
    a = trials.loc[trials["alpha"] == lowest, "y"].to_numpy(dtype=float)
    b = trials.loc[trials["alpha"] == 0, "y"].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    replicates = a[rng.integers(0, a.size, size=(n_resamples, a.size))].mean(axis=1) - b[
        rng.integers(0, b.size, size=(n_resamples, b.size))
    ].mean(axis=1)
    low, high = _percentile_ci(replicates, confidence)
    return (float(a.mean() - b.mean()), low, high)


def _verdict(estimate: float, low: float, high: float, expected: int) -> tuple[str, str]:
    """supported / contradicted when the CI excludes 0, inconclusive when it does not."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "inconclusive", "no usable bootstrap interval"
    if low > 0 or high < 0:
        found = 1 if low > 0 else -1
        if found == expected:
            return "supported", "95% CI excludes 0 in the paper's direction"
        return "contradicted", "95% CI excludes 0 in the direction opposite to the paper"
    return "inconclusive", "95% CI includes 0"


_X_WORDS = {
    "alpha": "α (per trial, ordinal)",
    "selectivity": "μ_SI (measured per trial, clean test set)",
    "paired": "none: within-trial difference",
}


def _statistic(
    trials: pd.DataFrame, kind: str, confidence: float, n_resamples: int, seed: int
) -> tuple[float, float, float]:
    """The claim's statistic on trials (columns x, y) and its bootstrapped CI over trials."""
    index = _resample_indices(len(trials), n_resamples, np.random.default_rng(seed))
    y = trials["y"].to_numpy(dtype=float)
    if kind == "paired":
        estimate = float(y.mean())
        replicates = y[index].mean(axis=1)
    else:
        x = trials["x"].to_numpy(dtype=float)
        estimate = float(_spearman_rows(x[None, :], y[None, :])[0])
        replicates = _spearman_rows(x[index], y[index])
    return (estimate, *_percentile_ci(replicates, confidence))


def _fewest_samples(table: pd.DataFrame, metrics: Sequence[str]) -> float:
    """The smallest recorded sample count of `metrics`' rows; NaN when none is recorded."""
    counts = table.loc[table["metric"].isin(list(metrics)), "samples"].dropna()
    return float(counts.min()) if not counts.empty else math.nan


def _claim_row(
    spec: ClaimSpec,
    table: pd.DataFrame,
    x_trials: pd.DataFrame | None,
    x_problem: str,
    collapse: Collapse,
    confidence: float,
    n_resamples: int,
    seed: int,
    min_trials: int,
) -> dict:
    """Test one claim; absent metrics give the verdict "not tested" with the reason."""
    x_kind = "paired" if spec.kind == "paired" else spec.x
    if x_kind == "selectivity" and x_trials is None:
        x_kind = "alpha"  # the stand-in when the table has no selectivity, said in the note
    x_name = {"alpha": "α", "selectivity": "μ_SI", "paired": ""}[x_kind]
    if spec.kind == "paired":
        statistic = f"mean per-trial difference: {spec.y_label}"
    else:
        statistic = f"Spearman ρ({x_name}, {spec.y_label}) across trials"
    expected = "> 0" if spec.expected > 0 else "< 0"
    if spec.check is not None:
        rule = f"{spec.y_label} and {spec.check_label} must agree"
    else:
        rule = "the 95% CI against 0"
    row = {
        "claim": spec.text,
        "key": spec.key,
        "source": spec.source,
        "x": _X_WORDS[x_kind],
        "statistic": statistic,
        "expected": expected,
        "estimate": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "check_statistic": "",
        "check_estimate": math.nan,
        "check_ci_low": math.nan,
        "check_ci_high": math.nan,
        "verdict_rule": rule,
        "trials_used": "all trials" if spec.frame == "regularizer" else "collapsed trials left out",
        "n_trials": 0,
        "n_alphas": 0,
        "seeds_per_alpha": "",
        "n_collapsed_left_out": 0,
        "direction": "",
        "contrast": math.nan,
        "contrast_low": math.nan,
        "contrast_high": math.nan,
        "verdict": "not tested",
        "note": "",
    }
    try:
        y = spec.value(table)
    except ValueError as error:
        row["note"] = str(error)
        return row
    if x_kind == "selectivity":
        trials = y.merge(x_trials.rename(columns={"value": "x"}), on=list(TRIAL))
    else:
        # Paired claims do not use x; alpha keeps the contrast and the counts per alpha.
        trials = y.assign(x=y["alpha"])
    trials = trials.rename(columns={"value": "y"}).dropna(subset=["x", "y"])
    notes = []
    if spec.kind == "correlation" and spec.x == "selectivity" and x_kind == "alpha":
        notes.append(f"network selectivity unusable ({x_problem}): α used in its place")
    if spec.frame == "selectivity":
        collapsed = collapse.keys()
        left_out = [k in collapsed for k in zip(trials["alpha"], trials["seed"], strict=True)]
        trials = trials[~np.asarray(left_out, dtype=bool)]
        row["n_collapsed_left_out"] = int(sum(left_out))
        if sum(left_out):
            notes.append(f"{sum(left_out)} collapsed trial(s) left out")
        if not collapse.applied:
            notes.append(
                "collapse not checked (see Collapsed trials): a collapsed trial may decide this"
            )
        elif collapse.unchecked:
            notes.append("collapse only partly checked (see Collapsed trials)")
    if spec.subset is not None:
        trials = spec.subset(trials)
    trials = trials.sort_values(list(TRIAL)).reset_index(drop=True)
    counts = trials.groupby("alpha").size()
    row.update(n_trials=len(trials), n_alphas=int(counts.size))
    row["seeds_per_alpha"] = _range_text(counts)
    if len(trials) == 0:
        row["note"] = "; ".join([*notes, "no trials with this metric"])
        return row
    estimate, low, high = _statistic(trials, spec.kind, confidence, n_resamples, seed)
    row.update(estimate=estimate, ci_low=low, ci_high=high)
    if spec.kind == "paired":
        words = spec.sign_words[0] if estimate > 0 else spec.sign_words[1]
        row["direction"] = f"{spec.y_label} = {estimate:+.3g} ({words if estimate else 'equal'})"
    elif np.isfinite(estimate) and estimate != 0:
        rises = "rises" if estimate > 0 else "falls"
        row["direction"] = f"{spec.y_label} {rises} as {x_name} rises"
    else:
        row["direction"] = "no monotone relation"
    contrast = _contrast(trials, confidence, n_resamples, seed)
    row.update(contrast=contrast[0], contrast_low=contrast[1], contrast_high=contrast[2])

    verdict, reason = _verdict(estimate, low, high, spec.expected)
    if spec.check is not None:
        row["check_statistic"] = statistic.replace(spec.y_label, spec.check_label)
        try:
            check_y, source = spec.check(table)
        except ValueError as error:
            verdict = "inconclusive"
            reason = (
                f"{spec.check_label} unavailable ({error}); {spec.y_label} alone can follow "
                "clean accuracy"
            )
        else:
            paired = trials[[*TRIAL, "x"]].merge(check_y.rename(columns={"value": "y"}))
            paired = paired.dropna(subset=["y"]).reset_index(drop=True)
            checked = _statistic(paired, spec.kind, confidence, n_resamples, seed)
            row.update(check_estimate=checked[0], check_ci_low=checked[1], check_ci_high=checked[2])
            check_verdict, _ = _verdict(*checked, spec.expected)
            if len(paired) < len(trials):
                verdict = "inconclusive"
                reason = f"{spec.check_label} missing for {len(trials) - len(paired)} trial(s)"
            elif check_verdict != verdict:
                reason = (
                    f"{spec.y_label}: {verdict}, {spec.check_label} ({source}): {check_verdict}; "
                    "they must agree"
                )
                verdict = "inconclusive"
            else:
                reason = f"{reason}, for {spec.y_label} and {spec.check_label} ({source}) alike"
    fewest = _fewest_samples(table, spec.metrics)
    too_few = len(trials) < min_trials or (spec.kind == "correlation" and counts.size < MIN_ALPHAS)
    if too_few:
        verdict = "inconclusive"
        reason = (
            f"too few trials (n = {len(trials)}, {counts.size} α values; need ≥ {min_trials} trials"
            + (f" and ≥ {MIN_ALPHAS} α values)" if spec.kind == "correlation" else ")")
        )
    elif fewest < MIN_SAMPLES:
        verdict = "inconclusive"
        reason = (
            f"too few samples (measured on {int(fewest)} images per trial; need ≥ {MIN_SAMPLES})"
        )
    row["verdict"] = verdict
    row["note"] = "; ".join([*notes, reason])
    return row


def evaluate_claims(
    results: pd.DataFrame | str | os.PathLike,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    min_trials: int = MIN_TRIALS,
    collapse: Collapse | None = None,
) -> pd.DataFrame:
    """Test each finding of the papers on a results table.

    Correlation claims: Spearman rho across trials between the claim's x and the per-trial metric:
    alpha for claims about the regularizer's effect, the per-trial network selectivity mu_SI for
    claims stated about selectivity (column `x` says which). Paired claims: the mean across trials
    of a per-trial difference. Collapsed trials (`find_collapsed`, or `collapse` when given) are
    left out of every claim but those about the regularizer's effect on accuracy (columns
    `trials_used`, `n_collapsed_left_out`). Adversarial claims are also tested on accuracy relative
    to clean (`check_*` columns) and need both verdicts to agree (`verdict_rule`).
    CIs: percentile bootstrap over trials (each trial is one training run with its own seed),
    `n_resamples` resamples. Verdict: "supported" when the CI excludes 0 on the paper's side,
    "contradicted" when it excludes 0 on the other side, "inconclusive" when it includes 0, the
    checks disagree, or the table has too few trials (< `min_trials`, or < 3 alpha values for a
    correlation) or samples (< MIN_SAMPLES images per trial where recorded), and "not tested"
    when a metric is absent. No correction for testing several claims is applied.
    `contrast` is the mean at the most negative alpha minus the mean at alpha = 0, in the metric's
    units, with its own bootstrapped CI (context only; it does not decide the verdict).
    """
    table = load_results(results)
    if collapse is None:
        collapse = find_collapsed(table)
    x_trials, x_problem = None, ""
    try:
        x_trials = _per_trial(table, "selectivity")
    except ValueError as error:
        x_problem = str(error)
    rows = [
        _claim_row(
            spec, table, x_trials, x_problem, collapse, confidence, n_resamples, seed, min_trials
        )
        for spec in CLAIMS
    ]
    return pd.DataFrame.from_records(rows)


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}g}"


def _claims_html(claims: pd.DataFrame) -> str:
    tested = claims[claims["verdict"] != "not tested"]
    untested = claims[claims["verdict"] == "not tested"]
    lines = [
        "<table class='claims'><thead><tr><th>finding (paper)</th><th>x</th><th>statistic</th>"
        "<th>expected</th><th>estimate [95% CI]</th><th>direction found</th>"
        "<th>Δ lowest α − (α = 0) [95% CI]</th><th>n</th><th>verdict</th></tr></thead><tbody>"
    ]
    for _, r in tested.iterrows():
        n = f"{r['n_trials']} trials ({r['n_alphas']} α × {r['seeds_per_alpha']} seeds); {r['trials_used']}"
        if r["n_collapsed_left_out"]:
            n += f": {r['n_collapsed_left_out']}"
        estimate = f"{_fmt(r['estimate'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
        if r["check_statistic"]:
            estimate += (
                f"<br>{html.escape(r['check_statistic'])}: {_fmt(r['check_estimate'])} "
                f"[{_fmt(r['check_ci_low'])}, {_fmt(r['check_ci_high'])}]"
            )
        lines.append(
            "<tr>"
            f"<td>{html.escape(r['claim'])}<br><span class='src'>{html.escape(r['source'])}</span></td>"
            f"<td>{html.escape(r['x'])}</td>"
            f"<td>{html.escape(r['statistic'])}</td><td>{html.escape(r['expected'])}</td>"
            f"<td>{estimate}</td>"
            f"<td>{html.escape(r['direction'])}</td>"
            f"<td>{_fmt(r['contrast'])} [{_fmt(r['contrast_low'])}, {_fmt(r['contrast_high'])}]</td>"
            f"<td>{html.escape(n)}</td>"
            f"<td class='{r['verdict']}'>{r['verdict']}<br><span class='src'>rule: {html.escape(r['verdict_rule'])}; "
            f"{html.escape(r['note'])}</span></td>"
            "</tr>"
        )
    lines.append("</tbody></table>")
    if not untested.empty:
        lines.append("<p>Not tested (metric absent from the table):</p><ul>")
        lines.extend(
            f"<li>{html.escape(r['claim'])} — {html.escape(r['note'])}</li>"
            for _, r in untested.iterrows()
        )
        lines.append("</ul>")
    return "\n".join(lines)


def _collapse_html(collapse: Collapse) -> str:
    """The collapsed trials, the criteria, and what could not be checked."""
    lines = [
        f"<h2>Collapsed trials ({len(collapse.trials)} of {collapse.n_trials})</h2>",
        "<p>A trial is collapsed when its clean test accuracy is at most "
        f"{COLLAPSE_ACCURACY_MARGIN:g} of the way from chance (1 / classes) to 1, or when more than "
        f"{COLLAPSE_SILENT_FRACTION:.0%} of some layer's units are silent on the test set. Silent units "
        "score SI 0 by the formula, so such trials carry μ_SI and accuracy down together; they are "
        "left out of the claims above except the regularizer's effect on accuracy, and kept in the "
        "figures.</p>",
    ]
    if len(collapse.trials):
        lines.append("<table><thead><tr><th>α</th><th>seed</th><th>why</th></tr></thead><tbody>")
        lines.extend(
            f"<tr><td>{_fmt_alpha(r.alpha)}</td><td>{html.escape(str(r.seed))}</td>"
            f"<td>{html.escape(r.reason)}</td></tr>"
            for r in collapse.trials.itertuples(index=False)
        )
        lines.append("</tbody></table>")
    else:
        lines.append("<p>No trial met a criterion that could be checked.</p>")
    if collapse.unchecked:
        lines.append("<p><b>Not checked:</b></p><ul>")
        lines.extend(f"<li>{html.escape(u)}</li>" for u in collapse.unchecked)
        lines.append(
            "</ul><p>Collapsed trials the table cannot reveal may remain in the claims; results "
            "written by this version of evaluate carry chance_accuracy and silent_fraction.</p>"
        )
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1250px; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #f4f4f4; }
.src { color: #777; font-size: 0.9em; }
td.supported { background: #e3f4e1; } td.contradicted { background: #fbe1e1; }
td.inconclusive { background: #f3f3f3; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; max-width: 1000px; }
"""


def write_report(
    results: pd.DataFrame | str | os.PathLike,
    out_dir: str | os.PathLike,
    failed: pd.DataFrame | str | os.PathLike | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Path:
    """Write out_dir/report.html, out_dir/figures/<name>.png, summary.csv and claims.csv.

    report.html is one self-contained file (PNG figures embedded as base64): the claims table
    first, then the figures with captions, then the figures skipped because their metrics are
    absent and, when `failed` is given (a table or its parquet/csv path), the failed trials.
    The collapsed trials (`find_collapsed`) follow the claims table, with the criterion each met
    and what the table did not allow to check. Figure captions name the split, sample count and
    PGD step size behind them, whether PGD's ε-ball binds, and dimensionality values near their
    sample-count cap. Every file is written under a temporary name and renamed. Returns the path
    of report.html.
    """
    table = load_results(results)
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    if failed is not None and not isinstance(failed, pd.DataFrame):
        path = Path(failed)
        failed = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)

    summary = summary_table(table, n_resamples=n_resamples, seed=seed)
    write_bytes(out / "summary.csv", summary.to_csv(index=False).encode())
    collapse = find_collapsed(table)
    claims = evaluate_claims(table, n_resamples=n_resamples, seed=seed, collapse=collapse)
    write_bytes(out / "claims.csv", claims.to_csv(index=False).encode())

    figures, skipped = [], []
    for spec in FIGURES:
        try:
            drawn = spec.draw(table)
            caption = spec.caption(table)
            if spec.settings:
                caption += " " + _settings_text(table, spec.settings)
        except ValueError as error:
            skipped.append((spec.name, str(error)))
            continue
        figure = drawn if isinstance(drawn, Figure) else drawn.figure
        data = _png(figure)
        write_bytes(out / "figures" / f"{spec.name}.png", data)
        figures.append((spec, caption, base64.b64encode(data).decode("ascii")))

    alphas = _alphas(table)
    trials = table[list(TRIAL)].drop_duplicates()
    per_alpha = trials.groupby("alpha").size()
    present = _appearance(table["metric"])
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Class selectivity and robustness: sweep report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Class selectivity and robustness: sweep report</h1>",
        f"<p>{len(trials)} trials: {len(alphas)} α values ({html.escape(', '.join(_fmt_alpha(a) for a in alphas))}), "
        f"{_range_text(per_alpha)} seeds per α; "
        f"{len(table)} result rows; metrics: {html.escape(', '.join(present))}.</p>",
        "<h2>Claims of the papers, tested on this table</h2>",
        "<p>Each claim is tested against the variable it is about (column x): claims about the "
        "regularizer's effect use Spearman's ρ across trials between α (the manipulated variable) and "
        "the metric; claims stated about selectivity use the trial's measured network selectivity μ_SI "
        "(clean test set). The dimensionality comparisons use the mean per-trial difference. "
        "Collapsed trials (below) are left out of every claim except the regularizer's effect on "
        "accuracy. Adversarial claims are tested on accuracy under attack and on the same divided by "
        "clean accuracy, and are supported or contradicted only when both agree, so that the "
        f"regularizer's cost in clean accuracy cannot decide them. 95% CIs: percentile bootstrap ({n_resamples} "
        "resamples) over trials, each trial being one training run with its own seed. <b>supported</b>: CI excludes 0 on "
        "the paper's side; <b>contradicted</b>: CI excludes 0 on the other side; <b>inconclusive</b>: CI "
        f"includes 0, the two adversarial tests disagree, or fewer than {MIN_TRIALS} trials, {MIN_ALPHAS} α "
        f"values or {MIN_SAMPLES} images per trial. Early layers = first half "
        "of the layers. Claims are tested separately, without a multiple-comparison correction; "
        "correlations across trials show association, and the regularizer supplies the intervention.</p>",
        _claims_html(claims),
        _collapse_html(collapse),
        "<p class='src'>Sources: "
        + "; ".join(f"{html.escape(k)} = {html.escape(v)}" for k, v in SOURCES.items())
        + ".</p>",
        "<h2>Figures</h2>",
    ]
    for spec, caption, encoded in figures:
        parts.append(
            f"<figure id='{spec.name}'><img alt='{html.escape(spec.title)}' src='data:image/png;base64,{encoded}'>"
            f"<figcaption><b>{html.escape(spec.title)}</b> ({spec.name}.png). {html.escape(caption)}</figcaption></figure>"
        )
    parts.append("<h2>Skipped figures</h2>")
    if skipped:
        parts.append("<ul>")
        parts.extend(
            f"<li><b>{html.escape(n)}</b>: {html.escape(reason)}</li>" for n, reason in skipped
        )
        parts.append("</ul>")
    else:
        parts.append("<p>None: every figure had its metrics.</p>")
    if failed is not None:
        parts.append(f"<h2>Failed trials ({len(failed)})</h2>")
        parts.append(
            failed.to_html(index=False, escape=True, na_rep="") if len(failed) else "<p>None.</p>"
        )
    parts.append(
        "<p class='src'>Files next to this report: summary.csv (mean, ci_low, ci_high, n per α and metric keys), "
        "claims.csv, figures/*.png.</p></body></html>"
    )
    report = out / "report.html"
    write_bytes(report, "\n".join(parts).encode("utf-8"))
    return report

"""Table handling and statistics: load a results table, pick a metric's rows, reduce them to one
value per trial, and summarise over trials with percentile-bootstrap confidence intervals.

`summarise` is the one place that aggregates over seeds: values are first averaged within a trial
over the keys not grouped by, then the mean and a bootstrapped 95% CI are taken over the trials of
each group. Every bootstrap of the report (a mean over trials here; the correlations, paired
differences and contrasts of the claims) goes through `percentile_bootstrap`, which resamples with
`scipy.stats.bootstrap`.

Reads tables only: pandas, numpy and scipy, never torch or matplotlib.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from selectivity import schema
from selectivity.catalog import format_eps
from selectivity.report.catalog import METHOD_KEYS
from selectivity.schema import COLUMNS as SCHEMA_COLUMNS
from selectivity.schema import KEYS, SETTINGS, TRIAL

__all__ = [
    "ATTACKED",
    "COLUMNS",
    "CONFIDENCE",
    "N_RESAMPLES",
    "PGD_ATTACKED",
    "PGD_STRONGEST",
    "alpha_text",
    "appearance_order",
    "as_metric",
    "bootstrap_ci",
    "bootstrap_test",
    "eps_text",
    "load_results",
    "metric_rows",
    "per_trial",
    "percentile_bootstrap",
    "range_text",
    "require_metrics",
    "spearman",
    "summarise",
    "summary_table",
    "trial_columns",
]

COLUMNS = (*TRIAL, "metric", *KEYS, *SETTINGS, "value")
N_RESAMPLES = 2000
CONFIDENCE = 0.95
# Row filters (`where` of `metric_rows`, `per_trial`, `summarise`) that claims and figures share:
# rows under attack, and PGD's rows under attack with at least one step.
ATTACKED = {"eps": lambda s: s > 0}
PGD_ATTACKED = {"eps": lambda s: s > 0, "steps": lambda s: s > 0}
# PGD's strongest attack: the most steps run (among the rows under attack), so that weak and
# converged attacks are not averaged together.
PGD_STRONGEST = {"eps": lambda s: s > 0, "steps": lambda s: s == s[s.fillna(0) > 0].max()}


def trial_columns(table: pd.DataFrame) -> list[str]:
    """The columns that name a trial: alpha, seed and every swept key, in the table's order
    (`selectivity.schema.trial_columns`: every column that is not a schema or status column, so
    per-trial frames of trial columns, `value` and perhaps `layer` answer the same)."""
    return list(schema.trial_columns(table))


def load_results(results: pd.DataFrame | str | os.PathLike) -> pd.DataFrame:
    """A results table as a DataFrame in the schema of docs/results.md.

    `results` is a DataFrame or the path of a .parquet or .csv file. Key columns missing from the
    input (and the settings columns split, samples, step_size, absent from older tables) are added
    as nulls and `value` becomes float; `alpha`, `seed`, `metric` and `value` are required.
    Method strengths (`METHOD_KEYS`) present become float, a missing one 0 (the key's default).
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
    for column in METHOD_KEYS:
        if column in table.columns:
            table[column] = pd.to_numeric(table[column], errors="coerce").astype(float).fillna(0.0)
    table["value"] = pd.to_numeric(table["value"], errors="coerce").astype(float)
    return table


def _check_bootstrap(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")


def require_metrics(
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


def percentile_bootstrap(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    paired: bool = False,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval (low, high) of `statistic` on `samples`.

    samples: 1-d arrays of observations, each non-empty. paired=True resamples their positions
    together (columns of one set of observations, such as x and y of the same trials);
    paired=False resamples each sample on its own. statistic(*arrays, axis=-1) reduces the last
    axis (the observations) of arrays of shape (..., n). Deterministic for a given `seed`.

    A replicate on which the statistic is undefined (NaN, such as a rank correlation of a resample
    holding one x value) is left out; when such replicates are most of them, the interval is
    (NaN, NaN): the bootstrap cannot say anything then.
    """
    low, high, _ = bootstrap_test(samples, statistic, paired, confidence, n_resamples, seed)
    return (low, high)


def bootstrap_test(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    paired: bool = False,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """`percentile_bootstrap`'s interval and the two-sided bootstrap p-value of "statistic = 0":
    (low, high, p), from the same replicates.

    p = 2 x the smaller share of defined replicates on either side of 0 (at most 1): the
    percentile interval at level 1 - p just reaches 0, so the interval at level 1 - a excludes 0
    where p < a (up to the replicates' resolution, 2 / n_resamples). NaN with the interval.
    """
    _check_bootstrap(confidence, n_resamples)
    data = [np.asarray(sample, dtype=float).ravel() for sample in samples]
    if any(sample.size == 0 for sample in data):
        raise ValueError("percentile_bootstrap needs at least one observation in every sample")
    # scipy needs two observations per sample. Every resample of a single observation is that
    # observation, and so is every resample of it twice: doubling leaves the distribution as is.
    data = [np.repeat(sample, 2) if sample.size == 1 else sample for sample in data]
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        # scipy warns (in the words of the BCa method) when its interval is NaN; NaN replicates
        # are dealt with below.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        # scipy also returns the replicates' standard deviation, unused here, which one replicate
        # (n_resamples=1, as when a caption only counts seeds) leaves undefined.
        warnings.filterwarnings("ignore", "Degrees of freedom <= 0", RuntimeWarning)
        result = stats.bootstrap(
            data,
            statistic,
            n_resamples=n_resamples,
            vectorized=True,
            paired=paired,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    replicates = np.asarray(result.bootstrap_distribution, dtype=float)
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0 or finite.size < 0.5 * replicates.size:
        return (math.nan, math.nan, math.nan)
    p = float(min(1.0, 2.0 * min(np.mean(finite <= 0), np.mean(finite >= 0))))
    if finite.size == replicates.size:
        interval = result.confidence_interval
        return (float(interval.low), float(interval.high), p)
    # scipy's quantiles propagate NaN, so the interval over the defined replicates is taken here.
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return (float(low), float(high), p)


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
    _check_bootstrap(confidence, n_resamples)
    x = np.asarray(
        list(values) if not isinstance(values, np.ndarray) else values, dtype=float
    ).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return (mean, mean, mean)
    low, high = percentile_bootstrap(
        (x,), np.mean, confidence=confidence, n_resamples=n_resamples, seed=seed
    )
    return (mean, low, high)


def spearman(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho of x and y (equal shapes) along `axis`; NaN where x or y is constant.

    Ties get average ranks. Vectorised, so that `percentile_bootstrap` evaluates every resample
    in one call: x, y of shape (n_resamples, n) give n_resamples correlations.
    """
    rx = stats.rankdata(x, axis=axis)
    ry = stats.rankdata(y, axis=axis)
    rx -= rx.mean(axis=axis, keepdims=True)
    ry -= ry.mean(axis=axis, keepdims=True)
    denominator = np.sqrt((rx**2).sum(axis=axis) * (ry**2).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(axis=axis) / denominator, np.nan)


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


def metric_rows(
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


def appearance_order(series: pd.Series) -> list:
    """Distinct non-null values in order of first appearance (layers in network order)."""
    return list(dict.fromkeys(series.dropna().tolist()))


def per_trial(
    table: pd.DataFrame,
    metric: str,
    by: Sequence[str] = (),
    where: Mapping[str, object] | None = None,
) -> pd.DataFrame:
    """One value per trial (`trial_columns`) and `by` group: the mean over the keys not in `by`.

    `selectivity` has a network-level row (layer null) besides its per-layer rows; when `layer`
    is neither grouped by nor filtered, the network-level rows are used rather than a mixture.
    """
    rows = metric_rows(table, metric, where)
    if "layer" not in by and "layer" not in (where or {}):
        network = rows["layer"].isna()
        if network.any() and not network.all():
            rows = rows[network]
    keys = list(dict.fromkeys([*trial_columns(table), *by]))
    return rows.groupby(keys, dropna=False, sort=False)["value"].mean().reset_index()


def _sort(frame: pd.DataFrame, columns: Sequence[str], orders: Mapping[str, list]) -> pd.DataFrame:
    """Sort numerically, except text keys, which keep their order of appearance in the table."""
    if not columns:
        return frame.reset_index(drop=True)

    def key(series: pd.Series) -> pd.Series:
        name = str(series.name)
        if name in orders:
            position = {value: i for i, value in enumerate(orders[name])}
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
    per = per_trial(table, metric, by, where)
    rows = metric_rows(table, metric)
    orders = {c: appearance_order(rows[c]) for c in by if c in ("layer", "corruption")}
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

    Also grouped by the sweep's other trial columns but seed (method strengths), which follow
    alpha. Columns: metric, alpha, [other trial columns], layer, corruption, severity, eps, steps, split, samples, step_size,
    mean, ci_low, ci_high, n. Network-level selectivity appears with a null layer next to the
    per-layer rows. Settings are grouped by, so numbers measured differently never share a mean.
    """
    table = load_results(table)
    groups = [c for c in trial_columns(table) if c != "seed"]
    groups = ["alpha", *(c for c in groups if c != "alpha")]
    parts = []
    for metric in appearance_order(table["metric"]):
        rows = metric_rows(table, metric)
        keys = [c for c in (*KEYS, *SETTINGS) if rows[c].notna().any()]
        part = summarise(table, metric, by=(*groups, *keys), n_resamples=n_resamples, seed=seed)
        part.insert(0, "metric", metric)
        parts.append(part)
    columns = ["metric", *groups, *KEYS, *SETTINGS, "mean", "ci_low", "ci_high", "n"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat([p.reindex(columns=columns) for p in parts], ignore_index=True)


def as_metric(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per-trial values computed here, put back into the results schema so `summarise` reads them."""
    out = frame.copy()
    out["metric"] = metric
    for column in (*KEYS, *SETTINGS):
        if column not in out.columns:
            out[column] = np.nan
    return out[[*trial_columns(frame), *SCHEMA_COLUMNS]]


# How keys and counts are written in captions, notes and the HTML.


def alpha_text(alpha: float) -> str:
    return f"{alpha:g}"


def eps_text(eps: float) -> str:
    """A radius as the report writes it: `catalog.format_eps` to 3 significant digits."""
    return format_eps(eps, digits=3)


def range_text(counts: pd.Series) -> str:
    """ "3" or "2–3": the spread of a count over groups."""
    if counts.empty:
        return "0"
    low, high = int(counts.min()), int(counts.max())
    return f"{low}" if low == high else f"{low}–{high}"

"""The accuracy story in the paper's terms: equivalence, one-sided differences and mu_SI factors.

Pure functions on 1-d arrays of per-trial values (one value per seed), numpy only. A "treated"
array holds one alpha's trials, a "control" array the alpha = 0 trials. Non-finite values are
dropped (pairs with one, when paired).

Resampling is the percentile bootstrap over trials: paired=False resamples each array on its own
(any seeds); paired=True resamples positions of both arrays together, for arrays aligned by seed
(the same seed gives both networks their data split and initialisation, so pairing removes that
shared variation). `n_resamples` replicates from `numpy.random.default_rng(seed)`: deterministic.
With fewer than two values in an array the bootstrap has nothing to resample: the interval and
p-values are NaN and no test passes. With a handful of seeds the percentile bootstrap is
narrower than a t interval: read its verdicts as descriptive.

Equivalence (two one-sided tests, TOST): "lowering selectivity costs no accuracy" is the claim
that the difference d = mean(treated) - mean(control) lies within (-margin, +margin). Each null
(d <= -margin; d >= +margin) gets a bootstrap p-value, the share of replicates on its side of
the margin, (count + 1) / (n + 1); the claim holds when both are below `alpha`, which is the
same as the (1 - 2 alpha) percentile interval of d lying inside the margins (the interval is
reported). The margin is the caller's (issue 21 suggests 1 percentage point: 0.01 accuracy).

One-sided difference: "raising selectivity hurts accuracy" is d < 0 (alternative="less"),
p = share of replicates >= 0, with the (1 - 2 alpha) interval, the one a one-sided test reads.

Factor: the paper's "selectivity fell by a factor of 2.5" is control / treated mean mu_SI; rose
by a factor is treated / control. `selectivity_factor` returns ratio = mean(treated) /
mean(control) with its percentile interval; `Factor.describe` words it either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "N_RESAMPLES",
    "Difference",
    "Equivalence",
    "Factor",
    "difference_test",
    "equivalence_test",
    "mean_difference",
    "selectivity_factor",
]

N_RESAMPLES = 2000

ArrayLike = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Equivalence:
    """A TOST verdict. difference: mean(treated) - mean(control); low, high: its (1 - 2 alpha)
    percentile interval; p_lower, p_upper: p-values of d <= -margin and d >= +margin; p_value:
    the larger; equivalent: p_value < alpha. n_treated, n_control: finite values used."""

    difference: float
    low: float
    high: float
    margin: float
    alpha: float
    p_lower: float
    p_upper: float
    p_value: float
    equivalent: bool
    n_treated: int
    n_control: int


@dataclass(frozen=True)
class Difference:
    """A one-sided (or interval) reading of d = mean(treated) - mean(control): low, high its
    interval; p_value of the null opposite `alternative` (NaN for "two-sided" estimates)."""

    difference: float
    low: float
    high: float
    p_value: float
    alternative: str
    n_treated: int
    n_control: int


@dataclass(frozen=True)
class Factor:
    """ratio = mean(treated) / mean(control) with its percentile interval (low, high)."""

    ratio: float
    low: float
    high: float
    n_treated: int
    n_control: int

    def describe(self) -> str:
        """'fell by a factor of 2.5 (95% CI 2.1-3.0)' or 'rose by ...'; 'undefined' for NaN."""
        if not math.isfinite(self.ratio) or self.ratio <= 0:
            return "undefined"
        if self.ratio < 1:
            word, value, low, high = "fell", 1 / self.ratio, 1 / self.high, 1 / self.low
        else:
            word, value, low, high = "rose", self.ratio, self.low, self.high
        if math.isfinite(low) and math.isfinite(high):
            return f"{word} by a factor of {value:.2g} (CI {low:.2g}-{high:.2g})"
        return f"{word} by a factor of {value:.2g}"


def _arrays(treated: ArrayLike, control: ArrayLike, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(treated, dtype=float).ravel()
    b = np.asarray(control, dtype=float).ravel()
    if paired:
        if a.size != b.size:
            raise ValueError(
                f"paired arrays must be aligned by seed: {a.size} treated vs {b.size} control"
            )
        keep = np.isfinite(a) & np.isfinite(b)
        return a[keep], b[keep]
    return a[np.isfinite(a)], b[np.isfinite(b)]


def _replicates(
    a: np.ndarray,
    b: np.ndarray,
    statistic: str,
    paired: bool,
    n_resamples: int,
    seed: int,
) -> np.ndarray:
    """Bootstrap replicates of mean(a) - mean(b) ("difference") or mean(a) / mean(b)."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    rng = np.random.default_rng(seed)
    if paired:
        rows = rng.integers(0, a.size, size=(n_resamples, a.size))
        mean_a, mean_b = a[rows].mean(axis=1), b[rows].mean(axis=1)
    else:
        mean_a = a[rng.integers(0, a.size, size=(n_resamples, a.size))].mean(axis=1)
        mean_b = b[rng.integers(0, b.size, size=(n_resamples, b.size))].mean(axis=1)
    if statistic == "difference":
        return mean_a - mean_b
    with np.errstate(divide="ignore", invalid="ignore"):
        return mean_a / mean_b


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")


def _tail(count: int, n: int) -> float:
    return (count + 1) / (n + 1)


def _differences(
    treated: ArrayLike, control: ArrayLike, paired: bool, n_resamples: int, seed: int
) -> tuple[float, np.ndarray | None, int, int]:
    """mean(treated) - mean(control), its bootstrap replicates (None with fewer than two values
    on a side) and the two group sizes: what every test of the difference starts from."""
    a, b = _arrays(treated, control, paired)
    difference = float(a.mean() - b.mean()) if a.size and b.size else math.nan
    if a.size < 2 or b.size < 2:
        return difference, None, a.size, b.size
    return difference, _replicates(a, b, "difference", paired, n_resamples, seed), a.size, b.size


def equivalence_test(
    treated: ArrayLike,
    control: ArrayLike,
    margin: float,
    alpha: float = 0.05,
    paired: bool = False,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Equivalence:
    """TOST of |mean(treated) - mean(control)| < margin by the percentile bootstrap (module
    docstring). margin > 0, in the values' units (accuracy fraction: 0.01 = 1 point)."""
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be positive, got {margin}")
    _check_alpha(alpha)
    difference, d, n_a, n_b = _differences(treated, control, paired, n_resamples, seed)
    if d is None:
        nan = math.nan
        return Equivalence(difference, nan, nan, margin, alpha, nan, nan, nan, False, n_a, n_b)
    p_lower = _tail(int((d <= -margin).sum()), d.size)
    p_upper = _tail(int((d >= margin).sum()), d.size)
    low, high = np.quantile(d, [alpha, 1 - alpha])
    p_value = max(p_lower, p_upper)
    return Equivalence(
        difference,
        float(low),
        float(high),
        margin,
        alpha,
        p_lower,
        p_upper,
        p_value,
        p_value < alpha,
        n_a,
        n_b,
    )


def difference_test(
    treated: ArrayLike,
    control: ArrayLike,
    alternative: Literal["less", "greater"] = "less",
    alpha: float = 0.05,
    paired: bool = False,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Difference:
    """One-sided bootstrap test of mean(treated) - mean(control) < 0 ("less") or > 0
    ("greater"): p = share of replicates on the null's side of 0 ((count + 1) / (n + 1)),
    interval (1 - 2 alpha) percentile."""
    if alternative not in ("less", "greater"):
        raise ValueError(f"alternative must be 'less' or 'greater', got {alternative!r}")
    _check_alpha(alpha)
    difference, d, n_a, n_b = _differences(treated, control, paired, n_resamples, seed)
    if d is None:
        return Difference(difference, math.nan, math.nan, math.nan, alternative, n_a, n_b)
    against = (d >= 0) if alternative == "less" else (d <= 0)
    low, high = np.quantile(d, [alpha, 1 - alpha])
    return Difference(
        difference,
        float(low),
        float(high),
        _tail(int(against.sum()), d.size),
        alternative,
        n_a,
        n_b,
    )


def mean_difference(
    treated: ArrayLike,
    control: ArrayLike,
    confidence: float = 0.95,
    paired: bool = False,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Difference:
    """mean(treated) - mean(control) with its two-sided percentile interval (p_value NaN):
    the accuracy change of the report's table."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    difference, d, n_a, n_b = _differences(treated, control, paired, n_resamples, seed)
    if d is None:
        return Difference(difference, math.nan, math.nan, math.nan, "two-sided", n_a, n_b)
    tail = (1 - confidence) / 2
    low, high = np.quantile(d, [tail, 1 - tail])
    return Difference(difference, float(low), float(high), math.nan, "two-sided", n_a, n_b)


def selectivity_factor(
    treated: ArrayLike,
    control: ArrayLike,
    confidence: float = 0.95,
    paired: bool = False,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Factor:
    """mean(treated) / mean(control) (mu_SI at an alpha over mu_SI at alpha = 0) with its
    percentile interval. NaN when the control mean is 0; replicates with a zero control mean
    are left out of the interval (NaN interval when they are most of them)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    a, b = _arrays(treated, control, paired)
    if not a.size or not b.size or b.mean() == 0:
        return Factor(math.nan, math.nan, math.nan, a.size, b.size)
    ratio = float(a.mean() / b.mean())
    if a.size < 2 or b.size < 2:
        return Factor(ratio, math.nan, math.nan, a.size, b.size)
    r = _replicates(a, b, "ratio", paired, n_resamples, seed)
    finite = r[np.isfinite(r)]
    if finite.size < 0.5 * r.size:
        return Factor(ratio, math.nan, math.nan, a.size, b.size)
    tail = (1 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return Factor(ratio, float(low), float(high), a.size, b.size)

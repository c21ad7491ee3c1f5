"""Gradient-masking flags: signs, read from one network's result table, that its gradient
attacks (FGSM, PGD) are fooled rather than defeated.

    flags(table) -> list[Flag]     each flag's value (1 flagged, 0 not, NaN not testable) and reason
    flag_rows(table) -> rows        the same as `masking_<flag>` rows of the results schema

A pure function of numbers already in the table (pandas only, no torch), so the report computes
the same flags and reasons from a sweep's results. The checks follow Carlini et al. 2019 ("On
evaluating adversarial robustness") and AutoAttack's own checks; thresholds are module constants:

- autoattack_below_pgd: AutoAttack accuracy more than AUTOATTACK_MARGIN below the evaluation's
  PGD on the same images at the same eps. Not testable when PGD cannot reach its eps
  (steps x step size < eps, as with the paper's step of 1e-4): it is then weaker by construction.
- square_stronger: the black-box Square attack lowers accuracy by more than SQUARE_MARGIN below
  every white-box attack before it (AutoAttack's own check, with its threshold).
- large_eps: at eps >= LARGE_EPS the mid-grey image lies in every image's ball, so a working
  attack leaves at most the largest class's share; flagged when AutoAttack's accuracy, or
  APGD-CE's alone, stays above LARGE_EPS_CHANCE_FACTOR x chance accuracy.
- fgsm_stronger: FGSM accuracy more than FGSM_MARGIN below PGD's (most steps) at PGD's eps;
  not testable when PGD cannot reach its eps.
- flat_loss: PGD's mean cross-entropy (over the images correct before the attack) after its
  last step exceeds the clean value by less than LOSS_RISE nats. Not testable when PGD cannot
  reach its eps (its loss then rises little by construction).
- zero_gradient: more than ZERO_GRADIENT_SHARE of the images correct before the attack have an
  all-zero (or non-finite) input gradient of PGD's cross-entropy: masking that acts image by
  image, which the averages above miss.
- stuck: more than STUCK_SHARE of those images end PGD's longest run with their loss and logit
  margin unmoved. Not testable when PGD cannot reach its eps.
- randomized: the model's outputs changed between two passes on the same images (eval mode)
  and the evaluation asked for `standard`: the `rand` version (EOT) ran instead. Not flagged
  when `rand` was asked for.
- autoattack_zero_gradient: AutoAttack's own check: its DLR attacks started from points with a
  zero gradient (any, as the package warns).
- autoattack_randomized: AutoAttack's own check found the model randomised (any eps).

The package's third check, Square beating the white-box attacks, is `square_stronger` with the
package's threshold (the package cannot make it here: it runs one attack at a time).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from selectivity.catalog import pixel_text
from selectivity.schema import metric_rows

__all__ = [
    "AUTOATTACK_MARGIN",
    "FGSM_MARGIN",
    "FLAGS",
    "LARGE_EPS",
    "LARGE_EPS_CHANCE_FACTOR",
    "LOSS_RISE",
    "SQUARE_MARGIN",
    "STUCK_SHARE",
    "ZERO_GRADIENT_SHARE",
    "Flag",
    "flag_lines",
    "flag_rows",
    "flags",
]

AUTOATTACK_MARGIN = 0.05  # accuracy, fraction
SQUARE_MARGIN = 0.002  # accuracy, fraction: pyautoattack's check_square_sr
LARGE_EPS = 0.5  # [0, 1] pixel units: the mid-grey image is within reach of every image
LARGE_EPS_CHANCE_FACTOR = 2.0  # x chance accuracy (1 / classes)
FGSM_MARGIN = 0.05  # accuracy, fraction
LOSS_RISE = 0.01  # nats
# Shares of the images correct before PGD. A normally trained digits net shows 0 for both
# (a zero float32 gradient needs a margin above ~100 nats); log_softmax(50 z) on it shows
# ~0.96; a few saturated images of a confident net stay under a tenth.
ZERO_GRADIENT_SHARE = 0.1
STUCK_SHARE = 0.1
_REACH_RTOL = 1e-6  # float slack in steps * step size >= eps


@dataclass(frozen=True)
class Flag:
    """One check on one network: value 1.0 flagged, 0.0 not, NaN not testable; why, in words."""

    name: str
    value: float
    reason: str

    @property
    def metric(self) -> str:
        return f"masking_{self.name}"


def _at(rows: pd.DataFrame, eps: float) -> pd.DataFrame:
    return rows[(rows["eps"].astype(float) - eps).abs() <= 1e-9]


def _last_step(rows: pd.DataFrame) -> pd.Series | None:
    """The row with the most steps, or None when there is none with steps > 0."""
    rows = rows[rows["steps"].astype("Float64") > 0]
    if not len(rows):
        return None
    return rows.iloc[int(np.argmax(rows["steps"].astype(float).to_numpy()))]


def _reach(row: pd.Series) -> str | None:
    """None when PGD-`steps` of `step_size` can reach eps; otherwise why it cannot."""
    steps, step, eps = float(row["steps"]), float(row["step_size"]), float(row["eps"])
    if steps * step >= eps * (1 - _REACH_RTOL):
        return None
    return (
        f"PGD cannot reach its eps {pixel_text(eps, 4)}: {int(steps)} steps x step {step:.3g} = "
        f"{steps * step:.3g}, so it is weaker by construction"
    )


def _below_pgd(
    table: pd.DataFrame, pgd_metric: str, no_pgd: str, metric: str, name: str, margin: float
) -> tuple[float, str]:
    """Flag when `metric` (attack `name`) at PGD's eps is more than `margin` below the accuracy
    of PGD's most steps (`pgd_metric`): the stronger attack's gradients were not the problem."""
    pgd = _last_step(metric_rows(table, pgd_metric))
    if pgd is None:
        return math.nan, no_pgd
    eps = float(pgd["eps"])
    other = _at(metric_rows(table, metric), eps)
    if not len(other):
        return math.nan, f"no {name} accuracy at PGD's eps {pixel_text(eps, 4)}"
    unreachable = _reach(pgd)
    if unreachable:
        return math.nan, unreachable
    value, slow = float(other["value"].iloc[0]), float(pgd["value"])
    samples = "" if pd.isna(pgd["samples"]) else f" (N={int(pgd['samples'])})"
    words = (
        f"{name} {value:.3f} vs PGD-{int(pgd['steps'])} {slow:.3f} at eps {pixel_text(eps, 4)}"
        f"{samples}: {slow - value:+.3f} for PGD, threshold {margin}"
    )
    return float(slow - value > margin), words


def _autoattack_below_pgd(table: pd.DataFrame) -> tuple[float, str]:
    return _below_pgd(
        table,
        "masking_pgd_accuracy",
        "no PGD run on the AutoAttack images (autoattack part off or absent)",
        "autoattack_accuracy",
        "AutoAttack",
        AUTOATTACK_MARGIN,
    )


def _square_stronger(table: pd.DataFrame) -> tuple[float, str]:
    square = metric_rows(table, "autoattack_accuracy_square")
    if not len(square):
        return math.nan, "Square did not run (not in autoattack_attacks, or autoattack off)"
    white = table[
        table["metric"].str.startswith("autoattack_accuracy_")
        & (table["metric"] != "autoattack_accuracy_square")
    ]
    worst, words = -math.inf, ""
    for _, row in square.iterrows():
        others = _at(white, float(row["eps"]))
        if not len(others):
            continue
        drop = float(others["value"].min()) - float(row["value"])
        if drop > worst:
            worst = drop
            words = (
                f"Square lowered accuracy by {drop:.3f} below the white-box attacks at eps "
                f"{pixel_text(float(row['eps']), 4)}, threshold {SQUARE_MARGIN}"
            )
    if worst == -math.inf:
        return math.nan, "Square ran without white-box attacks to compare with"
    return float(worst > SQUARE_MARGIN), words


def _large_eps(table: pd.DataFrame) -> tuple[float, str]:
    ensemble = metric_rows(table, "autoattack_accuracy")
    chance = metric_rows(table, "chance_accuracy")
    if not len(ensemble) or float(ensemble["eps"].max()) < LARGE_EPS:
        return math.nan, f"no AutoAttack point at eps >= {LARGE_EPS} (set masking_eps)"
    if not len(chance):
        return math.nan, "no chance_accuracy row to compare with"
    eps = float(ensemble["eps"].max())
    limit = LARGE_EPS_CHANCE_FACTOR * float(chance["value"].iloc[0])
    found = {"AutoAttack": float(_at(ensemble, eps)["value"].iloc[0])}
    apgd = _at(metric_rows(table, "autoattack_accuracy_apgd-ce"), eps)
    if len(apgd):
        found["APGD-CE"] = float(apgd["value"].iloc[0])
    high = {name: value for name, value in found.items() if value > limit}
    listed = ", ".join(f"{name} {value:.3f}" for name, value in found.items())
    words = f"at eps {pixel_text(eps, 4)}: {listed}; threshold {LARGE_EPS_CHANCE_FACTOR:g} x chance = {limit:.3f}"
    return float(bool(high)), words


def _fgsm_stronger(table: pd.DataFrame) -> tuple[float, str]:
    return _below_pgd(
        table,
        "pgd_accuracy",
        "no PGD accuracy with steps > 0",
        "fgsm_accuracy",
        "FGSM",
        FGSM_MARGIN,
    )


def _flat_loss(table: pd.DataFrame) -> tuple[float, str]:
    losses = metric_rows(table, "masking_pgd_loss")
    last = _last_step(losses)
    clean = losses[losses["steps"].astype("Float64") == 0]
    if last is None or not len(clean):
        return (
            math.nan,
            "no PGD loss at 0 steps and after > 0 steps (autoattack part off or absent)",
        )
    start, end = float(clean["value"].iloc[0]), float(last["value"])
    if math.isnan(start) or math.isnan(end):
        return math.nan, "no image classified correctly before PGD: no loss to follow"
    if float(last["eps"]) == 0:
        return math.nan, "PGD's eps is 0: the loss cannot move"
    unreachable = _reach(last)
    if unreachable:
        return math.nan, unreachable
    words = (
        f"PGD loss {start:.4g} -> {end:.4g} nats after {int(last['steps'])} steps "
        f"(rise {end - start:+.3g}, threshold {LOSS_RISE})"
    )
    return float(end - start < LOSS_RISE), words


def _zero_gradient(table: pd.DataFrame) -> tuple[float, str]:
    shares = metric_rows(table, "masking_zero_gradient_share")
    if not len(shares):
        return math.nan, "no per-image gradient check (autoattack part off or absent)"
    share, attacked = float(shares["value"].iloc[0]), shares["samples"].iloc[0]
    if math.isnan(share):
        return math.nan, "no image classified correctly before PGD: no gradient to check"
    words = (
        f"{share:.3f} of the {int(attacked)} images correct before PGD have a zero or "
        f"non-finite input gradient of its loss, threshold {ZERO_GRADIENT_SHARE}"
    )
    return float(share > ZERO_GRADIENT_SHARE), words


def _stuck(table: pd.DataFrame) -> tuple[float, str]:
    shares = metric_rows(table, "masking_stuck_share")
    if not len(shares):
        return math.nan, "no per-image loss check (autoattack part off or absent)"
    found = shares.iloc[0]
    share = float(found["value"])
    if math.isnan(share):
        return math.nan, "no image classified correctly before PGD, or PGD took no step"
    if float(found["eps"]) == 0:
        return math.nan, "PGD's eps is 0: the loss cannot move"
    unreachable = _reach(found)
    if unreachable:
        return math.nan, unreachable
    words = (
        f"{share:.3f} of the {int(found['samples'])} images correct before PGD end its "
        f"{int(found['steps'])} steps with loss and margin unmoved, threshold {STUCK_SHARE}"
    )
    return float(share > STUCK_SHARE), words


def _randomized(table: pd.DataFrame) -> tuple[float, str]:
    change = metric_rows(table, "masking_output_change")
    if not len(change):
        return math.nan, "no two-pass check (autoattack part off or absent)"
    share = float(change["value"].iloc[0])
    words = (
        f"{share:.3f} of {int(change['samples'].iloc[0])} images changed output between two "
        "passes in eval mode"
    )
    switched = metric_rows(table, "autoattack_switched_to_rand")
    if share > 0 and len(switched) and float(switched["value"].iloc[0]) == 1:
        return 1.0, f"{words}; the rand version (EOT) ran instead of the standard one asked for"
    eot = metric_rows(table, "autoattack_eot_samples")
    if share > 0 and len(eot) and float(eot["value"].iloc[0]) > 1:
        return 0.0, f"{words}; the rand version (EOT) was asked for and ran"
    return float(share > 0), words


def _autoattack_check(metric: str, says: str) -> Callable[[pd.DataFrame], tuple[float, str]]:
    """A flag from AutoAttack's own check recorded as `metric` (per eps): flagged when any
    value is above 0."""

    def check(table: pd.DataFrame) -> tuple[float, str]:
        rows = metric_rows(table, metric)
        if not len(rows):
            return math.nan, "AutoAttack did not run (off or absent)"
        fired = rows[rows["value"] > 0]
        if not len(fired):
            return 0.0, f"AutoAttack's check did not find {says}"
        at = ", ".join(
            f"eps {pixel_text(float(r['eps']), 4)}: {r['value']:g}" for _, r in fired.iterrows()
        )
        return 1.0, f"AutoAttack's check found {says} ({at})"

    return check


# name -> (what a flag says, the check). Order: as in docs/results.md.
FLAGS: dict[str, tuple[str, Callable[[pd.DataFrame], tuple[float, str]]]] = {
    "autoattack_below_pgd": ("AutoAttack clearly below PGD at the same eps", _autoattack_below_pgd),
    "square_stronger": ("black-box Square stronger than the white-box attacks", _square_stronger),
    "large_eps": ("accuracy does not approach 0 at a large eps", _large_eps),
    "fgsm_stronger": ("FGSM stronger than PGD at the same eps", _fgsm_stronger),
    "flat_loss": ("PGD loss does not rise with steps", _flat_loss),
    "zero_gradient": ("many images have a zero input gradient", _zero_gradient),
    "stuck": ("many images' loss does not move under PGD", _stuck),
    "randomized": ("outputs change between two passes on the same images", _randomized),
    "autoattack_zero_gradient": (
        "AutoAttack found points with zero gradient",
        _autoattack_check("autoattack_zero_gradient_points", "points with zero gradient"),
    ),
    "autoattack_randomized": (
        "AutoAttack found a randomised model",
        _autoattack_check("autoattack_randomized_warning", "a randomised model"),
    ),
}


def flags(table: pd.DataFrame) -> list[Flag]:
    """Every check of `FLAGS` on one network's table (columns of `selectivity.schema`)."""
    found = []
    for name, (_, check) in FLAGS.items():
        value, reason = check(table)
        found.append(Flag(name, value, reason))
    return found


def flag_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The flags as rows: metric `masking_<name>`, value 1 / 0 / NaN, keys null."""
    return [{"metric": flag.metric, "value": flag.value} for flag in flags(table)]


def flag_lines(table: pd.DataFrame) -> list[str]:
    """Terminal lines: each flag's verdict and reason; none when the table has no attack rows."""
    if not table["metric"].isin(["pgd_accuracy", "autoattack_accuracy"]).any():
        return []
    lines = []
    for flag in flags(table):
        verdict = "not testable" if math.isnan(flag.value) else ("FLAGGED" if flag.value else "ok")
        lines.append(f"masking {flag.name:<22} {verdict}: {flag.reason}")
    return lines

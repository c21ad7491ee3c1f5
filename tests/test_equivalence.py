"""Equivalence (TOST), one-sided differences and mu_SI factors over seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from selectivity.equivalence import (
    Factor,
    difference_test,
    equivalence_test,
    mean_difference,
    selectivity_factor,
)

CONTROL = np.array([0.910, 0.905, 0.915, 0.912, 0.908, 0.911])
B = 999  # resamples: the smallest bootstrap p-value is 1 / (B + 1) = 0.001


def test_a_constant_paired_shift_inside_the_margin_is_equivalent():
    result = equivalence_test(CONTROL - 0.004, CONTROL, margin=0.01, paired=True, n_resamples=B)
    # every paired replicate of the difference is exactly -0.004
    assert result.difference == pytest.approx(-0.004)
    assert result.low == pytest.approx(-0.004) and result.high == pytest.approx(-0.004)
    assert result.p_lower == pytest.approx(1 / (B + 1))
    assert result.p_upper == pytest.approx(1 / (B + 1))
    assert result.equivalent
    assert (result.n_treated, result.n_control) == (6, 6)


def test_a_shift_beyond_the_margin_is_not_equivalent():
    result = equivalence_test(CONTROL - 0.02, CONTROL, margin=0.01, paired=True, n_resamples=B)
    assert result.p_lower == pytest.approx(1.0)
    assert not result.equivalent
    unpaired = equivalence_test(CONTROL - 0.02, CONTROL, margin=0.01, n_resamples=B)
    assert not unpaired.equivalent and unpaired.high < -0.01


@pytest.mark.parametrize("shift", [0.0, 0.003, 0.006, 0.009, 0.012])
def test_verdict_agrees_with_the_interval_inside_the_margins(shift):
    g = np.random.default_rng(1)
    treated = CONTROL - shift + g.normal(0, 0.003, CONTROL.size)
    result = equivalence_test(treated, CONTROL, margin=0.01, n_resamples=B, seed=4)
    inside = result.low > -0.01 and result.high < 0.01
    assert result.equivalent == inside
    assert result.p_value == max(result.p_lower, result.p_upper)


def test_deterministic_for_a_seed():
    treated = CONTROL[::-1] - 0.002
    first = equivalence_test(treated, CONTROL, margin=0.01, seed=3)
    assert equivalence_test(treated, CONTROL, margin=0.01, seed=3) == first


def test_raising_selectivity_hurts_one_sided():
    lower = difference_test(CONTROL - 0.01, CONTROL, alternative="less", paired=True, n_resamples=B)
    assert lower.p_value == pytest.approx(1 / (B + 1))
    assert lower.high == pytest.approx(-0.01)
    higher = difference_test(
        CONTROL + 0.01, CONTROL, alternative="less", paired=True, n_resamples=B
    )
    assert higher.p_value == pytest.approx(1.0)
    greater = difference_test(CONTROL + 0.01, CONTROL, alternative="greater", n_resamples=B)
    assert greater.p_value < 0.05


def test_mean_difference_interval_covers_the_estimate():
    result = mean_difference(CONTROL - 0.01, CONTROL[::-1], n_resamples=B)
    assert result.difference == pytest.approx(-0.01)
    assert result.low < -0.01 < result.high
    assert math.isnan(result.p_value)


def test_selectivity_factor_in_the_papers_words():
    si_zero = np.array([0.40, 0.42, 0.38, 0.41])
    fell = selectivity_factor(si_zero / 2.5, si_zero, paired=True, n_resamples=B)
    assert fell.ratio == pytest.approx(0.4)
    assert fell.low == pytest.approx(0.4) and fell.high == pytest.approx(0.4)
    assert fell.describe() == "fell by a factor of 2.5 (CI 2.5-2.5)"
    rose = selectivity_factor(si_zero * 1.5, si_zero[::-1], n_resamples=B)
    assert rose.ratio == pytest.approx(1.5)
    assert rose.low < 1.5 < rose.high
    assert rose.describe().startswith("rose by a factor of 1.5")


def test_too_few_seeds_give_no_verdict():
    result = equivalence_test([0.9], CONTROL, margin=0.01)
    assert not result.equivalent and math.isnan(result.p_value)
    assert result.difference == pytest.approx(0.9 - CONTROL.mean())
    assert math.isnan(difference_test(CONTROL, [0.9, math.nan]).p_value)
    factor = selectivity_factor([0.2], [0.4])
    assert factor.ratio == pytest.approx(0.5) and math.isnan(factor.low)
    assert factor.describe() == "fell by a factor of 2"


def test_non_finite_values_are_dropped():
    with_nan = np.append(CONTROL, math.nan)
    result = equivalence_test(with_nan, CONTROL, margin=0.01)
    assert result.n_treated == 6
    paired = equivalence_test(with_nan, np.append(CONTROL, 0.5), margin=0.01, paired=True)
    assert (paired.n_treated, paired.n_control) == (6, 6)


def test_zero_control_selectivity_has_no_factor():
    assert math.isnan(selectivity_factor([0.1, 0.2], [0.0, 0.0]).ratio)
    assert Factor(math.nan, math.nan, math.nan, 0, 0).describe() == "undefined"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="margin must be positive"):
        equivalence_test(CONTROL, CONTROL, margin=0)
    with pytest.raises(ValueError, match="alpha"):
        equivalence_test(CONTROL, CONTROL, margin=0.01, alpha=0.6)
    with pytest.raises(ValueError, match="aligned by seed"):
        equivalence_test(CONTROL, CONTROL[:3], margin=0.01, paired=True)
    with pytest.raises(ValueError, match="alternative"):
        difference_test(CONTROL, CONTROL, alternative="two-sided")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_resamples"):
        equivalence_test(CONTROL, CONTROL, margin=0.01, n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        selectivity_factor(CONTROL, CONTROL, confidence=1.0)
    with pytest.raises(ValueError, match="confidence"):
        mean_difference(CONTROL, CONTROL, confidence=0.0)

"""Tests of selectivity.report on synthetic results tables with known trends.

The synthetic tables follow docs/results.md and selectivity.schema. A latent effect
t = sign * z(alpha), with z rising monotonically from -1 (most negative alpha) to +1 (most
positive), drives every metric in the direction the papers report when sign = +1, in the opposite
direction when sign = -1, and not at all when null=True. Selectivity itself always follows alpha,
as the regularizer should. `current=False` gives a table as older versions wrote it (no settings
columns, none of the collapse, PGD-radius and dimensionality-cap metrics).
`make_collapsed_results` adds networks that collapsed at large alpha (see its docstring).
"""

import ast
import base64
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats as scipy_stats

from selectivity import report, schema
from selectivity.report import (
    bootstrap_ci,
    evaluate_claims,
    find_collapsed,
    plot_accuracy_per_corruption,
    plot_accuracy_vs_selectivity,
    plot_clean_vs_corrupted,
    plot_corruption_vs_alpha,
    plot_dimensionality,
    plot_fgsm_accuracy,
    plot_gradient_variability,
    plot_jacobian_norm,
    plot_normalised_accuracy_per_corruption,
    plot_pgd_accuracy,
    plot_silent_units,
    summarise,
    write_report,
)
from selectivity.report.stats import percentile_bootstrap, spearman

ALPHAS = (-10.0, -1.0, -0.1, 0.0, 0.1, 1.0, 10.0)
SEEDS = (0, 1, 2)
# Network order differs from alphabetical order, so order-of-appearance handling is tested.
LAYERS = ("stem.relu", "block1.relu", "block1.relu#2", "block2.relu", "block2.relu#2", "head.relu")
CORRUPTIONS = ("gaussian_noise", "motion_blur", "fog", "brightness")
SEVERITIES = (1, 2, 3, 4, 5)
EPS = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)
STEPS = (0, 1, 5, 25)
PGD_EPS = 8 / 255

# Claims the planted trend decides (all but the regularizer claim, which holds in every table).
TREND_CLAIMS = (
    "corruption_relative",
    "corruption_mean",
    "fgsm",
    "pgd",
    "jacobian",
    "dimensionality_clean",
    "dimensionality_corruption",
    "dimensionality_adversarial",
    "corruption_vs_clean",
    "adversarial_vs_corruption",
    "gradient_samples",
    "gradient_units",
    "accuracy_positive_alpha",
)


def _row(
    alpha,
    seed,
    metric,
    value,
    layer=None,
    corruption=None,
    severity=None,
    eps=None,
    steps=None,
    step_size=None,
):
    return {
        "alpha": alpha,
        "seed": seed,
        "metric": metric,
        "layer": layer,
        "corruption": corruption,
        "severity": severity,
        "eps": eps,
        "steps": steps,
        "fraction": None,
        "draw": None,
        "split": "val" if metric == "val_accuracy" else "test",
        "samples": 500,
        "step_size": step_size,
        "value": float(value),
    }


def make_results(
    sign: int = 1, null: bool = False, noise: float = 0.01, rng_seed: int = 0, current: bool = True
) -> pd.DataFrame:
    """A sweep table with every metric of docs/results.md and a planted trend (see module doc)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for alpha in ALPHAS:
        # z in [-1, 1], log-spaced in |alpha| like the grid itself.
        z = np.sign(alpha) * np.log10(abs(alpha) / 0.1 + 1) / np.log10(101)
        t = 0.0 if null else sign * z
        for seed in SEEDS:

            def e(scale=1.0):
                return noise * scale * rng.normal()

            # Positive alpha costs accuracy (paper 003); reversed: it helps; null: no effect.
            acc = 0.85 - (0.0 if null else 0.05 * sign * max(z, 0.0)) + e()
            rows.append(_row(alpha, seed, "test_accuracy", acc))
            rows.append(_row(alpha, seed, "val_accuracy", acc + 0.01 + e()))
            rows.append(_row(alpha, seed, "chance_accuracy", 0.1))
            # Selectivity follows alpha in every table: the regularizer works.
            layer_sel = [0.3 + 0.15 * z + 0.02 * i + e() for i in range(len(LAYERS))]
            rows.append(_row(alpha, seed, "selectivity", np.mean(layer_sel)))
            rows.append(_row(alpha, seed, "selectivity_live", np.mean(layer_sel) + 0.01))
            silent = [0.05 + 0.01 * i for i in range(len(LAYERS))]
            rows.append(_row(alpha, seed, "silent_fraction", np.mean(silent)))
            rows.extend(
                _row(alpha, seed, "silent_fraction", v, layer=name)
                for name, v in zip(LAYERS, silent, strict=True)
            )
            rows.extend(
                _row(alpha, seed, "selectivity", v, layer=name)
                for name, v in zip(LAYERS, layer_sel, strict=True)
            )
            corrupted = []
            for k, corruption in enumerate(CORRUPTIONS):
                for severity in SEVERITIES:
                    value = acc * (1 - 0.05 * severity * (1 + 0.3 * t) * (1 + 0.1 * k)) + e()
                    corrupted.append(value)
                    rows.append(
                        _row(
                            alpha,
                            seed,
                            "corruption_accuracy",
                            value,
                            corruption=corruption,
                            severity=severity,
                        )
                    )
            rows.append(_row(alpha, seed, "corruption_accuracy_mean", np.mean(corrupted)))
            rows.append(_row(alpha, seed, "corruption_accuracy_relative", np.mean(corrupted) / acc))
            for eps in EPS:
                rows.append(
                    _row(
                        alpha,
                        seed,
                        "fgsm_accuracy",
                        acc * np.exp(-eps * 255 * 0.3 * (1 - 0.5 * t)) + e(),
                        eps=eps,
                    )
                )
            for steps in STEPS:
                rows.append(
                    _row(
                        alpha,
                        seed,
                        "pgd_accuracy",
                        acc * np.exp(-steps * 0.1 * (1 - 0.5 * t)) + e(),
                        eps=PGD_EPS,
                        steps=steps,
                        step_size=2e-3,
                    )
                )
                if steps:
                    # The ball binds: some image reaches eps (step 2e-3 x 25 steps > 8/255).
                    reached = PGD_EPS * min(1.0, steps * 2e-3 / PGD_EPS)
                    for metric, value in (("pgd_linf_max", reached), ("pgd_linf_mean", reached)):
                        rows.append(
                            _row(
                                alpha, seed, metric, value, eps=PGD_EPS, steps=steps, step_size=2e-3
                            )
                        )
            rows.append(_row(alpha, seed, "jacobian_norm", 5.0 * (1 - 0.4 * t) + e(5)))
            offset = 0.0 if null else 0.1 * sign
            for i, layer in enumerate(LAYERS):
                rows.append(
                    _row(
                        alpha,
                        seed,
                        "gradient_variability_samples",
                        1 + 0.1 * i + 0.5 * t + e(10),
                        layer=layer,
                    )
                )
                rows.append(
                    _row(
                        alpha,
                        seed,
                        "gradient_variability_units",
                        2 + 0.1 * i + 0.5 * t + e(10),
                        layer=layer,
                    )
                )
            for i, layer in enumerate(LAYERS):
                rows.append(
                    _row(alpha, seed, "dimensionality", 0.3 + 0.05 * i - 0.1 * t + e(), layer=layer)
                )
            for layer in LAYERS:
                rows.append(_row(alpha, seed, "dimensionality_cap", 1.0, layer=layer))
            for i, layer in enumerate(LAYERS):
                # Higher-dimensional than the clean activations (by `offset`) when sign = +1.
                corr = 0.3 + 0.05 * i - 0.05 * t + offset + e()
                rows.append(
                    _row(
                        alpha,
                        seed,
                        "dimensionality_corruption",
                        corr,
                        layer=layer,
                        corruption="motion_blur",
                        severity=3,
                    )
                )
            for i, layer in enumerate(LAYERS):
                adv = 0.3 + 0.05 * i - 0.08 * t + 2 * offset + e()
                rows.append(
                    _row(
                        alpha,
                        seed,
                        "dimensionality_adversarial",
                        adv,
                        layer=layer,
                        eps=PGD_EPS,
                        steps=25,
                        step_size=2e-3,
                    )
                )
    table = pd.DataFrame(rows)
    if not current:
        new = {"chance_accuracy", "selectivity_live", "silent_fraction", "dimensionality_cap"}
        new |= {"pgd_linf_max", "pgd_linf_mean"}
        table = table[~table["metric"].isin(new)].drop(
            columns=["fraction", "draw", "split", "samples", "step_size"]
        )
        return table.astype(
            {"alpha": float, "seed": int, "severity": "Int64", "eps": float, "steps": "Int64"}
        ).reset_index(drop=True)
    # The keys these metrics do not use (fraction, draw) stay absent, as in older tables.
    dtypes = {k: v for k, v in schema.DTYPES.items() if k in table.columns}
    return table.astype({"alpha": float, "seed": int, **dtypes})


C_ALPHAS = (-10.0, -1.0, 0.0, 1.0, 10.0, 30.0)
C_SEEDS = (0, 1, 2)
C_LAYERS = ("conv1.relu", "conv2.relu", "fc.relu")
C_CAPS = (1.0, 1.0, 0.5)
C_EPS = 8 / 255
C_COLLAPSED = {
    (30.0, 0): "chance",
    (30.0, 1): "chance",
    (30.0, 2): "chance",
    (10.0, 0): "chance",
    (10.0, 1): "chance",
    (10.0, 2): "silent",
}


def make_collapsed_results(rng_seed: int = 0) -> pd.DataFrame:
    """A table in the current schema where the networks of some trials collapsed (C_COLLAPSED).

    Known truth over the healthy trials: selectivity follows alpha; clean accuracy falls with
    alpha >= 0 (and is at chance in "chance" trials); corrupted/clean accuracy, corrupted accuracy,
    PGD accuracy (absolute and relative to clean) and early-layer dimensionality follow the
    papers; corruption changes are higher-dimensional than clean activations; FGSM accuracy
    relative to clean has no relation to selectivity; the Jacobian norm RISES with selectivity
    (the paper's claim is false here). Collapsed trials: mu_SI near 0, accuracy at chance or a
    layer mostly silent, corrupted/clean and attacked/clean ratios near 1, tiny dimensionality.
    PGD's ball never binds (L-inf reached 0.001 < 8/255); fc.relu's dimensionality sits at its cap.
    """
    rng = np.random.default_rng(rng_seed)
    rows = []

    def add(alpha, seed, metric, value, **keys):
        row = {"alpha": alpha, "seed": seed, "metric": metric, "value": float(value), **keys}
        rows.append({"split": "test", "samples": 500, **row})

    for alpha in C_ALPHAS:
        z = np.sign(alpha) * np.log10(abs(alpha) / 0.1 + 1) / np.log10(301)
        for seed in C_SEEDS:
            state = C_COLLAPSED.get((alpha, seed))

            def e(scale=0.01):
                return scale * rng.normal()

            if state == "chance":
                acc, sel, live = 0.1 + e(0.003), 0.03 + e(0.005), 0.35
                silent = [0.3, 0.7, 0.9]
                ratio, fgsm_rel, pgd_rel, jac = 1.0, 1.0, 1.0, 0.5 + e(0.05)
                dims, dim_shift = 0.02, 0.01
            elif state == "silent":
                acc, sel, live = 0.85 + e(), 0.1 + e(0.005), 0.4
                silent = [0.1, 0.6, 0.4]
                ratio, fgsm_rel, pgd_rel, jac = 0.97, 0.9, 0.8, 1.0 + e(0.05)
                dims, dim_shift = 0.05, 0.02
            else:
                acc = 0.95 - 0.03 * max(z, 0.0) + e(0.003)
                sel = 0.25 + 0.15 * z + e()
                live = sel + 0.01
                silent = [0.02 + 0.03 * max(z, 0) + abs(e(0.005)) for _ in C_LAYERS]
                ratio = 0.85 - 0.1 * z + e()
                fgsm_rel = 0.6 + e(0.03)  # no relation to selectivity
                pgd_rel = 0.3 + 0.2 * z + e()  # more selective: more robust, relative to clean
                jac = 5.0 + 2.0 * z + e(0.2)  # the paper's claim reversed: truly false here
                dims, dim_shift = None, 0.1
            add(alpha, seed, "test_accuracy", acc)
            add(alpha, seed, "val_accuracy", acc + 0.01, split="val")
            add(alpha, seed, "chance_accuracy", 0.1)
            add(alpha, seed, "selectivity", sel, layer=None)
            add(alpha, seed, "selectivity_live", live, layer=None)
            add(alpha, seed, "silent_fraction", float(np.mean(silent)), layer=None)
            for i, layer in enumerate(C_LAYERS):
                add(alpha, seed, "selectivity", sel + 0.02 * (i - 1), layer=layer)
                add(alpha, seed, "silent_fraction", silent[i], layer=layer)
            add(alpha, seed, "corruption_accuracy_mean", acc * ratio)
            add(alpha, seed, "corruption_accuracy_relative", ratio)
            for eps in (0.0, 2 / 255, C_EPS):
                rel = 1.0 if eps == 0 else fgsm_rel
                add(alpha, seed, "fgsm_accuracy", acc * rel, eps=eps)
                if eps > 0:
                    add(alpha, seed, "fgsm_accuracy_relative", rel, eps=eps)
            for steps in (0, 10):
                rel = 1.0 if steps == 0 else pgd_rel
                add(alpha, seed, "pgd_accuracy", acc * rel, eps=C_EPS, steps=steps, step_size=1e-4)
                if steps > 0:
                    add(
                        alpha,
                        seed,
                        "pgd_accuracy_relative",
                        rel,
                        eps=C_EPS,
                        steps=steps,
                        step_size=1e-4,
                    )
                    add(alpha, seed, "pgd_linf_mean", 0.001, eps=C_EPS, steps=steps, step_size=1e-4)
                    add(alpha, seed, "pgd_linf_max", 0.001, eps=C_EPS, steps=steps, step_size=1e-4)
            add(alpha, seed, "jacobian_norm", jac)
            for i, (layer, cap) in enumerate(zip(C_LAYERS, C_CAPS, strict=True)):
                clean = dims if dims is not None else 0.3 + 0.02 * i - 0.1 * z + e()
                clean = min(clean, 0.8 * cap)
                corrupted = min(clean + dim_shift - 0.02 * z, cap)
                add(alpha, seed, "dimensionality", clean, layer=layer)
                add(
                    alpha,
                    seed,
                    "dimensionality_corruption",
                    corrupted,
                    layer=layer,
                    corruption="motion_blur",
                    severity=3,
                )
                add(
                    alpha,
                    seed,
                    "dimensionality_adversarial",
                    min(corrupted + 0.03, cap),
                    layer=layer,
                    eps=C_EPS,
                    steps=25,
                    step_size=1e-4,
                )
                add(alpha, seed, "dimensionality_cap", cap, layer=layer)
    return schema.frame(rows, extra=schema.TRIAL)


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    return make_results()


# ---------------------------------------------------------------------------------------------
# Statistics


def test_bootstrap_ci_of_identical_values_has_zero_width():
    assert bootstrap_ci([0.7, 0.7, 0.7, 0.7]) == (0.7, 0.7, 0.7)
    assert bootstrap_ci([0.3]) == (0.3, 0.3, 0.3)
    assert all(np.isnan(bootstrap_ci([])))


def test_bootstrap_ci_covers_the_mean_and_is_deterministic():
    sample = np.random.default_rng(1).normal(2.0, 1.0, size=40)
    mean, low, high = bootstrap_ci(sample, seed=3)
    assert mean == pytest.approx(sample.mean())
    assert low < mean < high
    assert (
        low < 2.0 < high
    )  # the true mean of this draw is inside, as it should be ~95% of the time
    # The width is close to the normal-theory interval of a mean.
    assert high - low == pytest.approx(2 * 1.96 * sample.std(ddof=1) / np.sqrt(40), rel=0.25)
    assert bootstrap_ci(sample, seed=3) == (mean, low, high)
    narrow = bootstrap_ci(sample, confidence=0.5, seed=3)
    assert low < narrow[1] < narrow[2] < high
    with pytest.raises(ValueError):
        bootstrap_ci(sample, confidence=1.5)


def test_percentile_bootstrap_known_intervals():
    # The mean of a resample of [0, 1] is 0, 0.5 or 1 (probabilities 1/4, 1/2, 1/4): the 95%
    # interval is [0, 1]; the 40% interval is [0.5, 0.5].
    assert percentile_bootstrap(([0.0, 1.0],), np.mean) == (0.0, 1.0)
    assert percentile_bootstrap(([0.0, 1.0],), np.mean, confidence=0.4) == (0.5, 0.5)
    # Unpaired: a single observation resamples to itself, so the difference of means is 5 minus
    # the mean of a resample of [0, 1].
    difference = lambda a, b, axis=-1: a.mean(axis=axis) - b.mean(axis=axis)  # noqa: E731
    assert percentile_bootstrap(([5.0], [0.0, 1.0]), difference) == (4.0, 5.0)
    # Paired: x and y of a trial travel together, so y = 2x keeps the ratio of means exactly 2.
    x = np.random.default_rng(0).uniform(1.0, 2.0, size=8)
    ratio = lambda a, b, axis=-1: b.mean(axis=axis) / a.mean(axis=axis)  # noqa: E731
    assert percentile_bootstrap((x, 2.0 * x), ratio, paired=True) == pytest.approx((2.0, 2.0))
    low, high = percentile_bootstrap((x, x[::-1].copy() * 2.0), ratio, paired=False)
    assert low < 2.0 < high
    with pytest.raises(ValueError, match="at least one observation"):
        percentile_bootstrap(([1.0], []), difference)
    with pytest.raises(ValueError, match="n_resamples"):
        percentile_bootstrap(([0.0, 1.0],), np.mean, n_resamples=0)


def test_spearman_matches_scipy_and_skips_undefined_resamples():
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 4, size=12).astype(float), rng.normal(size=12)  # x with ties
    assert float(spearman(x, y)) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)
    assert np.isnan(spearman(np.ones(5), y[:5]))
    # A resample of x = [0, 0, 0, 1] is constant about a third of the time and its rho undefined;
    # every other resample has rho = 1 (y = x), so the interval over the defined ones is [1, 1].
    x = np.array([0.0, 0.0, 0.0, 1.0])
    assert percentile_bootstrap((x, x), spearman, paired=True) == (1.0, 1.0)
    # Constant y: rho is undefined on every resample, and so is the interval.
    assert all(np.isnan(percentile_bootstrap((x, np.ones(4)), spearman, paired=True)))


def test_summarise_counts_and_means(results):
    summary = summarise(results, "test_accuracy")
    assert list(summary.columns) == ["alpha", "mean", "ci_low", "ci_high", "n"]
    assert summary["alpha"].tolist() == sorted(ALPHAS)
    assert (summary["n"] == len(SEEDS)).all()
    expected = results[results["metric"] == "test_accuracy"].groupby("alpha")["value"].mean()
    np.testing.assert_allclose(summary["mean"], expected.loc[summary["alpha"]].to_numpy())
    assert (summary["ci_low"] <= summary["mean"]).all() and (
        summary["mean"] <= summary["ci_high"]
    ).all()


def test_summarise_averages_within_a_trial_before_over_seeds(results):
    # Grouped by alpha only, corruption_accuracy has 20 rows per trial: n must count seeds, not rows.
    summary = summarise(results, "corruption_accuracy")
    assert (summary["n"] == len(SEEDS)).all()
    rows = results[results["metric"] == "corruption_accuracy"]
    expected = rows.groupby(["alpha", "seed"])["value"].mean().groupby("alpha").mean()
    np.testing.assert_allclose(summary["mean"], expected.loc[summary["alpha"]].to_numpy())


def test_summarise_network_selectivity_and_layer_order(results):
    network = summarise(results, "selectivity")
    rows = results[(results["metric"] == "selectivity") & results["layer"].isna()]
    np.testing.assert_allclose(network["mean"], rows.groupby("alpha")["value"].mean().to_numpy())
    by_layer = summarise(results, "dimensionality", by=("alpha", "layer"))
    assert by_layer[by_layer["alpha"] == 0.0]["layer"].tolist() == list(LAYERS)
    assert len(by_layer) == len(ALPHAS) * len(LAYERS)
    with pytest.raises(ValueError, match="not in the results table"):
        summarise(results, "no_such_metric")


# ---------------------------------------------------------------------------------------------
# Figures


def _labelled_lines(ax: Axes) -> list:
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_plot_accuracy_vs_selectivity(results):
    ax = plot_accuracy_vs_selectivity(results)
    assert isinstance(ax, Axes)
    assert len(ax.containers) == len(ALPHAS)  # one mean point with CI bars per alpha
    assert len(ax.collections[0].get_offsets()) == len(ALPHAS) * len(SEEDS)  # single trials
    assert len(ax.get_legend().get_texts()) == len(ALPHAS)


def test_plot_corruption_vs_alpha(results):
    fig = plot_corruption_vs_alpha(results)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_xscale() == "symlog"
        (line,) = ax.get_lines()
        assert len(line.get_xdata()) == len(ALPHAS)


def test_plot_normalised_accuracy_per_corruption_shows_three_alphas(results):
    ax = plot_normalised_accuracy_per_corruption(results)
    assert len(ax.containers) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["-10", "0", "10"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        c.replace("_", " ") for c in CORRUPTIONS
    ]
    # Normalised accuracies of this table lie below 1.
    values = np.concatenate([c.lines[0].get_ydata() for c in ax.containers])
    assert (values < 1).all() and (values > 0.3).all()


def test_plot_accuracy_per_corruption(results):
    ax = plot_accuracy_per_corruption(results)
    assert len(ax.containers) == len(ALPHAS)
    assert all(len(c.lines[0].get_xdata()) == len(CORRUPTIONS) for c in ax.containers)


def test_plot_clean_vs_corrupted(results):
    ax = plot_clean_vs_corrupted(results)
    lines = _labelled_lines(ax)
    assert [line.get_label() for line in lines] == [f"severity {s}" for s in SEVERITIES]
    assert all(len(line.get_xdata()) == len(ALPHAS) for line in lines)


def test_plot_fgsm_and_pgd(results):
    ax = plot_fgsm_accuracy(results)
    lines = _labelled_lines(ax)
    assert len(lines) == len(ALPHAS) and all(len(line.get_xdata()) == len(EPS) for line in lines)
    ax = plot_pgd_accuracy(results)
    lines = _labelled_lines(ax)
    assert len(lines) == len(ALPHAS) and all(len(line.get_xdata()) == len(STEPS) for line in lines)
    assert "8/255" in ax.get_title()


def test_plot_jacobian_norm(results):
    ax = plot_jacobian_norm(results)
    assert ax.get_xscale() == "symlog"
    (line,) = ax.get_lines()
    assert line.get_xdata().tolist() == sorted(ALPHAS)


def test_plot_dimensionality_three_panels_layers_in_table_order(results):
    fig = plot_dimensionality(results)
    assert len(fig.axes) == 3
    for ax in fig.axes:
        lines = _labelled_lines(ax)
        assert len(lines) == len(ALPHAS)
        assert all(len(line.get_xdata()) == len(LAYERS) for line in lines)
        assert [t.get_text() for t in ax.get_xticklabels()] == list(LAYERS)


def test_plot_gradient_variability(results):
    fig = plot_gradient_variability(results)
    assert len(fig.axes) == 2
    assert all(len(ax.get_lines()) == 1 and ax.get_xscale() == "symlog" for ax in fig.axes)


def test_figures_of_a_grid_without_negative_alphas(collapsed_results):
    # The grid (alpha 0, 1, 10, 30): no blue side of the colour scale.
    table = collapsed_results[collapsed_results["alpha"] >= 0]
    assert list(report.alpha_colors([0.0, 1.0, 10.0, 30.0])) == [1.0, 10.0, 30.0, 0.0]
    ax = plot_jacobian_norm(table)
    assert ax.get_lines()[0].get_xdata().tolist() == [0.0, 1.0, 10.0, 30.0]


def test_plots_draw_into_given_axes(results):
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_jacobian_norm(results, ax=ax) is ax
    fig = Figure()
    axes = fig.subplots(1, 3)
    assert plot_dimensionality(results, ax=axes) is fig


def test_every_figure_reads_a_results_file_and_draws_in_the_house_style(results, tmp_path):
    # The style (no top spine, a grid) is local: it shows on the figures and leaves the caller's
    # rcParams as they were.
    source = tmp_path / "results.parquet"
    results.to_parquet(source)
    grid = matplotlib.rcParams["axes.grid"]
    for spec in report.FIGURES:
        drawn = spec.draw(source)
        axes = drawn.axes if isinstance(drawn, Figure) else [drawn]
        assert not any(ax.spines["top"].get_visible() for ax in axes), spec.name
        assert matplotlib.rcParams["axes.grid"] == grid


def test_missing_metric_raises_a_clear_error(results):
    no_attacks = results[~results["metric"].isin(["fgsm_accuracy", "pgd_accuracy"])]
    with pytest.raises(ValueError, match="fgsm_accuracy"):
        plot_fgsm_accuracy(no_attacks)
    # Multi-panel figures draw the panels whose metric is present.
    partial = results[results["metric"] != "dimensionality_adversarial"]
    assert len(plot_dimensionality(partial).axes) == 2


# ---------------------------------------------------------------------------------------------
# Claims


def _verdicts(table: pd.DataFrame) -> dict[str, str]:
    claims = evaluate_claims(table, n_resamples=500)
    return dict(zip(claims["key"], claims["verdict"], strict=True))


def test_claims_supported_for_the_planted_trend(results):
    claims = evaluate_claims(results, n_resamples=500)
    verdicts = dict(zip(claims["key"], claims["verdict"], strict=True))
    assert verdicts["regularizer_sign"] == "supported"
    assert {k: verdicts[k] for k in TREND_CLAIMS} == dict.fromkeys(TREND_CLAIMS, "supported")
    row = claims.set_index("key").loc["corruption_relative"]
    assert row["estimate"] < 0 and row["ci_high"] < 0
    assert row["n_trials"] == len(ALPHAS) * len(SEEDS) and row["n_alphas"] == len(ALPHAS)
    assert "falls as μ_SI rises" in row["direction"]
    assert row["x"].startswith("μ_SI") and row["trials_used"] == "trials near chance left out"
    assert claims.set_index("key").loc["accuracy_positive_alpha", "x"].startswith("α")
    # Context contrast: lowest alpha minus alpha = 0, in accuracy ratio units, positive here.
    assert row["contrast_low"] > 0


def test_claims_contradicted_for_a_reversed_trend():
    verdicts = _verdicts(make_results(sign=-1))
    assert verdicts["regularizer_sign"] == "supported"
    assert {k: verdicts[k] for k in TREND_CLAIMS} == dict.fromkeys(TREND_CLAIMS, "contradicted")


def test_claims_inconclusive_for_noise():
    verdicts = _verdicts(make_results(null=True, rng_seed=5))
    assert {k: verdicts[k] for k in TREND_CLAIMS} == dict.fromkeys(TREND_CLAIMS, "inconclusive")


def test_claims_inconclusive_with_too_few_trials(results):
    few = results[results["alpha"].isin([-10.0, 0.0]) & (results["seed"] == 0)]
    claims = evaluate_claims(few, n_resamples=200)
    claims = claims[claims["key"] != "autoattack"]  # the table has no AutoAttack rows
    assert set(claims["verdict"]) == {"inconclusive"}
    assert claims["note"].str.contains("too few trials").all()


def test_claims_with_absent_metrics_are_marked_not_tested(results):
    claims = evaluate_claims(results[results["metric"] != "jacobian_norm"], n_resamples=200)
    row = claims.set_index("key").loc["jacobian"]
    assert row["verdict"] == "not tested" and "jacobian_norm" in row["note"]


# ---------------------------------------------------------------------------------------------
# Collapsed trials, and claims that must not be decided by them

# The claims make_collapsed_results plants as true over its healthy trials.
C_TRUE = (
    "regularizer_sign",
    "corruption_relative",
    "corruption_mean",
    "pgd",
    "dimensionality_clean",
    "dimensionality_corruption",
    "dimensionality_adversarial",
    "corruption_vs_clean",
    "adversarial_vs_corruption",
    "accuracy_positive_alpha",
)


@pytest.fixture(scope="module")
def collapsed_results() -> pd.DataFrame:
    return make_collapsed_results()


def test_find_collapsed_names_each_trial_and_its_criterion(collapsed_results):
    collapse = find_collapsed(collapsed_results)
    assert collapse.keys() == set(C_COLLAPSED)
    assert collapse.unchecked == () and collapse.n_trials == len(C_ALPHAS) * len(C_SEEDS)
    reasons = {(a, s): r for a, s, r in collapse.trials.itertuples(index=False)}
    assert reasons[(10.0, 2)] == "60% of conv2.relu's units silent (> 50%)"
    assert reasons[(30.0, 0)].startswith("clean accuracy 0.")
    assert "≤ 0.190 (chance 0.100" in reasons[(30.0, 0)] and "fc.relu" in reasons[(30.0, 0)]


def test_find_collapsed_applies_the_criteria_it_can_and_says_which_it_cannot(collapsed_results):
    no_silent = find_collapsed(collapsed_results[collapsed_results["metric"] != "silent_fraction"])
    # The silent-only trial escapes the accuracy criterion; the others are at chance.
    assert no_silent.keys() == set(C_COLLAPSED) - {(10.0, 2)}
    assert no_silent.unchecked == (
        "silent units: not checked (silent_fraction absent from the table)",
    )
    no_chance = find_collapsed(collapsed_results[collapsed_results["metric"] != "chance_accuracy"])
    assert no_chance.keys() == set(C_COLLAPSED)
    assert "chance_accuracy absent" in no_chance.unchecked[0]
    # One trial without chance_accuracy: checked by silence only, and counted as unchecked.
    one = collapsed_results[
        ~(
            (collapsed_results["metric"] == "chance_accuracy")
            & (collapsed_results["alpha"] == 0.0)
            & (collapsed_results["seed"] == 0)
        )
    ]
    assert find_collapsed(one).unchecked == (
        "accuracy near chance: not checked for 1 trial(s) lacking test_accuracy or chance_accuracy",
    )
    assert no_chance.applied == ("silent units",)
    old = find_collapsed(make_results(current=False))
    assert old.trials.empty and len(old.unchecked) == 2 and old.applied == ()


def test_claims_on_collapsed_trials_follow_the_known_truth(collapsed_results):
    claims = evaluate_claims(collapsed_results, n_resamples=500).set_index("key")
    verdicts = claims["verdict"].to_dict()
    near_chance = [k for k, state in C_COLLAPSED.items() if state == "chance"]
    # Never "contradicted" for a true claim, although 6 of 18 trials collapsed.
    assert "contradicted" not in {verdicts[k] for k in C_TRUE}
    # The one policy leaves out the trials near chance; the mostly silent trial stays in, and
    # without it too (the silent-unit reading) every true claim is found.
    framed = claims.drop(
        index=["accuracy_positive_alpha", "gradient_samples", "gradient_units", "autoattack"]
    )
    assert (framed["n_collapsed_left_out"] == len(near_chance)).all()
    assert (framed["n_trials"] == len(C_ALPHAS) * len(C_SEEDS) - len(near_chance)).all()
    assert (
        framed["note"].str.contains(f"{len(near_chance)} trial\\(s\\) near chance left out").all()
    )
    assert (framed["n_silent_left_out"] == 1).all()
    silent_rule = framed["verdict_silent_rule"].to_dict()
    assert {k: silent_rule[k] for k in C_TRUE if k in silent_rule} == {
        k: "supported" for k in C_TRUE if k in silent_rule
    }
    # Where keeping the silent trial changes a verdict, the verdict says so.
    for key in framed.index:
        if framed.loc[key, "verdict"] != silent_rule[key]:
            assert f"the silent-unit rule: {silent_rule[key]}" in framed.loc[key, "hangs_on"]
    assert verdicts["regularizer_sign"] == "inconclusive"
    assert claims.loc["regularizer_sign", "verdict_live"] == "supported"
    # A claim that is false here still comes out contradicted.
    assert verdicts["jacobian"] == "contradicted"
    # FGSM relative to clean has no relation to selectivity: never supported; the silent trial
    # alone makes it look contradicted, and the mark says so.
    assert verdicts["fgsm"] != "supported"
    assert claims.loc["fgsm", "verdict_silent_rule"] == "inconclusive"
    assert verdicts["gradient_samples"] == "not tested"
    # The regularizer's effect on accuracy keeps every trial, tested against alpha.
    accuracy = claims.loc["accuracy_positive_alpha"]
    assert accuracy["n_collapsed_left_out"] == 0 and accuracy["n_trials"] == 12
    assert accuracy["x"].startswith("α") and accuracy["estimate"] < -0.8
    assert accuracy["verdict_live"] == "" and accuracy["hangs_on"] == ""
    assert claims.loc["pgd", "check_statistic"] == (
        "Spearman ρ(μ_SI, PGD accuracy / clean accuracy) across trials"
    )


def test_without_leaving_collapsed_trials_out_the_verdicts_go_wrong(collapsed_results):
    # The same table with nothing detected as collapsed: the collapsed trials (mu_SI ~ 0, tiny
    # dimensionality) decide the correlations. This is what the exclusion protects against.
    nothing = report.Collapse(pd.DataFrame(columns=["alpha", "seed", "reason"]), (), 18)
    claims = evaluate_claims(collapsed_results, n_resamples=500, collapse=nothing)
    verdicts = dict(zip(claims["key"], claims["verdict"], strict=True))
    assert verdicts["dimensionality_clean"] != "supported"
    assert verdicts["regularizer_sign"] != "supported"
    assert (claims["n_collapsed_left_out"] == 0).all()
    assert not claims["note"].str.contains("collapse").any()


def _clean_accuracy_carries_fgsm(rng_seed: int = 3) -> pd.DataFrame:
    """Clean accuracy rises with selectivity; FGSM accuracy relative to clean is pure noise."""
    table = make_results(null=True, rng_seed=rng_seed)
    sel = table[(table["metric"] == "selectivity") & table["layer"].isna()]
    accuracy = dict(
        zip(zip(sel["alpha"], sel["seed"], strict=True), sel["value"] + 0.5, strict=True)
    )
    rng = np.random.default_rng(rng_seed)
    keys = list(zip(table["alpha"], table["seed"], strict=True))
    clean = np.array([accuracy[k] for k in keys])
    is_acc = (table["metric"] == "test_accuracy").to_numpy()
    table.loc[is_acc, "value"] = clean[is_acc]
    fgsm = (table["metric"] == "fgsm_accuracy").to_numpy()
    attacked = fgsm & (table["eps"] > 0).fillna(False).to_numpy(dtype=bool)
    table.loc[fgsm, "value"] = clean[fgsm]
    table.loc[attacked, "value"] = clean[attacked] * rng.uniform(0.45, 0.55, attacked.sum())
    return table


def test_adversarial_claims_need_accuracy_relative_to_clean_to_agree():
    table = _clean_accuracy_carries_fgsm()
    row = evaluate_claims(table, n_resamples=500).set_index("key").loc["fgsm"]
    assert row["ci_low"] > 0  # absolute FGSM accuracy alone would say "supported"
    assert row["check_ci_low"] < 0 < row["check_ci_high"]
    assert row["verdict"] == "inconclusive"
    assert "FGSM accuracy: supported, FGSM accuracy / clean accuracy" in row["note"]
    assert "fgsm_accuracy / its unperturbed rows" in row["note"] and "must agree" in row["note"]
    # Without eps-0 rows, clean accuracy is test_accuracy; without either, no verdict.
    no_zero = table[~((table["metric"] == "fgsm_accuracy") & (table["eps"] == 0))]
    row = evaluate_claims(no_zero, n_resamples=300).set_index("key").loc["fgsm"]
    assert "fgsm_accuracy / test_accuracy" in row["note"] and row["verdict"] == "inconclusive"
    neither = no_zero[no_zero["metric"] != "test_accuracy"]
    row = evaluate_claims(neither, n_resamples=300).set_index("key").loc["fgsm"]
    assert row["verdict"] == "inconclusive" and "unavailable" in row["note"]


def test_too_few_samples_give_no_verdict(results):
    few = results.copy()
    few.loc[few["metric"] == "jacobian_norm", "samples"] = 40
    row = evaluate_claims(few, n_resamples=200).set_index("key").loc["jacobian"]
    assert row["verdict"] == "inconclusive"
    assert "too few samples (measured on 40 images per trial; need ≥ 100)" in row["note"]


def test_claims_on_an_older_table_say_collapse_was_not_checked():
    claims = evaluate_claims(make_results(current=False), n_resamples=300).set_index("key")
    assert claims.loc["corruption_relative", "verdict"] == "supported"
    assert "collapse not checked" in claims.loc["corruption_relative", "note"]
    assert "collapse" not in claims.loc["accuracy_positive_alpha", "note"]


def test_a_metric_from_several_splits_is_refused(results):
    val = results[results["metric"] == "selectivity"].assign(split="val")
    with pytest.raises(ValueError, match=r"several splits \['test', 'val'\]"):
        summarise(pd.concat([results, val]), "selectivity")
    # The claims say why they fall back to alpha instead of averaging two splits.
    mixed = pd.concat([results, val])
    row = evaluate_claims(mixed, n_resamples=100).set_index("key").loc["jacobian"]
    assert row["x"].startswith("α")
    assert "network selectivity unusable (metric 'selectivity' has rows from several" in row["note"]


def test_plot_silent_units(collapsed_results):
    fig = plot_silent_units(collapsed_results)
    left, right = fig.axes
    assert [line.get_label() for line in _labelled_lines(left)] == [
        "mean over layers",
        "largest layer",
    ]
    assert [len(line.get_xdata()) for line in _labelled_lines(right)] == [len(C_ALPHAS)] * 2
    largest = _labelled_lines(left)[1].get_ydata()
    assert largest[-1] == pytest.approx(0.9)  # alpha = 30: fc.relu 90% silent in every seed
    with pytest.raises(ValueError, match="silent_fraction"):
        plot_silent_units(make_results(current=False))


# ---------------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class FreshReport:
    """make_results()'s whole report, written by a fresh interpreter (`fresh_report`)."""

    out: Path  # the report's folder
    path: Path  # what write_report returned
    modules: list[str]  # the modules of selectivity.report the interpreter had loaded
    torch_loaded: str  # as it printed 'torch' in sys.modules
    tmp: Path  # its TMPDIR, looked at after it exited


@pytest.fixture(scope="module")
def fresh_report(tmp_path_factory) -> FreshReport:
    """The whole report of make_results() (one failed trial beside it), written by a fresh
    interpreter that first imported every module of selectivity.report, with an empty TMPDIR and
    HOME of its own and no MPLCONFIGDIR. Written once: the tests below only read it."""
    root = tmp_path_factory.mktemp("fresh")
    source, out, tmp, home = root / "results.parquet", root / "out", root / "tmp", root / "home"
    make_results().to_parquet(source)
    for folder in (tmp, home):
        folder.mkdir()
    code = (
        "import importlib, pkgutil, sys\n"
        "import pandas as pd\n"
        "import selectivity.report as report\n"
        "for module in pkgutil.iter_modules(report.__path__, 'selectivity.report.'):\n"
        "    importlib.import_module(module.name)\n"
        "failed = pd.DataFrame(\n"
        "    {'alpha': [100.0], 'seed': [1], 'error': ['RuntimeError: loss is NaN']}\n"
        ")\n"
        f"print(report.write_report({str(source)!r}, {str(out)!r}, failed=failed, n_resamples=300))\n"
        "print(sorted(m for m in sys.modules if m.startswith('selectivity.report.')))\n"
        "print('torch' in sys.modules)\n"
    )
    done = _run_clean(code, {"HOME": str(home), "TMPDIR": str(tmp)})
    path, modules, torch_loaded = done.stdout.splitlines()
    return FreshReport(out, Path(path), ast.literal_eval(modules), torch_loaded, tmp)


def test_write_report_is_self_contained(fresh_report):
    out = fresh_report.out
    assert fresh_report.path == out / "report.html"
    text = fresh_report.path.read_text()
    # No external resources: every src= is a data URI.
    sources = re.findall(r"src\s*=\s*['\"]([^'\"]*)", text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    # The papers' figures, and those of the first paper's section this table has rows for.
    first_paper = ["accuracy_vs_alpha", "layer_selectivity_vs_alpha", "corruption_panel"]
    assert len(sources) == len(report.FIGURES) + len(first_paper)
    assert base64.b64decode(sources[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<link" not in text and "http" not in text
    assert text.index("Claims") < text.index("<figure")
    assert "RuntimeError: loss is NaN" in text
    assert "The ε-ball binds (largest L∞ distance reached 0.0314" in text
    assert "No value lies within 10% of its cap" in text
    assert "Collapsed trials (0 of 21)" in text and "Not checked" not in text
    pngs = sorted(p.name for p in (out / "figures").iterdir())
    assert pngs == sorted(
        f"{name}.png" for name in [*(s.name for s in report.FIGURES), *first_paper]
    )
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == [
        "metric",
        "alpha",
        "layer",
        "corruption",
        "severity",
        "eps",
        "steps",
        "fraction",
        "draw",
        "split",
        "samples",
        "step_size",
        "mean",
        "ci_low",
        "ci_high",
        "n",
    ]
    assert (summary["n"] == len(SEEDS)).all()
    network = summary[(summary["metric"] == "selectivity") & summary["layer"].isna()]
    assert len(network) == len(ALPHAS)
    assert len(summary[summary["metric"] == "corruption_accuracy"]) == len(ALPHAS) * len(
        CORRUPTIONS
    ) * len(SEVERITIES)
    # Only the final files remain: the temporary names were renamed.
    assert sorted(p.name for p in out.iterdir()) == [
        "alpha_effects.csv",
        "claims.csv",
        "figures",
        "report.html",
        "summary.csv",
    ]


def test_write_report_skips_figures_of_missing_metrics(tmp_path):
    # A table as older versions wrote it: the report says what it cannot check.
    old = make_results(current=False)
    table = old[~old["metric"].isin(["jacobian_norm", "fgsm_accuracy"])]
    source = tmp_path / "results.parquet"
    table.to_parquet(source)
    path = write_report(source, tmp_path / "out", n_resamples=200)
    text = path.read_text()
    skipped = text[text.index("Skipped figures") :]
    assert "jacobian_norm" in skipped and "fgsm_accuracy" in skipped
    assert not (tmp_path / "out" / "figures" / "jacobian_norm.png").exists()
    assert (tmp_path / "out" / "figures" / "pgd_accuracy.png").exists()
    assert "Not tested" in text
    assert "silent units: not checked (silent_fraction absent from the table)" in text
    assert "split, samples per trial, PGD step size not recorded in this table" in text
    assert "pgd_linf_max is absent" in text and "dimensionality_cap is absent" in text
    assert "silent_units" in skipped


# Today's public names of selectivity.report, from when it was one module.
PUBLIC_NAMES = (
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
)
# The second direction (robustness training -> selectivity) and general trial columns.
METHOD_NAMES = (
    "METHODS",
    "METHOD_CLAIMS",
    "METHOD_FIGURES",
    "Experiment",
    "Method",
    "MethodClaimSpec",
    "MethodFigureSpec",
    "REGULARIZER",
    "evaluate_method_claims",
    "experiments",
    "plot_adversarial_training",
    "plot_mix_training",
    "plot_noise_training",
    "trial_columns",
)
# The first paper's section (arXiv:2003.01262) and the per-trial tables it reads.
FIRST_PAPER_NAMES = (
    "EQUIVALENCE_MARGIN",
    "TrialTables",
    "alpha_effects",
    "evaluate_first_paper_claims",
    "load_trial_tables",
    "plot_accuracy_vs_alpha",
    "plot_corruption_panel",
    "plot_layer_selectivity",
    "plot_rotated_selectivity",
    "plot_similarity",
    "plot_training_curves",
    "plot_unit_ablation",
    "plot_unit_selectivity",
)


def test_the_package_exports_the_public_names_of_the_module():
    names = PUBLIC_NAMES + METHOD_NAMES + FIRST_PAPER_NAMES
    assert sorted(report.__all__) == sorted(names)
    missing = [name for name in names if not hasattr(report, name)]
    assert not missing


def _run_clean(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter with only PATH and `env` in its environment."""
    env = {"PATH": os.environ.get("PATH", ""), **env}
    if "PYTHONPATH" in os.environ:  # the package under test, where it is not the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    return done


_SIDE_EFFECTS = """
import json, os, sys
import pandas as pd
def state():
    return {
        "mplconfigdir": os.environ.get("MPLCONFIGDIR"),
        "tmp": sorted(os.listdir(os.environ["TMPDIR"])),
        "home": sorted(os.listdir(os.environ["HOME"])),
        "matplotlib": "matplotlib" in sys.modules,
    }
import selectivity.report
imported = state()
table = pd.DataFrame(
    {"alpha": [0.0, 1.0], "seed": [0, 0], "metric": ["jacobian_norm"] * 2, "value": [1.0, 2.0]}
)
selectivity.report.plot_jacobian_norm(table).figure.savefig(os.devnull, format="png")
print(json.dumps([imported, state()]))
"""


@pytest.mark.parametrize("configured", [False, True])
def test_import_has_no_side_effects_and_the_first_figure_sets_up_matplotlib(tmp_path, configured):
    home, tmp, mine = tmp_path / "home", tmp_path / "tmp", tmp_path / "mine"
    for folder in (home, tmp, mine):
        folder.mkdir()
    env = {"HOME": str(home), "TMPDIR": str(tmp)}
    if configured:
        env["MPLCONFIGDIR"] = str(mine)
    imported, drawn = json.loads(_run_clean(_SIDE_EFFECTS, env).stdout)
    # Importing: no folder anywhere, the environment as it was, matplotlib not even loaded.
    assert imported == {
        "mplconfigdir": str(mine) if configured else None,
        "tmp": [],
        "home": [],
        "matplotlib": False,
    }
    # The first figure loads matplotlib; its cache goes to a temporary folder only when the user
    # configured none, never into the home folder.
    assert drawn["matplotlib"] and drawn["home"] == []
    if configured:
        assert drawn["mplconfigdir"] == str(mine) and drawn["tmp"] == []
    else:
        [made] = drawn["tmp"]
        assert made.startswith("selectivity-mpl-")
        assert drawn["mplconfigdir"] == str(tmp / made)
    # The folder made for the cache goes when the process that made it exits.
    assert list(tmp.iterdir()) == []


def test_report_package_does_not_need_torch(fresh_report):
    # Every module of the package, and a whole report written with it, leave torch unloaded.
    modules = fresh_report.modules
    assert "selectivity.report.stats" in modules and "selectivity.report.html" in modules
    assert fresh_report.torch_loaded == "False"
    assert (fresh_report.out / "report.html").exists()


def test_no_folder_is_left_when_the_report_draws_in_a_fresh_process(fresh_report):
    # Checked in the side-effect test above too; here through write_report end to end.
    assert list(fresh_report.tmp.iterdir()) == []
    assert (fresh_report.out / "figures" / "jacobian_norm.png").exists()


def test_alpha_legends_read_in_numeric_order(results):
    # Colours are assigned negative-first by |alpha|; the legend must still read -10 ... 10.
    ax = plot_fgsm_accuracy(results)
    labels = [float(t.get_text()) for t in ax.get_legend().get_texts()]
    assert labels == sorted(ALPHAS)

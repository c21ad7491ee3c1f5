"""Tests of selectivity.report on synthetic results tables with known trends.

The synthetic tables follow docs/results.md exactly. A latent effect t = sign * z(alpha), with
z rising monotonically from -1 (most negative alpha) to +1 (most positive), drives every metric
in the direction the papers report when sign = +1, in the opposite direction when sign = -1, and
not at all when null=True. Selectivity itself always follows alpha, as the regularizer should.
"""

import base64
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from selectivity import report
from selectivity.report import (
    bootstrap_ci,
    evaluate_claims,
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
    summarise,
    write_report,
)

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
    "adversarial_vs_corruption",
    "gradient_samples",
    "gradient_units",
    "accuracy_positive_alpha",
)


def _row(
    alpha, seed, metric, value, layer=None, corruption=None, severity=None, eps=None, steps=None
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
        "value": float(value),
    }


def make_results(
    sign: int = 1, null: bool = False, noise: float = 0.01, rng_seed: int = 0
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
            # Selectivity follows alpha in every table: the regularizer works.
            layer_sel = [0.3 + 0.15 * z + 0.02 * i + e() for i in range(len(LAYERS))]
            rows.append(_row(alpha, seed, "selectivity", np.mean(layer_sel)))
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
            for i, layer in enumerate(LAYERS):
                corr = 0.3 + 0.03 * i - 0.05 * t + e()
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
                adv = 0.3 + 0.03 * i - 0.08 * t + offset + e()
                rows.append(
                    _row(
                        alpha,
                        seed,
                        "dimensionality_adversarial",
                        adv,
                        layer=layer,
                        eps=PGD_EPS,
                        steps=25,
                    )
                )
    table = pd.DataFrame(rows)
    return table.astype(
        {
            "alpha": float,
            "seed": int,
            "severity": "Int64",
            "eps": float,
            "steps": "Int64",
            "value": float,
        }
    )


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


def test_plots_draw_into_given_axes(results):
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_jacobian_norm(results, ax=ax) is ax
    fig = Figure()
    axes = fig.subplots(1, 3)
    assert plot_dimensionality(results, ax=axes) is fig


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
    assert "falls as selectivity rises" in row["direction"]
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
    assert set(claims["verdict"]) == {"inconclusive"}
    assert claims["note"].str.contains("too few trials").all()


def test_claims_with_absent_metrics_are_marked_not_tested(results):
    claims = evaluate_claims(results[results["metric"] != "jacobian_norm"], n_resamples=200)
    row = claims.set_index("key").loc["jacobian"]
    assert row["verdict"] == "not tested" and "jacobian_norm" in row["note"]


# ---------------------------------------------------------------------------------------------
# Report


def test_write_report_is_self_contained(results, tmp_path):
    failed = pd.DataFrame({"alpha": [100.0], "seed": [1], "error": ["RuntimeError: loss is NaN"]})
    path = write_report(results, tmp_path / "out", failed=failed, n_resamples=300)
    assert path == tmp_path / "out" / "report.html"
    text = path.read_text()
    # No external resources: every src= is a data URI.
    sources = re.findall(r"src\s*=\s*['\"]([^'\"]*)", text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert len(sources) == len(report.FIGURES)
    assert base64.b64decode(sources[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<link" not in text and "http" not in text
    assert text.index("Claims") < text.index("<figure")
    assert "RuntimeError: loss is NaN" in text
    pngs = sorted(p.name for p in (tmp_path / "out" / "figures").iterdir())
    assert pngs == sorted(f"{spec.name}.png" for spec in report.FIGURES)
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(summary.columns) == [
        "metric",
        "alpha",
        "layer",
        "corruption",
        "severity",
        "eps",
        "steps",
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
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "claims.csv",
        "figures",
        "report.html",
        "summary.csv",
    ]


def test_write_report_skips_figures_of_missing_metrics(results, tmp_path):
    table = results[~results["metric"].isin(["jacobian_norm", "fgsm_accuracy"])]
    source = tmp_path / "results.parquet"
    table.to_parquet(source)
    path = write_report(source, tmp_path / "out", n_resamples=200)
    text = path.read_text()
    skipped = text[text.index("Skipped figures") :]
    assert "jacobian_norm" in skipped and "fgsm_accuracy" in skipped
    assert not (tmp_path / "out" / "figures" / "jacobian_norm.png").exists()
    assert (tmp_path / "out" / "figures" / "pgd_accuracy.png").exists()
    assert "Not tested" in text


def test_report_module_does_not_need_torch():
    # Load report.py on its own (the package __init__ imports torch) and check torch stays unloaded.
    source = Path(report.__file__)
    code = (
        "import sys, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('report_alone', {str(source)!r})\n"
        "module = importlib.util.module_from_spec(spec); sys.modules[spec.name] = module\n"
        "spec.loader.exec_module(module)\n"
        "print(module.bootstrap_ci([1.0, 1.0]), 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1.0, 1.0, 1.0) False"

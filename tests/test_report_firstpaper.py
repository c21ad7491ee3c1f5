"""The first paper's report section (arXiv:2003.01262) on synthetic tables with planted answers:
equivalence of accuracy within the margin, a planted 3-point drop, the rotated-basis bound,
similarity below the seed-to-seed level, the improved-corruption count; every figure drawn with
its rows and "not measured" without them; the trial-folder loader and `report --margin`.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from typer.testing import CliRunner

from selectivity import schema
from selectivity.cli import app
from selectivity.report import (
    alpha_effects,
    evaluate_first_paper_claims,
    find_collapsed,
    load_trial_tables,
    plot_accuracy_vs_alpha,
    plot_corruption_panel,
    plot_layer_selectivity,
    plot_rotated_selectivity,
    plot_similarity,
    plot_training_curves,
    plot_unit_ablation,
    plot_unit_selectivity,
    write_report,
)
from selectivity.report.claims.firstpaper import improved_corruptions

ALPHAS = (-10.0, -1.0, -0.1, 0.0, 0.1, 1.0)
SEEDS = (0, 1, 2, 3)
LAYERS = ("stem.relu", "block1.relu", "head.relu")
CORRUPTIONS = ("gaussian_noise", "fog", "brightness", "contrast")
FRACTIONS = (0.0, 0.25, 0.5, 1.0)
N = 300  # resamples: enough for stable verdicts on these planted effects


def _z(alpha: float) -> float:
    """In [-1, 1], log-spaced in |alpha| like the grid."""
    return float(np.sign(alpha) * np.log10(abs(alpha) / 0.1 + 1) / np.log10(101))


def make_paper_results(drop: float = 0.0, rng_seed: int = 0, noise: float = 0.001) -> pd.DataFrame:
    """Every metric of the first paper's section, with planted answers.

    Accuracy: 0.9 at every alpha <= 0 (noise `noise`) except the lowest alpha, `drop` lower;
    every alpha > 0 is 0.03 lower. Selectivity and its rotated bound rise with alpha. Similarity
    to alpha = 0 falls as |alpha| grows, below the seed-to-seed 0.85 at the lowest alpha.
    Normalised corruption accuracy at severity 5 rises at the lowest alpha for 3 of 4 corruptions.
    """
    rng = np.random.default_rng(rng_seed)
    rows = []

    def add(alpha, seed, metric, value, **keys):
        rows.append({"alpha": alpha, "seed": seed, **schema.row(metric, value, **keys)})

    for alpha in ALPHAS:
        z = _z(alpha)
        for seed in SEEDS:
            acc = 0.9 + noise * rng.normal() - (0.03 if alpha > 0 else 0.0)
            acc -= drop if alpha == min(ALPHAS) else 0.0
            add(alpha, seed, "test_accuracy", acc, split="test", samples=500)
            si = 0.3 * (1 + 0.6 * z)
            add(alpha, seed, "selectivity", si, split="test", samples=500)
            add(alpha, seed, "selectivity_rotated", si + 0.1 + 0.002 * rng.normal(), samples=500)
            for i, layer in enumerate(LAYERS):
                add(alpha, seed, "selectivity", si * (0.5 + 0.5 * i), layer=layer, samples=500)
                add(
                    alpha,
                    seed,
                    "selectivity_rotated",
                    si * (0.5 + 0.5 * i) + 0.1,
                    layer=layer,
                    samples=500,
                )
                for metric in ("pwcca", "linear_cka"):
                    value = 1.0 if alpha == 0 else 0.95 - 0.3 * abs(z) + 0.005 * rng.normal()
                    add(alpha, seed, metric, value, layer=layer, samples=500)
                    if alpha == 0:
                        add(
                            alpha,
                            seed,
                            f"{metric}_seed_baseline",
                            0.85 + 0.005 * rng.normal(),
                            layer=layer,
                        )
                for layer_key in (layer, None) if i == 0 else (layer,):
                    for fraction in FRACTIONS:
                        add(
                            alpha,
                            seed,
                            "ablation_accuracy_most",
                            acc * (1 - 0.8 * fraction),
                            layer=layer_key,
                            fraction=fraction,
                        )
                        add(
                            alpha,
                            seed,
                            "ablation_accuracy_least",
                            acc * (1 - 0.2 * fraction),
                            layer=layer_key,
                            fraction=fraction,
                        )
                        for draw in range(3):
                            value = acc * (1 - 0.5 * fraction) + 0.01 * rng.normal()
                            add(
                                alpha,
                                seed,
                                "ablation_accuracy_random",
                                value,
                                layer=layer_key,
                                fraction=fraction,
                                draw=draw,
                            )
            for c, corruption in enumerate(CORRUPTIONS):
                for severity in (1, 5):
                    gain = 0.1 * (-z) if c < 3 else 0.1 * z  # the last one worsens as alpha falls
                    value = acc * (0.6 - 0.05 * severity + gain) + 0.002 * rng.normal()
                    add(
                        alpha,
                        seed,
                        "corruption_accuracy",
                        value,
                        corruption=corruption,
                        severity=severity,
                        samples=500,
                    )
    return schema.frame(rows, extra=("alpha", "seed"))


def make_epochs() -> pd.DataFrame:
    rows = []
    for alpha in ALPHAS:
        for seed in SEEDS:
            for epoch in range(4):
                rows.append(
                    {
                        "alpha": alpha,
                        "seed": seed,
                        "epoch": epoch,
                        "train_loss": 1.0 / (epoch + 1),
                        "val_accuracy": 0.5 + 0.1 * epoch,
                        "val_selectivity": 0.3 * (1 + 0.6 * _z(alpha)) * (epoch + 1) / 4,
                        "lr": 0.1,
                        "seconds": 1.0,
                    }
                )
    return pd.DataFrame(rows)


def make_units() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for alpha in ALPHAS:
        for seed in SEEDS:
            for layer in LAYERS:
                for unit in range(8):
                    si = float(np.clip(0.3 * (1 + 0.6 * _z(alpha)) + 0.1 * rng.normal(), 0, 1))
                    rows.append(
                        {"alpha": alpha, "seed": seed, "layer": layer, "unit": unit, "si": si}
                    )
    return pd.DataFrame(rows)


def _claims(table, margin=0.01):
    found = evaluate_first_paper_claims(table, find_collapsed(table), margin, n_resamples=N)
    return found.set_index("key")


def test_a_planted_equivalence_passes_and_raising_hurts():
    claims = _claims(make_paper_results())
    for alpha in (-10, -1, -0.1):
        row = claims.loc[f"no_accuracy_cost_alpha={alpha:g}"]
        assert row["verdict"] == "supported", row["note"]
        assert row["trials_used"].endswith("paired by seed")
        assert abs(row["estimate"]) < 0.005
    hurts = claims.loc["raising_hurts_smallest_alpha"]
    assert hurts["verdict"] == "supported" and hurts["x"] == "α = 0.1 against α = 0"
    assert hurts["estimate"] == pytest.approx(-0.03, abs=0.003)


def test_a_planted_three_point_drop_fails_the_equivalence():
    claims = _claims(make_paper_results(drop=0.03))
    row = claims.loc["no_accuracy_cost_alpha=-10"]
    assert row["verdict"] == "contradicted"
    assert row["ci_high"] < -0.01
    assert claims.loc["no_accuracy_cost_alpha=-1", "verdict"] == "supported"
    # The same drop passes when the margin is wider than it.
    assert (
        _claims(make_paper_results(drop=0.03), margin=0.05).loc[
            "no_accuracy_cost_alpha=-10", "verdict"
        ]
        == "supported"
    )


def test_noisy_accuracy_leaves_the_equivalence_inconclusive():
    claims = _claims(make_paper_results(noise=0.02))
    verdicts = {claims.loc[f"no_accuracy_cost_alpha={a:g}", "verdict"] for a in (-10, -1, -0.1)}
    assert verdicts <= {"inconclusive", "supported"} and "inconclusive" in verdicts


def test_the_rotated_bound_and_similarity_claims_read_the_planted_answers():
    claims = _claims(make_paper_results())
    assert claims.loc["rotated_bound_falls", "verdict"] == "supported"
    assert claims.loc["rotated_bound_falls", "estimate"] > 0.9
    for metric in ("pwcca", "linear_cka"):
        row = claims.loc[f"{metric}_below_seed_baseline"]
        assert row["verdict"] == "supported"
        assert row["estimate"] == pytest.approx(0.95 - 0.3 - 0.85, abs=0.01)


def test_similarity_at_the_seed_level_is_not_supported():
    table = make_paper_results()
    rows = table["metric"].isin(["pwcca", "linear_cka"]) & (table["alpha"] != 0)
    table.loc[rows, "value"] = 0.85 + 0.005 * np.random.default_rng(3).normal(size=rows.sum())
    claims = _claims(table)
    assert claims.loc["pwcca_below_seed_baseline", "verdict"] == "inconclusive"


def test_the_improved_corruption_count_on_a_planted_table():
    table = make_paper_results()
    found = improved_corruptions(table, n_resamples=N)
    assert (found["count"], found["n"], found["severity"], found["lowest"]) == (3, 4, 5, -10.0)
    assert found["low"] <= 3 <= found["high"]
    row = _claims(table).loc["corruptions_improved"]
    assert row["estimate"] == 3 and row["verdict"] == "supported"
    # Without severity 5 the highest severity present stands in.
    lower = table[~((table["metric"] == "corruption_accuracy") & (table["severity"] == 5))]
    assert improved_corruptions(lower, n_resamples=20)["severity"] == 1


def test_claims_without_their_rows_are_not_tested_and_say_not_measured():
    table = make_paper_results()
    bare = table[table["metric"] == "selectivity"]
    claims = _claims(bare)
    assert set(claims["verdict"]) == {"not tested"}
    assert all("not measured" in note or "needs" in note for note in claims["note"])


def test_alpha_effects_gives_factors_and_accuracy_changes():
    effects = alpha_effects(make_paper_results(drop=0.03), n_resamples=N).set_index("alpha")
    assert list(effects.index) == [a for a in ALPHAS if a != 0]
    ratio = 0.3 * (1 + 0.6 * _z(-10)) / 0.3
    assert effects.loc[-10.0, "selectivity_ratio"] == pytest.approx(ratio)
    assert effects.loc[-10.0, "selectivity_change"].startswith(
        f"fell by a factor of {1 / ratio:.2g}"
    )
    assert effects.loc[1.0, "selectivity_change"].startswith("rose by a factor")
    assert effects.loc[-10.0, "accuracy_change"] == pytest.approx(-0.03, abs=0.003)
    assert effects.loc[-10.0, "accuracy_change_high"] < 0
    assert alpha_effects(make_paper_results().query("alpha != 0")).empty


def test_groups_with_other_seeds_are_compared_unpaired():
    table = make_paper_results()
    table = table[~((table["alpha"] == -1.0) & (table["seed"] == 3))]
    effects = alpha_effects(table, n_resamples=N).set_index("alpha")
    assert not effects.loc[-1.0, "paired"] and effects.loc[-10.0, "paired"]
    assert (effects.loc[-1.0, "n_seeds"], effects.loc[-1.0, "n_control"]) == (3, 4)
    row = _claims(table).loc["no_accuracy_cost_alpha=-1"]
    assert row["trials_used"] == "all trials; unpaired" and row["seeds_per_alpha"] == "3, 4"
    assert row["verdict"] == "supported"


def test_a_margin_that_is_not_positive_is_refused():
    table = make_paper_results()
    with pytest.raises(ValueError, match="margin must be positive"):
        evaluate_first_paper_claims(table, find_collapsed(table), 0.0)


FIGURES = {
    plot_similarity: ("pwcca", "linear_cka", "pwcca_seed_baseline", "linear_cka_seed_baseline"),
    plot_rotated_selectivity: ("selectivity_rotated",),
    plot_accuracy_vs_alpha: ("test_accuracy",),
    plot_layer_selectivity: ("selectivity",),
    plot_corruption_panel: ("corruption_accuracy",),
    plot_unit_ablation: (
        "ablation_accuracy_most",
        "ablation_accuracy_least",
        "ablation_accuracy_random",
    ),
}


@pytest.mark.parametrize("plot", list(FIGURES), ids=lambda f: f.__name__)
def test_each_figure_renders_with_its_rows_and_refuses_without(plot):
    table = make_paper_results()
    drawn = plot(table)
    figure = drawn if isinstance(drawn, Figure) else drawn.figure
    figure.canvas.draw()  # renders through Agg: layout and text included
    without = table[~table["metric"].isin(FIGURES[plot])]
    with pytest.raises(ValueError):
        plot(without)


def test_similarity_without_the_seed_baseline_says_so():
    table = make_paper_results()
    table = table[~table["metric"].str.endswith("_seed_baseline")]
    figure = plot_similarity(table)
    assert any("not measured" in t.get_text() for ax in figure.axes for t in ax.texts)


def test_unit_ablation_draws_one_panel_per_layer_and_the_whole_network():
    figure = plot_unit_ablation(make_paper_results(), alpha=-1.0)
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["whole network", *LAYERS]
    # most, least, random: two lines with CI bands and one dashed random mean per panel.
    assert len(visible[0].lines) == 3
    with pytest.raises(ValueError, match="no rows at α = 5"):
        plot_unit_ablation(make_paper_results(), alpha=5.0)


def test_training_curves_and_unit_violins_render_and_refuse_empty_tables():
    figure = plot_training_curves(make_epochs())
    assert len(figure.axes) == 2
    figure.canvas.draw()
    ax = plot_unit_selectivity(make_units())
    ax.figure.canvas.draw()
    assert len(ax.collections) >= len(LAYERS) * 3
    for plot, empty in (
        (plot_training_curves, make_epochs().iloc[:0]),
        (plot_unit_selectivity, None),
    ):
        with pytest.raises(ValueError, match="needs"):
            plot(empty)


def test_the_report_says_not_measured_where_rows_are_missing(tmp_path):
    table = make_paper_results()
    table = table[table["metric"].isin(["test_accuracy", "selectivity"])]
    page = write_report(table, tmp_path, n_resamples=50).read_text()
    section = page[page.index("id='first-paper'") :]
    for title in (
        "Representational similarity",
        "Selectivity in an optimized basis",
        "Unit ablation",
        "Distribution of unit selectivity",
        "Normalised accuracy per corruption",
        "Selectivity and accuracy over training",
    ):
        assert f"<b>{title}" in section and "not measured" in section, title
    assert "id='accuracy_vs_alpha'" in section


def _sweep_folder(root, table):
    """A sweep folder as `selectivity sweep` leaves it: results.parquet and trial folders with
    trial.json, metrics.parquet and (for some trials) selectivity.parquet."""
    table.to_parquet(root / "results.parquet")
    epochs, units = make_epochs(), make_units()
    for alpha in ALPHAS:
        for seed in SEEDS:
            folder = root / f"alpha={alpha:g}" / f"seed={seed}"
            folder.mkdir(parents=True)
            (folder / "trial.json").write_text(
                json.dumps({"alpha": alpha, "seed": seed, "status": "done"})
            )
            mine = (epochs["alpha"] == alpha) & (epochs["seed"] == seed)
            epochs[mine].drop(columns=["alpha", "seed"]).to_parquet(folder / "metrics.parquet")
            if seed < 2:
                mine = (units["alpha"] == alpha) & (units["seed"] == seed)
                units[mine].drop(columns=["alpha", "seed"]).to_parquet(
                    folder / "selectivity.parquet"
                )
    failed = root / "alpha=5" / "seed=0"
    failed.mkdir(parents=True)
    (failed / "trial.json").write_text(json.dumps({"alpha": 5.0, "seed": 0, "status": "failed"}))
    make_epochs().to_parquet(failed / "metrics.parquet")


def test_the_loader_gathers_each_finished_trials_tables(tmp_path):
    table = make_paper_results()
    _sweep_folder(tmp_path, table)
    kept = load_trial_tables(tmp_path, table)
    assert len(kept.epochs) == len(ALPHAS) * len(SEEDS) * 4
    assert list(kept.epochs.columns[:3]) == ["alpha", "seed", "epoch"]
    assert set(kept.units["seed"]) == {0, 1}
    assert 5.0 not in set(kept.epochs["alpha"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_trial_tables(empty, table).epochs is None


def test_a_damaged_trial_table_is_left_out_with_a_warning(tmp_path):
    table = make_paper_results()
    _sweep_folder(tmp_path, table)
    damaged = tmp_path / "alpha=0" / "seed=1" / "metrics.parquet"
    damaged.write_bytes(damaged.read_bytes()[:100])
    (tmp_path / "alpha=1" / "seed=3" / "trial.json").write_text("{not json")
    with pytest.warns(UserWarning) as caught:
        kept = load_trial_tables(tmp_path, table)
    messages = [str(w.message) for w in caught]
    assert any(str(damaged) in m and "left out of the report" in m for m in messages)
    assert any("trial.json unreadable" in m for m in messages)
    assert len(kept.notes) == 2
    trials = kept.epochs[["alpha", "seed"]].drop_duplicates()
    assert len(trials) == len(ALPHAS) * len(SEEDS) - 2


@dataclass(frozen=True)
class Reported:
    """A sweep folder and what `selectivity report` did with it (`reported`)."""

    folder: Path
    code: int
    output: str


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Reported:
    """A sweep folder (`_sweep_folder`) of make_paper_results(drop=0.03), and in its r/ the report
    `selectivity report --margin 0.05` wrote of it with the trials' epoch and unit tables. Written
    once: the tests only read it."""
    folder = tmp_path_factory.mktemp("sweep")
    _sweep_folder(folder, make_paper_results(drop=0.03))
    done = CliRunner().invoke(
        app, ["report", str(folder), "--margin", "0.05", "--out", str(folder / "r")]
    )
    return Reported(folder, done.exit_code, done.output)


def test_the_report_has_the_section_with_every_figure(reported):
    out = reported.folder / "r"
    page = (out / "report.html").read_text()
    section = page[page.index("id='first-paper'") :]
    for name in (
        "similarity",
        "rotated_selectivity",
        "accuracy_vs_alpha",
        "layer_selectivity_vs_alpha",
        "unit_selectivity",
        "corruption_panel",
        "training_curves",
        *(f"unit_ablation_alpha={a:g}" for a in ALPHAS),
    ):
        assert f"id='{name}'" in section, name
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
    assert "not measured" not in section
    assert "seed-to-seed" in section and "improved 3 of 4 corruptions" in section
    claims = pd.read_csv(out / "claims.csv")
    assert {
        "no_accuracy_cost_alpha=-10",
        "raising_hurts_smallest_alpha",
        "rotated_bound_falls",
    } <= set(claims["key"])
    effects = pd.read_csv(out / "alpha_effects.csv")
    assert list(effects["alpha"]) == [a for a in ALPHAS if a != 0]


def test_report_command_takes_a_margin_and_refuses_a_bad_one(reported, run_cli):
    assert reported.code == 0, reported.output
    claims = pd.read_csv(reported.folder / "r" / "claims.csv").set_index("key")
    assert claims.loc["no_accuracy_cost_alpha=-10", "verdict"] == "supported"
    page = (reported.folder / "r" / "report.html").read_text()
    assert "id='training_curves'" in page and "id='unit_selectivity'" in page
    code, _, err = run_cli("report", reported.folder, "--margin", "0")
    assert code == 2
    assert (
        err.strip()
        == "selectivity: error: --margin must be an accuracy difference in (0, 1), got 0"
    )

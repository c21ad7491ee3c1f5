"""The report's second direction (robustness training -> selectivity): experiments of a sweep,
the method figures, the method claims and the HTML section, on synthetic tables with planted
truths.

`make_union` builds the table of one sweep that is the union of an alpha x seed grid and one
strength x seed grid per method (the baseline trial alpha 0, all strengths 0 shared). Planted:
selectivity moves with each method's strength by `trend[method]` (per unit of the top strength),
and the robustness the method is for rises by `bought[method]`; noise is small, so a planted
slope of 0.05 or more is found and a planted 0 is not.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from selectivity.report import (
    METHOD_CLAIMS,
    evaluate_claims,
    evaluate_method_claims,
    experiments,
    find_collapsed,
    load_results,
    plot_adversarial_training,
    plot_mix_training,
    plot_noise_training,
    summary_table,
    trial_columns,
    write_report,
)
from selectivity.report.catalog import METHOD_KEYS
from selectivity.report.claims.engine import holm
from selectivity.report.methods import unassigned

ALPHAS = (-1.0, 0.0, 1.0)
SEEDS = (0, 1, 2)
LEVELS = {
    "noise_std": (0.0, 0.1, 0.2),
    "mix_severity": (0.0, 1.0, 3.0),
    "adv_eps": (0.0, 2 / 255, 4 / 255),
}
LAYERS = ("conv1.relu", "conv2.relu", "fc.relu")
DEFAULT_TREND = {"noise_std": -0.1, "mix_severity": -0.1, "adv_eps": 0.1}
DEFAULT_BOUGHT = {"noise_std": 0.2, "mix_severity": 0.2, "adv_eps": 0.3}


def _trial_rows(trial: dict, sel: float, robust: dict, samples: int, acc: float) -> list[dict]:
    """Every metric of one trial (the schema's rows with the trial columns in front)."""
    rows = []

    def add(metric, value, **keys):
        rows.append(
            {**trial, "metric": metric, "split": "test", "samples": samples, "value": value, **keys}
        )

    add("test_accuracy", acc)
    add("chance_accuracy", 0.1)
    add("selectivity", sel)
    add("selectivity_live", sel + 0.01)
    add("silent_fraction", 0.05)
    for i, layer in enumerate(LAYERS):
        add("selectivity", sel + 0.02 * (i - 1), layer=layer)
        add("silent_fraction", 0.03 + 0.02 * i, layer=layer)
    corrupted = robust["corrupted"]
    for corruption, shift in (("gaussian_noise", 0.05), ("fog", -0.05)):
        for severity in (1, 3):
            value = corrupted + shift - 0.01 * severity
            add("corruption_accuracy", value, corruption=corruption, severity=severity)
    add("corruption_accuracy_mean", corrupted)
    add("corruption_accuracy_heldout_mean", robust["heldout"])
    for eps in (0.0, 2 / 255):
        add("fgsm_accuracy", acc if eps == 0 else robust["adversarial"], eps=eps)
    for steps in (0, 10):
        value = acc if steps == 0 else robust["adversarial"] - 0.05
        add("pgd_accuracy", value, eps=8 / 255, steps=steps, step_size=2 / 255)
    return rows


def make_union(
    trend: dict | None = None,
    bought: dict | None = None,
    methods: tuple[str, ...] = ("noise_std", "adv_eps"),
    levels: dict | None = None,
    seeds: tuple[int, ...] = SEEDS,
    samples: int = 500,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """The union sweep (module doc); `methods` are the strength columns swept."""
    trend = {**DEFAULT_TREND, **(trend or {})}
    bought = {**DEFAULT_BOUGHT, **(bought or {})}
    levels = {**LEVELS, **(levels or {})}
    rng = np.random.default_rng(rng_seed)
    trials = [{"alpha": a, **dict.fromkeys(methods, 0.0)} for a in ALPHAS]
    for key in methods:
        trials += [
            {"alpha": 0.0, **dict.fromkeys(methods, 0.0), key: v} for v in levels[key] if v > 0
        ]
    rows = []
    for trial in trials:
        for seed in seeds:

            def e(scale=0.005):
                return scale * rng.normal()

            sel = 0.3 + 0.1 * trial["alpha"] + e()
            robust = {"corrupted": 0.6 + e(), "heldout": 0.55 + e(), "adversarial": 0.2 + e()}
            for key in methods:
                z = trial[key] / max(levels[key])  # 0 .. 1
                sel += trend[key] * z
                target = {
                    "noise_std": "corrupted",
                    "mix_severity": "heldout",
                    "adv_eps": "adversarial",
                }
                robust[target[key]] += bought[key] * z
            acc = 0.9 - 0.05 * max(trial.get("adv_eps", 0.0) / max(levels["adv_eps"]), 0) + e()
            rows += _trial_rows({**trial, "seed": seed}, sel, robust, samples, acc)
    table = pd.DataFrame(rows)
    front = ["alpha", "seed", *methods]
    return table[[*front, *[c for c in table.columns if c not in front]]]


def _alpha_only(table: pd.DataFrame) -> pd.DataFrame:
    """The alpha x seed grid of a union table, as an alpha-only sweep would have written it."""
    keys = [k for k in METHOD_KEYS if k in table.columns]
    off = (table[keys] == 0).all(axis=1)
    return table[off].drop(columns=keys).reset_index(drop=True)


def _row(claims: pd.DataFrame, key: str, experiment: str | None = None) -> pd.Series:
    rows = claims[claims["key"] == key]
    if experiment is not None:
        rows = rows[rows["experiment"] == experiment]
    assert len(rows) == 1
    return rows.iloc[0]


def _method_claims(table: pd.DataFrame, **kwargs) -> pd.DataFrame:
    return evaluate_method_claims(table, n_resamples=500, **kwargs)


# ---------------------------------------------------------------------------------------------
# Trials and experiments
# ---------------------------------------------------------------------------------------------


def test_trial_columns_are_every_column_outside_the_schema_in_any_order():
    table = make_union()
    assert trial_columns(table) == ["alpha", "seed", "noise_std", "adv_eps"]
    shuffled = table[[*table.columns[::-1]]]
    assert sorted(trial_columns(shuffled)) == sorted(["alpha", "seed", "noise_std", "adv_eps"])
    per_trial = table.groupby(trial_columns(table))["value"].mean().reset_index()
    assert trial_columns(per_trial) == trial_columns(table)


def test_experiments_of_the_union_sweep_share_the_baseline():
    table = load_results(make_union())
    found = {e.name: e for e in experiments(table)}
    assert list(found) == ["alpha", "noise", "adversarial"]
    alpha = found["alpha"].table
    assert sorted(alpha["alpha"].unique()) == list(ALPHAS)
    assert (alpha[["noise_std", "adv_eps"]] == 0).all().all()
    noise = found["noise"].table
    assert sorted(noise["noise_std"].unique()) == list(LEVELS["noise_std"])
    assert (noise["alpha"] == 0).all() and (noise["adv_eps"] == 0).all()
    assert found["noise"].alpha == 0.0
    # The baseline (alpha 0, strengths 0) is in all three; nothing is left over.
    baseline = table[(table["alpha"] == 0) & (table["noise_std"] == 0) & (table["adv_eps"] == 0)]
    for experiment in found.values():
        assert len(experiment.table.merge(baseline)) == len(baseline)
    assert unassigned(table, list(found.values())).empty
    assert "noise_std = 0, 0.1, 0.2 × 3 seeds at α = 0" in found["noise"].describe()


def test_an_alpha_only_table_is_one_experiment_of_every_trial():
    table = load_results(make_union(methods=()))
    (only,) = experiments(table)
    assert only.name == "alpha" and not only.training
    assert len(only.table) == len(table)


def test_a_method_column_that_is_zero_everywhere_or_null_adds_no_experiment():
    table = make_union(methods=("noise_std",))
    table = table[table["noise_std"] == 0].copy()
    table["mix_severity"] = np.nan  # swept by nobody: a null is the key's default, 0
    found = experiments(table)
    assert [e.name for e in found] == ["alpha"]
    assert len(found[0].table) == len(table)


def test_method_trials_at_a_second_alpha_and_combined_methods_are_in_no_experiment():
    table = make_union()
    extra = table[(table["noise_std"] > 0)].copy()
    extra["alpha"] = 1.0  # noise training at alpha 1 besides alpha 0
    both = table[(table["noise_std"] > 0)].copy()
    both["adv_eps"] = 2 / 255  # two methods at once
    table = load_results(pd.concat([table, extra, both], ignore_index=True))
    found = experiments(table)
    noise = next(e for e in found if e.name == "noise")
    assert noise.alpha == 0.0 and (noise.table["alpha"] == 0).all()
    left = unassigned(table, found)
    assert len(left) == 2 * 2 * len(SEEDS)


def test_a_method_trained_at_one_nonzero_alpha_uses_that_alpha():
    table = make_union(methods=("noise_std",))
    on = table["noise_std"] > 0
    table.loc[on, "alpha"] = -1.0
    base = table[(table["alpha"] == -1.0) & (table["noise_std"] == 0)]
    found = {e.name: e for e in experiments(load_results(table))}
    assert found["noise"].alpha == -1.0
    assert sorted(found["noise"].table["noise_std"].unique()) == list(LEVELS["noise_std"])
    assert len(found["noise"].table) == on.sum() + len(base)


def test_swept_attacks_split_adversarial_training_into_one_experiment_each():
    table = make_union(methods=("adv_eps",))
    table.insert(2, "adv_method", "pgd")
    fgsm = table[table["adv_eps"] > 0].copy()
    fgsm["adv_method"] = "fgsm"
    table = load_results(pd.concat([table, fgsm], ignore_index=True))
    found = {e.name: e for e in experiments(table)}
    assert list(found) == ["alpha", "adversarial (fgsm)", "adversarial (pgd)"]
    for name in ("adversarial (fgsm)", "adversarial (pgd)"):
        levels = found[name].table["adv_eps"].unique()
        assert sorted(levels) == list(LEVELS["adv_eps"])  # each with the eps-0 baseline
    claims = _method_claims(table)
    assert list(claims["experiment"]) == ["adversarial (fgsm)", "adversarial (pgd)"]
    assert set(claims["verdict"]) == {"supported"}


def test_a_grid_crossing_attacks_with_eps_0_counts_each_baseline_once():
    table = make_union(methods=("adv_eps",))
    table.insert(2, "adv_method", "pgd")
    fgsm = table[(table["alpha"] == 0)].copy()  # eps 0 with fgsm too: the same training
    fgsm["adv_method"] = "fgsm"
    table = load_results(pd.concat([table, fgsm], ignore_index=True))
    found = {e.name: e for e in experiments(table)}
    for variant in ("fgsm", "pgd"):
        own = found[f"adversarial ({variant})"].table
        assert (own["adv_method"] == variant).all()
        assert own[["adv_eps", "seed"]].drop_duplicates().shape[0] == 3 * len(SEEDS)
    # With the method off the attack means nothing: the report says those trials are pooled.
    assert found["alpha"].pooled() == ["adv_method"]


# ---------------------------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------------------------


def test_planted_truths_are_supported():
    claims = _method_claims(make_union(methods=("noise_std", "mix_severity", "adv_eps")))
    assert list(claims["key"]) == [s.key for s in METHOD_CLAIMS]
    for key in claims["key"]:
        row = _row(claims, key)
        assert row["verdict"] == "supported", (key, row["note"])
        assert row["check_ci_low"] > 0
        assert row["n_trials"] == 9 and row["n_levels"] == 3 and row["seeds_per_level"] == "3"
    noise = _row(claims, "noise_training_lowers_selectivity")
    assert noise["estimate"] < 0 and noise["contrast"] < 0 and noise["strength"] == "noise_std"
    assert noise["direction"] == "μ_SI falls as noise_std rises"
    adversarial = _row(claims, "adversarial_training_raises_selectivity")
    assert adversarial["estimate"] > 0 and "PGD" in adversarial["check_statistic"]


def test_a_reversed_trend_is_contradicted():
    claims = _method_claims(make_union(trend={"noise_std": 0.1, "adv_eps": -0.1}))
    assert set(claims["verdict"]) == {"contradicted"}


def test_no_trend_is_inconclusive():
    claims = _method_claims(make_union(trend={"noise_std": 0.0, "adv_eps": 0.0}, rng_seed=2))
    assert set(claims["verdict"]) == {"inconclusive"}


@pytest.mark.parametrize(
    ("bought", "words"), [(0.0, "did not measurably raise"), (-0.2, "lowered")]
)
def test_a_method_that_buys_no_robustness_leaves_its_claim_untested(bought, words):
    claims = _method_claims(make_union(bought={"noise_std": bought}, rng_seed=1))
    noise = _row(claims, "noise_training_lowers_selectivity")
    assert noise["verdict"] == "not tested"
    assert f"Gaussian-noise augmentation {words} corrupted accuracy" in noise["note"]
    # The selectivity trend is there and still reported, it just does not decide anything.
    assert noise["ci_high"] < 0
    assert _row(claims, "adversarial_training_raises_selectivity")["verdict"] == "supported"


def test_too_few_strengths_or_trials_are_inconclusive_with_the_reason():
    claims = _method_claims(make_union(levels={"noise_std": (0.0, 0.2)}))
    noise = _row(claims, "noise_training_lowers_selectivity")
    assert noise["verdict"] == "inconclusive" and "2 noise_std values" in noise["note"]
    claims = _method_claims(make_union(seeds=(0,)))
    assert set(claims["verdict"]) == {"inconclusive"}
    assert (
        "too few trials (n = 3" in _row(claims, "adversarial_training_raises_selectivity")["note"]
    )


def test_too_few_samples_give_no_verdict():
    claims = _method_claims(make_union(samples=50))
    assert set(claims["verdict"]) == {"inconclusive"}
    assert all("too few samples" in note for note in claims["note"])


def test_absent_robustness_metric_means_not_tested():
    table = make_union(methods=("mix_severity",))
    table = table[table["metric"] != "corruption_accuracy_heldout_mean"]
    mix = _row(_method_claims(table), "mix_training_lowers_selectivity")
    assert mix["verdict"] == "not tested"
    assert "corruption_accuracy_heldout_mean" in mix["note"]


def test_adversarial_robustness_falls_back_to_fgsm_without_pgd():
    table = make_union(methods=("adv_eps",))
    table = table[table["metric"] != "pgd_accuracy"]
    row = _row(_method_claims(table), "adversarial_training_raises_selectivity")
    assert row["verdict"] == "supported" and "FGSM" in row["check_statistic"]


def test_a_robustness_value_missing_for_a_trial_is_inconclusive():
    table = make_union(methods=("noise_std",))
    gone = (table["metric"] == "corruption_accuracy_mean") & (table["noise_std"] == 0.2)
    gone &= table["seed"] == 0
    row = _row(_method_claims(table[~gone]), "noise_training_lowers_selectivity")
    assert row["verdict"] == "inconclusive" and "missing for 1 trial(s)" in row["note"]


def test_collapsed_method_trials_are_left_out():
    table = make_union(methods=("noise_std",))
    # The strongest noise with seed 0 collapsed: accuracy at chance, selectivity near 0. Kept in,
    # it would carry the falling trend on its own; its corrupted accuracy is no worse.
    hit = (table["noise_std"] == 0.2) & (table["seed"] == 0)
    table.loc[hit & (table["metric"] == "test_accuracy"), "value"] = 0.1
    table.loc[hit & table["metric"].isin(["selectivity", "selectivity_live"]), "value"] = 0.01
    collapse = find_collapsed(table)
    assert collapse.keys() == {(0.0, 0, 0.2)}
    assert list(collapse.trials.columns) == ["alpha", "seed", "noise_std", "reason"]
    row = _row(_method_claims(table), "noise_training_lowers_selectivity")
    assert row["n_collapsed_left_out"] == 1 and row["n_trials"] == 8
    assert "1 trial(s) near chance left out" in row["note"]


def test_units_a_method_silences_do_not_leave_an_accurate_trial_out():
    # Adversarial training silences most of a layer but keeps accuracy: the trials stay in the
    # claim (silencing units is part of what the method does to mu_SI); the silent-unit reading
    # leaves them out, and the live-unit reading is given beside the verdict.
    table = make_union(methods=("adv_eps",))
    strongest = table["adv_eps"] == table["adv_eps"].max()
    silent = strongest & (table["metric"] == "silent_fraction")
    table.loc[silent, "value"] = 0.7
    assert len(find_collapsed(table).trials) == len(set(table.loc[strongest, "seed"]))
    row = _row(_method_claims(table), "adversarial_training_raises_selectivity")
    assert row["n_collapsed_left_out"] == 0
    radii = set(table.loc[table["alpha"] == 0, "adv_eps"])
    assert row["n_trials"] == len(radii) * len(set(table["seed"]))
    assert row["n_silent_left_out"] == len(set(table["seed"]))
    assert row["verdict_live"] == "supported" and row["live_estimate"] > 0
    assert row["verdict_silent_rule"] in ("supported", "inconclusive")


# ---------------------------------------------------------------------------------------------
# The alpha-only report is unchanged; the alpha claims ignore method trials
# ---------------------------------------------------------------------------------------------


def test_alpha_claims_of_a_union_sweep_are_those_of_its_alpha_grid():
    union = make_union()
    alone = evaluate_claims(_alpha_only(union), n_resamples=300)
    table = load_results(union)
    alpha = experiments(table)[0].table
    mixed = evaluate_claims(alpha, n_resamples=300, collapse=find_collapsed(table))
    pd.testing.assert_frame_equal(alone, mixed)


def test_summary_of_a_union_sweep_groups_by_the_strengths():
    union = make_union()
    summary = summary_table(union, n_resamples=50)
    assert list(summary.columns[:4]) == ["metric", "alpha", "noise_std", "adv_eps"]
    noise = summary[(summary["metric"] == "selectivity") & summary["layer"].isna()]
    assert len(noise) == len(ALPHAS) + 2 + 2  # alpha grid, 2 noise and 2 eps levels > 0
    assert (noise["n"] == len(SEEDS)).all()
    alone = summary_table(_alpha_only(union), n_resamples=50)
    assert list(alone.columns[:3]) == ["metric", "alpha", "layer"]


# ---------------------------------------------------------------------------------------------
# Figures and the HTML section
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plot", "methods"),
    [
        (plot_noise_training, ("noise_std",)),
        (plot_mix_training, ("mix_severity",)),
        (plot_adversarial_training, ("adv_eps",)),
    ],
)
def test_method_figures_draw_four_panels(plot, methods):
    figure = plot(make_union(methods=methods))
    assert isinstance(figure, Figure) and len(figure.axes) == 4
    selectivity, layers, silent, robustness = figure.axes
    strengths = sorted(LEVELS[methods[0]])
    np.testing.assert_allclose(selectivity.lines[0].get_xdata(), strengths)
    assert len(layers.lines) == len(strengths)  # one line per strength
    assert [line.get_label() for line in silent.lines][:2] == ["mean over layers", "largest layer"]
    assert len(robustness.lines) == 3  # two robustness measures and clean accuracy


def test_method_figures_draw_into_given_axes_and_refuse_a_table_without_the_method():
    from matplotlib.figure import Figure as Canvas

    axes = Canvas().subplots(1, 4)
    assert plot_noise_training(make_union(), ax=axes) is axes[0].figure
    with pytest.raises(ValueError, match="no trials of mix training"):
        plot_mix_training(make_union())


def test_a_robustness_metric_absent_is_said_in_the_panel():
    table = make_union(methods=("noise_std",))
    table = table[table["metric"] != "corruption_accuracy"]
    robustness = plot_noise_training(table).axes[3]
    assert len(robustness.lines) == 2
    assert any("corruption_accuracy" in t.get_text() for t in robustness.texts)


UNION_METHODS = ("noise_std", "mix_severity", "adv_eps")


@pytest.fixture(scope="module")
def union_report(tmp_path_factory) -> Path:
    """The folder of the whole report of the union sweep of all three methods, written once (the
    tests only read it)."""
    out = tmp_path_factory.mktemp("union")
    write_report(make_union(methods=UNION_METHODS), out, n_resamples=200)
    return out


def test_report_of_a_union_sweep_has_the_section(union_report):
    page = (union_report / "report.html").read_text()
    assert "Robustness training → selectivity" in page
    for name in ("noise_training", "mix_training", "adversarial_training"):
        assert (union_report / "figures" / f"{name}.png").stat().st_size > 0
        assert f"id='{name}'" in page
    claims = pd.read_csv(union_report / "claims.csv")
    method_rows = claims[claims["experiment"].notna()]
    assert list(method_rows["strength"]) == ["noise_std", "mix_severity", "adv_eps"]
    assert set(method_rows["verdict"]) == {"supported"}
    summary = pd.read_csv(union_report / "summary.csv")
    assert {"noise_std", "mix_severity", "adv_eps"} <= set(summary.columns)
    assert "<b>In no experiment</b>" not in page


# The first paper's claims (key prefixes): its section shows its own claims table.
FIRST_PAPER_KEYS = (
    "rotated_bound_falls",
    "pwcca_below",
    "linear_cka_below",
    "no_accuracy_cost",
    "raising_hurts",
    "corruptions_improved",
)


def test_the_report_adjusts_over_every_claim_it_tests(union_report):
    # Multiple testing (issue 17): one Holm family over the papers', methods' and first paper's
    # claims of the report.
    claims = pd.read_csv(union_report / "claims.csv", keep_default_na=False)
    tested = claims[claims["verdict"] != "not tested"]
    p = pd.to_numeric(tested["p_value"], errors="coerce")
    # The family: every tested claim with a p-value (papers', methods' and the first paper's
    # tests); a claim decided by a CI alone stays out of it and says so.
    family = tested[p.notna()]
    np.testing.assert_allclose(pd.to_numeric(family["p_holm"]), holm(p[p.notna()].to_numpy()))
    assert (tested.loc[p.isna(), "verdict_holm"] == "no p-value").all()
    # Over the report's family the adjusted p of a claim is at least its own table's.
    alone = evaluate_method_claims(make_union(methods=UNION_METHODS), n_resamples=200)
    assert (tested["experiment"] != "").sum() == len(alone)
    page = (union_report / "report.html").read_text()
    # The first paper's section shows its own claims table, without the Holm line.
    first_paper = tested["key"].str.startswith(FIRST_PAPER_KEYS)
    assert page.count("Holm: ") == len(tested) - int(first_paper.sum())


def test_report_of_an_alpha_only_sweep_is_unchanged(tmp_path):
    table = _alpha_only(make_union())
    page = write_report(table, tmp_path, n_resamples=200).read_text()
    assert "Robustness training" not in page and "several experiments" not in page
    claims = pd.read_csv(tmp_path / "claims.csv")
    expected = evaluate_claims(table, n_resamples=200)
    assert list(claims.columns) == list(expected.columns)
    # The papers' claims come first; the first paper's section adds its own rows after them.
    assert list(claims["verdict"][: len(expected)]) == list(expected["verdict"])
    assert not list((tmp_path / "figures").glob("*_training*.png"))


def test_method_claims_say_when_collapse_could_not_be_checked():
    table = make_union(methods=("noise_std",))
    # Silent units do not leave a method trial out, so their absence leaves nothing unchecked.
    partly = table[table["metric"] != "silent_fraction"]
    row = _row(_method_claims(partly), "noise_training_lowers_selectivity")
    assert "collapse" not in row["note"]
    neither = partly[partly["metric"] != "chance_accuracy"]
    row = _row(_method_claims(neither), "noise_training_lowers_selectivity")
    assert "collapse not checked" in row["note"] and row["verdict"] == "supported"


def test_panels_say_what_the_table_lacks():
    table = make_union(methods=("mix_severity",))
    table = table[
        (table["metric"] != "silent_fraction")
        & ~((table["metric"] == "selectivity") & table["layer"].notna())
    ]
    figure = plot_mix_training(table)
    _, layers, silent, _ = figure.axes
    assert [t.get_text() for t in layers.texts] == ["no per-layer selectivity in the table"]
    assert [t.get_text() for t in silent.texts] == ["silent_fraction absent from the table"]


def test_report_skips_a_method_figure_without_selectivity(tmp_path):
    table = make_union(methods=("noise_std",))
    table = table[~table["metric"].isin(["selectivity", "selectivity_live"])]
    page = write_report(table, tmp_path, n_resamples=100).read_text()
    assert "Figure noise_training skipped" in page
    assert html.escape("needs metric(s) ['selectivity']") in page
    row = _row(pd.read_csv(tmp_path / "claims.csv"), "noise_training_lowers_selectivity")
    assert row["verdict"] == "not tested" and "selectivity" in row["note"]


def test_report_of_a_sweep_without_method_off_trials(tmp_path):
    """Every trial trains a method (no baseline): no alpha experiment, one per method."""
    table = make_union(methods=("noise_std", "adv_eps"))
    table = table[(table["noise_std"] > 0) | (table["adv_eps"] > 0)]
    assert [e.name for e in experiments(load_results(table))] == ["noise", "adversarial"]
    page = write_report(table, tmp_path, n_resamples=100).read_text()
    assert "Robustness training → selectivity" in page
    claims = pd.read_csv(tmp_path / "claims.csv")
    method = claims[claims["experiment"].notna()]
    assert set(method["verdict"]) == {"inconclusive"}  # 2 strengths each, no 0
    assert (claims[claims["experiment"].isna()]["verdict"] == "not tested").all()


def test_other_swept_keys_are_named_as_pooled(tmp_path):
    table = make_union(methods=("noise_std",))
    other = table.copy()
    other["seed"] += 10
    table = pd.concat([table.assign(lr=0.1), other.assign(lr=0.01)], ignore_index=True)
    found = {e.name: e for e in experiments(load_results(table))}
    assert found["noise"].pooled() == ["lr"] and found["alpha"].pooled() == ["lr"]
    assert "× 6 seeds at α = 0; pooled over lr as over seeds" in found["noise"].describe()
    alpha_only = _alpha_only(table)
    page = write_report(alpha_only, tmp_path, n_resamples=50).read_text()
    assert "Swept keys besides α and seed: lr." in page
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns[:3]) == ["metric", "alpha", "lr"]


def test_method_claims_read_a_results_file(tmp_path):
    table = make_union(methods=("noise_std",))
    table.to_parquet(tmp_path / "results.parquet")
    from_file = evaluate_method_claims(tmp_path / "results.parquet", n_resamples=100)
    pd.testing.assert_frame_equal(from_file, evaluate_method_claims(table, n_resamples=100))
    assert evaluate_method_claims(_alpha_only(table), n_resamples=100).empty


def test_constant_values_give_no_interval_and_say_so():
    table = make_union(methods=("noise_std",))
    flat = table.copy()
    flat.loc[flat["metric"] == "corruption_accuracy_mean", "value"] = 0.6
    row = _row(_method_claims(flat), "noise_training_lowers_selectivity")
    assert row["verdict"] == "not tested"
    assert "cannot be shown to have raised corrupted accuracy" in row["note"]
    flat = table.copy()
    flat.loc[(flat["metric"] == "selectivity") & flat["layer"].isna(), "value"] = 0.3
    row = _row(_method_claims(flat), "noise_training_lowers_selectivity")
    assert row["direction"] == "no monotone relation"
    assert row["verdict"] == "inconclusive" and "no usable bootstrap interval" in row["note"]


def test_the_collapsed_trials_table_writes_swept_values_in_their_short_form(tmp_path):
    table = make_union(methods=("adv_eps",), levels={"adv_eps": (0.0, 4 / 255, 8 / 255)})
    strongest = table["adv_eps"] == 8 / 255
    table.loc[strongest & (table["metric"] == "silent_fraction"), "value"] = 0.7
    page = write_report(table, tmp_path, n_resamples=50).read_text()
    section = page[page.index("Collapsed trials") :]
    assert "<td>8/255</td>" in section and "0.0313725" not in section

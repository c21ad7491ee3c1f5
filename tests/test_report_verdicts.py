"""How the report presents its verdicts (issue 17): one collapse policy with the live-unit and
silent-unit readings and the mark where they change a verdict, Holm-adjusted verdicts beside the
raw ones, the collapse section (with the captions' settings, ε-ball and cap notes), the PGD
claim on the strongest attack, the gradient-variability claim on active samples, and the gains
per corruption with the note on a held-out gain from few corruptions.

Synthetic tables with planted truths, from the builders of test_report and test_report_methods.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selectivity.catalog import TRAINING_SUBSET
from selectivity.report import evaluate_claims, evaluate_method_claims, experiments, write_report
from selectivity.report.claims.engine import holm, holm_verdicts
from selectivity.report.gains import concentration_note, corruption_gains, trained_on
from selectivity.report.html import MARK
from selectivity.report.stats import bootstrap_test, percentile_bootstrap
from test_report import C_COLLAPSED, make_collapsed_results, make_results
from test_report_methods import make_union


def _row(claims: pd.DataFrame, key: str) -> pd.Series:
    rows = claims[claims["key"] == key]
    assert len(rows) == 1
    return rows.iloc[0]


# ---------------------------------------------------------------------------------------------
# Multiple testing
# (The report's one family over all its claims: test_report_methods, on its union sweep's report.)


def test_holm_adjusts_known_p_values():
    # Sorted 0.01, 0.02, 0.04 (m = 3): 0.03, 0.04, 0.04 (made non-decreasing); a NaN counts as 1.
    np.testing.assert_allclose(holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])
    np.testing.assert_allclose(holm([0.5, np.nan]), [1.0, 1.0])
    np.testing.assert_allclose(holm([0.001]), [0.001])


def test_holm_verdicts_only_weaken_and_skip_untested_claims():
    claims = pd.DataFrame(
        {
            "verdict": ["supported", "contradicted", "supported", "inconclusive", "not tested"],
            "p_value": [0.001, 0.02, 0.2, 0.001, np.nan],
        }
    )
    out = holm_verdicts(claims)
    # Four claims tested: 0.001 x 4 (twice, tied), 0.02 x 2, 0.2 x 1 -> made non-decreasing.
    np.testing.assert_allclose(out["p_holm"][:4], [0.004, 0.04, 0.2, 0.004])
    assert np.isnan(out["p_holm"][4])
    assert list(out["verdict_holm"]) == [
        "supported",
        "contradicted",
        "inconclusive",
        "inconclusive",  # an inconclusive verdict never becomes supported
        "not tested",
    ]


def test_bootstrap_p_agrees_with_the_interval():
    rng = np.random.default_rng(4)
    for shift in (0.0, 0.3, 1.0):
        sample = rng.normal(shift, 1.0, size=30)
        low, high, p = bootstrap_test((sample,), np.mean, seed=1)
        assert (low, high) == percentile_bootstrap((sample,), np.mean, seed=1)
        assert (p < 0.05) == (low > 0 or high < 0)


# ---------------------------------------------------------------------------------------------
# One collapse policy, the other readings and the mark


@pytest.fixture(scope="module")
def collapsed_report(tmp_path_factory) -> Path:
    """The folder of make_collapsed_results()'s whole report, written once (the tests only read
    it)."""
    out = tmp_path_factory.mktemp("collapsed")
    write_report(make_collapsed_results(), out, n_resamples=200)
    return out


def test_a_verdict_that_the_collapse_rule_flips_carries_the_mark(collapsed_report):
    # One trial at alpha 10 has most of a layer silent (accuracy fine): kept by the policy, its
    # low mu_SI turns "the regularizer raises selectivity" inconclusive; the silent-unit rule
    # (leaving it out) and the live-unit reading say supported.
    page = (collapsed_report / "report.html").read_text()
    claims = pd.read_csv(collapsed_report / "claims.csv", keep_default_na=False)
    row = _row(claims, "regularizer_sign")
    assert row["verdict"] == "inconclusive"
    assert row["verdict_silent_rule"] == "supported" and row["verdict_live"] == "supported"
    assert row["hangs_on"] == "μ_SI over live units: supported; the silent-unit rule: supported"
    cells = re.findall(r"<tr>.*?</tr>", page, flags=re.S)
    sign = next(c for c in cells if "moves network selectivity in the sign" in c)
    assert MARK in sign and "marked" in sign
    assert html.escape("changes with μ_SI over live units: supported") in sign
    # A claim no reading changes has no mark.
    assert _row(claims, "corruption_mean")["hangs_on"] == ""
    steady = next(c for c in cells if "more accurate on corrupted images" in c)
    assert MARK not in steady
    # The policy is stated once, in the collapse section.
    assert page.count("One policy for every claim") == 1
    assert "kept; left out by the silent-unit rule only" in page


def test_report_shows_collapse_settings_binding_and_cap(collapsed_report):
    text = (collapsed_report / "report.html").read_text()
    collapsed = text[text.index("Collapsed trials (6 of 18)") : text.index("<h2>Figures")]
    assert collapsed.count("<tr><td>") == len(C_COLLAPSED)
    assert "60% of conv2.relu&#x27;s units silent" in collapsed and "Not checked" not in collapsed
    assert "The ε-ball never binds: the largest L∞ distance PGD reached is 0.001" in text
    assert "split test; samples per trial 500; PGD step size 0.0001." in text
    collapsed_results = make_collapsed_results()
    corrupted = collapsed_results[
        (collapsed_results["metric"] == "dimensionality_corruption")
        & (collapsed_results["layer"] == "fc.relu")
    ]
    near = int((corrupted["value"] >= 0.9 * 0.5).sum())
    assert 0 < near < len(corrupted)
    assert f"dimensionality_corruption at fc.relu in {near} of 18 trials (cap 0.5)" in text
    assert "conv1.relu in" not in text


def test_a_method_verdict_carried_by_silent_units_is_marked_and_named_per_layer():
    # Adversarial training silences fc.relu more the larger its radius: network mu_SI falls with
    # eps (contradicting the claim), while mu_SI over live units does not move.
    table = make_union(methods=("adv_eps",), trend={"adv_eps": 0.0}, rng_seed=3)
    z = (table["adv_eps"] / table["adv_eps"].max()).to_numpy()
    fc_silent = (table["metric"] == "silent_fraction") & (table["layer"] == "fc.relu")
    table.loc[fc_silent, "value"] = 0.1 + 0.5 * z[fc_silent]
    network = (table["metric"] == "selectivity") & table["layer"].isna()
    table.loc[network, "value"] -= 0.15 * z[network]
    fc = (table["metric"] == "selectivity") & (table["layer"] == "fc.relu")
    table.loc[fc, "value"] -= 0.45 * z[fc]
    live_fc = table[fc].assign(metric="selectivity_live", value=0.5)
    table = pd.concat([table, live_fc], ignore_index=True)
    row = _row(
        evaluate_method_claims(table, n_resamples=500), "adversarial_training_raises_selectivity"
    )
    assert row["verdict"] == "contradicted"
    assert row["verdict_live"] == "inconclusive"
    assert row["hangs_on"].startswith("μ_SI over live units: inconclusive")
    assert row["by_layer"].startswith("fc.relu (silent 10%–60%): layer μ_SI: contradicted")
    assert "live units: inconclusive" in row["by_layer"]
    assert "conv1.relu" not in row["by_layer"]  # its silent fraction does not move


def test_claims_without_mu_si_have_no_other_readings():
    claims = evaluate_claims(make_results(), n_resamples=200)
    for key in ("corruption_vs_clean", "adversarial_vs_corruption", "accuracy_positive_alpha"):
        row = _row(claims, key)
        assert row["verdict_live"] == "" and row["by_layer"] == "" and row["hangs_on"] == ""
    # Claims about mu_SI on a table without selectivity_live say the reading was not possible,
    # which is not a change of verdict.
    table = make_results()
    row = _row(
        evaluate_claims(table[table["metric"] != "selectivity_live"], n_resamples=200), "jacobian"
    )
    assert row["verdict_live"] == "not tested" and row["hangs_on"] == ""


# ---------------------------------------------------------------------------------------------
# The PGD claim on the strongest attack; gradient variability over active samples


def test_the_pgd_claim_reads_only_the_most_steps():
    # The planted trend lives in the weak attacks only; at 25 steps accuracy is noise.
    table = make_results()
    strongest = (table["metric"] == "pgd_accuracy") & (table["steps"] == 25)
    rng = np.random.default_rng(0)
    table.loc[strongest, "value"] = 0.3 + 0.01 * rng.normal(size=int(strongest.sum()))
    row = _row(evaluate_claims(table, n_resamples=500), "pgd")
    assert row["verdict"] == "inconclusive"
    assert "the most steps" in row["claim"]
    # Averaged over 1 to 25 steps (the former reading) the weak attacks would decide it.
    weak = table[~strongest]
    assert _row(evaluate_claims(weak, n_resamples=500), "pgd")["verdict"] == "supported"


def test_the_gradient_claim_reads_active_samples_and_says_when_it_cannot():
    table = make_results()
    old = table[table["metric"] == "gradient_variability_samples"]
    # Over active samples the variability falls with selectivity: the claim is contradicted.
    active = old.assign(metric="gradient_variability_active", value=lambda f: 3.0 - f["value"])
    row = _row(evaluate_claims(pd.concat([table, active]), n_resamples=300), "gradient_samples")
    assert row["verdict"] == "contradicted"
    assert "tested on gradient_variability_active" in row["note"]
    row = _row(evaluate_claims(table, n_resamples=300), "gradient_samples")
    assert row["verdict"] == "supported" and "partly by construction" in row["note"]
    with_neither = table[~table["metric"].str.startswith("gradient_variability_samples")]
    row = _row(evaluate_claims(with_neither, n_resamples=100), "gradient_samples")
    assert row["verdict"] == "not tested" and "gradient_variability_active" in row["note"]


# ---------------------------------------------------------------------------------------------
# Gains per corruption

# Held out of the default mix (speckle_noise, gaussian_blur): weather and digital corruptions;
# the noise and blur ones share a family with its operations, so they are not held out.
HELD_OUT = ("fog", "snow", "brightness", "contrast", "pixelate", "jpeg_compression")
SAME_FAMILY = ("gaussian_noise", "shot_noise", "defocus_blur")


def _mix_with_gains(gain: dict[str, float], method: str = "mix_severity") -> pd.DataFrame:
    """A mix sweep (or `method`'s) whose corruption rows gain `gain[c]` x (strength / top
    strength) per corruption, over HELD_OUT, SAME_FAMILY and the mix's operations TRAINING_SUBSET."""
    table = make_union(methods=(method,))
    table = table[table["metric"] != "corruption_accuracy"]
    trials = table[["alpha", "seed", method]].drop_duplicates()
    top = table[method].max()
    rng = np.random.default_rng(1)
    rows = []
    for _, trial in trials.iterrows():
        z = trial[method] / top
        for corruption in (*HELD_OUT, *SAME_FAMILY, *TRAINING_SUBSET):
            for severity in (1, 3):
                value = 0.5 + gain.get(corruption, 0.0) * z + 0.005 * rng.normal()
                rows.append(
                    {
                        **trial.to_dict(),
                        "metric": "corruption_accuracy",
                        "corruption": corruption,
                        "severity": severity,
                        "split": "test",
                        "samples": 500,
                        "value": value,
                    }
                )
    return pd.concat([table, pd.DataFrame(rows)], ignore_index=True)


def test_a_held_out_gain_from_one_corruption_gets_the_note(tmp_path):
    table = _mix_with_gains({"fog": 0.3, "contrast": 0.02, "gaussian_blur": 0.4})
    mix = next(e for e in experiments(table) if e.name == "mix")
    gains = corruption_gains(mix, n_resamples=200)
    assert list(gains["corruption"]) == [*HELD_OUT, *SAME_FAMILY, *TRAINING_SUBSET]
    assert list(gains.loc[gains["held_out"], "corruption"]) == list(HELD_OUT)
    assert set(gains.loc[gains["trained"], "corruption"]) == set(TRAINING_SUBSET)
    assert gains.set_index("corruption").loc["fog", "gain"] == pytest.approx(0.3, abs=0.02)
    note = concentration_note(gains, None, "held-out gain")
    assert note.startswith("9") and "of the held-out gain comes from fog (of 6 corruptions" in note
    assert "TRAINING_SUBSET" in trained_on(mix)[1]
    row = _row(evaluate_method_claims(table, n_resamples=300), "mix_training_lowers_selectivity")
    assert "of the held-out gain comes from fog" in row["note"]
    page = write_report(table, tmp_path, n_resamples=100).read_text()
    section = page[page.index("id='gains'") :]
    assert re.search(r"<td>fog</td><td>\+0\.(29|30)\d \[\+0\.\d+, \+0\.\d+\]</td>", section)
    assert re.search(r"<td>gaussian_blur</td><td>\+0\.(39|40)\d \[[^]]*\] <b>trained</b>", section)


def test_a_gain_from_two_corruptions_is_named_and_an_even_one_is_not():
    two = _mix_with_gains({"fog": 0.1, "contrast": 0.1, "snow": 0.03})
    mix = next(e for e in experiments(two) if e.name == "mix")
    note = concentration_note(corruption_gains(mix, n_resamples=100), None, "held-out gain")
    assert re.search(r"comes from (fog and contrast|contrast and fog)", note), note
    even = _mix_with_gains(dict.fromkeys(HELD_OUT, 0.1))
    mix = next(e for e in experiments(even) if e.name == "mix")
    assert concentration_note(corruption_gains(mix, n_resamples=100), None, "x") == ""
    row = _row(evaluate_method_claims(even, n_resamples=200), "mix_training_lowers_selectivity")
    assert "comes from" not in row["note"]


def test_the_mix_operations_come_from_a_swept_column_when_there_is_one():
    table = _mix_with_gains({"fog": 0.3})
    table.insert(3, "mix_corruptions", "fog, contrast")
    mix = next(e for e in experiments(table) if e.name == "mix")
    assert trained_on(mix)[0] == {"fog", "contrast"}
    gains = corruption_gains(mix, n_resamples=50)
    assert not gains.set_index("corruption").loc["fog", "held_out"]
    assert concentration_note(gains, None, "held-out gain") == ""  # fog is trained on here


def test_gains_need_corruption_rows_and_a_baseline_and_a_falling_gain_gets_no_note(tmp_path):
    table = make_union(methods=("mix_severity",))
    no_rows = table[table["metric"] != "corruption_accuracy"]
    mix = next(e for e in experiments(no_rows) if e.name == "mix")
    assert corruption_gains(mix, n_resamples=50).empty
    page = write_report(no_rows, tmp_path, n_resamples=50).read_text()
    assert "id='gains'" not in page
    no_baseline = table[table["mix_severity"] > 0]
    mix = next(e for e in experiments(no_baseline) if e.name == "mix")
    assert corruption_gains(mix, n_resamples=50).empty
    # A mix that lost accuracy on the held-out corruptions has no gain to attribute.
    lost = _mix_with_gains({"fog": -0.3})
    mix = next(e for e in experiments(lost) if e.name == "mix")
    assert concentration_note(corruption_gains(mix, n_resamples=50), None, "held-out gain") == ""


def test_a_noise_gain_from_the_noise_it_trained_on_is_named():
    table = _mix_with_gains({"gaussian_noise": 0.3, "shot_noise": 0.01}, method="noise_std")
    noise = next(e for e in experiments(table) if e.name == "noise")
    gains = corruption_gains(noise, n_resamples=50).set_index("corruption")
    assert gains.loc["gaussian_noise", "trained"] and gains.loc["fog", "held_out"]
    row = _row(evaluate_method_claims(table, n_resamples=200), "noise_training_lowers_selectivity")
    assert (
        "of the corrupted-accuracy gain comes from gaussian_noise (of 11 corruptions" in row["note"]
    )

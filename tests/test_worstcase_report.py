"""The report's worst-case parts on synthetic sweep tables: the PGD-vs-AutoAttack figure, the
flagged networks with their reasons, and the AutoAttack claim beside the PGD claim."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes

from selectivity import schema
from selectivity.report import evaluate_claims, write_report
from selectivity.report.figures import plot_pgd_vs_autoattack
from selectivity.report.worstcase import find_masked, masked_html, pgd_vs_autoattack

ALPHAS = (-10.0, -1.0, 0.0, 1.0, 10.0)
SEEDS = (0, 1, 2)
EPS = 8 / 255


def _sweep(aa_sign: float = 1.0, masked=(10.0, 2)) -> pd.DataFrame:
    """PGD accuracy rises with selectivity (alpha); AutoAttack follows with sign `aa_sign`.
    The trial `masked` has PGD accuracy at its clean accuracy and a flat loss."""
    rng = np.random.default_rng(0)
    rows = []
    for alpha in ALPHAS:
        for seed in SEEDS:
            z = np.sign(alpha) * math.log10(1 + abs(alpha)) / 1.05  # -1 .. 1
            pgd = 0.5 + 0.3 * z + rng.normal(0, 0.01)
            aa = 0.48 + aa_sign * 0.3 * z + rng.normal(0, 0.005)
            loss_end = 2.0
            if (alpha, seed) == masked:
                pgd, aa, loss_end = 0.95, 0.05, 0.0

            def add(metric, value, alpha=alpha, seed=seed, **keys):
                rows.append({"alpha": alpha, "seed": seed, "metric": metric, "value": value,
                             "split": "test", "samples": 400, **keys})  # fmt: skip

            add("selectivity", 0.3 + 0.2 * z)
            add("test_accuracy", 0.95)
            add("chance_accuracy", 0.1)
            for steps, value in ((0, 0.95), (25, pgd)):
                keys = {"eps": EPS, "steps": steps, "step_size": 2 / 255}
                add("pgd_accuracy", value, **keys)
                add("masking_pgd_accuracy", value, **keys)
                add("masking_pgd_loss", 0.0 if steps == 0 else loss_end, **keys)
            add("fgsm_accuracy", pgd + 0.1, eps=EPS, step_size=EPS)
            add("autoattack_accuracy", 0.95, eps=0.0)
            add("autoattack_accuracy_apgd-ce", aa + 0.02, eps=EPS)
            add("autoattack_accuracy_apgd-t", aa, eps=EPS)
            add("autoattack_accuracy", aa, eps=EPS)
            add("autoattack_accuracy", 0.0, eps=0.5)
            add("autoattack_accuracy_apgd-ce", 0.0, eps=0.5)
    return schema.frame(rows, extra=("alpha", "seed"))


def test_find_masked_flags_the_masked_trial_only_with_reasons():
    found = find_masked(_sweep())
    flagged = found[found["value"] == 1]
    assert set(zip(flagged["alpha"], flagged["seed"], strict=True)) == {(10.0, 2)}
    assert set(flagged["flag"]) == {"autoattack_below_pgd", "flat_loss"}
    reason = flagged.loc[flagged["flag"] == "autoattack_below_pgd", "reason"].item()
    assert "AutoAttack 0.050 vs PGD-25 0.950" in reason
    # Square never ran: not testable for any trial, and said so.
    square = found[found["flag"] == "square_stronger"]
    assert square["value"].isna().all() and len(square) == len(ALPHAS) * len(SEEDS)
    section = masked_html(_sweep())
    assert "1 of 15 networks flagged" in section and "α = 10, seed = 2" in section
    assert "Square did not run" in section


def test_pgd_vs_autoattack_pairs_and_figure():
    table = _sweep()
    pairs = pgd_vs_autoattack(table)
    assert len(pairs) == 15 and (pairs["eps"] == EPS).all() and (pairs["steps"] == 25).all()
    ax = plot_pgd_vs_autoattack(table)
    assert isinstance(ax, Axes) and "PGD vs AutoAttack" in ax.get_title()
    with pytest.raises(ValueError, match="autoattack_accuracy"):
        pgd_vs_autoattack(table[table["metric"] != "autoattack_accuracy"])
    with pytest.raises(ValueError, match="cannot group by"):
        plot_pgd_vs_autoattack(table, by="strength")


def _claim(claims, key):
    return claims[claims["key"] == key].iloc[0]


def test_autoattack_claim_agrees_or_disagrees_with_pgd():
    masked = (None, None)
    agreeing = evaluate_claims(_sweep(1.0, masked), n_resamples=200)
    assert _claim(agreeing, "pgd")["verdict"] == "supported"
    assert _claim(agreeing, "autoattack")["verdict"] == "supported"
    assert "agrees with the pgd claim" in _claim(agreeing, "autoattack")["note"]
    reversed_ = evaluate_claims(_sweep(-1.0, masked), n_resamples=200)
    assert _claim(reversed_, "autoattack")["verdict"] == "contradicted"
    assert "DISAGREES with the pgd claim (supported)" in _claim(reversed_, "autoattack")["note"]
    assert "DISAGREES with AutoAttack (contradicted)" in _claim(reversed_, "pgd")["note"]


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory) -> Path:
    """The folder of _sweep()'s whole report, written once (the tests only read it)."""
    out = tmp_path_factory.mktemp("sweep")
    write_report(_sweep(), out, n_resamples=100)
    return out


def test_report_has_the_figure_and_the_flags(sweep_report):
    text = (sweep_report / "report.html").read_text()
    assert "Gradient-masking flags (1 of 15 networks flagged)" in text
    assert (
        "id='pgd_vs_autoattack'" in text
        and (sweep_report / "figures" / "pgd_vs_autoattack.png").exists()
    )


def test_the_adversarial_training_section_draws_pgd_against_autoattack_per_radius(tmp_path):
    # The same synthetic trials, read as PGD training radii at alpha 0 instead of alphas.
    table = _sweep()
    radii = {alpha: i / 255 for i, alpha in enumerate(ALPHAS)}
    table.insert(0, "adv_eps", table["alpha"].map(radii))
    table["alpha"] = 0.0
    report = write_report(table, tmp_path, n_resamples=50).read_text()
    assert "pgd_vs_autoattack_adv_eps" in report
    assert (tmp_path / "figures" / "pgd_vs_autoattack_adv_eps.png").is_file()
    legend = plot_pgd_vs_autoattack(table, by="adv_eps").get_legend()
    assert legend.get_title().get_text() == "adv_eps"
    assert [t.get_text() for t in legend.get_texts()] == ["0", "1/255", "2/255", "3/255", "4/255"]


def test_an_alpha_only_sweep_has_no_per_radius_autoattack_figure(sweep_report):
    report = (sweep_report / "report.html").read_text()
    assert "pgd_vs_autoattack_adv_eps" not in report

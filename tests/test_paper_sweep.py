"""End to end on digits: a tiny alpha x seed sweep gets the first paper's rows in results.parquet
(the off-axis bound, unit ablation, and the similarity of each trial to its seed's alpha = 0
network, with the seed-to-seed baseline)."""

import numpy as np
import pandas as pd
import pytest
import torch

from configs import DIGITS
from selectivity import schema
from selectivity.comparison import REPRESENTATIONS, read_representations
from selectivity.similarity import linear_cka, pwcca
from selectivity.sweep import run_sweep

LAYERS = ["relu1", "relu2", "relu3"]
ANALYSIS = 120
FRACTIONS = (0.0, 0.5, 1.0)
DRAWS = 2

TINY = {
    **DIGITS,
    "milestones": (),
    "epochs": 1,
    "max_samples": 40,
    "analysis_samples": ANALYSIS,
    # Only clean and the new parts measure anything worth the time; the rest is minimal.
    "fgsm_eps": (0.0,),
    "pgd_steps": (0,),
    "dimensionality_pgd_steps": 0,
    "gradient_max_units": 2,
    "autoattack_version": "off",
    "offaxis_restarts": 2,
    "offaxis_steps": 5,
    "ablation_fractions": FRACTIONS,
    "ablation_draws": DRAWS,
    "workers": 1,
    "num_threads": 1,
    "alphas": (-1.0, 0.0),
    "seeds": (0, 1),
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper") / "sweep"
    run_sweep(root, [TINY], progress=False)
    return root, pd.read_parquet(root / "results.parquet")


def test_similarity_rows_pair_each_trial_with_its_seeds_alpha_zero_network(sweep):
    root, results = sweep
    assert results.attrs["notes"] == []
    pairs = results[results["metric"].isin(["pwcca", "linear_cka"])]
    # Per (alpha != 0 trial, layer), one row of each; none for alpha = 0.
    assert set(pairs["alpha"]) == {-1.0}
    assert sorted(pairs.groupby(["seed", "metric"])["layer"].apply(list).explode()) == sorted(
        LAYERS * 4
    )
    assert (pairs["samples"] == ANALYSIS).all() and (pairs["split"] == "test").all()
    for seed in (0, 1):
        reference, other = (
            read_representations(
                root / f"alpha={a}" / f"seed={seed}" / "evaluation" / REPRESENTATIONS
            )
            for a in ("0", "-1")
        )
        for metric, measure in (("pwcca", pwcca), ("linear_cka", linear_cka)):
            rows = schema.metric_rows(pairs, metric, seed=seed).set_index("layer")["value"]
            for layer in LAYERS:
                x, y = (
                    torch.from_numpy(np.asarray(r.responses[layer], dtype=np.float64))
                    for r in (reference, other)
                )
                expected = measure(x, y)
                assert rows[layer] == pytest.approx(expected, abs=1e-9)
                assert 0.0 <= rows[layer] <= 1.0


def test_seed_baseline_rows_belong_to_the_alpha_zero_trials(sweep):
    _, results = sweep
    for metric in ("pwcca_seed_baseline", "linear_cka_seed_baseline"):
        rows = schema.metric_rows(results, metric)
        assert set(rows["alpha"]) == {0.0} and set(rows["seed"]) == {0, 1}
        assert sorted(rows["layer"]) == sorted(LAYERS * 2)
        assert (rows["samples"] == ANALYSIS).all()
    # With two seeds, CKA (symmetric) gives both alpha = 0 trials the same baseline.
    cka = schema.metric_rows(results, "linear_cka_seed_baseline").pivot(
        index="layer", columns="seed", values="value"
    )
    assert cka[0].to_list() == pytest.approx(cka[1].to_list())


def test_offaxis_rows_per_trial_and_layer(sweep):
    _, results = sweep
    for metric in ("selectivity_rotated", "selectivity_axis"):
        rows = schema.metric_rows(results, metric)
        assert len(rows) == 4 * (len(LAYERS) + 1)
        assert (rows["samples"] == ANALYSIS).all()
    keys = ["alpha", "seed", "layer"]
    rotated = schema.metric_rows(results, "selectivity_rotated").set_index(keys)["value"]
    axis = schema.metric_rows(results, "selectivity_axis").set_index(keys)["value"]
    assert (rotated >= axis - 1e-12).all()


def test_ablation_rows_layout(sweep):
    _, results = sweep
    ablated = results[results["metric"].str.startswith("ablation_accuracy_")]
    per_trial = (len(LAYERS) + 1) * (2 + DRAWS) * len(FRACTIONS)
    assert ablated.groupby(["alpha", "seed"]).size().to_list() == [per_trial] * 4
    assert set(ablated["fraction"]) == set(FRACTIONS)
    ordered = ablated[ablated["metric"] != "ablation_accuracy_random"]
    assert set(ordered["draw"]) == {0}
    random = schema.metric_rows(ablated, "ablation_accuracy_random")
    assert set(random["draw"]) == set(range(DRAWS))
    # Nothing silenced: every order measures the same network on the same images.
    start = ablated[ablated["fraction"] == 0.0]
    assert start.groupby(["alpha", "seed"])["value"].nunique().eq(1).all()
    assert (ablated["samples"] == ANALYSIS).all()
    assert results["fraction"].dtype == "Float64" and results["draw"].dtype == "Int64"

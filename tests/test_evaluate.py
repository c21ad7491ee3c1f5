import json

import pandas as pd
import pytest
import torch

from configs import DIGITS, fast
from selectivity import masking
from selectivity.config import ConfigError, TrainConfig, build, parse_assignments
from selectivity.evaluation import eval_config, evaluate
from selectivity.metrics import pca_dimensionality
from selectivity.schema import COLUMNS
from selectivity.train import train

SMALL = {
    "corruptions": ("brightness", "gaussian_noise", "motion_blur"),
    "max_samples": 120,
    "analysis_samples": 60,
    "fgsm_eps": (0.0, 4 / 255, 16 / 255),
    "pgd_eps": 16 / 255,
    "pgd_step_size": 4 / 255,
    "pgd_steps": (0, 1, 5),
    "dimensionality_pgd_steps": 5,
    "gradient_max_units": 4,
    # AutoAttack's three attacks, on a few images.
    "autoattack_samples": 16,
    "autoattack_iterations": 5,
    "autoattack_target_classes": 1,
    "autoattack_square_queries": 50,
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval") / "run"
    config = build(TrainConfig, DIGITS, fast(3))
    train(config, folder, progress=False)
    return folder


def test_evaluation_table_has_every_metric(run_dir, digits_test_size):
    table = evaluate(
        run_dir, eval_config("quick", SMALL, {"generate_corruptions": True}), progress=False
    )
    assert list(table.columns) == list(COLUMNS)
    assert pd.read_parquet(run_dir / "evaluation.parquet").shape == table.shape
    metrics = set(table["metric"])
    assert metrics == {
        "test_accuracy",
        "val_accuracy",
        "chance_accuracy",
        "selectivity",
        "selectivity_live",
        "silent_fraction",
        "corruption_accuracy",
        "corruption_accuracy_mean",
        "corruption_accuracy_relative",
        "corruption_accuracy_heldout_mean",
        "corruption_heldout",
        "fgsm_accuracy",
        "fgsm_accuracy_relative",
        "pgd_accuracy",
        "pgd_accuracy_relative",
        "pgd_linf_mean",
        "pgd_linf_max",
        "jacobian_norm",
        "gradient_variability_samples",
        "gradient_variability_units",
        "gradient_variability_active",
        "dimensionality",
        "dimensionality_corruption",
        "dimensionality_adversarial",
        "dimensionality_cap",
        # the quick suite's AutoAttack (APGD-CE, APGD-T, Square), what ran, its own checks,
        # the per-image checks and the masking flags
        "autoattack_accuracy",
        "autoattack_accuracy_apgd-ce",
        "autoattack_accuracy_apgd-t",
        "autoattack_accuracy_square",
        "autoattack_ran_standard",
        "autoattack_ran_rand",
        "autoattack_switched_to_rand",
        "autoattack_iterations",
        "autoattack_eot_samples",
        "autoattack_target_classes",
        "autoattack_square_queries",
        "autoattack_zero_gradient_points",
        "autoattack_randomized_warning",
        "masking_output_change",
        "masking_pgd_accuracy",
        "masking_pgd_loss",
        "masking_zero_gradient_share",
        "masking_stuck_share",
        *(f"masking_{name}" for name in masking.FLAGS),
        # the first paper's off-axis bound and unit ablation
        "selectivity_rotated",
        "selectivity_axis",
        "ablation_accuracy_most",
        "ablation_accuracy_least",
        "ablation_accuracy_random",
    }
    corrupted = table[table["metric"] == "corruption_accuracy"]
    assert len(corrupted) == 3 * 5 and corrupted["value"].between(0, 1).all()
    layers = ["relu1", "relu2", "relu3"]
    for metric in (
        "dimensionality",
        "dimensionality_corruption",
        "dimensionality_adversarial",
        "gradient_variability_samples",
    ):
        rows = table[table["metric"] == metric]
        assert rows["layer"].tolist() == layers and rows["value"].between(0, 10).all(), metric
    fgsm = table[table["metric"] == "fgsm_accuracy"].set_index("eps")["value"]
    pgd = table[table["metric"] == "pgd_accuracy"].set_index("steps")["value"]
    assert fgsm.loc[0.0] == pgd.loc[0]  # both are clean accuracy on the same subset
    assert fgsm.is_monotonic_decreasing and pgd.is_monotonic_decreasing
    mean = corrupted["value"].mean()
    assert table.loc[
        table["metric"] == "corruption_accuracy_mean", "value"
    ].item() == pytest.approx(mean)
    # Normalised by clean accuracy on the same 120 images (FGSM at eps 0 is exactly that).
    assert table.loc[
        table["metric"] == "corruption_accuracy_relative", "value"
    ].item() == pytest.approx(mean / fgsm.loc[0.0])
    relative = table[table["metric"] == "pgd_accuracy_relative"].set_index("steps")["value"]
    assert relative.loc[0] == 1.0 and relative.loc[5] == pytest.approx(pgd.loc[5] / pgd.loc[0])
    fgsm_relative = table[table["metric"] == "fgsm_accuracy_relative"].set_index("eps")["value"]
    assert fgsm_relative.loc[4 / 255] == pytest.approx(fgsm.loc[4 / 255] / fgsm.loc[0.0])

    # Every row says what produced it.
    flag_rows = table["metric"].isin([f"masking_{name}" for name in masking.FLAGS])
    assert flag_rows.sum() == len(masking.FLAGS)
    # all but chance_accuracy and the flags (read from other rows)
    assert table["split"].notna().sum() == len(table) - 1 - len(masking.FLAGS)
    assert (table.loc[table["metric"] == "val_accuracy", "split"] == "val").all()
    assert table.loc[table["metric"] == "chance_accuracy", "value"].item() == 0.1
    assert (table.loc[table["metric"] == "test_accuracy", "samples"] == digits_test_size).all()
    attacked = table[table["metric"].str.startswith(("fgsm", "pgd"))]
    assert (attacked["samples"] == 120).all()
    fgsm_rows = table[table["metric"] == "fgsm_accuracy"]
    assert (fgsm_rows["step_size"] == fgsm_rows["eps"]).all()
    pgd_rows = table[table["metric"].str.startswith("pgd")]
    assert (pgd_rows["step_size"] == 4 / 255).all() and len(pgd_rows) == 3 * 4
    reached = table[table["metric"] == "pgd_linf_max"].set_index("steps")["value"]
    assert reached.loc[0] == 0 and reached.loc[1] == pytest.approx(4 / 255, abs=1e-6)
    assert (reached <= 16 / 255 + 1e-6).all() and reached.loc[5] == pytest.approx(
        16 / 255, abs=1e-6
    )
    mean_reached = table[table["metric"] == "pgd_linf_mean"].set_index("steps")["value"]
    assert (mean_reached <= reached).all()
    # Each dimensionality row has its cap beside it, from N = 60 images and the layer's size.
    sizes = {"relu1": 16 * 16 * 16, "relu2": 32 * 8 * 8, "relu3": 64}
    caps = table[table["metric"] == "dimensionality_cap"]
    assert len(caps) == 3 * 3 and (caps["samples"] == 60).all()
    for _, row in caps.iterrows():
        assert row["value"] == min(59, sizes[row["layer"]]) / sizes[row["layer"]]
    for metric in ("dimensionality", "dimensionality_corruption", "dimensionality_adversarial"):
        rows = table[table["metric"] == metric].reset_index(drop=True)
        beside = caps[
            caps[["corruption", "eps"]].isna().all(axis=1)
            if metric == "dimensionality"
            else caps["corruption"].notna()
            if metric == "dimensionality_corruption"
            else caps["eps"].notna()
        ].reset_index(drop=True)
        assert (rows["value"] <= beside["value"] + 1e-12).all(), metric
        assert (rows["samples"] == 60).all()
    # Silent units in plain sight: live selectivity beside the papers' mu_SI.
    for layer in layers:
        si, live, silent = (
            table.loc[(table["metric"] == m) & (table["layer"] == layer), "value"].item()
            for m in ("selectivity", "selectivity_live", "silent_fraction")
        )
        assert 0 <= silent <= 1 and si == pytest.approx(live * (1 - silent))


def test_dimensionality_cap_by_hand():
    from selectivity.evaluation import dimensionality_cap

    assert dimensionality_cap(10, 50) == 9 / 50  # N - 1 = 9 directions of 50
    assert dimensionality_cap(51, 50) == 1.0 and dimensionality_cap(1000, 64) == 1.0
    # The cap binds: 10 random samples of 50 dims need all 9 directions for 100% variance.
    gen = torch.Generator().manual_seed(0)
    assert pca_dimensionality(torch.randn(10, 50, generator=gen), 1.0) == dimensionality_cap(10, 50)


def test_pgd_step_size_auto_and_analysis_samples_all():
    config = eval_config("quick", {"pgd_step_size": "auto", "pgd_eps": 8 / 255})
    assert config.pgd_step(25) == pytest.approx(2.5 * (8 / 255) / 25)
    assert eval_config("full", {"pgd_step_size": "1e-4"}).pgd_step(25) == 1e-4
    parsed = parse_assignments(["pgd_step_size=auto", "analysis_samples=all"])
    assert parsed == {"pgd_step_size": "auto", "analysis_samples": "all"}
    assert eval_config("full", parsed).analysis_samples == "all"
    for bad in ({"pgd_step_size": "fast"}, {"pgd_step_size": 0}, {"analysis_samples": "most"}):
        with pytest.raises(ConfigError):
            eval_config("full", bad)


def test_evaluation_resumes_from_finished_parts(run_dir):
    config = eval_config("quick", SMALL, {"generate_corruptions": True})
    first = evaluate(run_dir, config, progress=False)
    parts = run_dir / "evaluation"
    kept = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    (parts / "pgd.parquet").unlink()
    second = evaluate(run_dir, config, progress=False)
    pd.testing.assert_frame_equal(first, second)
    after = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    assert all(after[name] == stamp for name, stamp in kept.items() if name != "pgd.parquet")
    assert not list(run_dir.rglob("*.tmp"))


def test_without_corruptions_the_part_is_skipped_with_a_note(run_dir, digits_test_size):
    without = {k: v for k, v in SMALL.items() if k != "corruptions"}
    table = evaluate(
        run_dir, eval_config("quick", without, {"analysis_samples": "all"}), progress=False
    )
    assert "corruption_accuracy" not in set(table["metric"])
    assert any("corruptions skipped" in note for note in table.attrs["notes"])
    # analysis_samples=all: the whole test set, and the rows say so.
    analysed = table[table["metric"].isin(["jacobian_norm", "dimensionality"])]
    assert (analysed["samples"] == digits_test_size).all()


def test_cli_evaluate_prints_a_summary(run_dir, run_cli):
    sets = [
        f"--set={k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
        for k, v in SMALL.items()
    ]
    code, out, err = run_cli(
        "evaluate", run_dir, "--suite", "quick", "--generate-corruptions", "--quiet", *sets
    )
    assert code == 0, err
    assert "clean accuracy" in out and "PGD accuracy" in out and "evaluation.parquet" in out
    assert "step 0.0157 (4/255)" in out and "the eps-ball binds" in out and "step = eps" in out
    assert "mu_SI over live units" in out and "N=60: cap" in out
    assert "masking autoattack_below_pgd" in out and "masking flat_loss" in out
    code, _, err = run_cli("evaluate", run_dir, "--set", "epochs=3")
    assert code == 2 and "evaluation keys" in err


def test_an_evaluation_with_other_settings_is_replaced_and_said_so(run_dir):
    first = eval_config("quick", SMALL, {"max_samples": 100})
    evaluate(run_dir, first, progress=False, clean_only=True)
    again = evaluate(run_dir, first, progress=False, clean_only=True)
    assert again.attrs["notes"] == []  # the same settings: the parts are kept, nothing to say
    other = eval_config("quick", SMALL, {"max_samples": 90, "fgsm_eps": (0.0,)})
    table = evaluate(run_dir, other, progress=False, clean_only=True)
    assert table.attrs["notes"] == [
        f"replaced the evaluation in {run_dir / 'evaluation'}, made with other settings "
        "(fgsm_eps, max_samples)"
    ]
    stamp = json.loads((run_dir / "evaluation" / "config.json").read_text())
    assert stamp["config"]["eval"]["max_samples"] == 90

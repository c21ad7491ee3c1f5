import pandas as pd
import pytest

from selectivity.config import TrainConfig, build, train_preset
from selectivity.evaluate import COLUMNS, eval_config, evaluate
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
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval") / "run"
    config = build(
        TrainConfig, train_preset("digits"), {"epochs": 3, "milestones": (), "num_threads": 1}
    )
    train(config, folder, progress=False)
    return folder


def test_evaluation_table_has_every_metric(run_dir):
    table = evaluate(
        run_dir, eval_config("quick", SMALL, {"generate_corruptions": True}), progress=False
    )
    assert list(table.columns) == COLUMNS
    assert pd.read_parquet(run_dir / "evaluation.parquet").shape == table.shape
    metrics = set(table["metric"])
    assert metrics == {
        "test_accuracy",
        "val_accuracy",
        "selectivity",
        "corruption_accuracy",
        "corruption_accuracy_mean",
        "corruption_accuracy_relative",
        "fgsm_accuracy",
        "pgd_accuracy",
        "jacobian_norm",
        "gradient_variability_samples",
        "gradient_variability_units",
        "dimensionality",
        "dimensionality_corruption",
        "dimensionality_adversarial",
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


def test_without_corruptions_the_part_is_skipped_with_a_note(run_dir):
    table = evaluate(
        run_dir,
        eval_config("quick", {k: v for k, v in SMALL.items() if k != "corruptions"}),
        progress=False,
    )
    assert "corruption_accuracy" not in set(table["metric"])
    assert any("corruptions skipped" in note for note in table.attrs["notes"])


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
    code, _, err = run_cli("evaluate", run_dir, "--set", "epochs=3")
    assert code == 2 and "evaluation keys" in err

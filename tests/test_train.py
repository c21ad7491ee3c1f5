import json

import pandas as pd
import pytest
import torch

from configs import digits_config
from messages import raises
from selectivity import measure as measure_module
from selectivity.files import FolderError
from selectivity.runs import load_model
from selectivity.train import train


def test_run_folder_contents(tmp_path):
    summary = train(digits_config(), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {
        "config.json",
        "metrics.parquet",
        "checkpoint_best.pt",
        "checkpoint_last.pt",
        "summary.json",
    }
    metrics = pd.read_parquet(run / "metrics.parquet")
    assert list(metrics["epoch"]) == [0, 1, 2]
    assert {
        "train_loss",
        "train_cross_entropy",
        "val_accuracy",
        "val_selectivity",
        "lr",
        "seconds",
    } <= set(metrics.columns)
    assert metrics["lr"].tolist() == pytest.approx([0.05, 0.05, 0.005])
    assert summary["val_accuracy"] == metrics["val_accuracy"].max()
    assert (
        json.loads((run / "summary.json").read_text())["test_accuracy"] == summary["test_accuracy"]
    )
    assert summary["test_accuracy"] > 0.5


@pytest.mark.parametrize(
    "keys",
    [
        {"alpha": -1.0},
        # Each robustness-training method draws from the run's generator: resume must be exact too.
        {"noise_std": 0.2},
        {"mix_severity": 1, "mix_width": 1},
        {"adv_eps": 4 / 255, "adv_steps": 2},
        {"adv_eps": 4 / 255, "adv_method": "fgsm", "adv_fraction": 0.5},
    ],
    ids=["regularizer", "noise", "mix", "pgd", "fgsm"],
)
def test_same_seed_same_numbers_and_resume_is_exact(tmp_path, monkeypatch, keys):
    # Two epochs, the lr dropping for the second: the resumed epoch starts from the first one's
    # weights, momentum, schedule and generator state.
    config = digits_config(**keys, epochs=2, milestones=(1,))
    train(config, tmp_path / "a", progress=False)

    # Interrupt the second run after its first epoch's checkpoint: the second validation fails.
    real = measure_module.measure_selectivity
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr("selectivity.train.measure_selectivity", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "b", progress=False)
    monkeypatch.setattr("selectivity.train.measure_selectivity", real)
    assert len(pd.read_parquet(tmp_path / "b" / "metrics.parquet")) == 1
    train(config, tmp_path / "b", progress=False)

    a = pd.read_parquet(tmp_path / "a" / "metrics.parquet").drop(columns="seconds")
    b = pd.read_parquet(tmp_path / "b" / "metrics.parquet").drop(columns="seconds")
    pd.testing.assert_frame_equal(a, b)
    _, model_a, _ = load_model(tmp_path / "a", "last")
    _, model_b, _ = load_model(tmp_path / "b", "last")
    for (name, pa), pb in zip(
        model_a.state_dict().items(), model_b.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), name


def test_a_folder_keeps_its_config(tmp_path):
    train(digits_config(epochs=1, milestones=()), tmp_path / "run", progress=False)
    with raises(FolderError, str(tmp_path / "run"), "alpha: 0.0", "1.0"):
        train(digits_config(epochs=1, milestones=(), alpha=1.0), tmp_path / "run", progress=False)


def test_alpha_moves_selectivity_in_its_direction(tmp_path):
    selectivity = {}
    for alpha in (-10.0, 0.0, 10.0):
        summary = train(
            digits_config(alpha=alpha, epochs=4, milestones=()),
            tmp_path / str(alpha),
            progress=False,
        )
        selectivity[alpha] = summary["test_selectivity"]
    assert selectivity[-10.0] < selectivity[0.0] < selectivity[10.0]


def test_nan_loss_is_reported(tmp_path):
    from selectivity.train import TrainingDiverged

    with raises(TrainingDiverged, "loss"):
        train(digits_config(lr=1e30, epochs=1, milestones=()), tmp_path / "run", progress=False)


def test_channels_last_training_matches_the_default_layout(tmp_path):
    default = train(digits_config(alpha=-1.0), tmp_path / "nchw", progress=False)
    nhwc = train(digits_config(alpha=-1.0, channels_last=True), tmp_path / "nhwc", progress=False)
    # Same data order and initialisation; only the float summation order differs.
    assert nhwc["test_accuracy"] == pytest.approx(default["test_accuracy"], abs=0.03)
    assert nhwc["test_selectivity"] == pytest.approx(default["test_selectivity"], abs=0.02)
    _, model, _ = load_model(tmp_path / "nhwc", "best")
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 10)

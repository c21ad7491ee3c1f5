"""Adversarially trained runs keep the epoch of best robust validation accuracy (PGD on the
validation split), record it every epoch, and say in summary.json which rule kept the epoch."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from selectivity.config import ConfigError, TrainConfig, build, parse_assignments, train_preset
from selectivity.measure import accuracy
from selectivity.robust import validation_attack
from selectivity.runs import RunError, load_checkpoint, save_checkpoint
from selectivity.train import train

FAST = {"epochs": 3, "milestones": (2,), "num_threads": 1}
ADV = {"adv_eps": 4 / 255, "adv_steps": 1, "adv_method": "fgsm"}


def digits_config(**overrides) -> TrainConfig:
    return build(TrainConfig, train_preset("digits"), FAST, overrides)


def test_the_rule_follows_adv_eps_unless_set():
    assert digits_config().checkpoint_rule() == "clean"
    assert digits_config(**ADV).checkpoint_rule() == "robust"
    assert digits_config(**ADV, checkpoint_metric="clean").checkpoint_rule() == "clean"
    assert parse_assignments(["checkpoint_metric=robust"]) == {"checkpoint_metric": "robust"}
    attack = validation_attack(digits_config(**ADV, checkpoint_pgd_steps=4))
    assert (attack.eps, attack.steps, attack.random_start) == (4 / 255, 4, True)
    assert attack.step_size == pytest.approx(2.5 * (4 / 255) / 4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"checkpoint_metric": "best"}, "checkpoint_metric must be auto, clean or robust"),
        ({"checkpoint_metric": "robust"}, "checkpoint_metric robust needs adv_eps > 0"),
        ({"checkpoint_pgd_steps": 0}, "checkpoint_pgd_steps must be >= 1"),
        ({"checkpoint_samples": 0}, "checkpoint_samples must be >= 1"),
    ],
)
def test_bad_checkpoint_keys_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        digits_config(**overrides)


def _robust_is_clean_error(monkeypatch) -> list[int]:
    """Make robust validation accuracy 1 - clean accuracy on the attacked images, so that the
    robust-best epoch is the clean-worst one; returns the sizes of the attacked sets."""
    sizes: list[int] = []

    def inverted(model, images, attack, batch_size, device, generator=None):
        sizes.append(len(images))
        return 1.0 - accuracy(model, images, batch_size, device)

    monkeypatch.setattr("selectivity.train.accuracy_under_attack", inverted)
    return sizes


def test_an_adversarial_run_keeps_the_robust_best_epoch(tmp_path, monkeypatch):
    sizes = _robust_is_clean_error(monkeypatch)
    config = digits_config(**ADV, checkpoint_samples=10**6)  # the whole validation split
    summary = train(config, tmp_path / "run", progress=False)
    metrics = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    robust, clean = metrics["val_robust_accuracy"], metrics["val_accuracy"]
    assert robust.tolist() == pytest.approx((1 - clean).tolist())
    assert clean.nunique() > 1  # else the two rules could not disagree
    assert summary["best_epoch"] == int(robust.idxmax()) != int(clean.idxmax())
    assert summary["checkpoint_metric"] == "robust"
    assert summary["val_robust_accuracy"] == pytest.approx(robust.max())
    assert summary["val_accuracy"] == pytest.approx(clean[summary["best_epoch"]])
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary
    best = load_checkpoint(tmp_path / "run" / "checkpoint_best.pt", kind="best")
    assert best["epoch"] == summary["best_epoch"] and best["checkpoint_metric"] == "robust"
    assert len(set(sizes)) == 1 and len(sizes) == 3

    # --set checkpoint_metric=clean: the clean-best epoch, robust accuracy still recorded.
    clean_run = train(
        digits_config(**ADV, checkpoint_samples=10**6, checkpoint_metric="clean"),
        tmp_path / "clean",
        progress=False,
    )
    metrics = pd.read_parquet(tmp_path / "clean" / "metrics.parquet")
    assert clean_run["checkpoint_metric"] == "clean"
    assert clean_run["best_epoch"] == int(metrics["val_accuracy"].idxmax())
    assert metrics["val_robust_accuracy"].notna().all()


def test_robust_validation_attacks_a_fixed_subset_of_the_asked_size(tmp_path, monkeypatch):
    sizes = _robust_is_clean_error(monkeypatch)
    train(digits_config(**ADV, epochs=2, checkpoint_samples=40), tmp_path / "run", progress=False)
    assert sizes == [40, 40]


def test_real_robust_validation_is_an_accuracy_and_clean_runs_have_none(tmp_path):
    summary = train(digits_config(**ADV, epochs=1), tmp_path / "adv", progress=False)
    assert 0 <= summary["val_robust_accuracy"] <= 1
    plain = train(digits_config(epochs=1), tmp_path / "plain", progress=False)
    assert plain["checkpoint_metric"] == "clean" and plain["val_robust_accuracy"] is None
    metrics = pd.read_parquet(tmp_path / "plain" / "metrics.parquet")
    assert math.isnan(metrics["val_robust_accuracy"].item())


def test_a_checkpoint_from_before_robust_selection_is_not_resumed(tmp_path):
    config = digits_config(**ADV, epochs=1)
    train(config, tmp_path / "run", progress=False)
    path = tmp_path / "run" / "checkpoint_last.pt"
    state = load_checkpoint(path, kind="last")
    del state["checkpoint_metric"]  # as written before the key existed: the best clean epoch
    save_checkpoint(path, state)
    with pytest.raises(RunError, match=r"kept the best clean validation epoch.*robust"):
        train(config, tmp_path / "run", progress=False)
    assert torch.equal(load_checkpoint(path, kind="last")["torch_rng"], state["torch_rng"])

"""AutoAttack part and gradient-masking flags: a network with masked gradients is flagged and
still broken, a plain one is not flagged, and an interrupted part resumes to the same numbers."""

import json
import math

import pandas as pd
import pytest
from torch import nn

from configs import DIGITS, fast
from messages import raises
from selectivity import masking
from selectivity.config import ConfigError, TrainConfig, build
from selectivity.evaluation import eval_config, evaluate_model, run_settings
from selectivity.train import train_model

# The quick suite's AutoAttack (APGD-CE, APGD-T) on 48 images, at 16/255 and at 0.5.
CONFIG = {
    "max_samples": 48,
    "analysis_samples": 20,
    "fgsm_eps": (0.0, 16 / 255),
    "pgd_eps": 16 / 255,
    "pgd_step_size": 4 / 255,
    "pgd_steps": (0, 1, 5),
    "dimensionality_pgd_steps": 1,
    "gradient_max_units": 2,
    "autoattack_samples": 48,
    "autoattack_iterations": 10,
}


class Saturated(nn.Module):
    """The model's logits times 1e6: float32 softmax saturates, so the cross-entropy of every
    correctly classified image and its gradient are exactly 0 (FGSM and PGD cannot move), while
    the ranking of the logits, and so the model's decisions, are unchanged."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x) * 1e6


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    config = build(TrainConfig, DIGITS, fast(4))
    return config, train_model(config, tmp_path_factory.mktemp("aa") / "run", progress=False)


def _evaluate(trained, model, folder, **keys):
    config, result = trained
    return evaluate_model(
        model,
        result.data,
        eval_config("quick", CONFIG, keys),
        **run_settings(config, result.best, folder),
        device=result.device,
        progress=False,
    )


@pytest.fixture(scope="module")
def plain_table(trained, tmp_path_factory):
    """The plain network's evaluation (written to a folder of its own), read by two tests."""
    return _evaluate(trained, trained[1].model, tmp_path_factory.mktemp("plain"))


def _value(table, metric, **keys):
    rows = table[table["metric"] == metric]
    for key, wanted in keys.items():
        rows = rows[(rows[key].astype(float) - wanted).abs() < 1e-9]
    return float(rows["value"].iloc[0])


def _flags(table):
    return {f.name: f for f in masking.flags(table)}


def test_plain_network_is_not_flagged(plain_table):
    table = plain_table
    eps = 16 / 255
    clean = _value(table, "autoattack_accuracy", eps=0.0)
    after_ce = _value(table, "autoattack_accuracy_apgd-ce", eps=eps)
    ensemble = _value(table, "autoattack_accuracy", eps=eps)
    assert clean > 0.5 and clean >= after_ce >= ensemble
    assert ensemble == _value(table, "autoattack_accuracy_apgd-t", eps=eps)
    assert _value(table, "autoattack_accuracy", eps=0.5) <= 0.1
    # AutoAttack is at least as strong as PGD, but not by the flag's margin.
    assert ensemble <= _value(table, "masking_pgd_accuracy", steps=5) + 1e-9
    flags = _flags(table)
    # Every check is testable here (PGD reaches its eps; the quick suite runs Square), none fires.
    assert {name: f.value for name, f in flags.items()} == dict.fromkeys(masking.FLAGS, 0.0)
    # The flags are rows of the table too.
    assert _value(table, "masking_autoattack_below_pgd") == 0.0
    assert _value(table, "masking_square_stronger") == 0.0
    losses = table[table["metric"] == "masking_pgd_loss"].set_index("steps")["value"]
    assert losses.loc[5] > losses.loc[0] + masking.LOSS_RISE


def test_saturated_network_is_flagged_and_autoattack_still_breaks_it(trained, tmp_path):
    masked = Saturated(trained[1].model)
    table = _evaluate(trained, masked, tmp_path)
    eps = 16 / 255
    clean = _value(table, "autoattack_accuracy", eps=0.0)
    pgd = _value(table, "masking_pgd_accuracy", steps=5)
    ensemble = _value(table, "autoattack_accuracy", eps=eps)
    # PGD's gradient vanishes: it cannot move a correctly classified image.
    assert pgd == clean and _value(table, "pgd_accuracy", steps=5) == _value(
        table, "pgd_accuracy", steps=0
    )
    # The scale-free DLR loss of APGD-T still breaks it.
    assert ensemble < clean - 0.3
    flags = _flags(table)
    assert flags["autoattack_below_pgd"].value == 1.0
    assert flags["flat_loss"].value == 1.0
    assert "AutoAttack" in flags["autoattack_below_pgd"].reason
    assert _value(table, "masking_autoattack_below_pgd") == 1.0
    lines = masking.flag_lines(table)
    assert any(
        line.startswith("masking autoattack_below_pgd") and "FLAGGED" in line for line in lines
    )


def test_interrupted_autoattack_resumes_to_the_same_numbers(
    trained, plain_table, tmp_path, monkeypatch
):
    whole = plain_table  # evaluated uninterrupted, in a folder of its own
    from pyautoattack.autopgd_base import APGDAttack_targeted

    def killed(self, *args, **kwargs):  # the process dies inside APGD-T
        raise KeyboardInterrupt

    monkeypatch.setattr(APGDAttack_targeted, "perturb", killed)
    with pytest.raises(KeyboardInterrupt):
        _evaluate(trained, trained[1].model, tmp_path / "resumed")
    monkeypatch.undo()
    states = tmp_path / "resumed" / "evaluation" / "autoattack"
    interrupted = json.loads((states / "eps0.0627451-apgd-t.json").read_text())
    assert interrupted["_run_attacks"] == []  # the package's file of the killed step
    done = states / "eps0.0627451-apgd-ce.json"
    stamp = done.stat().st_mtime_ns
    resumed = _evaluate(trained, trained[1].model, tmp_path / "resumed")
    pd.testing.assert_frame_equal(whole, resumed)
    assert done.stat().st_mtime_ns == stamp  # a finished step is read back, not rerun
    # A state file cut short while being written is redone, the others read back.
    for name in ("autoattack.parquet",):
        (tmp_path / "resumed" / "evaluation" / name).unlink()
    done.write_text(done.read_text()[:40])
    kept = states / "eps0.0627451-apgd-t.json"
    stamp = kept.stat().st_mtime_ns
    resumed = _evaluate(trained, trained[1].model, tmp_path / "resumed")
    pd.testing.assert_frame_equal(whole, resumed)
    assert kept.stat().st_mtime_ns == stamp


def test_the_callers_tracer_survives_the_package(trained, tmp_path):
    import sys

    def tracer(frame, event, arg):
        return None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        _evaluate(trained, trained[1].model, tmp_path, masking_eps=None)
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(previous)


def test_autoattack_off_and_bad_keys(trained, tmp_path):
    table = _evaluate(trained, trained[1].model, tmp_path, autoattack_version="off")
    assert not table["metric"].str.startswith("autoattack").any()
    flags = _flags(table)
    assert math.isnan(flags["autoattack_below_pgd"].value)
    assert flags["fgsm_stronger"].value == 0.0  # needs no AutoAttack
    for bad, words in (
        ({"autoattack_version": "plus"}, ("autoattack_version", "'plus'")),
        ({"autoattack_attacks": ("apgd-ce", "pgd")}, ("autoattack_attacks", "'pgd'")),
        ({"masking_eps": 2.0}, ("masking_eps", "[0, 1]")),
        ({"autoattack_samples": 0}, ("autoattack_samples", ">= 1")),
        ({"autoattack_iterations": 0}, ("autoattack_iterations", ">= 1")),
    ):
        with raises(ConfigError, *words):
            eval_config("quick", bad)


def test_missing_package_is_a_config_error(trained, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without(name, *args, **kwargs):
        if name == "pyautoattack":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    with raises(ConfigError, "selectivity[autoattack]"):
        _evaluate(trained, trained[1].model, tmp_path)


def _table(rows):
    return pd.DataFrame(
        [{"steps": None, "eps": None, "step_size": None, "samples": None, **r} for r in rows]
    )


def test_flags_by_hand():
    eps = 8 / 255
    rows = [
        {"metric": "chance_accuracy", "value": 0.1},
        {"metric": "fgsm_accuracy", "eps": eps, "value": 0.30},
        {"metric": "pgd_accuracy", "eps": eps, "steps": 0, "step_size": 1e-4, "value": 0.9},
        {"metric": "pgd_accuracy", "eps": eps, "steps": 50, "step_size": 1e-4, "value": 0.8},
        {
            "metric": "masking_pgd_accuracy",
            "eps": eps,
            "steps": 50,
            "step_size": 1e-4,
            "samples": 100,
            "value": 0.8,
        },
        {"metric": "masking_pgd_loss", "eps": eps, "steps": 0, "step_size": 1e-4, "value": 0.2},
        {"metric": "masking_pgd_loss", "eps": eps, "steps": 50, "step_size": 1e-4, "value": 0.205},
        {"metric": "autoattack_accuracy", "eps": eps, "value": 0.10},
        {"metric": "autoattack_accuracy_apgd-ce", "eps": eps, "value": 0.15},
        {"metric": "autoattack_accuracy_apgd-t", "eps": eps, "value": 0.12},
        {"metric": "autoattack_accuracy_square", "eps": eps, "value": 0.10},
        {"metric": "autoattack_accuracy", "eps": 0.5, "value": 0.0},
        {"metric": "autoattack_accuracy_apgd-ce", "eps": 0.5, "value": 0.25},
    ]
    flags = _flags(_table(rows))
    # 50 steps of 1e-4 cannot reach 8/255: no verdict against PGD.
    assert math.isnan(flags["autoattack_below_pgd"].value)
    assert "weaker by construction" in flags["autoattack_below_pgd"].reason
    assert math.isnan(flags["fgsm_stronger"].value)
    assert flags["square_stronger"].value == 1.0  # 0.12 -> 0.10 > 0.002
    assert flags["large_eps"].value == 1.0 and "APGD-CE 0.250" in flags["large_eps"].reason
    # Its loss rises 0.005 < 0.01 nats, but by construction: not testable, not a false alarm.
    assert math.isnan(flags["flat_loss"].value)
    assert "weaker by construction" in flags["flat_loss"].reason
    # With a step that reaches eps, the same numbers are flagged.
    reach = [
        {**r, "step_size": eps / 10} if r["metric"].startswith(("pgd", "masking_pgd")) else r
        for r in rows
    ]
    flags = _flags(_table(reach))
    assert flags["autoattack_below_pgd"].value == 1.0 and flags["fgsm_stronger"].value == 1.0
    assert flags["flat_loss"].value == 1.0
    # Within the margins: not flagged.
    close = [
        {**r, "value": 0.78} if r["metric"] in ("autoattack_accuracy",) and r["eps"] == eps else r
        for r in reach
    ]
    close = [{**r, "value": 0.77} if r["metric"] == "fgsm_accuracy" else r for r in close]
    flags = _flags(_table(close))
    assert flags["autoattack_below_pgd"].value == 0.0 and flags["fgsm_stronger"].value == 0.0
    # Without any attack rows nothing is testable, and nothing is printed.
    empty = _table([{"metric": "chance_accuracy", "value": 0.1}])
    assert all(math.isnan(f.value) for f in masking.flags(empty))
    assert masking.flag_lines(empty) == []

"""The `unit_types` key: which module types are units when no layers are named, from the CLI and
the config (training, measure, evaluate), its one-line errors, and run folders written before
the key existed."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from torch import nn

import standins
from configs import fast, set_options
from messages import names, raises
from selectivity import models
from selectivity.config import ConfigError, TrainConfig, build
from selectivity.data import load_dataset
from selectivity.measure import measure_model
from selectivity.probe import (
    ACTIVATION_TYPES,
    RECTIFIED_TYPES,
    UNIT_TYPE_NAMES,
    EmptyCaptureError,
    Units,
    check_unit_types,
    named_units,
)
from selectivity.runs import _differing_keys, load_model

DIGITS = ("--set", "dataset=digits", "--device", "cpu")
TIMM = ("--model", "standins:timm_style", "--random-init")
QUICK = (
    *("--suite", "quick", "--set", "max_samples=20", "--set", "analysis_samples=20"),
    *("--set", "pgd_steps=0,1", "--set", "dimensionality_pgd_steps=1", "--set", "fgsm_eps=0"),
    "--quiet",
)
EPOCH = tuple(set_options(fast(1)))


def test_names_are_case_insensitive_and_map_to_read_activations():
    config = build(TrainConfig, {"unit_types": "GELU,silu"})
    assert config.unit_types == ("gelu", "silu")
    # A type named twice, in any case, is refused like every list key's duplicate (issue 20).
    with raises(ConfigError, "unit_types has duplicates"):
        build(TrainConfig, {"unit_types": "GELU,silu,gelu"})
    assert config.units() == Units(None, (nn.GELU, nn.SiLU))
    # Every named type is an activation the probe knows; all but the non-negative ReLUs are
    # read by the positive-part rule.
    for name, kind in UNIT_TYPE_NAMES.items():
        assert kind in ACTIVATION_TYPES and name == name.lower()
        assert (kind in RECTIFIED_TYPES) == (kind not in (nn.ReLU, nn.ReLU6)), name


def test_default_and_named_layers_keep_their_plain_form():
    # An evaluation's identity holds repr(layers): the default must read as before the key.
    assert TrainConfig().units() is None
    named = build(TrainConfig, {"selectivity_layers": "a,b", "unit_types": "gelu"})
    assert named.units() == ("a", "b")
    assert named_units(None, ("ReLU",)) is None


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("tanh", ("unit_types", "'tanh'", "relu, relu6, gelu, silu")),
        ("relu,swish", ("unit_types", "'swish'", "relu")),
        ("", ("unit_types", "no type", "relu")),
    ],
)
def test_unknown_unit_types_are_one_line(run_cli, tmp_path, value, words):
    with raises(ConfigError, *words):
        build(TrainConfig, {"unit_types": value})
    code, _, err = run_cli("measure", *TIMM, *DIGITS, "--set", f"unit_types={value}")
    assert code == 2 and err.count("\n") == 1, err
    names(err, *words)


def test_no_units_of_the_chosen_types_names_what_the_model_has(run_cli):
    code, _, err = run_cli("measure", *TIMM, *DIGITS)
    assert code == 2 and err.count("\n") == 1, err
    assert (
        "no nn.ReLU modules in TimmStyleNet; it has GELU (3): --set unit_types=gelu, or name "
        "the modules or blocks whose outputs are units with --set selectivity_layers=..."
    ) in err
    code, _, err = run_cli("evaluate", *TIMM, *DIGITS, "--set", "unit_types=silu,mish")
    assert code == 2 and "no nn.SiLU, nn.Mish modules in TimmStyleNet; it has GELU (3)" in err
    # Named layers are not chosen by type: no check.
    check_unit_types(standins.timm_style(), ("stem.1",))
    with raises(EmptyCaptureError, "NoModules", "no activation modules"):
        check_unit_types(standins.NoModules(), None)


def test_measure_and_evaluate_a_gelu_model_from_the_cli(run_cli, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli("measure", *TIMM, *DIGITS, "--set", "unit_types=gelu", "--out", out)
    assert code == 0, err
    table = pd.read_parquet(out / "selectivity.parquet")
    assert list(dict.fromkeys(table["layer"])) == ["stem.1", "stage.2", "mlp.act"]
    # The same numbers as the Python API's Units(types=(nn.GELU,)).
    data = load_dataset("digits", seed=0)
    model = standins.timm_style().eval()
    units = Units(types=(nn.GELU,))
    expected = measure_model(model, data.test, layers=units, batch_size=1024, device="cpu")
    pd.testing.assert_frame_equal(table, expected[table.columns], check_exact=True)
    code, _, err = run_cli(
        "evaluate",
        *TIMM,
        *DIGITS,
        "--set",
        "unit_types=gelu",
        *QUICK,
        "--out",
        out,
    )
    assert code == 0, err
    evaluation = pd.read_parquet(out / "evaluation.parquet")
    per_layer = evaluation[(evaluation["metric"] == "selectivity") & evaluation["layer"].notna()]
    assert set(per_layer["layer"]) == {"stem.1", "stage.2", "mlp.act"}


@pytest.fixture
def gelu_registered(monkeypatch):
    """A GELU network in the model registry, for the duration of one test."""
    monkeypatch.setitem(models._MODELS._factories, "timm_style_test", standins.TimmStyleNet)
    return "timm_style_test"


def test_train_measure_evaluate_a_gelu_run(run_cli, tmp_path, gelu_registered):
    run = tmp_path / "run"
    model = ("--preset", "digits", "--set", f"model={gelu_registered}", *EPOCH)
    code, _, err = run_cli("train", *model, "--set", "alpha=-1", "--out", run, *DIGITS[2:])
    assert code == 2 and "no nn.ReLU modules in TimmStyleNet; it has GELU (3)" in err, err
    assert not (run / "checkpoint_last.pt").exists()
    sets = ("--set", "alpha=-1", "--set", "unit_types=gelu")
    code, _, err = run_cli("train", *model, *sets, "--out", run, *DIGITS[2:])
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["unit_types"] == ["gelu"]
    history = pd.read_parquet(run / "metrics.parquet")
    # The regularizer ran on the GELU units (the term is NaN when it is off).
    assert history["train_batch_selectivity"].notna().all()
    code, _, err = run_cli("measure", run, *DIGITS[2:])
    assert code == 0, err
    table = pd.read_parquet(run / "selectivity.parquet")
    assert list(dict.fromkeys(table["layer"])) == ["stem.1", "stage.2", "mlp.act"]
    code, _, err = run_cli("evaluate", run, *QUICK, *DIGITS[2:])
    assert code == 0, err
    evaluation = pd.read_parquet(run / "evaluation.parquet")
    per_layer = evaluation[(evaluation["metric"] == "selectivity") & evaluation["layer"].notna()]
    assert set(per_layer["layer"]) == {"stem.1", "stage.2", "mlp.act"}


def test_a_run_written_before_the_key_loads(run_cli, tmp_path):
    run = tmp_path / "run"
    code, _, err = run_cli("train", "--preset", "digits", *EPOCH, "--out", run, *DIGITS[2:])
    assert code == 0, err
    before = pd.read_parquet(run / "metrics.parquet")
    path = run / "config.json"
    record = json.loads(path.read_text())
    del record["unit_types"]
    path.write_text(json.dumps(record))
    # The checkpoints' own configs, as an older version wrote them, lack it too.
    config, _, checkpoint = load_model(run)
    assert config.unit_types == ("relu",)
    old = {k: v for k, v in checkpoint["config"].items() if k != "unit_types"}
    assert _differing_keys(old, config) == []
    assert _differing_keys({**old, "unit_types": ["gelu"]}, config) == ["unit_types"]
    code, _, err = run_cli("measure", run, *DIGITS[2:])
    assert code == 0, err
    # Resuming the finished run is accepted (the same config) and leaves its history as it was.
    code, _, err = run_cli("train", "--preset", "digits", *EPOCH, "--out", run, *DIGITS[2:])
    assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_parquet(run / "metrics.parquet"), before)

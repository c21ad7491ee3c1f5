"""The CLI on an importable model (--model, --weights, --normalize, --out), its one-line errors,
and models that installed packages register through entry points."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import pandas as pd
import pytest
import torch
from torch import nn

import standins
from messages import names, raises
from selectivity.load import load_weights, parse_normalize, with_normalization
from selectivity.models import ENTRY_POINT_GROUP, ModelError, create_model, list_models

DIGITS = ("--set", "dataset=digits", "--device", "cpu")


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "wrn.pt"
    torch.save(standins.wide_resnet().state_dict(), path)
    return path


def test_measure_and_evaluate_an_importable_model(tmp_path, run_cli, weights, digits_test_size):
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        "measure", "--model", "standins:wide_resnet", "--weights", weights, "--out", out, *DIGITS
    )
    assert code == 0, err
    table = pd.read_parquet(out / "selectivity.parquet")
    assert (
        table["layer"].iloc[0] == "block1.0.relu1" and (table["samples"] == digits_test_size).all()
    )
    assert "note: 1 ReLU call(s)" in stdout and f"mu_SI (test, {digits_test_size} images)" in stdout
    code, stdout, err = run_cli(
        "evaluate",
        "--model",
        "standins:torchvision_resnet",
        "--random-init",
        "--normalize",
        "0.5,0.25",
        "--suite",
        "quick",
        "--out",
        out,
        *DIGITS,
        "--set",
        "max_samples=20",
        "--set",
        "analysis_samples=20",
        "--set",
        "pgd_steps=0,1",
        "--set",
        "dimensionality_pgd_steps=1",
        "--set",
        "fgsm_eps=0",
        "--quiet",
    )
    assert code == 0, err
    evaluation = pd.read_parquet(out / "evaluation.parquet")
    assert "pgd_accuracy" in set(evaluation["metric"]) and "clean accuracy" in stdout
    assert f"wrote {out / 'evaluation.parquet'}" in stdout


def _error(run_cli, *args):
    code, _, err = run_cli(*args, *DIGITS)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("selectivity: error:"), err
    return err


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("no_such_package.nets:make", ("import", "'no_such_package.nets'")),
        ("standins:missing", ("'standins'", "'missing'")),
        ("standins:NOT_CALLABLE", ("standins:NOT_CALLABLE", "int", "factory")),
        ("standins:not_a_module", ("str", "nn.Module")),
        ("standins:needs_arguments", ("needs_arguments", "no arguments")),
        ("standins", ("unknown model", "'standins'")),
        ("standins:NoModules", ("nn.ReLU", "NoModules", "no activation")),
    ],
)
def test_a_bad_model_is_one_line(run_cli, model, words):
    names(_error(run_cli, "measure", "--model", model), *words)


def test_bad_weights_are_one_line(tmp_path, run_cli, weights):
    def error(path):
        return _error(run_cli, "measure", "--model", "standins:wide_resnet", "--weights", path)

    assert "weights file not found" in error(tmp_path / "nope.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(weights.read_bytes()[:100])
    assert "cannot read weights" in error(truncated)
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listed)
    assert "is not a state dict" in error(listed)
    other = tmp_path / "other.pt"
    torch.save(standins.torchvision_resnet().state_dict(), other)
    message = error(other)
    assert "missing block1.0.bn1.bias, block1.0.bn1.num_batches_tracked" in message
    assert "unexpected layer1.0.bn1.bias" in message and "more" in message
    pickled = tmp_path / "pickled.pt"
    torch.save(standins.wide_resnet(), pickled)
    assert "save model.state_dict() instead" in error(pickled)


def test_weights_inside_a_checkpoint_dict_and_shape_mismatch(tmp_path):
    model = standins.wide_resnet()
    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, path)
    fresh = standins.RobustBenchWRN()
    load_weights(fresh, path)
    assert torch.equal(fresh.fc.weight, model.fc.weight)
    torch.save(standins.RobustBenchWRN(num_classes=4).state_dict(), path)
    with raises(ModelError, "size mismatch", "fc.weight"):
        load_weights(fresh, path)
    wrapped = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save(wrapped, path)
    with raises(ModelError, "DataParallel"):
        load_weights(fresh, path)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a,b", ("--normalize", "numbers")),
        ("0.5", ("--normalize", "2 numbers")),
        ("0.5,0", ("std", "> 0")),
    ],
)
def test_bad_normalize_text(run_cli, text, words):
    names(parse_error(run_cli, text), *words)


def parse_error(run_cli, text):
    return _error(run_cli, "measure", "--model", "standins:wide_resnet", "--normalize", text)


def test_normalize_per_channel_and_names_unchanged():
    assert parse_normalize("0.1,0.2,0.3,1,2,4", 3) == ([0.1, 0.2, 0.3], [1.0, 2.0, 4.0])
    model = nn.Sequential(nn.Identity())
    names, keys = [name for name, _ in model.named_modules()], list(model.state_dict())
    with_normalization(model, [0.5], [0.25])
    assert torch.equal(model(torch.ones(1, 1, 2, 2)), torch.full((1, 1, 2, 2), 2.0))
    assert [name for name, _ in model.named_modules()] == names
    assert list(model.state_dict()) == keys


def test_cli_source_errors(tmp_path, run_cli):
    assert "not both or neither" in _error(run_cli, "measure")
    assert "not both or neither" in _error(run_cli, "evaluate", tmp_path, "--model", "a:b")
    assert "--weights and --normalize go with --model" in _error(
        run_cli, "measure", tmp_path, "--weights", tmp_path / "w.pt"
    )
    assert "not alpha" in _error(
        run_cli, "measure", "--model", "standins:wide_resnet", "--set", "alpha=1"
    )


# --- entry points -----------------------------------------------------------------------------


@pytest.fixture
def fake_entry_points(monkeypatch):
    """The group `selectivity.models` as an installed package would fill it."""
    module = types.ModuleType("fake_selectivity_plugin")
    module.make = lambda num_classes, in_channels: standins.TorchvisionResNet(  # type: ignore[attr-defined]
        num_classes, in_channels
    )
    module.constant = 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_selectivity_plugin", module)
    points = [
        importlib.metadata.EntryPoint("plugnet", "fake_selectivity_plugin:make", ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("brokennet", "no_such_plugin:make", ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint(
            "constnet", "fake_selectivity_plugin:constant", ENTRY_POINT_GROUP
        ),
    ]

    def entry_points(**selection):
        assert selection == {"group": ENTRY_POINT_GROUP}
        return points

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_entry_point_models_are_found_by_name(fake_entry_points, run_cli):
    assert {"plugnet", "brokennet", "resnet20"} <= set(list_models())
    model = create_model("plugnet", num_classes=10, in_channels=1)
    assert isinstance(model, standins.TorchvisionResNet)
    code, stdout, err = run_cli("measure", "--model", "plugnet", "--random-init", *DIGITS)
    assert code == 0, err
    assert "layer1.0.relu#2" in stdout


def test_a_broken_entry_point_is_one_line_naming_it(fake_entry_points, run_cli):
    with raises(ModelError, "'brokennet'", "no_such_plugin:make"):
        create_model("brokennet", 10)
    with raises(ModelError, "'constnet'", "int", "factory"):
        create_model("constnet", 10)
    assert "brokennet" in _error(run_cli, "measure", "--model", "brokennet")

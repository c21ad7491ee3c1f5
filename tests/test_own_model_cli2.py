"""The CLI on a user's own model and data, as issue 19 asks: a module in the current folder,
no silent random weights (--random-init), a test set of the user's own (--data) under any dict
keys, the token and positive-part rules as keys, and `evaluate_model`'s default suite."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest
import torch
from torch import nn

import standins
from selectivity.config import ConfigError, TrainConfig, build
from selectivity.data import load_dataset
from selectivity.evaluation import (
    DEFAULT_SUITE,
    default_config,
    eval_config,
    evaluate_model,
    pgd_binding_note,
)
from selectivity.probe import Units

CPU = ("--device", "cpu")
VIT = ("--model", "mine:vit", "--random-init", "--set", "unit_types=gelu")

# A user's module, written into the folder the command runs in (not installed, not on the path).
MINE = """
    import torch
    from torch.utils.data import DataLoader, Dataset

    import standins
    from selectivity.data import load_dataset

    TEST = load_dataset("digits", None, 0, None).test
    X, Y = TEST.batch(slice(0, 40))


    def vit():
        return standins.tiny_vit()


    def net():
        return standins.torchvision_resnet()


    def pairs():
        return [(X[i], int(Y[i])) for i in range(len(Y))]


    class Dicts(Dataset):
        def __len__(self):
            return len(Y)

        def __getitem__(self, i):
            return {"img": X[i], "label": Y[i]}


    def dicts():
        return Dicts()


    def dropping():
        return DataLoader(pairs(), batch_size=16, drop_last=True)


    def splits():
        return load_dataset("digits", None, 0, None)


    def nothing():
        return 3
"""


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A folder holding mine.py, as the current folder."""
    (tmp_path / "mine.py").write_text(textwrap.dedent(MINE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(__import__("sys").modules, "mine", raising=False)
    return tmp_path


def _ok(run_cli, *args):
    code, stdout, err = run_cli(*args, *CPU)
    assert code == 0, err
    return stdout


def _error(run_cli, *args):
    code, _, err = run_cli(*args, *CPU)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("selectivity: error:"), err
    return err


def test_a_module_in_the_current_folder_is_imported_first(here, run_cli):
    out = here / "out"
    torch.save(standins.tiny_vit().state_dict(), here / "vit.pt")
    stdout = _ok(
        run_cli, "measure", "--model", "mine:vit", "--weights", here / "vit.pt",
        "--set", "unit_types=gelu", "--data", "mine:pairs", "--out", out,
    )  # fmt: skip
    table = pd.read_parquet(out / "selectivity.parquet")
    # Token-shaped MLP activations: one unit per hidden feature (2 layers x 32), not per token.
    assert len(table) == 2 * 32 and (table["samples"] == 40).all()
    assert "mean over the T tokens" in stdout and "mu_SI (test, 40 images)" in stdout
    import sys

    assert str(here) not in sys.path  # put first only while importing


def test_no_weights_is_refused_unless_random_init(here, run_cli):
    args = ("measure", "--model", "mine:net", "--data", "mine:pairs")
    assert "--random-init" in _error(run_cli, *args)
    assert "mu_SI" in _ok(run_cli, *args, "--random-init")
    torch.save(standins.torchvision_resnet().state_dict(), here / "w.pt")
    both = _error(run_cli, *args, "--random-init", "--weights", here / "w.pt")
    assert "either --weights or --random-init" in both
    assert "--random-init goes with --model" in _error(run_cli, "measure", here, "--random-init")
    assert "--data goes with --model" in _error(run_cli, "measure", here, "--data", "mine:pairs")


def test_a_test_set_of_dicts_under_other_keys(here, run_cli):
    args = ("measure", "--model", "mine:net", "--random-init", "--data", "mine:dicts")
    refused = _error(run_cli, *args)
    assert "not 'pixel_values' (--data mine:dicts)" in refused and "--set image_key=" in refused
    stdout = _ok(run_cli, *args, "--set", "image_key=img", "--set", "label_key=label")
    assert "mu_SI (test, 40 images)" in stdout


def test_a_dropping_loader_is_noted_and_splits_come_from_a_datasplits(here, run_cli):
    stdout = _ok(
        run_cli, "measure", "--model", "mine:net", "--random-init", "--data", "mine:dropping"
    )
    assert "note: the DataLoader drops its last incomplete batch" in stdout
    assert "8 of 40 images were left out" in stdout and "(test, 32 images)" in stdout
    val = ("measure", "--model", "mine:net", "--random-init", "--split", "val")
    assert "not a val split" in _error(run_cli, *val, "--data", "mine:pairs")
    assert "mu_SI (val" in _ok(run_cli, *val, "--data", "mine:splits")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--data", "mine:nothing"), "cannot read images from a int"),
        (("--data", "mine:missing"), "has no attribute 'missing' (--data mine:missing)"),
        (("--data", "nowhere:pairs"), "cannot import 'nowhere' for --data"),
        (("--data", "mine"), "--data must be package.module:factory"),
        (("--data", "mine:pairs", "--set", "dataset=digits"), "drop --set dataset"),
        (("--set", "image_key=x", "--set", "label_key=x"), "two different names"),
    ],
)
def test_bad_data_is_one_line(here, run_cli, args, message):
    assert message in _error(run_cli, "measure", "--model", "mine:net", "--random-init", *args)


def test_the_token_rule_is_a_key_and_the_note_says_which(here, run_cli):
    data = ("--data", "mine:pairs")
    cls = _ok(run_cli, "measure", *VIT, *data, "--set", "unit_tokens=cls", "--out", here / "cls")
    assert "its value at the first (class) token (tokens='cls')" in cls
    _ok(run_cli, "measure", *VIT, *data, "--out", here / "mean")
    by_cls = pd.read_parquet(here / "cls" / "selectivity.parquet")
    by_mean = pd.read_parquet(here / "mean" / "selectivity.parquet")
    assert len(by_cls) == len(by_mean) == 64 and not by_cls["si"].equals(by_mean["si"])
    assert "unit_tokens must be one of mean, cls" in _error(
        run_cli, "measure", *VIT, *data, "--set", "unit_tokens=max"
    )


def test_the_positive_part_of_named_layers_is_a_key(here, run_cli):
    named = (
        *("measure", "--model", "mine:vit", "--random-init", "--data", "mine:pairs"),
        *("--set", "selectivity_layers=layer.0.intermediate.dense"),
    )
    assert "positive_part" in _error(run_cli, *named)  # a Linear's signed outputs
    stdout = _ok(run_cli, *named, "--set", "selectivity_positive_part=true")
    assert "layer.0.intermediate.dense" in stdout


def test_the_keys_reach_the_units_of_every_command():
    config = build(
        TrainConfig,
        {"unit_types": "gelu", "unit_tokens": "cls", "selectivity_positive_part": "false"},
    )
    assert config.units() == Units(None, (nn.GELU,), positive_part=False, tokens="cls")
    assert TrainConfig().units() is None  # the default keeps its plain form
    with pytest.raises(ConfigError, match="unit_tokens"):
        build(TrainConfig, {"unit_tokens": "all"})


def test_the_default_evaluation_is_a_quick_suite_whose_pgd_binds():
    data = load_dataset("digits", None, 0, None)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 16), nn.ReLU(), nn.Linear(16, 10))
    table = evaluate_model(model, data)
    notes = table.attrs["notes"]
    assert any(f"the {DEFAULT_SUITE} suite with pgd_step_size=auto" in n for n in notes)
    assert not any("never binds" in n for n in notes)
    reached = table[table["metric"] == "pgd_linf_max"]
    eps = default_config().pgd_eps
    assert float(reached["value"].max()) == pytest.approx(eps, rel=1e-4)


def test_the_notes_say_when_the_pgd_ball_never_binds():
    paper = eval_config("full", {"pgd_steps": (0, 1, 50), "dimensionality_pgd_steps": 400})
    note = pgd_binding_note(paper)
    assert note is not None and "50 steps x 0.0001 = 0.005" in note
    assert "dimensionality" not in note  # 400 x 1e-4 = 0.04 reaches 8/255
    assert pgd_binding_note(eval_config("full", {"pgd_step_size": "auto"})) is None
    assert pgd_binding_note(eval_config("full", {"pgd_eps": 0.0})) is None
    data = load_dataset("digits", None, 0, None)
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 10))
    config = eval_config(
        "quick",
        {"pgd_steps": (0, 2), "dimensionality_pgd_steps": 1, "autoattack_version": "off"},
    )
    table = evaluate_model(model, data, config, layers=["0"])
    assert any("the PGD eps-ball never binds" in n for n in table.attrs["notes"])


def test_the_positive_part_key_reaches_the_regularizer_in_training(tmp_path, run_cli):
    train = (
        *("train", "--preset", "digits", "--quiet", "--set", "epochs=1", "--set", "milestones=1"),
        *("--set", "alpha=-1", "--set", "num_threads=1", "--set", "selectivity_layers=bn2"),
    )
    # A batch norm's signed outputs are refused as units unless read by their positive part.
    assert "positive_part" in _error(run_cli, *train, "--out", tmp_path / "signed")
    out = tmp_path / "rectified"
    _ok(run_cli, *train, "--set", "selectivity_positive_part=true", "--out", out)
    recorded = __import__("json").loads((out / "config.json").read_text())
    assert recorded["selectivity_positive_part"] is True and recorded["unit_tokens"] == "mean"

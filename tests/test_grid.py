"""Grids: parsing, their union, trial folder names and typed trial columns (no training here)."""

import json
import math

import pandas as pd
import pytest

from messages import raises
from selectivity import schema
from selectivity.config import (
    ConfigError,
    key_types,
    parse_assignments,
)
from selectivity.grid import (
    describe,
    expand,
    grid_keys,
    layout,
    load_config_file,
    parse_grid,
    split_grids,
    sweep_grids,
    trial_dir,
    trial_frame,
    trial_path,
    value_name,
)
from selectivity.sweep import plan_sweep

AWKWARD = {
    "lr": [0.1, 0.1234567, 0.1234568, 1 / 3, 2.5e-7, 1e6, 123456789.0, 1e30, 5e-324, math.inf],
    "alpha": [-0.1234567, -1e-30, -100.0, 0.0],
    "seed": [0, 7, -3, 12345678901],
    "normalize": [True, False],
    "image_size": [None, 16],
    "data_dir": [None, "a/b", "../up", "50%", "with space", "none-like", "x,y", "é"],
    "pgd_step_size": [1e-4, 2 / 255, "auto"],
    "analysis_samples": [200, "all"],
    "model": ["digitsnet", "resnet20"],
}


@pytest.mark.parametrize("key", sorted(AWKWARD))
def test_a_folder_name_reads_back_as_its_value_and_no_two_values_share_one(key):
    names = []
    for value in AWKWARD[key]:
        name = value_name(value)
        # One folder level: no separator, never "." or "..".
        assert "/" not in name and f"{key}={name}" not in (".", "..")
        # `--set key=<name>` parses back to the value exactly, of the same type.
        from urllib.parse import unquote

        back = parse_assignments([f"{key}={unquote(name)}"])[key]
        assert back == value and type(back) is type(value), (name, back)
        names.append(name)
    assert len(set(names)) == len(names)


def test_numpy_and_missing_values_from_a_table_row_are_named_as_plain_ones():
    row = pd.DataFrame({"a": [0.5], "s": [3], "n": pd.array([None], dtype="Int64")}).iloc[0]
    assert [value_name(row["a"]), value_name(row["s"]), value_name(row["n"])] == [
        "0.5",
        "3",
        "none",
    ]


def test_layout_is_other_keys_sorted_then_alpha_then_seed(tmp_path):
    assert layout([]) == ("alpha", "seed")
    assert layout(["seed", "weight_decay", "alpha", "lr"]) == (
        "lr",
        "weight_decay",
        "alpha",
        "seed",
    )
    values = {"seed": 2, "weight_decay": 0.0, "alpha": -1.0, "lr": 0.05}
    assert trial_dir(tmp_path, values) == (
        tmp_path / "lr=0.05" / "weight_decay=0" / "alpha=-1" / "seed=2"
    )
    assert trial_path({"alpha": 0.0, "seed": 1}).as_posix() == "alpha=0/seed=1"
    assert describe(values) == "lr=0.05 weight_decay=0 alpha=-1 seed=2"


def test_without_a_grid_the_sweep_is_alphas_x_seeds_in_todays_order():
    grids = sweep_grids(None, (-1.0, 0.0), (0, 1))
    levels, trials = expand(grids, {"alpha": 5.0, "seed": 9})
    assert levels == ("alpha", "seed")
    assert [(t["alpha"], t["seed"]) for t in trials] == [(-1.0, 0), (-1.0, 1), (0.0, 0), (0.0, 1)]


def test_a_grid_takes_seeds_unless_it_names_seed_and_keeps_alpha_at_its_key():
    base = {"alpha": 0.0, "seed": 0, "lr": 0.1}
    grids = sweep_grids([{"lr": (0.1, 0.2)}], (-1.0, 1.0), (0, 1, 2))
    levels, trials = expand(grids, base)
    assert levels == ("lr", "alpha", "seed")
    assert {t["alpha"] for t in trials} == {0.0}  # not the alphas list
    assert [(t["lr"], t["seed"]) for t in trials] == [
        (lr, s) for lr in (0.1, 0.2) for s in (0, 1, 2)
    ]
    grids = sweep_grids([{"lr": (0.1,), "seed": (5,)}], (0.0,), (0, 1, 2))
    assert [t["seed"] for t in expand(grids, base)[1]] == [5]


def test_a_union_of_grids_runs_each_trial_once():
    base = {"alpha": 0.0, "seed": 0, "lr": 0.1, "weight_decay": 0.0}
    grids = sweep_grids(
        [{"alpha": (0.0, -1.0)}, {"lr": (0.1, 0.2)}, {"weight_decay": (0.0, 1e-4)}], (), (0, 1)
    )
    levels, trials = expand(grids, base)
    assert levels == ("lr", "weight_decay", "alpha", "seed")
    # 3 grids x 2 values x 2 seeds = 12, of which the baseline (lr 0.1, wd 0, alpha 0) x 2 seeds
    # appears in all three: 12 - 2 x 2 = 8 trials, each once, in the first grid's order.
    keyed = [tuple(t[k] for k in levels) for t in trials]
    assert len(keyed) == len(set(keyed)) == 8
    assert keyed[:4] == [
        (0.1, 0.0, 0.0, 0),
        (0.1, 0.0, 0.0, 1),
        (0.1, 0.0, -1.0, 0),
        (0.1, 0.0, -1.0, 1),
    ]
    assert len({trial_path(t) for t in trials}) == 8


def test_trial_columns_are_typed_by_their_keys():
    trials = [
        {"alpha": 0.0, "seed": 1, "image_size": None, "normalize": True, "model": "digitsnet"},
        {"alpha": -1.0, "seed": 2, "image_size": 16, "normalize": False, "model": "digitsnet"},
    ]
    frame = trial_frame(trials, ["image_size", "model", "normalize", "alpha", "seed"])
    assert frame.dtypes.astype(str).to_dict() == {
        "image_size": "Int64",
        "model": "string",
        "normalize": "bool",
        "alpha": "float64",
        "seed": "int64",
    }
    assert frame["image_size"].isna().tolist() == [True, False]
    # A key that takes a number or a word: numbers while all are numbers, else the names.
    numbers = trial_frame([{"pgd_step_size": 1e-4}, {"pgd_step_size": 0.5}], ["pgd_step_size"])
    assert str(numbers["pgd_step_size"].dtype) == "float64"
    mixed = trial_frame([{"pgd_step_size": 1e-4}, {"pgd_step_size": "auto"}], ["pgd_step_size"])
    assert mixed["pgd_step_size"].tolist() == ["0.0001", "auto"]


def test_no_grid_key_can_collide_with_a_table_column():
    for key in key_types():
        assert key not in schema.COLUMNS and key not in schema.TRIAL_STATUS
    table = pd.DataFrame(columns=["lr", "alpha", "seed", *schema.COLUMNS])
    assert schema.trial_columns(table) == ("lr", "alpha", "seed")
    trials = pd.DataFrame(columns=["alpha", "seed", *schema.TRIAL_STATUS])
    assert schema.trial_columns(trials) == ("alpha", "seed")


def test_parse_grid_types_values_as_set_does():
    grid = parse_grid(["seed=0,1,2", "pgd_eps=0,8/255", "image_size=none,16", "normalize=true"])
    assert grid == {
        "seed": (0, 1, 2),
        "pgd_eps": (0.0, 8 / 255),
        "image_size": (None, 16),
        "normalize": (True,),
    }
    assert type(grid["seed"][0]) is int
    assert "milestones" not in grid_keys() and "lr" in grid_keys() and "pgd_eps" in grid_keys()


@pytest.mark.parametrize(
    "items, assigned, words",
    [
        (["nope=1"], {}, ("unknown grid key", "'nope'")),
        (["lr="], {}, ("lr", "no values")),
        (["lr=0.1", "lr=0.2"], {}, ("lr", "twice")),
        (["lr=0.1,0.1"], {}, ("lr", "duplicate")),
        (["lr=0.1,nan"], {}, ("NaN",)),
        (["lr=fast"], {}, ("lr", "float")),
        (["lr"], {}, ("--grid", "key=value")),
        (["alphas=0,1"], {}, ("alphas", "sweep key", "alpha")),
        (["workers=1,2"], {}, ("workers", "sweep key")),
        (["milestones=5"], {}, ("milestones", "list")),
        (["lr=0.1,0.2"], {"lr": 0.3}, ("lr", "--set", "--grid")),
        (["alpha=0,1"], {"alphas": (1.0,)}, ("alphas", "alpha", "--grid")),
        (["lr=0.1"], {"alphas": (1.0,)}, ("alphas", "alpha", "--grid")),
        (["seed=0,1"], {"seeds": (1,)}, ("seeds", "--set", "seed", "--grid")),
    ],
)
def test_bad_grids_are_one_line_errors(items, assigned, words):
    with raises(ConfigError, *words) as error:
        parse_grid(items, assigned)
    assert "\n" not in str(error.value)


def test_seeds_with_a_grid_over_other_keys_is_fine():
    assert parse_grid(["lr=0.1"], {"seeds": (0, 1), "epochs": 2}) == {"lr": (0.1,)}


def test_config_files_hold_a_grid_or_a_union_of_grids(tmp_path):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"epochs": 2, "seeds": [0, 1], "grid": {"lr": [0.1, "1/8"]}}))
    assert load_config_file(path) == {
        "epochs": 2,
        "seeds": (0, 1),
        "grids": ({"lr": (0.1, 0.125)},),
    }
    path.write_text(json.dumps({"grids": [{"alpha": [0, -1]}, {"lr": [0.1], "seed": [3]}]}))
    assert load_config_file(path)["grids"] == ({"alpha": (0.0, -1.0)}, {"lr": (0.1,), "seed": (3,)})


@pytest.mark.parametrize(
    "text, words",
    [
        ('{"grid": {"lr": [0.1]}, "grids": []}', ("grid", "grids", "both")),
        ('{"grid": {"lr": 0.1}}', ("lr", "list")),
        ('{"grid": {"lr": []}}', ("lr", "no values")),
        ('{"grid": {}}', ("grid", "keys", "lists")),
        ('{"grids": {"lr": [0.1]}}', ("grids", "list")),
        ('{"grids": []}', ("grids", "empty")),
        ('{"grids": [{"nope": [1]}]}', ("unknown grid key", "'nope'")),
        ('{"alphas": [0], "grid": {"lr": [0.1]}}', ("alphas", "alpha")),
        ('{"lr": 0.1, "lr": 0.2}', ("'lr'", "twice")),
        ('{"grid": {"lr": [0.1], "lr": [0.2]}}', ("'lr'", "twice")),
    ],
)
def test_bad_grids_in_a_config_file_are_one_line_errors(tmp_path, text, words):
    path = tmp_path / "sweep.json"
    path.write_text(text)
    with raises(ConfigError, *words) as error:
        load_config_file(path)
    assert str(error.value).startswith(f"config file {path}: ") and "\n" not in str(error.value)


def test_a_later_grid_replaces_an_earlier_one_and_every_trial_is_checked_before_work():
    base = {"model": "digitsnet", "dataset": "digits", "seeds": (0,), "lr": 0.05}
    plan = plan_sweep([{**base, "grid": {"alpha": [0.0, 1.0]}}, {"grids": [{"lr": [0.1, 0.2]}]}])
    assert plan.layout == ("lr", "alpha", "seed")
    assert [(v["lr"], k["lr"], k["alpha"]) for v, k in plan.trials] == [
        (0.1, 0.1, 0.0),
        (0.2, 0.2, 0.0),
    ]
    # A value only a trial's config rejects stops the plan (nothing is written yet).
    with raises(ConfigError, "lr", "> 0"):
        plan_sweep([base, {"grids": [{"lr": [0.1, 0.0]}]}])
    with raises(ConfigError, "batch_size", ">= 2"):
        plan_sweep([base, {"grid": {"batch_size": [64, 1]}}])


def test_a_swept_suite_brings_its_own_sample_bounds():
    base = {"model": "digitsnet", "dataset": "digits", "seeds": (0,)}
    plan = plan_sweep([base, {"grid": {"suite": ["quick", "full"]}}])
    bounds = {values["suite"]: keys["max_samples"] for values, keys in plan.trials}
    assert bounds == {"quick": 500, "full": None}
    split = split_grids({"grid": {"seed": [1]}, "lr": 0.1})
    assert split == ({"lr": 0.1}, ({"seed": (1,)},))


def test_only_scalars_have_folder_names():
    with raises(TypeError, "(1, 2)"):
        value_name((1, 2))


@pytest.mark.parametrize(
    "text, words",
    [(None, ("not found",)), ("{", ("JSON", "valid")), ("[1]", ("JSON object", "keys"))],
)
def test_unreadable_config_files_are_one_line_errors(tmp_path, text, words):
    path = tmp_path / "sweep.json"
    if text is not None:
        path.write_text(text)
    with raises(ConfigError, str(path), *words):
        load_config_file(path)

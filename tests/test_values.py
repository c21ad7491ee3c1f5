"""Every value is checked before anything is written, as `selectivity keys` documents it: a
value out of range, not finite, or given twice in a list key is one line, exit 2, and leaves no
file behind (issue 20)."""

from __future__ import annotations

import pytest

from selectivity import config as cfg
from selectivity import ranges

# (key=value, words the line must hold). Training keys go through `train`.
TRAIN_CASES = [
    ("momentum=-1", "momentum must be a number >= 0, at most 3.4e38"),
    ("momentum=inf", "momentum must be a number >= 0, at most 3.4e38"),
    ("weight_decay=-1", "weight_decay must be a number >= 0, at most 3.4e38"),
    ("weight_decay=1e39", "weight_decay must be a number >= 0, at most 3.4e38"),
    ("lr=1e300", "lr must be a number > 0, at most 3.4e38"),
    ("lr=nan", "lr must be a number > 0, at most 3.4e38"),
    ("lr=0", "lr must be a number > 0, at most 3.4e38"),
    ("lr_gamma=-0.01", "lr_gamma must be a number > 0, at most 3.4e38"),
    ("lr_gamma=inf", "lr_gamma must be a number > 0, at most 3.4e38"),
    ("seed=-1", "seed must be in 0..4294967295"),
    ("seed=100000000000000000000000", "seed must be in 0..4294967295"),
    ("alpha=inf", "alpha must be a finite number"),
    ("alpha=nan", "alpha must be a finite number"),
    ("image_size=100000", "image_size must be in 8..1024"),
    ("image_size=4", "image_size must be in 8..1024"),
    ("num_threads=100000", "num_threads must be in 1.."),
    ("mix_width=100000", "mix_width must be in 1..16"),
    ("noise_std=2", "noise_std must be in [0, 1]"),
    ("noise_std=inf", "noise_std must be in [0, 1]"),
    ("adv_eps=nan", "adv_eps must be in [0, 1]"),
    ("adv_step_size=inf", "adv_step_size must be a finite number > 0 or auto"),
    ("adv_step_size=0", "adv_step_size must be a finite number > 0 or auto"),
    ("milestones=2,2", "milestones has duplicates"),
    ("milestones=3,2", "milestones must be increasing"),
    ("selectivity_layers=fc1,fc1", "selectivity_layers has duplicates"),
    ("unit_types=relu,relu", "unit_types has duplicates"),
    ("unit_types=relu,ReLU", "unit_types has duplicates"),
    ("mix_corruptions=fog,fog", "mix_corruptions has duplicates"),
]

# Evaluation keys go through `evaluate`.
EVAL_CASES = [
    ("pgd_eps=inf", "pgd_eps must be in [0, 1]"),
    ("fgsm_eps=0,inf", "fgsm_eps must be in [0, 1]"),
    ("fgsm_eps=0,0", "fgsm_eps has duplicates"),
    ("autoattack_eps=nan", "autoattack_eps must be in [0, 1]"),
    ("autoattack_eps=8/255,8/255", "autoattack_eps has duplicates"),
    ("pgd_step_size=inf", "pgd_step_size must be a finite number > 0 or auto"),
    ("pgd_step_size=fast", "pgd_step_size must be a finite number > 0 or auto"),
    ("jacobian_projections=0", "jacobian_projections must be >= 1"),
    ("gradient_max_units=0", "gradient_max_units must be >= 1"),
    ("dimensionality_pgd_steps=-1", "dimensionality_pgd_steps must be >= 0"),
    ("corruption_seed=-1", "corruption_seed must be in 0..4294967295"),
    ("pgd_steps=0,1,1", "pgd_steps has duplicates"),
    ("severities=3,3,5", "severities has duplicates"),
    ("corruptions=gaussian_noise,gaussian_noise,motion_blur", "corruptions has duplicates"),
    ("autoattack_attacks=apgd-ce,apgd-ce", "autoattack_attacks has duplicates"),
]

SWEEP_CASES = [
    ("alphas=1,1", "alphas has duplicates"),
    ("seeds=0,0", "seeds has duplicates"),
    ("seeds=-1", "seeds must be in 0..4294967295"),
    ("alphas=inf", "alphas must be a finite number"),
]


def refused(code: int, err: str, words: str) -> None:
    assert code == 2, err
    assert err.startswith("selectivity: error: ") and err.count("\n") == 1, err
    assert words in err, err


@pytest.mark.parametrize("assignment, words", TRAIN_CASES)
def test_train_refuses_a_bad_value_before_writing(run_cli, tmp_path, assignment, words):
    out = tmp_path / "run"
    code, _, err = run_cli("train", "--out", out, "--preset", "digits", "--set", assignment)
    refused(code, err, words)
    assert not out.exists()  # no config.json, no folder


@pytest.mark.parametrize("assignment, words", EVAL_CASES)
def test_evaluate_refuses_a_bad_value_before_reading_the_run(run_cli, tmp_path, assignment, words):
    # The value is refused before the run folder is even looked at.
    code, _, err = run_cli("evaluate", tmp_path / "no-run", "--set", assignment)
    refused(code, err, words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("assignment, words", SWEEP_CASES + TRAIN_CASES[:4] + EVAL_CASES)
def test_sweep_refuses_a_bad_value_and_leaves_no_sweep_folder(run_cli, tmp_path, assignment, words):
    out = tmp_path / "sweep"
    code, _, err = run_cli("sweep", "--out", out, "--set", assignment)
    refused(code, err, words)
    assert not out.exists()


def test_every_ranged_key_is_a_key_of_its_config():
    for table, cls in (
        (ranges.TRAIN_RANGES, cfg.TrainConfig),
        (ranges.EVAL_RANGES, cfg.EvalConfig),
        (ranges.SWEEP_RANGES, cfg.SweepConfig),
    ):
        assert set(table) <= set(cls.__dataclass_fields__), cls


def test_values_at_the_ends_of_a_range_are_taken():
    keys = {"seed": 2**32 - 1, "image_size": 1024, "mix_width": 16, "momentum": 0, "lr": 1e30}
    config = cfg.build(cfg.TrainConfig, cfg.train_preset("digits"), keys)
    assert (config.seed, config.image_size, config.mix_width) == (2**32 - 1, 1024, 16)
    evaluation = cfg.build(cfg.EvalConfig, {"fgsm_eps": (0.0, 1.0), "pgd_step_size": "auto"})
    assert evaluation.pgd_step(4) == pytest.approx(2.5 * evaluation.pgd_eps / 4)


def test_a_config_file_that_is_not_utf8_is_one_line(run_cli, tmp_path):
    path = tmp_path / "sweep.json"
    path.write_bytes(b'{"epochs": 1, "model": "\xff\xfe"}')
    out = tmp_path / "sweep"
    code, _, err = run_cli("sweep", path, "--out", out)
    refused(code, err, "is not UTF-8")
    assert not out.exists()

"""A trial trains and evaluates in memory; the result equals evaluating its run folder from disk."""

from __future__ import annotations

import shutil

import pandas as pd
from pandas.testing import assert_frame_equal

from configs import DIGITS, TINY_EVAL, fast
from selectivity.config import EvalConfig, TrainConfig, build
from selectivity.evaluation import evaluate
from selectivity.trial import train_and_evaluate

KEYS = {
    **DIGITS,
    **fast(2),
    **TINY_EVAL,
    # NHWC training: evaluation must still see the model as it loads from its checkpoint.
    "channels_last": True,
    "generate_corruptions": True,
    "corruptions": ("gaussian_noise",),
    "severities": (1, 5),
    "fgsm_eps": (4 / 255,),
    "pgd_steps": (0, 2),
    "dimensionality_pgd_steps": 2,
    "alpha": -1.0,
    "seed": 1,
}


def test_a_trial_evaluates_what_its_run_folder_holds(tmp_path):
    folder = tmp_path / "trial"
    seconds = train_and_evaluate(KEYS, folder)
    assert seconds > 0
    in_memory = pd.read_parquet(folder / "evaluation.parquet")
    assert set(in_memory["metric"]) >= {"test_accuracy", "pgd_accuracy", "dimensionality"}

    # The same run evaluated afresh from its files, as `selectivity evaluate` does.
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    shutil.rmtree(copy / "evaluation")
    (copy / "evaluation.parquet").unlink()
    from_disk = evaluate(copy, build(EvalConfig, KEYS), progress=False)
    assert_frame_equal(in_memory, from_disk, check_exact=True)
    # The folder is the one `selectivity train` writes, made by the trial's config.
    assert build(TrainConfig, KEYS).channels_last
    assert {p.name for p in folder.iterdir()} >= {
        "config.json",
        "metrics.parquet",
        "checkpoint_best.pt",
        "checkpoint_last.pt",
        "summary.json",
    }
    # The per-unit table, as `selectivity measure` writes it from the run's best checkpoint.
    from selectivity.commands import ModelSource, measure

    units = pd.read_parquet(folder / "selectivity.parquet")
    (copy / "selectivity.parquet").unlink(missing_ok=True)
    measured, _ = measure(ModelSource(run_dir=copy))
    assert_frame_equal(units, measured.reset_index(drop=True), check_exact=True)

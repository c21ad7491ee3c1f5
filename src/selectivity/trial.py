"""One trial: train one config, then evaluate it, in one process.

The trained model (with the weights of its best-validation epoch) and the loaded data pass from
training to evaluation in memory; the run folder is still written as by `selectivity train`
(config, metrics, checkpoints, summary) and evaluated into as by `selectivity evaluate`, so an
interrupted trial resumes from its files. Sweeps know only this module.

    train_and_evaluate(keys, TRIAL_DIR) -> seconds
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from selectivity.config import EvalConfig, TrainConfig, build
from selectivity.corruptions import generate_from_dataset
from selectivity.data import load_dataset
from selectivity.evaluation import evaluate_model, run_settings
from selectivity.files import write_table
from selectivity.measure import measure_model
from selectivity.runs import resolve_device
from selectivity.train import train_model

__all__ = ["check_data", "generate_shared_corruptions", "train_and_evaluate"]


def train_and_evaluate(keys: Mapping[str, Any], directory: Path, progress: bool = False) -> float:
    """Train (or resume) the run of `keys` in `directory`, then evaluate its best checkpoint there.

    keys: every training and evaluation key of the trial, alpha and seed included; `evaluate`
    false keeps only the clean part (accuracy and selectivity, what accuracy-versus-selectivity
    studies need). Returns the seconds of training (over every call that worked on the run) and
    of this evaluation.
    """
    train_config = build(TrainConfig, keys)
    eval_config = build(EvalConfig, keys)
    trained = train_model(train_config, directory, progress=progress)
    evaluation_started = time.perf_counter()
    # The model as `evaluate` would load it from checkpoint_best.pt: the same weights in the
    # default memory order (NHWC sums in another order on CPUs, so results would differ in the
    # last bits) and without the last training step's gradients.
    model = trained.model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    model.zero_grad(set_to_none=True)
    evaluate_model(
        model,
        trained.data,
        eval_config,
        **run_settings(train_config, trained.best, directory),
        device=trained.device,
        progress=progress,
        clean_only=not keys.get("evaluate", True),
    )
    # The per-unit table `selectivity measure RUN` writes, so that a sweep's report draws the
    # units' SI distributions from tables alone.
    units = measure_model(
        model,
        trained.data.test,
        num_classes=trained.data.num_classes,
        layers=train_config.units(),
        batch_size=train_config.eval_batch_size,
        device=trained.device,
        split="test",
    )
    write_table(units, directory / "selectivity.parquet")
    return float(trained.summary["seconds"]) + time.perf_counter() - evaluation_started


def check_data(dataset: str, data_dir: str | None, image_size: int | None) -> None:
    """Read the data set a trial would read (DataError when it cannot be read), so that a sweep
    checks it once before it starts rather than in every trial."""
    load_dataset(dataset, data_dir, 0, image_size)


def generate_shared_corruptions(keys: Mapping[str, Any], root: Path, progress: bool) -> None:
    """Generate (or complete) in `root` the corruption set of the test split that `keys` name,
    for trials to share: the test split does not depend on the seed."""
    generate_from_dataset(
        root,
        keys["dataset"],
        keys["data_dir"],
        keys["image_size"],
        seed=keys["corruption_seed"],
        corruptions=keys["corruptions"],
        table=keys["corruption_table"],
        device=resolve_device(keys["device"]),
        progress=progress,
    )

"""Training with the class selectivity regularizer, top to bottom.

loss = cross_entropy - alpha * mu_SI(minibatch). SGD with momentum and weight decay, step
learning-rate decay at the milestones, validation every epoch, the best-validation checkpoint
kept for testing (the papers' protocol; adversarially trained runs keep the epoch of best robust
validation accuracy, `TrainConfig.checkpoint_rule`), and a last checkpoint from which an
interrupted run resumes exactly: model, optimizer, schedule and the random state of the data
order.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from selectivity.config import ConfigError, TrainConfig
from selectivity.data import DataSplits, ImageSet, load_dataset
from selectivity.errors import SelectivityError
from selectivity.files import one_line, remove_stale_temporaries
from selectivity.loggers import TensorBoardLogger, TrainingLogger, require_tensorboard
from selectivity.measure import accuracy_under_attack, measure_selectivity
from selectivity.models import eval_mode
from selectivity.probe import check_layers, check_unit_types
from selectivity.regularizer import SelectivityRegularizer
from selectivity.robust import check_methods, training_attack, training_batch, validation_attack
from selectivity.runs import (
    RunFolder,
    TrainingState,
    build_model,
    refuse_other_run,
    resolve_device,
    write_config,
)

__all__ = ["TrainedRun", "TrainingDiverged", "train", "train_model", "train_step"]


class TrainingDiverged(SelectivityError, RuntimeError):
    """The loss became NaN or infinite."""


# A run may draw a one-class batch (which the regularizer cannot score) at most this often.
_ONE_CLASS_RISK = 0.01


def _one_class_risk(counts: list[int], batch_size: int, batches: int) -> float:
    """Chance that any of `batches` batches, each `batch_size` images drawn without replacement
    from classes of `counts` images, holds a single class."""
    total = sum(counts)
    per_batch = 0.0
    for count in counts:
        same = 1.0
        for i in range(batch_size):
            same *= max(count - i, 0) / (total - i)
            if same == 0.0:
                break
        per_batch += same
    return 1.0 - (1.0 - min(per_batch, 1.0)) ** batches


def _check_start(
    config: TrainConfig, data, model: torch.nn.Module, device: torch.device, layout
) -> None:
    """ConfigError for what would otherwise fail (or silently do nothing) after the run began."""
    check_layers(model, config.units(), "selectivity_layers")
    check_unit_types(model, config.units())
    check_methods(config, data.in_channels)
    size = len(data.train)
    if config.batch_size > size:
        raise ConfigError(
            f"batch_size {config.batch_size} is larger than the training set ({size} images): "
            "no full batch to train on"
        )
    if config.alpha != 0.0:
        counts = torch.bincount(data.train.labels, minlength=data.num_classes).tolist()
        if sum(1 for count in counts if count > 0) < 2:
            raise ConfigError(
                "the training set holds one class: class selectivity needs two (use alpha=0)"
            )

        def too_risky(batch_size: int) -> bool:
            batches = config.epochs * (size // batch_size)
            return _one_class_risk(counts, batch_size, batches) > _ONE_CLASS_RISK

        if too_risky(config.batch_size):
            # The risk falls as batches grow: double, then bisect, for the smallest safe size.
            low, high = config.batch_size, min(2 * config.batch_size, size)
            while high < size and too_risky(high):
                low, high = high, min(2 * high, size)
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if too_risky(middle) else (low, middle)
            risk = _one_class_risk(
                counts, config.batch_size, config.epochs * (size // config.batch_size)
            )
            raise ConfigError(
                f"batch_size {config.batch_size} is too small with alpha != 0: the regularizer "
                f"needs two classes in every batch, and this run would draw a batch of one class "
                f"with probability {risk:.0%}"
                + (f"; use batch_size >= {high}" if not too_risky(high) else "")
            )
    # One forward pass on two images: a model that cannot take these images (too small for its
    # strides, wrong channels) or a device that cannot run it fails now, not after an epoch.
    x, _ = data.train.batch(slice(0, min(2, size)), device)
    try:
        with torch.no_grad(), eval_mode(model):
            model(x.contiguous(memory_format=layout))
    except RuntimeError as error:
        h, w = x.shape[-2:]
        raise ConfigError(
            f"{config.model} cannot run on {h}x{w} images on {device}: {one_line(error)}"
        ) from None


@dataclass(frozen=True)
class TrainedRun:
    """What `train_model` leaves in memory for evaluation: the model with the weights of the
    kept epoch (best clean or robust validation), the data it was trained on, and the best
    checkpoint's record."""

    model: nn.Module  # on `device`, the kept epoch's weights
    data: DataSplits
    device: torch.device
    best: dict[str, Any]  # the best checkpoint without its weights: epoch, val_accuracy, ...
    summary: dict[str, Any]


def train(
    config: TrainConfig,
    out_dir: str | Path,
    progress: bool = True,
    loggers: Sequence[TrainingLogger] = (),
) -> dict[str, Any]:
    """Train one network into `out_dir` (resuming it if a last checkpoint is there).

    Returns the summary also written to `out_dir/summary.json`: the checkpoint rule (clean or
    robust validation accuracy), the kept epoch, its validation accuracies, and the test accuracy
    and network selectivity of its checkpoint. `loggers`: see `train_model`.
    """
    return train_model(config, out_dir, progress, loggers).summary


def train_model(
    config: TrainConfig,
    out_dir: str | Path,
    progress: bool = True,
    loggers: Sequence[TrainingLogger] = (),
) -> TrainedRun:
    """`train`, returning the trained model (the kept epoch's weights) and its data as well.

    `loggers` (`selectivity.loggers.TrainingLogger`) are told each finished epoch's row after its
    checkpoint, and closed when training ends, by an error too; `config.tensorboard` adds a
    `TensorBoardLogger` writing to `out_dir/tensorboard/`.
    """
    opened = list(loggers)
    try:
        return _train_model(config, out_dir, progress, opened)
    finally:
        with contextlib.ExitStack() as closing:  # every logger closed, even if one close fails
            for logger in opened:
                closing.callback(logger.close)


def _optimizer(
    model: nn.Module, config: TrainConfig
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.MultiStepLR]:
    """SGD with momentum and weight decay, its learning rate cut by lr_gamma at each milestone
    (the papers' recipe, appendix A.1.1)."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.milestones), gamma=config.lr_gamma
    )
    return optimizer, schedule


@dataclass(frozen=True)
class _Setup:
    """What one call trains with, fixed for its length."""

    config: TrainConfig
    data: DataSplits
    device: torch.device
    layout: torch.memory_format  # of the batches and the model's weights
    robust_val: ImageSet | None  # the validation images attacked each epoch (adv_eps > 0)


def _robust_validation_images(config: TrainConfig, data: DataSplits) -> ImageSet | None:
    """`checkpoint_samples` validation images, drawn once at random (seed 0, sorted), the same
    every epoch; None when the run is not adversarially trained (adv_eps 0)."""
    if config.adv_eps == 0:
        return None
    count = len(data.val)
    if config.checkpoint_samples >= count:
        return data.val
    # Random, not the first ones: a folder data set's validation split may be in class order.
    indices = np.random.default_rng(0).permutation(count)[: config.checkpoint_samples]
    return data.val.subset(np.sort(indices))


def _train_model(
    config: TrainConfig, out_dir: str | Path, progress: bool, loggers: list[TrainingLogger]
) -> TrainedRun:
    started = time.perf_counter()
    out_dir = Path(out_dir)
    device = resolve_device(config.device)
    refuse_other_run(out_dir, config)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)

    torch.manual_seed(config.seed)
    data = load_dataset(config.dataset, config.data_dir, config.seed, config.image_size)
    model = build_model(config, data.num_classes, data.in_channels, data.mean, data.std).to(device)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)  # type: ignore[call-overload]  # torch's stubs lack it
    # Everything is checked before the folder is written to: a failed start leaves nothing.
    _check_start(config, data, model, device, layout)
    if config.tensorboard:
        require_tensorboard()
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)  # of a run killed while writing
    write_config(out_dir, config)
    folder = RunFolder.of(out_dir, config, data)
    optimizer, schedule = _optimizer(model, config)
    # The data order and augmentation draw from their own CPU generator, saved with the run.
    generator = torch.Generator().manual_seed(config.seed)
    state = TrainingState(model, optimizer, schedule, generator)
    folder.resume(state, device)
    if config.tensorboard:
        # Opened after the resume: it hides what an earlier run logged from start_epoch on. In
        # `loggers`, so that train_model closes it.
        loggers.append(TensorBoardLogger(out_dir / "tensorboard", state.start_epoch))

    setup = _Setup(config, data, device, layout, _robust_validation_images(config, data))
    rule = config.checkpoint_rule()
    regularizer = (
        SelectivityRegularizer(model, data.num_classes, config.units())
        if config.alpha != 0.0
        else None
    )
    bar = tqdm(
        range(state.start_epoch, config.epochs),
        initial=state.start_epoch,
        total=config.epochs,
        disable=not progress,
        desc=f"alpha={config.alpha:g} seed={config.seed}",
        unit="epoch",
        leave=False,
    )
    for epoch in bar:
        row = _epoch(setup, state, regularizer, epoch)
        score = row["val_robust_accuracy"] if rule == "robust" else row["val_accuracy"]
        if score > state.best_val:
            state.best_val, state.best_epoch = score, epoch
            folder.save_best(state, epoch, row)
        folder.save_epoch(state, epoch, started)
        for logger in loggers:
            logger.on_epoch_end(dict(row))
        bar.set_postfix(
            loss=f"{row['train_loss']:.3f}",
            val_acc=f"{row['val_accuracy']:.3f}",
            val_si=f"{row['val_selectivity']:.3f}",
        )
        if progress:
            bar.write(_epoch_line(row, regularizer is not None))
    bar.close()
    return _test_best(folder, setup, state, started)


def _epoch(
    setup: _Setup, state: TrainingState, regularizer: SelectivityRegularizer | None, epoch: int
) -> dict[str, Any]:
    """Train one epoch, step the schedule, validate; the epoch's row, added to the history."""
    config = setup.config
    epoch_started = time.perf_counter()
    totals = _train_epoch(setup, state, regularizer, epoch)
    lr = state.optimizer.param_groups[0]["lr"]
    state.schedule.step()
    train_seconds = time.perf_counter() - epoch_started
    # Validation: accuracy and selectivity over the whole validation split.
    val = measure_selectivity(
        state.model,
        setup.data.val,
        setup.data.num_classes,
        config.units(),
        config.eval_batch_size,
        setup.device,
    )
    row = {
        "epoch": epoch,
        **totals,
        "val_accuracy": val.accuracy,
        "val_selectivity": val.network,
        "val_robust_accuracy": _robust_accuracy(setup, state.model),
        "lr": lr,
        "seconds": train_seconds,
    }
    state.history.append(row)
    return row


def _robust_accuracy(setup: _Setup, model: nn.Module) -> float:
    """Accuracy under `robust.validation_attack` on the robust validation images (NaN without
    them). Its random start comes from a generator seeded with the run's seed afresh each epoch:
    epochs are compared under the same draw, and the run's own random state is not touched, so
    a resumed run stays exact."""
    if setup.robust_val is None:
        return math.nan
    config = setup.config
    generator = torch.Generator().manual_seed(config.seed)
    attack = validation_attack(config)
    return accuracy_under_attack(
        model, setup.robust_val, attack, config.eval_batch_size, setup.device, generator
    )


def train_step(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    optimizer: torch.optim.Optimizer,
    regularizer: SelectivityRegularizer | None,
    alpha: float,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One SGD step on the batch x (N, C, H, W), y (N,) class indices: loss = cross_entropy -
    alpha * mu_SI. The regularizer, when given, must be entered (its hooks record the forward
    pass). Returns the 0-dim tensors (loss, cross_entropy, mu_SI or None), not synced."""
    logits = model(x)
    cross_entropy = F.cross_entropy(logits, y)
    if regularizer is not None:
        mu_si = regularizer.network_selectivity(y)
        loss = cross_entropy - alpha * mu_si
    else:
        mu_si, loss = None, cross_entropy
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, cross_entropy, mu_si


def _train_epoch(
    setup: _Setup, state: TrainingState, regularizer: SelectivityRegularizer | None, epoch: int
) -> dict[str, float]:
    """One pass over the training split; the epoch's mean train_loss, train_cross_entropy and
    train_batch_selectivity (NaN without the regularizer), per image. Each batch goes through
    the data set's augmentation, then the robustness-training methods that are on
    (`robust.training_batch`); the step, and the regularizer, see the result."""
    config, data, device, layout = setup.config, setup.data, setup.device, setup.layout
    model, optimizer, generator = state.model, state.optimizer, state.generator
    model.train()
    totals = {"loss": 0.0, "cross_entropy": 0.0, "batch_selectivity": 0.0}
    seen = 0
    attack = training_attack(config)
    with regularizer if regularizer is not None else contextlib.nullcontext():
        for x, y in data.train.batches(
            config.batch_size, device, shuffle=True, generator=generator, drop_last=True
        ):
            if data.augment is not None:
                x = data.augment(x, generator)
            x = training_batch(model, x, y, config, generator, attack)
            x = x.contiguous(memory_format=layout)
            loss, cross_entropy, mu_si = train_step(
                model, x, y, optimizer, regularizer, config.alpha
            )
            # .item() syncs with the device; once per step is the price of catching NaN early.
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise TrainingDiverged(
                    f"loss became {loss_value} at epoch {epoch} (alpha={config.alpha:g}, lr={optimizer.param_groups[0]['lr']:g})"
                )
            n = y.shape[0]
            seen += n
            totals["loss"] += loss_value * n
            totals["cross_entropy"] += cross_entropy.item() * n
            if mu_si is not None:
                totals["batch_selectivity"] += mu_si.item() * n
    return {
        "train_loss": totals["loss"] / max(seen, 1),
        "train_cross_entropy": totals["cross_entropy"] / max(seen, 1),
        "train_batch_selectivity": totals["batch_selectivity"] / max(seen, 1)
        if regularizer is not None
        else float("nan"),
    }


def _epoch_line(row: dict[str, Any], regularize: bool) -> str:
    return (
        f"epoch {row['epoch']:3d}  loss {row['train_loss']:.4f}  ce {row['train_cross_entropy']:.4f}"
        + (f"  batch_si {row['train_batch_selectivity']:.3f}" if regularize else "")
        + f"  val_acc {row['val_accuracy']:.4f}  val_si {row['val_selectivity']:.3f}"
        + (
            f"  val_robust {row['val_robust_accuracy']:.4f}"
            if math.isfinite(row["val_robust_accuracy"])
            else ""
        )
        + f"  lr {row['lr']:.4g}  {row['seconds']:.1f}s"
    )


def _test_best(
    folder: RunFolder, setup: _Setup, state: TrainingState, started: float
) -> TrainedRun:
    """Load the best checkpoint's weights into the model, test them, write summary.json."""
    config, data, model = setup.config, setup.data, state.model
    best = folder.read_best(setup.device)
    model.load_state_dict(best.pop("model"))
    test = measure_selectivity(
        model,
        data.test,
        data.num_classes,
        config.units(),
        config.eval_batch_size,
        setup.device,
    )
    robust = best.get("val_robust_accuracy", math.nan)
    summary = {
        "alpha": config.alpha,
        "seed": config.seed,
        "checkpoint_metric": config.checkpoint_rule(),
        "best_epoch": best["epoch"],
        "val_accuracy": best["val_accuracy"],
        "val_robust_accuracy": robust if math.isfinite(robust) else None,
        "test_accuracy": test.accuracy,
        "test_selectivity": test.network,
        "epochs": config.epochs,
        # Seconds of training and testing, over every call that worked on this run.
        "seconds": state.earlier_seconds + time.perf_counter() - started,
    }
    folder.write_summary(summary)
    return TrainedRun(model, data, setup.device, best, summary)

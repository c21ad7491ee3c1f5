"""Per-epoch training logs: the one interface (`TrainingLogger`) that training calls after each
finished epoch, and its TensorBoard implementation (`TensorBoardLogger`).

Anything with `on_epoch_end(row)` and `close()` is a logger: an MLflow or W&B logger is a class of
a few lines passed as `train_model(..., loggers=[...])`, without touching the training loop.

`metrics.parquet` is not one of these: it is the run's record, written before the checkpoint
that says an epoch is done and read back when a run resumes, so that the resumed run's history
is exactly the uninterrupted one's. Loggers are told of an epoch after its checkpoint, so each
finished epoch reaches them once, a resumed run telling them only of the epochs it trains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from selectivity.errors import SelectivityError

__all__ = ["MissingPackageError", "TensorBoardLogger", "TrainingLogger", "require_tensorboard"]


class MissingPackageError(SelectivityError, ImportError):
    """An optional package a requested feature needs is not installed; the message says how."""


@runtime_checkable
class TrainingLogger(Protocol):
    """What training calls: `on_epoch_end` once per finished epoch, `close` once at the end.

    `row` holds the epoch's numbers, named as the columns of metrics.parquet (docs/results.md):
    epoch (int, from 0), train_loss, train_cross_entropy, train_batch_selectivity (NaN without
    the regularizer), val_accuracy, val_selectivity, val_robust_accuracy (NaN unless adversarially
    trained), lr, seconds. It is the logger's own copy.
    `close` is called when training ends, also when it ends by an error.
    """

    def on_epoch_end(self, row: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


def require_tensorboard() -> None:
    """MissingPackageError (one line, with the install command) unless TensorBoard's writer can
    be imported; checked before a run starts, so that a missing package fails before any work."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise MissingPackageError(
            "tensorboard=true needs the tensorboard package: pip install 'selectivity[tensorboard]'"
        ) from None


class TensorBoardLogger:
    """Each epoch's numbers as TensorBoard scalars in `log_dir`, tag = metrics.parquet column,
    step = epoch (from 0). NaN values (train_batch_selectivity at alpha = 0) are left out.

    `start_epoch`: the first epoch this run trains (0, or the resumed epoch). Events of that
    epoch and later, left by an earlier run in `log_dir` (one interrupted before its checkpoint,
    or a run started over), are hidden from TensorBoard, so each epoch shows once. Every row is
    flushed when written: a run that dies keeps the epochs it finished.
    """

    def __init__(self, log_dir: str | Path, start_epoch: int = 0):
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(str(self.log_dir), purge_step=start_epoch)

    def on_epoch_end(self, row: Mapping[str, Any]) -> None:
        epoch = int(row["epoch"])
        for tag, value in row.items():
            if tag == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isnan(value):
                self._writer.add_scalar(tag, value, global_step=epoch)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

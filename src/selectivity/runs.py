"""The run folder: what training writes and what evaluation reads.

RUN_DIR/config.json          the TrainConfig, as keys
RUN_DIR/metrics.parquet      one row per epoch
RUN_DIR/checkpoint_last.pt   everything needed to resume
RUN_DIR/checkpoint_best.pt   model weights of the kept epoch (best clean or robust validation)
RUN_DIR/summary.json         test accuracy and selectivity of the best checkpoint

Training keeps what it carries from epoch to epoch in a `TrainingState` and writes it through a
`RunFolder`; `read_checkpoint` is the one reader of torch files (weights only), for run folders
and for a user's weights alike.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from selectivity.config import ConfigError, TrainConfig, build, check_device, to_dict
from selectivity.errors import SelectivityError
from selectivity.files import (
    FileError,
    atomic_path,
    differing_keys,
    one_line,
    read_json,
    read_table,
    refuse_other_contents,
    write_table,
    write_text,
)
from selectivity.models import create_model

__all__ = [
    "ENGINE_KEYS",
    "CheckpointReadError",
    "RunError",
    "RunFolder",
    "TrainingState",
    "build_model",
    "check_data",
    "data_shape",
    "load_checkpoint",
    "load_model",
    "read_checkpoint",
    "read_config",
    "refuse_other_run",
    "resolve_device",
    "save_checkpoint",
    "write_config",
]


class RunError(SelectivityError, ValueError):
    """A run folder is missing, incomplete or corrupt; the message is one line."""


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu. An unavailable cuda is an error, not a fallback."""
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device cuda was asked for but torch sees no CUDA device (use --set device=auto or cpu)"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"device {name} was asked for but torch sees {torch.cuda.device_count()} CUDA device(s)"
        )
    return device


def write_config(run_dir: Path, config: TrainConfig) -> None:
    write_text(run_dir / "config.json", json.dumps(to_dict(config), indent=2) + "\n")


def read_config(run_dir: str | Path) -> TrainConfig:
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not run_dir.is_dir():
        raise RunError(f"run folder not found: {run_dir}")
    if not path.is_file():
        raise RunError(f"not a run folder: {path} is missing (made by `selectivity train`)")
    try:
        values = read_json(path)
    except FileError as error:
        raise RunError(str(error)) from None
    try:
        return build(TrainConfig, values)
    except ConfigError as error:
        raise RunError(f"{path} is not a valid run config: {error}") from None


# Keys that may change between runs of one folder: they decide where and how fast (and where
# the numbers are logged besides), not what.
ENGINE_KEYS = frozenset({"device", "num_threads", "tensorboard"})

# What each kind of checkpoint holds; `kind` and `config` say what it is for.
_CHECKPOINT_KEYS = {
    "best": {"kind", "config", "data", "model", "epoch", "val_accuracy"},
    "last": {
        "kind",
        "config",
        "data",
        "model",
        "optimizer",
        "schedule",
        "generator",
        "torch_rng",
        "epoch",
        "best_val_accuracy",
        "best_epoch",
        "seconds",
    },
}
# The checksum is one more member of torch's zip container, so a checkpoint stays a plain
# `torch.load` file and the checksum is written and renamed with it, atomically.
_CHECKSUM = ".selectivity/sha256"


def _checksum(archive: zipfile.ZipFile, skip: str) -> str:
    """sha256 over every member but `skip`: names, sizes and bytes (zipfile checks CRCs too)."""
    digest = hashlib.sha256()
    for info in archive.infolist():
        if info.filename == skip:
            continue
        digest.update(f"{info.filename}\0{info.file_size}\0".encode())
        with archive.open(info) as member:
            while chunk := member.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _checksum_name(archive: zipfile.ZipFile) -> str:
    # torch reads only members under the folder of the first one (named after the file).
    first = archive.namelist()[0]
    return f"{first.split('/', 1)[0]}/{_CHECKSUM}"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save `state` to `path` with a sha256 of its contents, atomically."""
    with atomic_path(path) as temporary:
        torch.save(state, temporary)
        with zipfile.ZipFile(temporary) as archive:
            name = _checksum_name(archive)
            checksum = _checksum(archive, name)
        with zipfile.ZipFile(temporary, "a") as archive:
            archive.writestr(name, checksum)


def _verified_bytes(path: Path) -> bytes:
    """The bytes of checkpoint `path` after checking its checksum; RunError if it fails."""
    data = path.read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            name = _checksum_name(archive)
            if name not in archive.namelist():
                raise RunError(
                    f"{path} has no checksum: it was not written by this version of selectivity; "
                    "train into a new --out"
                )
            stored = archive.read(name).decode("ascii")
            actual = _checksum(archive, name)
    except RunError:
        raise
    except Exception as error:  # any failure to parse the container is damage
        raise RunError(f"corrupt checkpoint {path}: {one_line(error)}") from None
    if stored != actual:
        raise RunError(f"corrupt checkpoint {path}: its contents do not match its checksum")
    return data


class CheckpointReadError(ValueError):
    """torch cannot read a file as weights only; the message is torch's first line. `unsafe`:
    the file holds objects other than tensors and plain data (loading them could run code);
    otherwise it is damaged, cut short, or not a torch file."""

    def __init__(self, message: str, unsafe: bool):
        super().__init__(message)
        self.unsafe = unsafe


def read_checkpoint(source: str | Path | bytes, map_location: torch.device | str = "cpu") -> Any:
    """What torch.save wrote to `source` (a path, or the file's bytes), read with
    weights_only=True: a file from elsewhere cannot run code; ours hold only tensors and plain
    data. CheckpointReadError when torch refuses or cannot read it (callers name the file and
    say what it was for); a file that cannot be opened is OSError."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message suggests weights_only=False, i.e. running the file's code: it is never
        # passed on. It names a refused object "Unsupported global" (torch >= 2.4) or
        # "Unsupported class"; anything else it cannot unpickle is damage.
        text = str(error)
        if re.search(r"Unsupported (global|class)", text):
            raise CheckpointReadError(
                "it holds objects other than tensors and plain data", unsafe=True
            ) from None
        cause = text.split("WeightsUnpickler error:", 1)[-1].strip()
        raise CheckpointReadError(
            cause.splitlines()[0] if cause else one_line(error), unsafe=False
        ) from None
    except Exception as error:  # any other failure to read the file is damage
        raise CheckpointReadError(one_line(error), unsafe=False) from None


def load_checkpoint(
    path: Path,
    device: torch.device | str = "cpu",
    kind: str | None = None,
    config: TrainConfig | None = None,
) -> dict[str, Any]:
    """A checkpoint's state, after checking its checksum and, when given, that it is a `kind`
    ("best" or "last") checkpoint made by a run with `config` (engine keys aside)."""
    if not path.is_file():
        raise RunError(f"checkpoint not found: {path}")
    data = _verified_bytes(path)
    try:
        state = read_checkpoint(data, device)
    except CheckpointReadError as error:
        if error.unsafe:
            raise RunError(
                f"{path} holds objects other than tensors and plain data; selectivity never loads "
                "such a file (loading it could run code)"
            ) from None
        # A verified file that torch cannot read is damage.
        raise RunError(f"corrupt checkpoint {path}: {error}") from None
    if not isinstance(state, dict) or state.get("kind") not in _CHECKPOINT_KEYS:
        raise RunError(f"{path} is not a selectivity checkpoint")
    if kind is not None and state["kind"] != kind:
        raise RunError(
            f"{path} holds a {state['kind']} checkpoint where a {kind} one belongs "
            f"(was checkpoint_{state['kind']}.pt copied over it?)"
        )
    missing = sorted(_CHECKPOINT_KEYS[state["kind"]] - set(state))
    if missing:
        raise RunError(f"corrupt checkpoint {path}: it lacks {', '.join(missing)}")
    if config is not None:
        differing = _differing_keys(state["config"], config)
        if differing:
            raise RunError(
                f"{path} was made by a run with another config ({', '.join(differing)} differ "
                "from config.json); it does not belong to this run"
            )
    return state


# What a checkpoint's data must share with the data at hand (mean and std are recorded besides).
_DATA_KEYS = ("num_classes", "in_channels", "image_size")


def data_shape(data: Any) -> dict[str, Any]:
    """What checkpoints record of a data set (a `DataSplits`): classes, channels, image size,
    and the per-channel mean and std a normalising model was built with."""
    return {
        "num_classes": data.num_classes,
        "in_channels": data.in_channels,
        "image_size": data.image_size,
        "mean": list(data.mean),
        "std": list(data.std),
    }


def check_data(checkpoint: dict[str, Any], data: Any, path: Path) -> None:
    """RunError unless the data set at hand has the classes, channels and image size that the
    checkpoint at `path` was trained on (a data folder may change under a run)."""
    _check_shape(checkpoint["data"], {key: getattr(data, key) for key in _DATA_KEYS}, path)


def _check_shape(recorded: dict[str, Any], actual: dict[str, Any], path: Path) -> None:
    differing = [
        f"{key} {recorded[key]} != {actual[key]}"
        for key in _DATA_KEYS
        if key in recorded and key in actual and recorded[key] != actual[key]
    ]
    if differing:
        raise RunError(
            f"{path} was trained on other data than this run loads ({', '.join(differing)})"
        )


def _differing_keys(recorded: Any, config: TrainConfig) -> list[str]:
    """Keys (engine keys aside) in which a checkpoint's recorded config differs from `config`."""
    try:
        recorded = to_dict(build(TrainConfig, recorded))
    except (ConfigError, AttributeError) as error:
        return [f"an unreadable config: {one_line(error)}"]
    return differing_keys(recorded, to_dict(config), ENGINE_KEYS)


def build_model(
    config: TrainConfig, num_classes: int, in_channels: int, mean=None, std=None
) -> nn.Module:
    return create_model(
        config.model,
        num_classes,
        in_channels,
        mean=mean if config.normalize else None,
        std=std if config.normalize else None,
    )


def load_model(
    run_dir: str | Path, which: str = "best", device: torch.device | str = "cpu"
) -> tuple[TrainConfig, nn.Module, dict[str, Any]]:
    """(config, model in eval mode on `device`, checkpoint dict) of a finished or running run."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    checkpoint = load_checkpoint(run_dir / f"checkpoint_{which}.pt", device, which, config)
    try:
        shape = checkpoint["data"]
        model = build_model(
            config, shape["num_classes"], shape["in_channels"], shape.get("mean"), shape.get("std")
        )
        model.load_state_dict(checkpoint["model"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise RunError(
            f"checkpoint {run_dir / f'checkpoint_{which}.pt'} does not match its config: {one_line(error)}"
        ) from None
    return config, model.to(device).eval(), checkpoint


# --- training into a run folder ----------------------------------------------------------------


def refuse_other_run(run_dir: Path, config: TrainConfig) -> None:
    """A run folder belongs to one config: resuming with another would mix two experiments.
    FolderError naming the keys that differ (engine keys aside). A folder without a last
    checkpoint holds no run yet (a start that failed): it is reused."""
    if (run_dir / "config.json").exists() and (run_dir / "checkpoint_last.pt").exists():
        refuse_other_contents(
            run_dir,
            "a run with a different config",
            to_dict(read_config(run_dir)),
            to_dict(config),
            "use another --out",
            ignore=ENGINE_KEYS,
        )


@dataclass
class TrainingState:
    """What a run carries from epoch to epoch: all that its last checkpoint saves (with torch's
    global random state) and a resumed run takes back, so that it goes on exactly as if it had
    not been interrupted."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # the data order and augmentation draw from it (CPU)
    history: list[dict[str, Any]] = field(default_factory=list)  # a row per finished epoch
    start_epoch: int = 0  # the first epoch this call trains
    best_val: float = -1.0  # the best value of the checkpoint metric (clean or robust accuracy)
    best_epoch: int = -1
    # Seconds spent in earlier, interrupted calls (up to their last checkpoint).
    earlier_seconds: float = 0.0


@dataclass(frozen=True)
class RunFolder:
    """The run folder training writes: checkpoints record its config and the data's shape."""

    path: Path
    config: TrainConfig
    data: dict[str, Any]  # `data_shape` of the data set trained on

    @classmethod
    def of(cls, path: str | Path, config: TrainConfig, data: Any) -> RunFolder:
        return cls(Path(path), config, data_shape(data))

    def resume(self, state: TrainingState, device: torch.device | str) -> None:
        """Restore `state` (model, optimizer, schedule, random state, history) and torch's
        global random state from the last checkpoint, if there is one."""
        last_path = self.path / "checkpoint_last.pt"
        if not last_path.exists():
            return
        last = load_checkpoint(last_path, device, "last", self.config)
        _check_shape(last["data"], self.data, last_path)
        # Checkpoints from before robust selection kept the best clean epoch: its best value
        # cannot be compared with robust accuracies.
        if last.get("checkpoint_metric", "clean") != self.config.checkpoint_rule():
            raise RunError(
                f"{last_path} kept the best {last.get('checkpoint_metric', 'clean')} validation "
                f"epoch, this run keeps the best {self.config.checkpoint_rule()} one; train into a "
                "new --out"
            )
        state.model.load_state_dict(last["model"])
        state.optimizer.load_state_dict(last["optimizer"])
        state.schedule.load_state_dict(last["schedule"])
        state.generator.set_state(last["generator"].cpu())
        torch.set_rng_state(last["torch_rng"].cpu())
        state.start_epoch = last["epoch"] + 1
        state.best_val, state.best_epoch = last["best_val_accuracy"], last["best_epoch"]
        state.earlier_seconds = last["seconds"]
        metrics = self.path / "metrics.parquet"
        history = read_table(metrics, ["epoch"]).to_dict("records")
        if len(history) < state.start_epoch:
            raise RunError(
                f"{metrics} has {len(history)} epochs but the last checkpoint is of epoch "
                f"{state.start_epoch - 1}"
            )
        state.history = history[: state.start_epoch]

    def save_best(self, state: TrainingState, epoch: int, row: dict[str, Any]) -> None:
        """The model's weights now, as the kept checkpoint, with the epoch's validation
        accuracies (`row`: the epoch's metrics row) and the rule that kept it."""
        save_checkpoint(
            self.path / "checkpoint_best.pt",
            {
                **self._record("best", state.model),
                "epoch": epoch,
                "val_accuracy": row["val_accuracy"],
                "val_robust_accuracy": row.get("val_robust_accuracy", math.nan),
                "checkpoint_metric": self.config.checkpoint_rule(),
            },
        )

    def save_epoch(self, state: TrainingState, epoch: int, started: float) -> None:
        """Metrics first, then the checkpoint that says `epoch` is done: a crash in between
        re-runs the epoch and overwrites its row. `started`: when this call began
        (time.perf_counter), for the run's total training time."""
        write_table(pd.DataFrame(state.history), self.path / "metrics.parquet")
        save_checkpoint(
            self.path / "checkpoint_last.pt",
            {
                **self._record("last", state.model),
                "optimizer": state.optimizer.state_dict(),
                "schedule": state.schedule.state_dict(),
                "generator": state.generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "epoch": epoch,
                # The best value of the checkpoint metric (clean or robust accuracy) so far.
                "best_val_accuracy": state.best_val,
                "best_epoch": state.best_epoch,
                "checkpoint_metric": self.config.checkpoint_rule(),
                # Training time so far, so that a resumed run reports its total.
                "seconds": state.earlier_seconds + time.perf_counter() - started,
            },
        )

    def read_best(self, device: torch.device | str) -> dict[str, Any]:
        """The kept checkpoint of this run (weights under "model"; `save_best`)."""
        return load_checkpoint(self.path / "checkpoint_best.pt", device, "best", self.config)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_text(self.path / "summary.json", json.dumps(summary, indent=2) + "\n")

    def _record(self, kind: str, model: nn.Module) -> dict[str, Any]:
        return {
            "kind": kind,
            "config": to_dict(self.config),
            "data": self.data,
            "model": model.state_dict(),
        }

"""The run folder: what training writes and what evaluation reads.

RUN_DIR/config.json          the TrainConfig, as keys
RUN_DIR/metrics.parquet      one row per epoch
RUN_DIR/checkpoint_last.pt   everything needed to resume
RUN_DIR/checkpoint_best.pt   model weights of the best-validation epoch
RUN_DIR/summary.json         test accuracy and selectivity of the best checkpoint
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from selectivity.config import ConfigError, TrainConfig, build, check_device, to_dict
from selectivity.files import atomic_path, write_text
from selectivity.models import create_model

__all__ = [
    "RunError",
    "load_checkpoint",
    "load_model",
    "read_config",
    "resolve_device",
    "save_checkpoint",
    "write_config",
]


class RunError(ValueError):
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
        return build(TrainConfig, json.loads(path.read_text()))
    except (json.JSONDecodeError, ConfigError) as error:
        raise RunError(f"{path} is not a valid run config: {error}") from None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    if not path.is_file():
        raise RunError(f"checkpoint not found: {path}")
    try:
        # weights_only: a checkpoint from elsewhere cannot run code; ours hold only tensors and plain data.
        return torch.load(path, map_location=device, weights_only=True)
    except (
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        io.UnsupportedOperation,
        ValueError,
        KeyError,
    ) as error:
        raise RunError(
            f"corrupt checkpoint {path}: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from None


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
    checkpoint = load_checkpoint(run_dir / f"checkpoint_{which}.pt", device)
    try:
        shape = checkpoint["data"]
        model = build_model(
            config, shape["num_classes"], shape["in_channels"], shape.get("mean"), shape.get("std")
        )
        model.load_state_dict(checkpoint["model"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise RunError(
            f"checkpoint {run_dir / f'checkpoint_{which}.pt'} does not match its config: {str(error).splitlines()[0]}"
        ) from None
    return config, model.to(device).eval(), checkpoint

"""The run folder: what training writes and what evaluation reads.

RUN_DIR/config.json          the TrainConfig, as keys
RUN_DIR/metrics.parquet      one row per epoch
RUN_DIR/checkpoint_last.pt   everything needed to resume
RUN_DIR/checkpoint_best.pt   model weights of the best-validation epoch
RUN_DIR/summary.json         test accuracy and selectivity of the best checkpoint
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

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
    write_text,
)
from selectivity.models import create_model

__all__ = [
    "ENGINE_KEYS",
    "RunError",
    "check_data",
    "load_checkpoint",
    "load_model",
    "read_config",
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
        # weights_only: a checkpoint from elsewhere cannot run code; ours hold only tensors and plain data.
        state = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            # torch's own message suggests weights_only=False, i.e. running the file's code.
            raise RunError(
                f"{path} holds objects other than tensors and plain data; selectivity never loads "
                "such a file (loading it could run code)"
            ) from None
        raise RunError(f"corrupt checkpoint {path}: {one_line(error)}") from None
    except Exception as error:  # a verified file that torch cannot read is damage
        raise RunError(f"corrupt checkpoint {path}: {one_line(error)}") from None
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


def check_data(checkpoint: dict[str, Any], data: Any, path: Path) -> None:
    """RunError unless the data set at hand has the classes, channels and image size that the
    checkpoint at `path` was trained on (a data folder may change under a run)."""
    recorded = checkpoint["data"]
    actual = {
        "num_classes": data.num_classes,
        "in_channels": data.in_channels,
        "image_size": data.image_size,
    }
    differing = [
        f"{key} {recorded[key]} != {value}"
        for key, value in actual.items()
        if key in recorded and recorded[key] != value
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

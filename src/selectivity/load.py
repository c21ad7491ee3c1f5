"""A user's model and its weights, and a user's test set, for `measure` and `evaluate --model`
(`selectivity.commands`).

    import_model("package.module:factory")       the factory called with no arguments
    import_data("package.module:factory")        a test set (--data) as a UserData
    load_weights(model, "weights.pt")            a state dict, weights_only=True
    parse_normalize("0.5,0.25", channels)        (mean, std) per channel
    with_normalization(model, mean, std)         normalise inputs in front of the model
    user_model(spec, weights, normalize, data)   all four, checked on a batch of the data

Specs are imported with the current folder first on the path (as `python -m` does), so a module
beside the user is found without installing it.

A model spec is `package.module:factory` (any callable returning an nn.Module: a function or a
class, called with no arguments; wrap one that needs arguments in a function of your own), or
the name of a registered model (`create_model`, entry points included), built for the data's
classes and channels. Every failure is a `ModelError` of one line.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from selectivity.data import (
    IMAGE_KEY,
    LABEL_KEY,
    DataError,
    DataSplits,
    DroppedImagesWarning,
    Keyed,
    labelled,
)
from selectivity.files import one_line
from selectivity.models import ModelError, Normalize, create_model, logits_of
from selectivity.probe import Sites, check_layers, check_unit_types
from selectivity.runs import (
    CheckpointReadError,
    read_checkpoint,
)

__all__ = [
    "UserData",
    "import_data",
    "import_model",
    "import_object",
    "load_weights",
    "parse_normalize",
    "user_model",
    "with_normalization",
]


def import_object(spec: str, option: str = "--model") -> Any:
    """What the callable `package.module:factory` returns when called with no arguments.

    The current folder is searched first, as `python -m` does, so a module beside the user
    (`mynets.py`) is found without installing it. ModelError, one line naming `option`, for a
    spec without ':', an import that fails, a missing attribute, something not callable and a
    factory that raises.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ModelError(f"{option} must be package.module:factory, got {spec!r}")
    here = os.getcwd()
    sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # an import error, or any error of the module's own code
        raise ModelError(
            f"cannot import {module_name!r} for {option} {spec}: {one_line(error, with_type=True)}"
        ) from None
    finally:
        sys.path.remove(here)  # the first occurrence: the one inserted above
    factory: Any = module
    for part in attribute.split("."):
        if not hasattr(factory, part):
            raise ModelError(
                f"module {module_name!r} has no attribute {attribute!r} ({option} {spec})"
            )
        factory = getattr(factory, part)
    if not callable(factory):
        raise ModelError(f"{spec} is a {type(factory).__name__}, not a callable factory")
    try:
        return factory()
    except Exception as error:
        raise ModelError(
            f"{spec}() failed: {one_line(error, with_type=True)} (it is called with no "
            "arguments: wrap it in a function that passes them)"
        ) from None


def import_model(spec: str) -> nn.Module:
    """The nn.Module that `package.module:factory` returns when called with no arguments."""
    model = import_object(spec, "--model")
    if not isinstance(model, nn.Module):
        raise ModelError(f"{spec}() returned a {type(model).__name__}, not an nn.Module")
    return model


def import_data(spec: str, image_key: str = IMAGE_KEY, label_key: str = LABEL_KEY) -> UserData:
    """The test set that `package.module:factory` returns (`--data`): a DataSplits, or anything
    `data.as_images` reads (a Dataset, a non-shuffling DataLoader, tensors, pairs, dict items
    or batches, read under `image_key` and `label_key`). DataError or ModelError, one line."""
    returned = import_object(spec, "--data")
    if isinstance(returned, DataSplits):
        return UserData(returned, own_splits=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedImagesWarning)  # kept as a note for the table
        try:
            read = labelled(Keyed(returned, image_key, label_key))
        except DataError as error:
            if "Keyed(" not in str(error):
                raise
            # The Python spelling of the advice, given to a command line user.
            cause = str(error).partition(": give the key names")[0]
            raise DataError(
                f"{cause} (--data {spec}): give the key names with --set image_key=... "
                "--set label_key=..."
            ) from None
    name = spec.rpartition(":")[2]
    splits = DataSplits(
        name, read.images, read.images, read.images, read.num_classes, read.class_names
    )
    return UserData(splits, own_splits=False, notes=read.notes)


@dataclass(frozen=True)
class UserData:
    """A `--data` test set as a DataSplits: a returned DataSplits (own_splits), or one whose
    three splits are the test set that was returned; notes say what reading it left out."""

    splits: DataSplits
    own_splits: bool
    notes: tuple[str, ...] = ()


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load the state dict saved in `path` into `model` (strict), read with weights_only=True.

    A dict holding the state dict under "state_dict" or "model" (a training checkpoint) is
    accepted too. ModelError for a missing, truncated or foreign file, and for keys or shapes
    that do not match the model (the first few keys named).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        state = read_checkpoint(path, "cpu")
    except CheckpointReadError as error:
        if error.unsafe:
            raise ModelError(
                f"{path} holds objects other than tensors (a whole pickled model?); save "
                "model.state_dict() instead: selectivity loads weights only"
            ) from None
        raise ModelError(
            f"cannot read weights {path} (truncated, or not a torch file): {error}"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelError(f"{path} is not a state dict (name -> tensor), got {type(state).__name__}")
    missing, unexpected = _differing_keys(model, state)
    if missing or unexpected:
        hint = (
            " (saved from DataParallel? its keys start with 'module.')"
            if unexpected and all(k.startswith("module.") for k in unexpected)
            else ""
        )
        raise ModelError(
            f"{path} does not fit the model: missing {_few(missing)}; unexpected "
            f"{_few(unexpected)}{hint}"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
        raise ModelError(
            f"{path} does not fit the model: {lines[0] if lines else one_line(error)}"
        ) from None


def _differing_keys(model: nn.Module, state: Mapping[str, Tensor]) -> tuple[list[str], list[str]]:
    wanted = set(model.state_dict())
    return sorted(wanted - set(state)), sorted(set(state) - wanted)


def _few(keys: list[str], count: int = 3) -> str:
    if not keys:
        return "none"
    more = f" and {len(keys) - count} more" if len(keys) > count else ""
    return ", ".join(keys[:count]) + more


def parse_normalize(text: str, channels: int) -> tuple[list[float], list[float]]:
    """'mean,std' (one pair for every channel) or 'm1,...,mC,s1,...,sC' -> (means, stds)."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ModelError(
            f"--normalize takes numbers mean,std (or {channels} means then {channels} stds), "
            f"got {text!r}"
        ) from None
    if len(values) == 2:
        means, stds = [values[0]] * channels, [values[1]] * channels
    elif len(values) == 2 * channels:
        means, stds = values[:channels], values[channels:]
    else:
        raise ModelError(
            f"--normalize takes 2 numbers (mean,std) or {2 * channels} ({channels} means then "
            f"{channels} stds) for {channels}-channel images, got {len(values)}"
        )
    if not all(s > 0 for s in stds):
        raise ModelError(f"--normalize: every std must be > 0, got {stds}")
    return means, stds


def with_normalization(model: nn.Module, mean: list[float], std: list[float]) -> nn.Module:
    """`model` with inputs normalised by (x - mean) / std first, for a model that expects
    normalised images: attacks and corruptions then work on [0, 1] pixels. Runs as a forward
    pre-hook, so the model's modules, their names and its state dict stay as they are (a
    submodule would be run by an nn.Sequential); the statistics follow the input's device."""
    normalizer = Normalize(mean, std)

    def normalize(module: nn.Module, args: tuple) -> tuple:
        return (normalizer.to(args[0].device)(args[0]), *args[1:])

    model.register_forward_pre_hook(normalize)
    return model


def user_model(
    spec: str,
    weights: Path | None,
    normalize: str | None,
    data: DataSplits,
    layers: Sites = None,
    random_init: bool = False,
) -> nn.Module:
    """The model of `spec` (module:factory or a registered name) with `weights` loaded and
    `normalize` in front, in eval mode, checked on two test images of `data`; `layers` (names,
    or a `probe.Units`) must name modules of it, or types it has. Without `weights` the model
    keeps the weights it was built with, which is refused unless `random_init` says that is
    meant (after the model's own checks, so a broken spec is named first)."""
    if ":" in spec:
        model = import_model(spec)
    else:
        model = create_model(spec, data.num_classes, data.in_channels)
    if weights is not None:
        load_weights(model, weights)
    if normalize is not None:
        mean, std = parse_normalize(normalize, data.in_channels)
        model = with_normalization(model, mean, std)
    check_layers(model, layers, "selectivity_layers")
    check_unit_types(model, layers)
    model.eval()
    x, _ = data.test.batch(slice(0, 2))
    try:
        with torch.no_grad():
            logits = logits_of(model(x))
    except ModelError as error:
        raise ModelError(f"{spec}: {error}") from None
    except Exception as error:
        raise ModelError(
            f"{spec} fails on {data.name} images of shape {tuple(x.shape[1:])}: {one_line(error)}"
        ) from None
    if logits.ndim != 2 or logits.shape[1] < data.num_classes:
        raise ModelError(
            f"{spec} must return logits (N, {data.num_classes}) for {data.name}, got "
            f"{tuple(logits.shape)}"
        )
    if weights is None and not random_init:
        raise ModelError(
            f"--model {spec} without --weights would be measured with the weights it is built "
            "with (random for a new network): give --weights FILE, or --random-init to measure "
            "them as they are (also for a factory that loads trained weights itself)"
        )
    return model

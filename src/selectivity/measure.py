"""Whole-data-set passes over a model: accuracy and class selectivity.

Activations are reduced to per-class sums batch by batch (`SelectivityAccumulator`), so a
ResNet50 over 10k images never holds more than one batch of activations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from selectivity.data import ImageSet
from selectivity.metrics import SelectivityAccumulator, network_selectivity, unit_activations
from selectivity.models import eval_mode
from selectivity.probe import ActivationProbe

__all__ = ["SelectivityResult", "accuracy", "measure_selectivity"]


@dataclass(frozen=True)
class SelectivityResult:
    """Per-layer selectivity of a model over a data set, with accuracy from the same pass.

    Silent units (never fired on the data) score SI 0 by the papers' definition, so `network`
    and `layer_means` fall as units die; `network_live` and `layer_live_means` leave them out,
    and `silent_fraction` says how many there were.
    """

    per_layer: dict[str, Tensor]  # layer -> (U,) SI
    preferred_class: dict[str, Tensor]  # layer -> (U,) class of the largest mean
    accuracy: float
    silent: dict[str, Tensor]  # layer -> (U,) bool, units that never fired
    samples: int = 0  # images the pass ran over

    @property
    def network(self) -> float:
        """mu_SI: mean over layers of the mean over units (silent units count as 0)."""
        return float(network_selectivity(self.per_layer))

    def layer_means(self) -> dict[str, float]:
        return {name: float(si.mean()) for name, si in self.per_layer.items()}

    def layer_live_means(self) -> dict[str, float]:
        """Layer -> mean SI over its live units; NaN for a layer whose units are all silent."""
        return {
            name: float(si[~self.silent[name]].mean())
            if bool((~self.silent[name]).any())
            else math.nan
            for name, si in self.per_layer.items()
        }

    @property
    def network_live(self) -> float:
        """mu_SI over live units: mean over layers with a live unit of their live means.

        NaN when every unit of every layer is silent.
        """
        means = [m for m in self.layer_live_means().values() if not math.isnan(m)]
        return sum(means) / len(means) if means else math.nan

    def layer_silent_fractions(self) -> dict[str, float]:
        """Layer -> fraction of its units that never fired, in [0, 1]."""
        return {name: float(silent.double().mean()) for name, silent in self.silent.items()}

    @property
    def silent_fraction(self) -> float:
        """Mean over layers of the layers' silent fractions (layers weigh equally, as in mu_SI)."""
        fractions = list(self.layer_silent_fractions().values())
        return sum(fractions) / len(fractions)


@torch.inference_mode()
def measure_selectivity(
    model: nn.Module,
    images: ImageSet,
    num_classes: int,
    layers: Iterable[str] | None = None,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> SelectivityResult:
    """Selectivity of every unit over all of `images` (and accuracy, since the logits are there).

    Raises NegativeActivationError naming the layer when a unit site gives negative values.
    """
    accumulator = SelectivityAccumulator(num_classes)
    correct = 0
    with (
        eval_mode(model),
        ActivationProbe(model, layers=layers, reduce=unit_activations, detach=True) as probe,
    ):
        for x, y in images.batches(batch_size, device):
            logits = model(x)
            correct += int((logits.argmax(1) == y).sum())
            accumulator.update(probe.activations, y)
    return SelectivityResult(
        accumulator.selectivity(),
        accumulator.preferred_class(),
        correct / len(images),
        accumulator.silent(),
        len(images),
    )


@torch.inference_mode()
def accuracy(
    model: nn.Module, images: ImageSet, batch_size: int = 1024, device: torch.device | str = "cpu"
) -> float:
    """Top-1 accuracy, fraction in [0, 1]."""
    correct = 0
    with eval_mode(model):
        for x, y in images.batches(batch_size, device):
            correct += int((model(x).argmax(1) == y).sum())
    return correct / len(images)

"""The class selectivity regularizer: loss = CE - alpha * mu_SI on each minibatch.

Built on `ActivationProbe` (hooks that keep only each map's spatial mean, with its graph) and the
one selectivity formula in `metrics`. All layers' units are concatenated into one (N, U_total)
matrix so the index is computed in a handful of tensor ops per step rather than a handful per
layer; the per-layer means are then taken over each layer's slice, so mu_SI is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from selectivity.metrics import class_selectivity, unit_activations
from selectivity.probe import ActivationProbe

__all__ = ["SelectivityRegularizer", "batch_network_selectivity"]


def batch_network_selectivity(
    activations: dict[str, Tensor], labels: Tensor, num_classes: int
) -> tuple[Tensor, dict[str, Tensor]]:
    """mu_SI of one minibatch, differentiable.

    activations: layer -> (N, U_layer) unit values (or feature maps, reduced here); labels: (N,).
    Returns (mu_SI scalar, layer -> mean SI of its units).
    """
    units = [unit_activations(a) for a in activations.values()]
    si = class_selectivity(torch.cat(units, dim=1), labels, num_classes)
    layer_means = torch.stack([part.mean() for part in si.split([u.shape[1] for u in units])])
    return layer_means.mean(), dict(zip(activations, layer_means, strict=True))


class SelectivityRegularizer:
    """Context manager: while open, each forward of `model` records what mu_SI needs.

    Usage:
        with SelectivityRegularizer(model, num_classes) as reg:
            logits = model(x)
            mu_si = reg.network_selectivity(y)
            loss = F.cross_entropy(logits, y) - alpha * mu_si
    """

    def __init__(self, model: nn.Module, num_classes: int, layers: Iterable[str] | None = None):
        self.num_classes = num_classes
        self.probe = ActivationProbe(model, layers=layers, reduce=unit_activations, detach=False)

    def __enter__(self) -> SelectivityRegularizer:
        self.probe.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.probe.__exit__(*exc_info)

    def network_selectivity(self, labels: Tensor) -> Tensor:
        """mu_SI (scalar, differentiable) of the latest forward's minibatch with these labels."""
        return batch_network_selectivity(self.probe.activations, labels, self.num_classes)[0]

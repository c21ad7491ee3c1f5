"""The class selectivity regularizer: loss = CE - alpha * mu_SI on each minibatch.

Built on `ActivationProbe` (hooks that keep only each map's spatial mean, with its graph) and the
one selectivity formula in `metrics`. All layers' units are concatenated into one (N, U_total)
matrix so the index is computed in a handful of tensor ops per step rather than a handful per
layer; the per-layer means are then taken over each layer's slice, so mu_SI is unchanged.
Units are read as everywhere (`probe` module docstring): conv channels, linear features, and the
D features of token-shaped (N, T, D) outputs, mean over tokens (or the class token).

It warns as `measure.measure_model` does: ReLUs applied with F.relu in `forward` are not
regularized (`probe.FunctionalReluWarning`, checked on two images of the first forward), and a
`torch.compile`d model is hooked through its original module (`CompiledModelWarning`).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from selectivity.metrics import (
    class_sums,
    require_non_negative,
    selectivity_from_class_sums,
    unit_activations,
)
from selectivity.probe import (
    UNIT_TYPES,
    ActivationProbe,
    FunctionalReluWarning,
    Sites,
    is_compiled,
    unmeasured_relu_message,
    unwrap,
)

__all__ = ["CompiledModelWarning", "SelectivityRegularizer", "batch_network_selectivity"]


class CompiledModelWarning(UserWarning):
    """The regularized model is `torch.compile`d: its hooks are on the original module."""


def batch_network_selectivity(
    activations: dict[str, Tensor],
    labels: Tensor,
    num_classes: int,
    check: bool = True,
    tokens: str = "mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """mu_SI of one minibatch, differentiable.

    activations: layer -> (N, U_layer) unit values (or (N, T, D) tokens or (N, C, H, W) maps,
    reduced here by `metrics.unit_activations` with `tokens`), non-negative;
    labels: (N,). check: refuse negative values (NegativeActivationError naming the layer); one
    host sync per layer, so the regularizer checks its first batch only.
    Returns (mu_SI scalar, layer -> mean SI of its units). A batch with fewer than two classes
    present has no defined SI: it returns 0 for mu_SI and every layer, still attached to the
    graph (a zero gradient), so it adds nothing to the loss.
    """
    if check:
        for name, value in activations.items():
            require_non_negative(value, name)
    units = [unit_activations(a, tokens) for a in activations.values()]
    joined = torch.cat(units, dim=1)
    sums, counts = class_sums(joined, labels, num_classes)
    if int((counts > 0).sum()) < 2:
        # A user's last batch can hold one class: 0 * sum keeps the graph and the dtype.
        zero = joined.sum() * 0
        return zero, dict.fromkeys(activations, zero)
    si = selectivity_from_class_sums(sums, counts)[0]
    layer_means = torch.stack([part.mean() for part in si.split([u.shape[1] for u in units])])
    return layer_means.mean(), dict(zip(activations, layer_means, strict=True))


class SelectivityRegularizer:
    """Context manager: while open, each forward of `model` records what mu_SI needs.

    model: the network being trained. num_classes: K of the labels. layers: unit sites by module
    name, or a `probe.Units` (default: every module of `unit_types`, nn.ReLU). Usage, in any training loop:

        with SelectivityRegularizer(model, num_classes) as reg:
            for x, y in batches:
                logits = model(x)
                mu_si = reg.network_selectivity(y)  # of the forward just run
                loss = F.cross_entropy(logits, y) - alpha * mu_si
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    alpha < 0 lowers selectivity, alpha > 0 raises it. A minibatch with fewer than two classes
    contributes 0 (with a zero gradient). The first call checks that the units are non-negative
    (NegativeActivationError naming the layer otherwise); later calls skip the check, so its
    host sync per layer is paid once, not every step.

    Two forward passes in one step (a clean and an augmented or adversarial batch, or an eval
    pass inside the loop): the probe keeps only the latest forward of `model`, so
    `network_selectivity(y)` is the mu_SI of whichever forward ran last, and `y` must be that
    forward's labels. Call it right after the forward you mean to regularize, once per forward
    for both (and add the terms); the graph of an earlier forward stays valid, only the probe's
    record of it is replaced. Forwards run outside the `with` block are not recorded.

    A `torch.compile`d model: the hooks are on its original module, which compiled code that
    already ran skips; a CompiledModelWarning says so at construction (compile after creating the
    regularizer, or train `model._orig_mod`), and a forward that recorded nothing raises
    EmptyCaptureError mentioning compilation.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        layers: Sites = None,
        unit_types: tuple[type[nn.Module], ...] = UNIT_TYPES,
    ):
        self.num_classes = num_classes
        self.probe = ActivationProbe(
            model, layers=layers, reduce=unit_activations, detach=False, unit_types=unit_types
        )
        self.layers = layers
        self._checked = False
        self._relu_check: torch.utils.hooks.RemovableHandle | None = None
        if is_compiled(model):
            warnings.warn(
                f"{type(unwrap(model)).__name__} is torch.compile'd: the regularizer hooks its "
                "original module, and compiled code that already ran may skip hooks added later; "
                "compile after creating the regularizer, or train model._orig_mod",
                CompiledModelWarning,
                stacklevel=2,
            )

    def _check_functional_relu(self, module: nn.Module, inputs: tuple) -> None:
        """Before the first forward: warn when ReLUs applied with F.relu escape the units."""
        if self._relu_check is not None:
            self._relu_check.remove()
            self._relu_check = None
        if not inputs or not isinstance(inputs[0], Tensor):
            return
        message = unmeasured_relu_message(module, inputs[0][:2].detach(), self.layers)
        if message is not None:
            warnings.warn(
                message.replace("not measured", "not regularized"),
                FunctionalReluWarning,
                stacklevel=2,
            )

    def __enter__(self) -> SelectivityRegularizer:
        self.probe.__enter__()
        if not self._checked:
            # Before the probe's own pre-hook, so the check's forward leaves no record behind.
            self._relu_check = self.probe.model.register_forward_pre_hook(
                self._check_functional_relu, prepend=True
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._relu_check is not None:
            self._relu_check.remove()
            self._relu_check = None
        self.probe.__exit__(*exc_info)

    def network_selectivity(self, labels: Tensor) -> Tensor:
        """mu_SI (scalar, differentiable) of the latest forward's minibatch with these labels."""
        value = batch_network_selectivity(
            self.probe.activations,
            labels,
            self.num_classes,
            check=not self._checked,
        )[0]
        self._checked = True
        return value

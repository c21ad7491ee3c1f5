"""ActivationProbe: record the outputs of a network's unit sites through forward hooks.

A unit site is a module call whose output holds units (feature maps or neurons). By default the
sites are every call of an `nn.ReLU` module; a module called several times in one forward (as
torchvision's ResNet blocks do with their single `relu`) yields one entry per call, named
`name`, `name#2`, `name#3`, ... in call order, so each call site is its own layer.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

__all__ = ["ActivationProbe", "EmptyCaptureError", "default_sites", "unknown_layers"]


class EmptyCaptureError(RuntimeError):
    """A forward pass ran but no unit site recorded anything."""


def default_sites(model: nn.Module) -> list[str]:
    """Names of the modules hooked by default: every `nn.ReLU` in `model`."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.ReLU)]


def unknown_layers(model: nn.Module, layers: Iterable[str] | None) -> list[str]:
    """The names in `layers` that are not modules of `model` (none for None: the default sites)."""
    modules = dict(model.named_modules())
    return [name for name in layers or () if name not in modules]


class ActivationProbe:
    """Context manager that records unit-site outputs, one entry per call, per forward.

    model: any nn.Module. layers: module names as in `model.named_modules()`; default all ReLUs.
    reduce: optional function applied to each output inside the hook (for instance
        `metrics.unit_activations`, which keeps only (N, C) spatial means).
    detach: store detached tensors (analysis) or keep the graph (the regularizer).

    `probe.activations` maps site name -> tensor for the latest forward of `model`. An output
    that is the model's own output (a network ending in a ReLU) is dropped: the output layer is
    neither regularized nor analysed. Hooks are removed on exit, also when the body raises.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Iterable[str] | None = None,
        reduce: Callable[[Tensor], Tensor] | None = None,
        detach: bool = False,
    ):
        self.model = model
        modules = dict(model.named_modules())
        names = default_sites(model) if layers is None else list(layers)
        unknown = unknown_layers(model, names)
        if unknown:
            raise ValueError(
                f"unknown layer name(s) {unknown}; the model has {[n for n in modules if n][:50]}"
            )
        if not names:
            raise EmptyCaptureError(
                f"{type(model).__name__} has no unit sites (no nn.ReLU modules); pass layers=[...]"
            )
        self.layers = names
        self.reduce = reduce
        self.detach = detach
        self._modules = {name: modules[name] for name in names}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._captured: dict[str, Tensor] = {}
        self._calls: dict[str, int] = {}
        self._forwards = 0

    def _record(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            count = self._calls.get(name, 0) + 1
            self._calls[name] = count
            key = name if count == 1 else f"{name}#{count}"
            value = output.detach() if self.detach else output
            if self.reduce is not None:
                value = self.reduce(value)
            # A weak reference: holding the raw output would keep every full map alive.
            self._captured[key] = (value, weakref.ref(output))  # type: ignore[assignment]

        return hook

    def _start_forward(self, module: nn.Module, inputs: tuple) -> None:
        self._captured = {}
        self._calls = {}

    def _end_forward(self, module: nn.Module, inputs: tuple, output: object) -> None:
        self._forwards += 1
        # Keep sites in call order, dropping one whose tensor is the network's output.
        self._captured = {
            key: value
            for key, (value, raw) in self._captured.items()  # type: ignore[misc]
            if raw() is not output
        }

    def __enter__(self) -> ActivationProbe:
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._start_forward))
            for name, module in self._modules.items():
                self._handles.append(module.register_forward_hook(self._record(name)))
            self._handles.append(self.model.register_forward_hook(self._end_forward))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this probe added (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def activations(self) -> dict[str, Tensor]:
        """Site name -> output of that call in the latest forward, in call order."""
        if self._forwards == 0:
            raise EmptyCaptureError("the probe has seen no forward pass of its model")
        if not self._captured:
            raise EmptyCaptureError(
                f"no unit site fired during the forward pass (sites: {self.layers})"
            )
        return dict(self._captured)

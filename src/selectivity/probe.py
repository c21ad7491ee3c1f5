"""ActivationProbe: record the outputs of a network's unit sites through forward hooks.

A unit site is a module call whose output holds units (feature maps or neurons). By default the
sites are every call of an `nn.ReLU` module (`unit_types` names other module types, for instance
`(nn.ReLU, nn.ReLU6)`); a module called several times in one forward (as torchvision's ResNet
blocks do with their single `relu`) yields one entry per call, named `name`, `name#2`,
`name#3`, ... in call order, so each call site is its own layer.

Other activation modules (GELU, Tanh, LeakyReLU, ...) are not units by default: the class
selectivity index is defined for non-negative responses. A probe that chose its sites itself
lists the activation modules it passed over in `probe.skipped` and warns about them
(`SkippedActivationsWarning`), so a GELU network is never measured on a silent subset.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

__all__ = [
    "ACTIVATION_TYPES",
    "UNIT_TYPES",
    "ActivationProbe",
    "EmptyCaptureError",
    "SkippedActivationsWarning",
    "UnknownLayerError",
    "check_layers",
    "default_sites",
    "skipped_activations",
]

UNIT_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU,)

# The elementwise activation modules of torch.nn: what `skipped_activations` looks for.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Hardshrink,
    nn.Softshrink,
    nn.Tanh,
    nn.Tanhshrink,
    nn.Sigmoid,
    nn.LogSigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.Threshold,
)


class EmptyCaptureError(RuntimeError):
    """A forward pass ran but no unit site recorded anything."""


class SkippedActivationsWarning(UserWarning):
    """The model has activation modules that are not of the probe's unit types."""


def default_sites(
    model: nn.Module, unit_types: tuple[type[nn.Module], ...] = UNIT_TYPES
) -> list[str]:
    """Names of the modules hooked by default: every module of `unit_types` (nn.ReLU)."""
    return [name for name, module in model.named_modules() if isinstance(module, unit_types)]


def skipped_activations(
    model: nn.Module, unit_types: tuple[type[nn.Module], ...] = UNIT_TYPES
) -> list[str]:
    """'name (Type)' of every activation module of `model` that is not of `unit_types`."""
    return [
        f"{name} ({type(module).__name__})"
        for name, module in model.named_modules()
        if isinstance(module, ACTIVATION_TYPES) and not isinstance(module, unit_types)
    ]


class UnknownLayerError(ValueError):
    """Layer names that are not modules of the model."""


def check_layers(
    model: nn.Module, layers: Iterable[str] | None, what: str = "layer name(s)"
) -> None:
    """UnknownLayerError naming the entries of `layers` that are not modules of `model` (None: the
    default sites, always known), and the names the model has. `what` names the option."""
    modules = [name for name, _ in model.named_modules() if name]
    unknown = [name for name in layers or () if name not in modules]
    if unknown:
        raise UnknownLayerError(
            f"unknown {what} {', '.join(unknown)}; {type(model).__name__} has {', '.join(modules[:50])}"
        )


class ActivationProbe:
    """Context manager that records unit-site outputs, one entry per call, per forward.

    model: any nn.Module. layers: module names as in `model.named_modules()`; default every
        module of `unit_types` (nn.ReLU). Explicit layers are taken as given.
    reduce: optional function applied to each output inside the hook (for instance
        `metrics.unit_activations`, which keeps only (N, C) spatial means).
    detach: store detached tensors (analysis) or keep the graph (the regularizer).
    unit_types: the module types that are units when `layers` is None (default `(nn.ReLU,)`).

    `probe.skipped` lists ('name (Type)') the activation modules the default sites passed over
    (empty when `layers` is given); a `SkippedActivationsWarning` names them at construction.

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
        unit_types: tuple[type[nn.Module], ...] = UNIT_TYPES,
    ):
        self.model = model
        modules = dict(model.named_modules())
        names = default_sites(model, unit_types) if layers is None else list(layers)
        self.skipped = skipped_activations(model, unit_types) if layers is None else []
        check_layers(model, names)
        kinds = ", ".join(t.__name__ for t in unit_types)
        if not names:
            skipped = f"; skipped {', '.join(self.skipped)}" if self.skipped else ""
            raise EmptyCaptureError(
                f"{type(model).__name__} has no unit sites (no {kinds} modules{skipped}); "
                "pass layers=[...] or unit_types=(...)"
            )
        if self.skipped:
            warnings.warn(
                f"not measured as units (not {kinds}): {', '.join(self.skipped)}; pass "
                "unit_types=(...) to include non-negative activations",
                SkippedActivationsWarning,
                stacklevel=2,
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
            key: value for key, (value, raw) in self._captured.items() if raw() is not output
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

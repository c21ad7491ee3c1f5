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

Which outputs count as units is a `Units` (module types, or named modules: an activation or
any block, such as a torchvision `layer1.0`, whose output is then the layer), accepted wherever
`layers` is. Signed activations: the index needs non-negative responses and the papers, which
use ReLU networks, say nothing about others. A site whose module is a ReLU-like activation with
a bounded negative lobe (GELU, SiLU, Mish, ELU, CELU, SELU, Hardswish, LeakyReLU, PReLU, RReLU:
`RECTIFIED_TYPES`) is read as its positive part max(a, 0), elementwise before the spatial mean:
what a ReLU there would pass on. A shift (a - min) is not used, since the index is not
shift-invariant and the minimum would depend on the data. Any other site with a negative value
(a block output, a Tanh) raises `NegativeActivationError`, unless `Units(positive_part=True)`
asks for the positive part there too.

A network that applies `F.relu` in `forward` has no module to hook at that call: measure the
outputs of its blocks (`Units(layers=(...))`), or use `nn.ReLU` modules. `functional_relu_calls`
counts such calls, so a measurement can warn about them. A `torch.compile`d model is probed
through its original module (`unwrap`): compiled graphs need not run hooks added later.
"""

from __future__ import annotations

import warnings
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from selectivity.errors import SelectivityError

__all__ = [
    "ACTIVATION_TYPES",
    "RECTIFIED_TYPES",
    "UNIT_TYPES",
    "UNIT_TYPE_NAMES",
    "ActivationProbe",
    "EmptyCaptureError",
    "Sites",
    "SkippedActivationsWarning",
    "Units",
    "UnknownLayerError",
    "check_layers",
    "check_unit_types",
    "default_sites",
    "functional_relu_calls",
    "named_units",
    "skipped_activations",
    "unwrap",
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

# ReLU-like activations with a bounded or small negative part: read as max(a, 0) (module docstring).
RECTIFIED_TYPES: tuple[type[nn.Module], ...] = (
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.Hardswish,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
)


# The module types the `unit_types` config key names (lower case): ReLU, ReLU6 and the
# `RECTIFIED_TYPES`, which are read as their positive part. Signed activations without a
# ReLU-like shape (Tanh, ...) are left to `Units(layers=..., positive_part=True)`.
UNIT_TYPE_NAMES: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "elu": nn.ELU,
    "celu": nn.CELU,
    "selu": nn.SELU,
    "hardswish": nn.Hardswish,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "rrelu": nn.RReLU,
}


@dataclass(frozen=True)
class Units:
    """Which module outputs are units, and how signed ones are read.

    layers: module names as in `model.named_modules()` (activations, or blocks whose output is
        the layer); None: every module of `types`. types: the module types that are units when
        `layers` is None. positive_part: None reads `RECTIFIED_TYPES` sites as max(a, 0) and any
        other as it is (a negative value is then an error); True reads every site as max(a, 0);
        False none.
    """

    layers: tuple[str, ...] | None = None
    types: tuple[type[nn.Module], ...] = (nn.ReLU,)
    positive_part: bool | None = None

    def __post_init__(self) -> None:
        if isinstance(self.layers, str):
            raise TypeError(
                f"Units.layers must be a sequence of names, got the string {self.layers!r}"
            )
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
        if not self.types or not all(
            isinstance(t, type) and issubclass(t, nn.Module) for t in self.types
        ):
            raise TypeError(f"Units.types must be nn.Module classes, got {self.types!r}")

    def rectified(self, module: nn.Module) -> bool:
        """Whether the output of `module` is read as its positive part."""
        if self.positive_part is None:
            return isinstance(module, RECTIFIED_TYPES)
        return self.positive_part


# What measurement functions accept as `layers`: names, a Units, or None (every ReLU call site).
Sites = Iterable[str] | Units | None


def as_units(layers: Sites, unit_types: tuple[type[nn.Module], ...] = UNIT_TYPES) -> Units:
    """`layers` as a Units (names or None: with `unit_types`)."""
    if isinstance(layers, Units):
        return layers
    return Units(None if layers is None else tuple(layers), unit_types)


def named_units(layers: Iterable[str] | None, type_names: Iterable[str]) -> Sites:
    """The units of the config keys `selectivity_layers` and `unit_types` (names of
    `UNIT_TYPE_NAMES`, any case). Named layers, and every nn.ReLU (the default types), are
    given in their plain form (names, None), so records that hold `repr(layers)` (an
    evaluation's identity) read as before the key existed."""
    if layers is not None:
        return tuple(layers)
    types = []
    for name in type_names:
        if name.lower() not in UNIT_TYPE_NAMES:
            raise ValueError(f"unknown unit type {name!r}; known: {', '.join(UNIT_TYPE_NAMES)}")
        types.append(UNIT_TYPE_NAMES[name.lower()])
    return None if tuple(types) == UNIT_TYPES else Units(None, tuple(types))


def unwrap(model: nn.Module) -> nn.Module:
    """The module a `torch.compile`d model wraps (its `_orig_mod`); any other model itself."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else model


_RELU_FUNCTIONS = {F.relu, F.relu_, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_}


class _CountRelu(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func in _RELU_FUNCTIONS:
            self.calls += 1
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def functional_relu_calls(model: nn.Module, x: Tensor) -> int:
    """How many ReLUs one forward of `model` on `x` applies outside an `nn.ReLU` module
    (F.relu, torch.relu, Tensor.relu in `forward`): call sites no module hook sees."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    inside = [0]

    def count(module: nn.Module, inputs: tuple, output: object) -> None:
        inside[0] += 1

    handles = [m.register_forward_hook(count) for m in relus]
    try:
        with _CountRelu() as counter:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return max(counter.calls - inside[0], 0)


class EmptyCaptureError(SelectivityError, RuntimeError):
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


class UnknownLayerError(SelectivityError, ValueError):
    """Layer names that are not modules of the model."""


def check_layers(model: nn.Module, layers: Sites, what: str = "layer name(s)") -> None:
    """UnknownLayerError naming the entries of `layers` that are not modules of `model` (None: the
    default sites, always known), and the names the model has. `what` names the option."""
    names = as_units(layers).layers
    modules = [name for name, _ in unwrap(model).named_modules() if name]
    unknown = [name for name in names or () if name not in modules]
    if unknown:
        raise UnknownLayerError(
            f"unknown {what} {', '.join(unknown)}; {type(model).__name__} has {', '.join(modules[:50])}"
        )


def check_unit_types(model: nn.Module, layers: Sites) -> None:
    """EmptyCaptureError, one line, when `layers` chooses units by module type and `model` has
    no module of those types: it names the types looked for, the activation types the model
    has (with counts) and the config keys that choose others."""
    units = as_units(layers)
    model = unwrap(model)
    if units.layers is not None or default_sites(model, units.types):
        return
    found = Counter(
        type(module) for _, module in model.named_modules() if isinstance(module, ACTIVATION_TYPES)
    )
    looked = ", ".join(f"nn.{kind.__name__}" for kind in units.types)
    has = ", ".join(f"{kind.__name__} ({count})" for kind, count in found.items())
    offered = [name for name, kind in UNIT_TYPE_NAMES.items() if kind in found]
    choose = f"--set unit_types={','.join(offered)}, or " if offered else ""
    what = f"it has {has}" if found else "it has no activation modules (F.relu in forward?)"
    raise EmptyCaptureError(
        f"no {looked} modules in {type(model).__name__}; {what}: {choose}name the modules or "
        "blocks whose outputs are units with --set selectivity_layers=..."
    )


class ActivationProbe:
    """Context manager that records unit-site outputs, one entry per call, per forward.

    model: any nn.Module (a `torch.compile`d one is probed through `unwrap(model)`: names as
        in the original module). layers: module names as in `model.named_modules()`, or a
        `Units`; default every module of `unit_types` (nn.ReLU). Explicit layers are taken as
        given. Sites that `Units.rectified` names are recorded as max(a, 0).
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
        layers: Sites = None,
        reduce: Callable[[Tensor], Tensor] | None = None,
        detach: bool = False,
        unit_types: tuple[type[nn.Module], ...] = UNIT_TYPES,
    ):
        units = as_units(layers, unit_types)
        self._compiled = unwrap(model) is not model
        model = unwrap(model)
        self.model = model
        modules = dict(model.named_modules())
        chosen = units.layers is None
        names = default_sites(model, units.types) if chosen else list(units.layers or ())
        self.skipped = skipped_activations(model, units.types) if chosen else []
        check_layers(model, names)
        kinds = ", ".join(t.__name__ for t in units.types)
        if not names:
            skipped = f"; skipped {', '.join(self.skipped)}" if self.skipped else ""
            raise EmptyCaptureError(
                f"{type(model).__name__} has no unit sites (no {kinds} modules{skipped}); pass "
                "unit_types=(...) (e.g. nn.GELU, read as max(a, 0)), or layers=[...] naming the "
                "modules or blocks whose outputs are units (needed when forward calls F.relu)"
            )
        if self.skipped:
            warnings.warn(
                f"not measured as units (not {kinds}): {', '.join(self.skipped)}; pass "
                "unit_types=(...) (the config key unit_types, e.g. --set unit_types=gelu) to "
                "include them",
                SkippedActivationsWarning,
                stacklevel=2,
            )
        self.units = units
        self._rectified = {name for name in names if units.rectified(modules[name])}
        self.layers = names
        self.reduce = reduce
        self.detach = detach
        self._modules = {name: modules[name] for name in names}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._captured: dict[str, Tensor] = {}
        self._calls: dict[str, int] = {}
        self._forwards = 0

    def _record(self, name: str) -> Callable:
        rectify = name in self._rectified

        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            count = self._calls.get(name, 0) + 1
            self._calls[name] = count
            key = name if count == 1 else f"{name}#{count}"
            value = output.detach() if self.detach else output
            if rectify:
                value = value.clamp_min(0)
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
            compiled = (
                "; a torch.compile'd model runs compiled code that skips hooks added later: "
                "call its original module (model._orig_mod) while probing"
                if self._compiled
                else ""
            )
            raise EmptyCaptureError(
                f"no unit site fired during the forward pass (sites: {self.layers}){compiled}"
            )
        return dict(self._captured)

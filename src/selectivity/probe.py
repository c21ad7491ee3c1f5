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

Activation types are matched by what they compute, not by class identity (`activation_kind`):
torch.nn's classes, and the usual wrappers of other libraries by class name (Hugging Face
transformers' `GELUActivation`, `NewGELUActivation`, `QuickGELUActivation`, ..., timm's `GELU`,
`Swish`, ...; `register_activation` adds more), so `Units(types=(nn.GELU,))` and the config key
`unit_types=gelu` find a transformer's GELUs whatever class implements them.

Units of an output, by its shape (`layout_of`, recorded per site in `probe.layouts`):
(N, U) features are the units. (N, C, H, W) maps (convolutions, batch norm) are read
channel-first: a unit is a channel, its response the mean over H x W. (N, T, D) outputs are
tokens x features (transformers): a unit is one of the D features, its response the mean over
the T tokens, or its value at the first (class) token with `Units(tokens="cls")`. A 3-D output is
read as (N, C, L) channels x length instead where it comes from a 1-D convolution, batch norm,
group norm or pooling (the site itself, or for an activation, dropout or identity site the module
whose output it takes); a 4-D output of a Linear or LayerNorm (a ConvNeXt or Swin MLP on
(N, H, W, C)) is read channels-last. The producer is looked up in the first forward only. Any
other shape with more than one non-batch axis is refused (`UnitShapeError`). The probe hands its
`reduce` (and `probe.activations`) each output in the form `metrics.unit_activations` reads by
rank: (N, U), (N, T, D) or (N, C, H, W).

A network that applies `F.relu` in `forward` has no module to hook at that call: measure the
outputs of its blocks (`Units(layers=(...))`), or use `nn.ReLU` modules. `functional_relu_calls`
counts such calls and `unmeasured_relu_message` says so, so a measurement or the regularizer
can warn about them. A `torch.compile`d model is probed through its original module (`unwrap`,
which also looks through `models.LogitsOnly`): compiled graphs need not run hooks added later.
"""

from __future__ import annotations

import warnings
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from selectivity.activations import (
    ACTIVATION_NAMES,
    ACTIVATION_TYPES,
    RECTIFIED_KINDS,
    RECTIFIED_TYPES,
    UNIT_TYPE_NAMES,
    activation_kind,
    is_unit_type,
    register_activation,
)
from selectivity.errors import SelectivityError
from selectivity.models import LogitsOnly, eval_mode

__all__ = [
    "ACTIVATION_NAMES",
    "ACTIVATION_TYPES",
    "LAYOUTS",
    "RECTIFIED_KINDS",
    "RECTIFIED_TYPES",
    "TOKEN_RULES",
    "UNIT_TYPES",
    "UNIT_TYPE_NAMES",
    "ActivationProbe",
    "EmptyCaptureError",
    "FunctionalReluWarning",
    "Sites",
    "SkippedActivationsWarning",
    "UnitShapeError",
    "Units",
    "UnknownLayerError",
    "activation_counts",
    "activation_kind",
    "check_layers",
    "check_unit_types",
    "default_sites",
    "functional_relu_calls",
    "is_compiled",
    "is_unit_type",
    "layout_note",
    "layout_of",
    "named_units",
    "register_activation",
    "site_layouts",
    "skipped_activations",
    "unmeasured_relu_message",
    "unwrap",
]

UNIT_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU,)


# How token-shaped (N, T, D) outputs give one value per feature: the mean over the tokens, or
# the first (class) token's value.
TOKEN_RULES = ("mean", "cls")


@dataclass(frozen=True)
class Units:
    """Which module outputs are units, and how signed and token-shaped ones are read.

    layers: module names as in `model.named_modules()` (activations, or blocks whose output is
        the layer); None: every module of `types`. types: the module types that are units when
        `layers` is None, as classes or `UNIT_TYPE_NAMES` keys ("gelu"); an activation class
        stands for every module computing the same (`is_unit_type`). positive_part: None reads
        rectified activations (`RECTIFIED_KINDS`: GELU, SiLU, ...) as max(a, 0) and any other
        site as it is (a negative value is then an error); True reads every site as max(a, 0);
        False none. tokens: a unit of an (N, T, D) output is one of the D features; "mean" (the
        default) takes its mean over the T tokens, "cls" its value at the first token.
    """

    layers: tuple[str, ...] | None = None
    types: tuple[type[nn.Module], ...] = (nn.ReLU,)
    positive_part: bool | None = None
    tokens: str = "mean"

    def __post_init__(self) -> None:
        if isinstance(self.layers, str):
            raise TypeError(
                f"Units.layers must be a sequence of names, got the string {self.layers!r}"
            )
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
        # Names ("gelu") are accepted for classes: the annotation says what is kept.
        given: Any = self.types
        types: tuple[Any, ...] = tuple(given) if isinstance(given, (tuple, list)) else ()
        if any(isinstance(t, str) for t in types):
            unknown = [t for t in types if isinstance(t, str) and t.lower() not in UNIT_TYPE_NAMES]
            if unknown:
                raise ValueError(
                    f"unknown unit type {unknown[0]!r}; known: {', '.join(UNIT_TYPE_NAMES)}"
                )
            types = tuple(UNIT_TYPE_NAMES[t.lower()] if isinstance(t, str) else t for t in types)
            object.__setattr__(self, "types", types)
        if not types or not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types):
            raise TypeError(f"Units.types must be nn.Module classes, got {self.types!r}")
        if self.tokens not in TOKEN_RULES:
            raise ValueError(f"Units.tokens must be 'mean' or 'cls', got {self.tokens!r}")

    def rectified(self, module: nn.Module) -> bool:
        """Whether the output of `module` is read as its positive part."""
        if self.positive_part is None:
            return activation_kind(module) in RECTIFIED_KINDS
        return self.positive_part


# What measurement functions accept as `layers`: names, a Units, or None (every ReLU call site).
Sites = Iterable[str] | Units | None


def as_units(layers: Sites, unit_types: tuple[type[nn.Module], ...] = UNIT_TYPES) -> Units:
    """`layers` as a Units (names or None: with `unit_types`)."""
    if isinstance(layers, Units):
        return layers
    return Units(None if layers is None else tuple(layers), unit_types)


def named_units(
    layers: Iterable[str] | None,
    type_names: Iterable[str],
    positive_part: bool | None = None,
    tokens: str = "mean",
) -> Sites:
    """The units of the config keys `selectivity_layers` and `unit_types` (names of
    `UNIT_TYPE_NAMES`, any case), with the positive-part and token rules of `Units`. Named
    layers, and every nn.ReLU (the default types), with the default rules are given in their
    plain form (names, None), so records that hold `repr(layers)` (an evaluation's identity)
    read as before the keys existed."""
    types = []
    for name in type_names:
        if name.lower() not in UNIT_TYPE_NAMES:
            raise ValueError(f"unknown unit type {name!r}; known: {', '.join(UNIT_TYPE_NAMES)}")
        types.append(UNIT_TYPE_NAMES[name.lower()])
    if positive_part is not None or tokens != "mean":
        named = None if layers is None else tuple(layers)
        return Units(named, tuple(types) or UNIT_TYPES, positive_part, tokens)
    if layers is not None:
        return tuple(layers)
    return None if tuple(types) == UNIT_TYPES else Units(None, tuple(types))


def unwrap(model: nn.Module) -> nn.Module:
    """The module a `torch.compile`d model (its `_orig_mod`) or a `models.LogitsOnly` wraps, as
    often as they are nested; any other model itself."""
    while True:
        inner = model.model if isinstance(model, LogitsOnly) else getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def is_compiled(model: nn.Module) -> bool:
    """Whether `model`, or a model it wraps, is `torch.compile`d."""
    while True:
        if isinstance(getattr(model, "_orig_mod", None), nn.Module):
            return True
        if not isinstance(model, LogitsOnly):
            return False
        model = model.model


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


class FunctionalReluWarning(UserWarning):
    """The model applies ReLUs in `forward` (F.relu) that no module hook sees: not measured."""


def unmeasured_relu_message(model: nn.Module, x: Tensor, layers: Sites) -> str | None:
    """One line when `layers` leaves the default ReLU module sites and a forward of `model` on
    `x` (in eval mode, restored after) applies ReLUs outside modules, which are not measured."""
    units = as_units(layers)
    model = unwrap(model)
    if units.layers is not None or nn.ReLU not in units.types:
        return None
    if not default_sites(model, units.types):
        return None  # the probe refuses the model, saying what to do
    with eval_mode(model):
        calls = functional_relu_calls(model, x)
    if not calls:
        return None
    return (
        f"{calls} ReLU call(s) in {type(model).__name__}.forward are functional (F.relu), not "
        "nn.ReLU modules, and are not measured: name the blocks whose outputs are units "
        "(layers=[...]; --set selectivity_layers=...) or use nn.ReLU modules"
    )


def default_sites(
    model: nn.Module, unit_types: tuple[type[nn.Module], ...] = UNIT_TYPES
) -> list[str]:
    """Names of the modules hooked by default: every module of `unit_types` (nn.ReLU), matched
    by `is_unit_type`."""
    return [name for name, module in model.named_modules() if is_unit_type(module, unit_types)]


def skipped_activations(
    model: nn.Module, unit_types: tuple[type[nn.Module], ...] = UNIT_TYPES
) -> list[str]:
    """'name (Type)' of every activation module of `model` that is not of `unit_types`."""
    return [
        f"{name} ({type(module).__name__})"
        for name, module in model.named_modules()
        if activation_kind(module) is not None and not is_unit_type(module, unit_types)
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


def activation_counts(model: nn.Module) -> Counter[type[nn.Module]]:
    """The activation module classes of `model` (whatever library defines them), with counts."""
    return Counter(
        type(module) for _, module in model.named_modules() if activation_kind(module) is not None
    )


def _has(found: Counter[type[nn.Module]]) -> str:
    if not found:
        return "it has no activation modules (F.relu in forward?)"
    return "it has " + ", ".join(f"{kind.__name__} ({count})" for kind, count in found.items())


def check_unit_types(model: nn.Module, layers: Sites) -> None:
    """EmptyCaptureError, one line, when `layers` chooses units by module type and `model` has
    no module of those types: it names the types looked for, the activation types the model
    has (with counts, whatever library defines them) and the config keys that choose others."""
    units = as_units(layers)
    model = unwrap(model)
    if units.layers is not None or default_sites(model, units.types):
        return
    found = activation_counts(model)
    looked = ", ".join(f"nn.{kind.__name__}" for kind in units.types)
    kinds = {activation_kind(kind) for kind in found}
    offered = [name for name in UNIT_TYPE_NAMES if name in kinds]
    choose = f"--set unit_types={','.join(offered)}, or " if offered else ""
    raise EmptyCaptureError(
        f"no {looked} modules in {type(model).__name__}; {_has(found)}: {choose}name the "
        "modules or blocks whose outputs are units with --set selectivity_layers=..."
    )


# ---- which axis holds the units --------------------------------------------------------------

# The layouts `layout_of` gives (module docstring): what one unit of an output is.
LAYOUTS = ("features", "channels", "channels_1d", "channels_last", "tokens")


class UnitShapeError(ValueError):
    """A unit site's output has a shape whose units cannot be told (one line, naming it)."""


# Modules whose (N, C, L) output is channels x length; and modules whose output keeps the
# features on the last axis. A subclass that permutes (timm's LayerNorm2d is an nn.LayerNorm on
# (N, C, H, W)) is caught by the size check in `_produced_layout`.
_CHANNEL_FIRST = (
    nn.Conv1d,
    nn.ConvTranspose1d,
    nn.BatchNorm1d,
    nn.InstanceNorm1d,
    nn.GroupNorm,
    nn.MaxPool1d,
    nn.AvgPool1d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveMaxPool1d,
    nn.LPPool1d,
)
_FEATURES_LAST = (nn.Linear, nn.LayerNorm, nn.Embedding, nn.Bilinear)
# Modules whose output has the layout of their input.
_ELEMENTWISE = (nn.Dropout, nn.Dropout1d, nn.AlphaDropout, nn.Identity)


def _produced_layout(module: nn.Module, output: Tensor) -> str | None:
    """The layout `module`'s type fixes for its 3-D or 4-D `output`, None when it fixes none."""
    if output.ndim not in (3, 4):
        return None
    if isinstance(module, _CHANNEL_FIRST):
        size = getattr(module, "out_channels", None) or getattr(module, "num_features", None)
        size = size or getattr(module, "num_channels", None)
        if output.ndim == 3 and (size is None or output.shape[1] == size):
            return "channels_1d"
    if isinstance(module, _FEATURES_LAST):
        size = getattr(module, "out_features", None) or getattr(module, "embedding_dim", None)
        shape = getattr(module, "normalized_shape", None)
        size = size or (shape[-1] if shape else None)
        if size is None or output.shape[-1] == size:
            return "tokens" if output.ndim == 3 else "channels_last"
    return None


def layout_of(output: Tensor, produced: str | None = None, layer: str = "") -> str:
    """What one unit of `output` is (a `LAYOUTS` name): 2-D features; 3-D tokens x features
    unless `produced` (the layout its producing module fixes) says channels x length; 4-D
    channels first unless produced channels-last. UnitShapeError, naming `layer`, otherwise."""
    if output.ndim == 2:
        return "features"
    if output.ndim == 3:
        return "channels_1d" if produced == "channels_1d" else "tokens"
    if output.ndim == 4:
        return "channels_last" if produced == "channels_last" else "channels"
    raise UnitShapeError(
        f"layer {layer!r} gives outputs of shape {tuple(output.shape)}: units are read from "
        "(N, U) features, (N, C, H, W) maps, (N, T, D) tokens or (N, C, L) 1-D maps; choose "
        "other layers"
    )


def _site_tensor(output: object, layer: str) -> Tensor:
    """A site's output tensor: the output, or the first item of a tuple (the hidden states that
    Hugging Face's blocks return as `(hidden_states, ...)`)."""
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        output = output[0]
    if not isinstance(output, Tensor):
        raise UnitShapeError(
            f"layer {layer!r} gives a {type(output).__name__}, not a tensor: choose a module "
            "whose output is the activations"
        )
    return output


def _canonical(value: Tensor, layout: str, tokens: str) -> Tensor:
    """`value` in the form `metrics.unit_activations` reads by rank: (N, U), (N, T, D) tokens,
    (N, C, H, W) maps. Views, no copies."""
    if layout == "channels_1d":
        return value.transpose(1, 2)  # (N, L, C): the L positions read as tokens
    if layout == "channels_last":
        return value.movedim(-1, 1)
    if layout == "tokens" and tokens == "cls":
        return value[:, 0]
    return value


def layout_note(layouts: Mapping[str, str], tokens: str = "mean") -> str | None:
    """One line for a table's notes saying how units were read where an output was not plain
    (N, U) features or (N, C, H, W) maps; None when every site was one of those."""
    by_layout: dict[str, list[str]] = {}
    for layer, layout in layouts.items():
        by_layout.setdefault(layout, []).append(layer)

    def names(layout: str) -> str:
        layers = by_layout[layout]
        return ", ".join(layers[:4]) + (f" and {len(layers) - 4} more" if len(layers) > 4 else "")

    rules = {
        "tokens": "(N, T, D) outputs ({}) read as tokens x features: a unit is one of the D "
        + (
            "features, its response its mean over the T tokens (tokens='mean')"
            if tokens == "mean"
            else "features, its response its value at the first (class) token (tokens='cls')"
        ),
        "channels_1d": "(N, C, L) outputs ({}) of 1-D convolutions, norms or pooling read as "
        "channels: a unit is one of the C channels, its response its mean over L",
        "channels_last": "(N, H, W, C) outputs ({}) of Linear or LayerNorm layers read "
        "channels-last: a unit is one of the C features, its response its mean over H x W",
    }
    parts = [rule.format(names(layout)) for layout, rule in rules.items() if layout in by_layout]
    return "; ".join(parts) if parts else None


def site_layouts(model: nn.Module, x: Tensor, layers: Sites = None) -> dict[str, str]:
    """Site -> layout (`LAYOUTS`) of the unit sites `layers` chooses, from one forward of `model`
    on `x` (a batch of two is enough) in eval mode without gradients; for `layout_note`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedActivationsWarning)
        probe = ActivationProbe(model, layers, reduce=lambda value: value[:0], detach=True)
    with eval_mode(probe.model), torch.no_grad(), probe:
        probe.model(x)
    return dict(probe.layouts)


class ActivationProbe:
    """Context manager that records unit-site outputs, one entry per call, per forward.

    model: any nn.Module (a `torch.compile`d one, or a `models.LogitsOnly`, is probed through
        `unwrap(model)`: names as in the original module). layers: module names as in
        `model.named_modules()`, or a `Units`; default every module of `unit_types` (nn.ReLU).
        Explicit layers are taken as given. Sites that `Units.rectified` names are recorded as
        max(a, 0).
    reduce: optional function applied to each output inside the hook (for instance
        `metrics.unit_activations`, which keeps only (N, U) unit values). It receives the output
        in the form `unit_activations` reads by rank (module docstring): (N, C, L) 1-D maps as
        (N, L, C), channels-last maps as (N, C, H, W), with `Units(tokens="cls")` (N, T, D) as
        its first token (N, D).
    detach: store detached tensors (analysis) or keep the graph (the regularizer).
    unit_types: the module types that are units when `layers` is None (default `(nn.ReLU,)`).

    `probe.skipped` lists ('name (Type)') the activation modules the default sites passed over
    (empty when `layers` is given); a `SkippedActivationsWarning` names them at construction.
    `probe.layouts` maps each site seen to its layout (`LAYOUTS`); `layout_note` words it.

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
        self._compiled = is_compiled(model)
        model = unwrap(model)
        self.model = model
        modules = dict(model.named_modules())
        chosen = units.layers is None
        names = default_sites(model, units.types) if chosen else list(units.layers or ())
        self.skipped = skipped_activations(model, units.types) if chosen else []
        check_layers(model, names)
        kinds = ", ".join(t.__name__ for t in units.types)
        if not names:
            more = f" and {len(self.skipped) - 6} more" if len(self.skipped) > 6 else ""
            skipped = f": skipped {', '.join(self.skipped[:6])}{more}" if self.skipped else ""
            raise EmptyCaptureError(
                f"{type(model).__name__} has no unit sites (no {kinds} modules; "
                f"{_has(activation_counts(model))}{skipped}); pass unit_types=(...) (e.g. nn.GELU or "
                '"gelu", read as max(a, 0)), or layers=[...] naming the modules or blocks whose '
                "outputs are units (needed when forward calls F.relu)"
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
        self._tracing: list[torch.utils.hooks.RemovableHandle] = []
        self._produced: dict[int, tuple[weakref.ref, str]] = {}
        self.layouts: dict[str, str] = {}
        self._captured: dict[str, Tensor] = {}
        self._calls: dict[str, int] = {}
        self._forwards = 0

    def _producer_layout(self, tensor: object) -> str | None:
        if not isinstance(tensor, Tensor):
            return None
        ref, layout = self._produced.get(id(tensor), (None, None))
        return layout if ref is not None and ref() is tensor else None

    def _site_layout(self, key: str, module: nn.Module, inputs: tuple, output: Tensor) -> str:
        """The layout of this call site, fixed at its first call (module docstring)."""
        if key not in self.layouts:
            produced = _produced_layout(module, output) or self._producer_layout(output)
            if produced is None and (activation_kind(module) or isinstance(module, _ELEMENTWISE)):
                produced = self._producer_layout(inputs[0] if inputs else None)
            self.layouts[key] = layout_of(output, produced, key)
        return self.layouts[key]

    def _record(self, name: str) -> Callable:
        rectify = name in self._rectified

        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            count = self._calls.get(name, 0) + 1
            self._calls[name] = count
            key = name if count == 1 else f"{name}#{count}"
            output = _site_tensor(output, key)
            layout = self._site_layout(key, module, inputs, output)
            value = output.detach() if self.detach else output
            if rectify:
                value = value.clamp_min(0)
            value = _canonical(value, layout, self.units.tokens)
            if self.reduce is not None:
                value = self.reduce(value)
            # A weak reference: holding the raw output would keep every full map alive.
            self._captured[key] = (value, weakref.ref(output))  # type: ignore[assignment]

        return hook

    def _trace(self, module: nn.Module, inputs: tuple, output: object) -> None:
        """First forward only: remember which module type produced each 3-D or 4-D tensor."""
        if not isinstance(output, Tensor):
            return
        layout = _produced_layout(module, output)
        if layout is None and (activation_kind(module) or isinstance(module, _ELEMENTWISE)):
            layout = self._producer_layout(inputs[0] if inputs else None)
        if layout is not None:
            self._produced[id(output)] = (weakref.ref(output), layout)

    def _start_forward(self, module: nn.Module, inputs: tuple) -> None:
        self._captured = {}
        self._calls = {}

    def _end_forward(self, module: nn.Module, inputs: tuple, output: object) -> None:
        self._forwards += 1
        # Layouts are fixed by the first forward: later ones run without the tracing hooks.
        for handle in self._tracing:
            handle.remove()
        self._tracing.clear()
        self._produced.clear()
        # Keep sites in call order, dropping one whose tensor is the network's output.
        self._captured = {
            key: value for key, (value, raw) in self._captured.items() if raw() is not output
        }

    def __enter__(self) -> ActivationProbe:
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._start_forward))
            if self._forwards == 0:
                traced = (*_CHANNEL_FIRST, *_FEATURES_LAST, *_ELEMENTWISE)
                for module in self.model.modules():
                    if isinstance(module, traced) or activation_kind(module) is not None:
                        self._tracing.append(module.register_forward_hook(self._trace))
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
        for handle in (*self._handles, *self._tracing):
            handle.remove()
        self._handles.clear()
        self._tracing.clear()

    @property
    def activations(self) -> dict[str, Tensor]:
        """Site name -> output of that call in the latest forward, in call order."""
        compiled = (
            "; a torch.compile'd model runs compiled code that may skip hooks added after it first "
            "ran: call its original module (model._orig_mod) while probing, or compile after "
            "adding the probe or regularizer"
            if self._compiled
            else ""
        )
        if self._forwards == 0:
            raise EmptyCaptureError(f"the probe has seen no forward pass of its model{compiled}")
        if not self._captured:
            raise EmptyCaptureError(
                f"no unit site fired during the forward pass (sites: {self.layers}){compiled}"
            )
        return dict(self._captured)

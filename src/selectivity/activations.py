"""What activation modules compute, whatever library defines them.

`activation_kind(module)` names the function an activation module applies ("relu", "gelu",
"silu", ...): torch.nn's classes by identity, other libraries' by class name, since none of them
is a dependency (Hugging Face transformers' `GELUActivation`, `NewGELUActivation`,
`QuickGELUActivation`, ...; timm's `GELU`, `Swish`, `GELUTanh`, ...). `register_activation` adds
a class name. The probe chooses unit sites with it (`is_unit_type`), so a transformer's
GELUActivation is a GELU unit, and names a model's activation types when none is chosen.
"""

from __future__ import annotations

from torch import nn

__all__ = [
    "ACTIVATION_NAMES",
    "ACTIVATION_TYPES",
    "RECTIFIED_KINDS",
    "RECTIFIED_TYPES",
    "UNIT_TYPE_NAMES",
    "activation_kind",
    "is_unit_type",
    "register_activation",
]

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


# What each torch.nn activation computes, by name: `activation_kind` looks a module's classes up
# here (most derived first, so ReLU6, a Hardtanh subclass, is relu6).
_TORCH_KINDS: dict[type[nn.Module], str] = {
    kind: name for name, kind in UNIT_TYPE_NAMES.items()
} | {
    nn.Hardsigmoid: "hardsigmoid",
    nn.Hardtanh: "hardtanh",
    nn.Hardshrink: "hardshrink",
    nn.Softshrink: "softshrink",
    nn.Tanh: "tanh",
    nn.Tanhshrink: "tanhshrink",
    nn.Sigmoid: "sigmoid",
    nn.LogSigmoid: "logsigmoid",
    nn.Softplus: "softplus",
    nn.Softsign: "softsign",
    nn.Threshold: "threshold",
}

# Other libraries' activation classes, by class name (nothing of theirs is imported): Hugging
# Face transformers (transformers.activations) and timm (timm.layers.activations, _me, _jit).
# `register_activation` adds a name.
ACTIVATION_NAMES: dict[str, str] = {
    **dict.fromkeys(
        (
            "GELUActivation",
            "NewGELUActivation",
            "FastGELUActivation",
            "QuickGELUActivation",
            "AccurateGELUActivation",
            "ClippedGELUActivation",
            "PytorchGELUTanh",
            "GELUTanh",
            "QuickGELU",
        ),
        "gelu",
    ),
    **dict.fromkeys(
        ("SiLUActivation", "Swish", "SwishMe", "SwishJit", "SwishAuto", "MemoryEfficientSwish"),
        "silu",
    ),
    **dict.fromkeys(("MishActivation", "MishMe", "MishJit", "MishAuto"), "mish"),
    **dict.fromkeys(("HardSwish", "HardSwishMe", "HardSwishJit"), "hardswish"),
    **dict.fromkeys(("HardSigmoid", "HardSigmoidMe", "HardSigmoidJit"), "hardsigmoid"),
    **dict.fromkeys(("HardMish", "HardMishMe", "HardMishJit"), "hardmish"),
    "ReLUSquaredActivation": "relu_squared",
    "LaplaceActivation": "laplace",
}

# Other libraries' classes named as torch's (timm's GELU, Mish, Sigmoid, Tanh): the same kind.
# ReLU units stay nn.ReLU modules, whose calls `functional_relu_calls` tells from F.relu's.
_TORCH_NAMES: dict[str, str] = {
    cls.__name__: kind for cls, kind in _TORCH_KINDS.items() if kind not in ("relu", "relu6")
}

# The kinds read as max(a, 0): `RECTIFIED_TYPES` by what they compute.
RECTIFIED_KINDS: frozenset[str] = frozenset(_TORCH_KINDS[kind] for kind in RECTIFIED_TYPES) | {
    "hardmish"
}


def register_activation(class_name: str, kind: str) -> None:
    """Recognise modules whose class (or a base class) is named `class_name` as computing `kind`
    (a `UNIT_TYPE_NAMES` key such as "gelu", or any other name): `unit_types` then finds them."""
    ACTIVATION_NAMES[class_name] = kind


def activation_kind(module: nn.Module | type) -> str | None:
    """What the activation `module` (or module class) computes: "relu", "gelu", "silu", ... (the
    `UNIT_TYPE_NAMES` keys and "tanh", "sigmoid", ...), or None for a module that is not a known
    elementwise activation. torch.nn classes by identity, others by class name
    (`ACTIVATION_NAMES`), the most derived class first."""
    cls = module if isinstance(module, type) else type(module)
    for base in cls.__mro__:
        if base in _TORCH_KINDS:
            return _TORCH_KINDS[base]
        if base.__module__.split(".")[0] != "torch":
            kind = ACTIVATION_NAMES.get(base.__name__, _TORCH_NAMES.get(base.__name__))
            if kind is not None:
                return kind
    return None


def is_unit_type(module: nn.Module, types: tuple[type[nn.Module], ...]) -> bool:
    """Whether `module` is of one of `types`: an instance, or an activation computing what one of
    them computes (a transformers GELUActivation is of `(nn.GELU,)`)."""
    if isinstance(module, types):
        return True
    kind = activation_kind(module)
    return kind is not None and any(activation_kind(t) == kind for t in types)

"""A small model registry: `create_model(name, num_classes, in_channels)` and `list_models()`.

Every model takes inputs in [0, 1] of shape (N, in_channels, H, W); normalisation, when asked
for, is the first module of the model so that attacks and corruptions work in pixel space.
Every ReLU call site is its own `nn.ReLU` module, so `ActivationProbe` sees one layer per site.

Installed packages add models through the entry point group `selectivity.models` (name ->
factory `(num_classes, in_channels) -> nn.Module`; see `registry`), found by `create_model` and
`list_models` like the built-in ones.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selectivity.errors import SelectivityError
from selectivity.registry import Registry

__all__ = [
    "ENTRY_POINT_GROUP",
    "LogitsOnly",
    "ModelError",
    "Normalize",
    "create_model",
    "eval_mode",
    "list_models",
    "logits_of",
    "register_model",
]

ENTRY_POINT_GROUP = "selectivity.models"


class ModelError(SelectivityError, ValueError):
    """A model cannot be found, built or loaded; the message is one line."""


_MODELS: Registry[Callable[..., nn.Module]] = Registry("model", ModelError, ENTRY_POINT_GROUP)


def logits_of(output: object) -> Tensor:
    """The logits (N, K) in a model's output: the output itself when it is a tensor, its
    `.logits` (Hugging Face's ModelOutput), its 'logits' entry (a dict), or the first item of a
    tuple (Hugging Face with return_dict=False). ModelError, one line, otherwise."""
    if isinstance(output, Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, Mapping):
        logits = output.get("logits")
    if logits is None and isinstance(output, (tuple, list)) and output:
        logits = output[0]
    if not isinstance(logits, Tensor):
        keys = f" with keys {', '.join(map(str, output))}" if isinstance(output, Mapping) else ""
        raise ModelError(
            f"the model returned a {type(output).__name__}{keys}: a model must return its "
            "logits (N, classes) as a tensor, as an object's .logits or as a dict's 'logits'"
        )
    return logits


class LogitsOnly(nn.Module):
    """`model` returning only its logits (`logits_of`), for code that needs a tensor: attacks,
    the Jacobian, AutoAttack. `selectivity.measure_model` and `evaluate_model` wrap a user's
    model in it; the probe looks through it (`probe.unwrap`), so layer names stay the model's."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args: object, **kwargs: object) -> Tensor:
        return logits_of(self.model(*args, **kwargs))


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: a factory `(num_classes, in_channels) -> nn.Module` under `name`."""
    return _MODELS.register(name)


def list_models() -> list[str]:
    return _MODELS.names()


def create_model(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """Build a registered model (or one of an entry point). mean/std (one value per channel) add
    an input normalisation. ModelError for an unknown name, a broken entry point or a factory
    that returns no nn.Module."""
    model = _MODELS.get(name)(num_classes=num_classes, in_channels=in_channels)
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"model {name!r}: its factory returned a {type(model).__name__}, not an nn.Module"
        )
    if mean is not None or std is not None:
        # A submodule rather than a wrapper, so unit-site names do not depend on normalisation.
        model.normalize = Normalize(mean or [0.0] * in_channels, std or [1.0] * in_channels)
    return model


class Normalize(nn.Module):
    """(x - mean) / std per channel; buffers, so they move with the model and are saved."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    mean: Tensor
    std: Tensor

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module of `model` in eval mode; restore each module's own flag on exit.

    Restoring per module (not `model.train(previous)`) keeps mixed states intact, e.g. a model
    whose batch-norm layers were frozen in eval mode inside an otherwise training network.
    """
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def _init_weights(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(
                module.weight,
                mode="fan_out" if isinstance(module, nn.Conv2d) else "fan_in",
                nonlinearity="relu",
            )
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


# --- CIFAR ResNets (He et al. 2016, section 4.2): 6n+2 layers, option-A shortcuts --------------


class ShortcutA(nn.Module):
    """Parameter-free shortcut: stride-2 subsampling and zero-padding of the new channels."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.stride = stride
        self.pad = planes - in_planes

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))


class CifarBasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=False)
        needs_projection = stride != 1 or in_planes != planes
        self.shortcut = ShortcutA(in_planes, planes, stride) if needs_projection else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: Sequence[int] = (16, 32, 64),
    ):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        blocks = (depth - 2) // 6
        self.normalize: nn.Module = nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=False)
        stages = []
        in_planes = widths[0]
        for index, planes in enumerate(widths):
            layers = []
            for block in range(blocks):
                stride = 2 if index > 0 and block == 0 else 1
                layers.append(CifarBasicBlock(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(widths[-1], num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


for _depth in (20, 32, 44, 56):
    register_model(f"resnet{_depth}")(
        lambda num_classes, in_channels, _d=_depth: CifarResNet(_d, num_classes, in_channels)
    )


# --- ImageNet-layout ResNets for 64x64 inputs: max-pool after the stem removed ----------------


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=False)
        self.downsample = _projection(in_planes, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.downsample(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu3 = nn.ReLU(inplace=False)
        self.downsample = _projection(in_planes, out_planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + self.downsample(x))


def _projection(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes)
    )


class ImageNetResNet(nn.Module):
    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        counts: Sequence[int],
        num_classes: int = 200,
        in_channels: int = 3,
    ):
        super().__init__()
        self.normalize: nn.Module = nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=False)
        in_planes = 64
        stages = []
        for index, (planes, count) in enumerate(zip((64, 128, 256, 512), counts, strict=True)):
            blocks = []
            for position in range(count):
                stride = 2 if index > 0 and position == 0 else 1
                blocks.append(block(in_planes, planes, stride))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(in_planes, num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


register_model("resnet18")(
    lambda num_classes, in_channels: ImageNetResNet(
        BasicBlock, (2, 2, 2, 2), num_classes, in_channels
    )
)
register_model("resnet34")(
    lambda num_classes, in_channels: ImageNetResNet(
        BasicBlock, (3, 4, 6, 3), num_classes, in_channels
    )
)
register_model("resnet50")(
    lambda num_classes, in_channels: ImageNetResNet(
        Bottleneck, (3, 4, 6, 3), num_classes, in_channels
    )
)


# --- VGG16 with batch norm, the CIFAR variant ----------------------------------------------

# Channels of the 13 conv layers; "M" is a 2x2 max-pool (configuration D of Simonyan & Zisserman).
VGG16_LAYERS = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)


class CifarVGG(nn.Module):
    """VGG16 with batch norm after every convolution, as CIFAR reproductions build it: the 13
    conv-BN-ReLU layers of configuration D, and one linear classifier on the globally pooled
    512 channels (32 px inputs leave a 1x1 map; other sizes are pooled to it).

    Every ReLU is its own module (features.relu1 .. features.relu13), so each is a unit layer.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.normalize: nn.Module = nn.Identity()
        layers: dict[str, nn.Module] = {}
        channels, conv, pool = in_channels, 0, 0
        for width in VGG16_LAYERS:
            if width == "M":
                pool += 1
                layers[f"pool{pool}"] = nn.MaxPool2d(2)
                continue
            conv += 1
            layers[f"conv{conv}"] = nn.Conv2d(channels, int(width), 3, padding=1, bias=False)
            layers[f"bn{conv}"] = nn.BatchNorm2d(int(width))
            layers[f"relu{conv}"] = nn.ReLU()
            channels = int(width)
        self.features = nn.Sequential(OrderedDict(layers))
        self.fc = nn.Linear(channels, num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(self.normalize(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


register_model("vgg16")(lambda num_classes, in_channels: CifarVGG(num_classes, in_channels))


# --- A small, fast net for the digits demo --------------------------------------------------


class DigitsNet(nn.Module):
    """Two conv stages and a hidden linear layer: 3 unit layers, trains in seconds on CPU.

    The maps are pooled to 4x4, not 1x1: digits are told apart by where strokes are.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16):
        super().__init__()
        self.normalize: nn.Module = nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, 2 * width, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.relu2 = nn.ReLU()
        self.fc1 = nn.Linear(2 * width * 16, 4 * width)
        self.relu3 = nn.ReLU()
        self.fc = nn.Linear(4 * width, num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu1(self.bn1(self.conv1(self.normalize(x))))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.fc1(torch.flatten(F.adaptive_avg_pool2d(x, 4), 1)))
        return self.fc(x)


register_model("digitsnet")(lambda num_classes, in_channels: DigitsNet(num_classes, in_channels))

"""Small stand-ins for the networks researchers bring, written here (torchvision, timm and
RobustBench are not dependencies): each copies the trait of its original that matters to the
probe, at a size that runs in milliseconds on 16x16 digits.

- `TorchvisionResNet`: torchvision's BasicBlock calls ONE `nn.ReLU(inplace=True)` module twice.
- `TimmStyleNet`: GELU activations (nn.GELU modules) in conv blocks and an MLP, as timm's nets.
- `RobustBenchWRN`: RobustBench's WideResNet: pre-activation BN-ReLU blocks with in-place ReLU
  modules, 1x1 conv shortcuts, no normalisation inside, and a final `F.relu` in `forward`.

Factories take no arguments, so the CLI can import them (`--model standins:wide_resnet`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TorchvisionBlock(nn.Module):
    def __init__(self, planes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)  # one module, two call sites, as in torchvision
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class TorchvisionResNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(TorchvisionBlock(width), TorchvisionBlock(width))
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer1(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Mlp(nn.Module):
    def __init__(self, features: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TimmStyleNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 2, 1), nn.GELU())
        self.stage = nn.Sequential(
            nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width), nn.GELU()
        )
        self.mlp = Mlp(width, 2 * width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(self.stage(self.stem(x)), 1), 1)
        return self.head(x + self.mlp(x))


class WideBasic(nn.Module):
    """RobustBench's BasicBlock: BN-ReLU first, the shortcut taken from the activated input
    when the width changes."""

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.equal = in_planes == out_planes
        self.convShortcut = (
            None if self.equal else nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        if not self.equal:
            x = self.relu1(self.bn1(x))
            out = x
        else:
            out = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(out))))
        shortcut = x if self.convShortcut is None else self.convShortcut(x)
        return torch.add(shortcut, out)


class RobustBenchWRN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, widen: int = 2):
        super().__init__()
        widths = [4, 4 * widen, 8 * widen]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.block1 = nn.Sequential(
            WideBasic(widths[0], widths[1], 1), WideBasic(widths[1], widths[1], 1)
        )
        self.block2 = nn.Sequential(WideBasic(widths[1], widths[2], 2))
        self.bn1 = nn.BatchNorm2d(widths[2])
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block2(self.block1(self.conv1(x)))
        out = F.relu(self.bn1(out))  # functional: no module for a hook to see
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class NoModules(nn.Module):
    """Every ReLU functional: the default finds no unit sites."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, 1, 1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1), 1))


def torchvision_resnet() -> nn.Module:
    torch.manual_seed(0)
    return TorchvisionResNet()


def timm_style() -> nn.Module:
    torch.manual_seed(0)
    return TimmStyleNet()


def wide_resnet() -> nn.Module:
    torch.manual_seed(0)
    return RobustBenchWRN()


NOT_CALLABLE = 3


def not_a_module() -> str:
    return "a string"


def needs_arguments(width: int) -> nn.Module:
    return TorchvisionResNet(width=width)

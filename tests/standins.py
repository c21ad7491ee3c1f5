"""Small stand-ins for the networks researchers bring, written here (torchvision, timm and
RobustBench are not dependencies): each copies the trait of its original that matters to the
probe, at a size that runs in milliseconds on 16x16 digits.

- `TorchvisionResNet`: torchvision's BasicBlock calls ONE `nn.ReLU(inplace=True)` module twice.
- `TimmStyleNet`: GELU activations (nn.GELU modules) in conv blocks and an MLP, as timm's nets.
- `RobustBenchWRN`: RobustBench's WideResNet: pre-activation BN-ReLU blocks with in-place ReLU
  modules, 1x1 conv shortcuts, no normalisation inside, and a final `F.relu` in `forward`.
- `TinyViT`: Hugging Face's ViTForImageClassification: a class token and 16 patch tokens
  (17 positions) through pre-norm blocks whose MLP activation is a `GELUActivation` (an
  nn.Module of that name applying F.gelu, not an nn.GELU), returning an output object with
  `.logits` (as `ModelOutput`); `DictOutputNet` returns a dict holding 'logits'.
- `Conv1dNet`: a 1-D convolution over image rows, whose (N, C, L) ReLU outputs are channels.

Factories take no arguments, so the CLI can import them (`--model standins:wide_resnet`).
"""

from __future__ import annotations

from dataclasses import dataclass

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


class GELUActivation(nn.Module):
    """transformers.activations.GELUActivation: F.gelu in a module of its own class."""

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x)


@dataclass
class ImageClassifierOutput:
    """transformers' ImageClassifierOutput: the logits as an attribute, not the output itself."""

    logits: Tensor
    hidden_states: tuple[Tensor, ...] | None = None


class ViTIntermediate(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.dense = nn.Linear(width, hidden)
        self.intermediate_act_fn = GELUActivation()

    def forward(self, x: Tensor) -> Tensor:
        return self.intermediate_act_fn(self.dense(x))


class ViTLayer(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, 2, batch_first=True)
        self.layernorm_after = nn.LayerNorm(width)
        self.intermediate = ViTIntermediate(width, hidden)
        self.output = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        h = self.layernorm_before(x)
        x = x + self.attention(h, h, h, need_weights=False)[0]
        return (x + self.output(self.intermediate(self.layernorm_after(x))),)


class TinyViT(nn.Module):
    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 16,
        patch: int = 4,
        width: int = 16,
        hidden: int = 32,
        depth: int = 2,
    ):
        super().__init__()
        tokens = (image_size // patch) ** 2 + 1
        self.patch_embeddings = nn.Conv2d(in_channels, width, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position_embeddings = nn.Parameter(0.02 * torch.randn(1, tokens, width))
        self.layer = nn.ModuleList(ViTLayer(width, hidden) for _ in range(depth))
        self.layernorm = nn.LayerNorm(width)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, pixel_values: Tensor) -> ImageClassifierOutput:
        x = self.patch_embeddings(pixel_values).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)
        x = x + self.position_embeddings
        for layer in self.layer:
            x = layer(x)[0]
        return ImageClassifierOutput(self.classifier(self.layernorm(x)[:, 0]))


class DictOutputNet(nn.Module):
    """A model returning {'logits': ...} (some pipelines' convention)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = TorchvisionResNet()

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"logits": self.net(x)}


class Conv1dNet(nn.Module):
    """Rows of a (N, 1, 16, 16) image as 16 channels of length 16, through a 1-D convolution."""

    def __init__(self, num_classes: int = 10, width: int = 8):
        super().__init__()
        self.conv = nn.Conv1d(16, width, 3, padding=1)
        self.bn = nn.BatchNorm1d(width)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn(self.conv(x.flatten(1, 2))))
        return self.fc(out.mean(dim=2))


def tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    return TinyViT()


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

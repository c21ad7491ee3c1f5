"""Applying one corruption to a batch: `corrupt(images, name, severity)`, and which corruptions
can run here. The package's `__init__` re-exports both; `generate` writes whole sets with them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from selectivity.corruptions import blur, digital, noise, weather
from selectivity.corruptions.ops import Context, Rng
from selectivity.corruptions.tables import CORRUPTIONS, get_table, table_for_size
from selectivity.corruptions.weather import FROST_INSTALL_HINT, frost_available

__all__ = ["check_request", "corrupt", "runnable_corruptions"]

# Each takes (x (N, 3, H, W) in [0, 1], that corruption's parameters at one severity, Context).
_FUNCTIONS: dict[str, Callable[[Tensor, Any, Context], Tensor]] = {
    **noise.FUNCTIONS,
    **blur.FUNCTIONS,
    **weather.FUNCTIONS,
    **digital.FUNCTIONS,
}


def runnable_corruptions() -> tuple[str, ...]:
    """CORRUPTIONS that can run here: all 19, or 18 without frost when its textures (package data
    of the optional dependency imagecorruptions) are missing, with a warning saying so."""
    if frost_available():
        return CORRUPTIONS
    warnings.warn(f"frost left out: {FROST_INSTALL_HINT}", stacklevel=2)
    return tuple(name for name in CORRUPTIONS if name != "frost")


def check_request(name: str, severity: int) -> None:
    """ValueError (one line) unless `name` is a corruption and `severity` an integer 1..5."""
    if name not in _FUNCTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose one of: {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer from 1 to 5, got {severity!r}")


def corrupt(
    images: Tensor,
    name: str,
    severity: int,
    generator: torch.Generator | None = None,
    table: str | None = None,
) -> Tensor:
    """Apply corruption `name` at `severity` (1..5) to a batch.

    images: float (N, C, H, W) in [0, 1], C = 1 or 3, any device. Grey images (C = 1) are
    corrupted as three equal channels and the channel mean is returned. table: "cifar10",
    "tinyimagenet" or "imagenet"; None picks by image size (`table_for_size` of the longer side).
    generator: the source of all random draws (its device may differ from the images'); the same
    seed gives the same output. None uses the global RNG.
    Returns a new tensor, same shape, dtype and device, in [0, 1].
    Raises ValueError for an unknown name, severity or table, or malformed images (values outside
    [0, 1] included: refused like the attacks refuse them, never clipped), and
    FrostTexturesMissing for frost without its textures.
    """
    check_request(name, severity)
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(
            f"corruptions are defined for grey or RGB images: a tensor (N, C, H, W) with C = 1 "
            f"or 3, got {shape} (selectivity, attacks and the Jacobian take any channel count)"
        )
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1], got {images.dtype}")
    # Refused, not clipped, as the attacks do: out-of-range input is a caller's scale mistake
    # (0..255 values, a normalised batch) and clipping it would give a plausible wrong set.
    if images.numel() and not (images.min() >= 0 and images.max() <= 1):
        raise ValueError(
            f"images must lie in [0, 1] (normalise inside the model), got range "
            f"[{images.min().item():.3g}, {images.max().item():.3g}]"
        )
    n, c, h, w = images.shape
    table_name = table if table is not None else table_for_size(max(h, w))
    params = get_table(table_name).params[name][severity - 1]
    if n == 0:
        return images.clone()
    x = images.detach().to(torch.float32).contiguous()
    if c == 1:
        x = x.expand(n, 3, h, w).contiguous()
    ctx = Context(rng=Rng(generator, x.device), table=get_table(table_name))
    out = _FUNCTIONS[name](x, params, ctx)
    if c == 1:
        out = out.mean(dim=1, keepdim=True)
    return out.clamp_(0, 1).to(images.dtype)

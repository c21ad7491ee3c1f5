"""Noise corruptions: gaussian_noise, shot_noise, impulse_noise, speckle_noise.

Every function takes images x float32 (N, 3, H, W) in [0, 1], the severity's parameter from the
table, and a `Context`; it returns float32 (N, 3, H, W) in [0, 1]. Noise is drawn independently
per pixel and channel, as the generators draw it on (H, W, 3) arrays.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from selectivity.corruptions.ops import Context

__all__ = ["FUNCTIONS", "gaussian_noise", "impulse_noise", "shot_noise", "speckle_noise"]


def gaussian_noise(x: Tensor, std: float, ctx: Context) -> Tensor:
    """x + N(0, std^2), clipped. `std` in [0, 1] image units."""
    return ctx.rng.normal(tuple(x.shape), std=float(std)).add_(x).clamp_(0, 1)


def shot_noise(x: Tensor, rate: float, ctx: Context) -> Tensor:
    """Poisson(x * rate) / rate, clipped: photon counts with `rate` photons at full intensity.

    Images on the 8-bit grid (x = k / 255, as every image read from uint8) take the table sampler
    for 256 levels; other images the general one. Both draw exactly from the same distribution,
    though not the same numbers.
    """
    levels = (x * 255).round_()
    if bool(((levels / 255 - x).abs() <= 1e-6).all()):
        counts = ctx.rng.poisson_of_levels(levels.long(), float(rate))
    else:
        counts = ctx.rng.poisson(x * float(rate))
    return counts.div_(float(rate)).clamp_(0, 1)


def impulse_noise(x: Tensor, amount: float, ctx: Context) -> Tensor:
    """Salt-and-pepper noise, skimage.util.random_noise(mode="s&p", amount=amount): each value is
    replaced with probability `amount`, by 0 or 1 with equal odds."""
    u = ctx.rng.uniform(tuple(x.shape))
    # One uniform decides both whether and how: u < amount/2 -> 0, amount/2 <= u < amount -> 1.
    return torch.where(u < amount, (u >= amount / 2).to(x.dtype), x)


def speckle_noise(x: Tensor, std: float, ctx: Context) -> Tensor:
    """x + x * N(0, std^2), clipped: noise proportional to intensity."""
    return ctx.rng.normal(tuple(x.shape), std=float(std)).mul_(x).add_(x).clamp_(0, 1)


FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
}

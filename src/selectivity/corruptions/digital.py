"""Digital corruptions: brightness, contrast, saturate, jpeg_compression, pixelate,
elastic_transform.

Every function takes images x float32 (N, 3, H, W) in [0, 1], the severity's parameters from the
table and a `Context`, and returns float32 (N, 3, H, W) in [0, 1].

Library calls of the generators, written out here:
- brightness, saturate: skimage's rgb2hsv -> change V or S -> hsv2rgb. For a fixed hue, every
  channel is V (1 - S a_k) with a_k = (max - x_k) / (max - min), so the round trip has a closed
  form (see the functions); grey pixels have hue 0 (red), as skimage and colorsys define it.
- pixelate: PIL's BOX resize down to int(side * factor) and back, including PIL's fixed-point
  weights (22 fractional bits) and its 8-bit rounding after each pass (horizontal, then vertical).
- jpeg_compression: PIL's JPEG encoder and decoder, one image at a time.
- elastic_transform: cv2.getAffineTransform + cv2.warpAffine (bilinear, reflect-101 border), then
  scipy's map_coordinates(order=1, mode="reflect") along Gaussian-smoothed random displacements.
  cv2 quantises warp coordinates to 1/32 pixel; here they are exact.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from selectivity.corruptions import ops
from selectivity.corruptions.ops import Context

__all__ = [
    "FUNCTIONS",
    "brightness",
    "contrast",
    "elastic_transform",
    "jpeg_compression",
    "pil_box_matrix",
    "pixelate",
    "saturate",
]

# Hue 0 (red): how far each channel sits below the maximum, relative to max - min.
_RED_OFFSETS = (0.0, 1.0, 1.0)


def contrast(x: Tensor, factor: float, ctx: Context) -> Tensor:
    """(x - mean) * factor + mean, clipped; mean per image and channel over all pixels."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean).mul_(float(factor)).add_(mean).clamp_(0, 1)


def brightness(x: Tensor, shift: float, ctx: Context) -> Tensor:
    """HSV value + shift, clipped to [0, 1]; hue and saturation kept.

    With V = max over channels, the channels scale with V at fixed hue and saturation, so the
    result is x * V' / V; a black pixel (V = 0, S = 0) becomes grey V'.
    """
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + float(shift)).clamp_(0, 1)
    scaled = x * (v_new / v.clamp_min(1e-12))
    return torch.where(v > 0, scaled, v_new.expand_as(x)).clamp_(0, 1)


def saturate(x: Tensor, params: tuple[float, float], ctx: Context) -> Tensor:
    """HSV saturation * mult + add, clipped to [0, 1]; hue and value kept.

    Channel k is V (1 - S a_k), a_k = (V - x_k) / (V - min): hue fixes a_k, so the result is
    V (1 - S' a_k). Grey pixels have hue 0 (a = (0, 1, 1)): a positive `add` tints them red, as in
    skimage.
    """
    mult, add = float(params[0]), float(params[1])
    v = x.amax(dim=1, keepdim=True)
    spread = v - x.amin(dim=1, keepdim=True)
    s = torch.where(v > 0, spread / v.clamp_min(1e-12), torch.zeros_like(v))
    s_new = (s * mult + add).clamp_(0, 1)
    red = torch.tensor(_RED_OFFSETS, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    offsets = torch.where(spread > 0, (v - x) / spread.clamp_min(1e-12), red)
    return (1 - s_new * offsets).mul_(v).clamp_(0, 1)


def _jpeg_one(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def jpeg_compression(x: Tensor, quality: int, ctx: Context) -> Tensor:
    """PIL JPEG encode at `quality` and decode (default settings: 4:2:0 chroma subsampling).

    The image goes to 8 bits by rounding first (an exact round trip for images that came from
    uint8). One image at a time on the CPU: PIL's per-call overhead (~0.2 ms) is the cost, and
    a thread pool does not shorten it.
    """
    levels = ops.to_grey_levels(x).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    q = int(quality)
    decoded = np.stack([_jpeg_one(image, q) for image in levels])
    out = torch.from_numpy(decoded).to(x.device).permute(0, 3, 1, 2)
    return out.to(x.dtype).div_(255)


@lru_cache(maxsize=128)
def pil_box_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64 weights of PIL's BOX resampling along one axis, as PIL applies them to
    8-bit images: fixed-point with 22 fractional bits, so that weights @ levels + 0.5, floored, is
    PIL's output exactly (sums of these products are exact in float64).

    Output pixel o covers input [o, o + 1) * n_in / n_out (at least one pixel wide); an input
    pixel counts, with weight 1, when its centre lies in that span's half-open window.
    """
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    m = np.zeros((n_out, n_in), dtype=np.float64)
    for o in range(n_out):
        center = (o + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        t = (np.arange(lo, hi) - center + 0.5) / filterscale
        weights = ((t > -0.5) & (t <= 0.5)).astype(np.float64)
        total = weights.sum()
        if total > 0:
            weights /= total
        m[o, lo:hi] = np.floor(0.5 + weights * (1 << 22)) / (1 << 22)
    return m


def _pil_box_resize(levels: Tensor, out_h: int, out_w: int) -> Tensor:
    """PIL's Image.resize(..., BOX) of 8-bit levels (float64 (..., H, W)) -> (..., out_h, out_w)."""
    h, w = levels.shape[-2:]
    if out_w != w:
        m = ops.as_tensor(pil_box_matrix(w, out_w), levels)
        levels = torch.floor(levels @ m.T + 0.5).clamp_(0, 255)
    if out_h != h:
        m = ops.as_tensor(pil_box_matrix(h, out_h), levels)
        levels = torch.floor(torch.matmul(m, levels) + 0.5).clamp_(0, 255)
    return levels


def pixelate(x: Tensor, factor: float, ctx: Context) -> Tensor:
    """PIL BOX resize to int(side * factor) per axis and BOX back to the original size."""
    h, w = x.shape[-2:]
    small_h, small_w = max(int(h * float(factor)), 1), max(int(w * float(factor)), 1)
    # float64: the fixed-point sums must be exact for the rounding to match PIL.
    levels = ops.to_grey_levels(x).double()
    levels = _pil_box_resize(_pil_box_resize(levels, small_h, small_w), h, w)
    return levels.div_(255).to(x.dtype)


def elastic_transform(x: Tensor, params: tuple[float, float, float], ctx: Context) -> Tensor:
    """A random affine warp, then a smooth random displacement field, bilinear, clipped.

    params = (alpha, sigma, affine) as fractions of the image side (the generators multiply by
    IMSIZE). The affine map moves the three points centre + (s, s), (s, -s), (-s, -s), s = side // 3,
    by U(-affine, affine) pixels each (reflect-101 border). Displacements: U(-1, 1) per pixel,
    Gaussian-smoothed with std sigma (truncated at 3 std, symmetric border), times alpha; sampled
    with a symmetric border.
    """
    n, _, h, w = x.shape
    side = min(h, w)
    alpha, sigma, affine = (float(v) * side for v in params)
    dev = x.device
    # The generators hand (H // 2, W // 2) to cv2 as an (x, y) point: the same square on square images.
    cx, cy = float(h // 2), float(w // 2)
    s = float(side // 3)
    src_pts = torch.tensor(
        [[cx + s, cy + s], [cx + s, cy - s], [cx - s, cy - s]], dtype=torch.float64
    )
    dst_pts = src_pts.unsqueeze(0) + ctx.rng.uniform((n, 3, 2), -affine, affine).double().cpu()
    # M (2x3) maps src_pts onto dst_pts; warpAffine samples the source at M^-1 (x, y).
    lhs = torch.cat([src_pts, torch.ones(3, 1, dtype=torch.float64)], dim=1)  # (3, 3)
    m = torch.linalg.solve(lhs.unsqueeze(0).expand(n, 3, 3), dst_pts).transpose(1, 2)  # (N, 2, 3)
    lin_inv = torch.linalg.inv(m[:, :, :2])
    shift_inv = -(lin_inv @ m[:, :, 2:]).squeeze(2)
    inv = torch.cat([lin_inv, shift_inv.unsqueeze(2)], dim=2).to(dev, torch.float32)  # (N, 2, 3)
    rows = torch.arange(h, device=dev, dtype=torch.float32).view(1, h, 1).expand(n, h, w)
    cols = torch.arange(w, device=dev, dtype=torch.float32).view(1, 1, w).expand(n, h, w)

    def coeff(i: int, j: int) -> Tensor:
        return inv[:, i, j].view(n, 1, 1)

    src_cols = coeff(0, 0) * cols + coeff(0, 1) * rows + coeff(0, 2)
    src_rows = coeff(1, 0) * cols + coeff(1, 1) * rows + coeff(1, 2)
    warped = ops.sample_bilinear(x, src_rows, src_cols, "reflect101")
    dx = ops.gaussian_filter(
        ctx.rng.uniform((n, h, w), -1.0, 1.0), sigma, mode="symmetric", truncate=3.0
    ).mul_(alpha)
    dy = ops.gaussian_filter(
        ctx.rng.uniform((n, h, w), -1.0, 1.0), sigma, mode="symmetric", truncate=3.0
    ).mul_(alpha)
    return ops.sample_bilinear(warped, rows + dy, cols + dx, "symmetric").clamp_(0, 1)


FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "brightness": brightness,
    "contrast": contrast,
    "saturate": saturate,
    "jpeg_compression": jpeg_compression,
    "pixelate": pixelate,
    "elastic_transform": elastic_transform,
}

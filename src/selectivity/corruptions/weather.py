"""Weather corruptions: snow, frost, fog, spatter.

Every function takes images x float32 (N, 3, H, W) in [0, 1], the severity's parameters from the
table and a `Context`, and returns float32 (N, 3, H, W) in [0, 1]. Random layers are drawn per
image; where the generators go through an 8-bit image (uint8 casts, PNG round trips) the same
quantisation is applied.

Library calls of the generators, written out here:
- snow: the layer's motion blur is ImageMagick's through Wand in the generators; here the same
  one-sided Gaussian line kernel (`ops.motion_blur`), angle ~ U(-135, -45) degrees.
- frost: textures are the frost images shipped in the `imagecorruptions` wheel (frost1..frost5;
  the generators never pick frost6), read as package data without importing that package's code,
  resized as cv2.resize(INTER_LINEAR) by the table's factor (in float: identical at CIFAR's 0.2,
  at most one 8-bit level from cv2's fixed-point weights at Tiny ImageNet's 0.3), then cropped at
  random.
- fog: the diamond-square plasma fractal, computed for the whole batch at once.
- spatter (water): cv2.Canny (Sobel 3x3, L1 gradient, non-maximum suppression, hysteresis),
  cv2.distanceTransform, cv2.equalizeHist and the 3x3 filters are re-implemented on tensors with
  OpenCV's border and rounding rules. One knowing departure: the distance to the nearest edge is
  the exact Euclidean distance, where cv2.DIST_L2 with a 5x5 mask is a chamfer approximation of
  it (within about 2% of it); the value is truncated at 20 pixels and histogram-equalised next.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from selectivity.corruptions import ops
from selectivity.corruptions.ops import Context

__all__ = [
    "FUNCTIONS",
    "FrostTexturesMissing",
    "fog",
    "frost",
    "frost_available",
    "frost_texture_dir",
    "plasma_fractal",
    "snow",
    "spatter",
]

FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
FROST_INSTALL_HINT = 'frost needs the frost textures of the optional dependency imagecorruptions: pip install "selectivity[frost]"'


class FrostTexturesMissing(ImportError):
    """The frost texture images (package data of `imagecorruptions`) are not installed."""


# --------------------------------------------------------------------------------------------------
# Snow
# --------------------------------------------------------------------------------------------------


def snow(x: Tensor, params: tuple, ctx: Context) -> Tensor:
    """Snow: a thresholded, zoomed normal layer, motion-blurred, added with its 180-degree
    rotation to an image brightened towards its grey version.

    params = (loc, scale, zoom, threshold, blur radius, blur sigma, blend): the layer is
    N(loc, scale^2) per pixel, clipped-zoomed by `zoom`, set to 0 below `threshold`, stored as 8
    bits, motion-blurred; the image becomes blend * x + (1 - blend) * max(x, 1.5 grey + 0.5).
    """
    loc, scale, zoom, threshold, radius, sigma, blend = params
    n, _, h, w = x.shape
    layer = ctx.rng.normal((n, h, w), mean=float(loc), std=float(scale))
    layer = ops.clipped_zoom(layer, float(zoom))
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer)
    layer = ops.quantize_trunc(layer).unsqueeze(1)  # (N, 1, H, W)
    angles = ctx.rng.uniform((n,), -135.0, -45.0)
    layer = ops.quantize_trunc(ops.motion_blur(layer, float(radius), float(sigma), angles))
    grey = ops.rgb_to_grey(x)
    out = x * blend + torch.maximum(x, grey * 1.5 + 0.5) * (1 - blend)
    return out.add_(layer).add_(layer.flip(-1).flip(-2)).clamp_(0, 1)


# --------------------------------------------------------------------------------------------------
# Frost
# --------------------------------------------------------------------------------------------------


def frost_texture_dir() -> Path | None:
    """The folder of frost images in the installed `imagecorruptions` distribution, or None.

    Found through the import system's spec of the package, which locates it without running its
    `__init__` (that imports cv2, scikit-image and `pkg_resources`, and fails on current stacks).
    `SELECTIVITY_FROST_DIR` overrides the location.
    """
    override = os.environ.get("SELECTIVITY_FROST_DIR")
    if override:
        return Path(override)
    try:
        spec = importlib.util.find_spec("imagecorruptions")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "frost"
        if folder.is_dir():
            return folder
    return None


def frost_available() -> bool:
    folder = frost_texture_dir()
    return folder is not None and all((folder / name).is_file() for name in FROST_FILES)


def _resize_matrix(n_in: int, n_out: int, scale: float) -> np.ndarray:
    """(n_out, n_in) bilinear resampling as cv2.resize(INTER_LINEAR) with factor `scale`: output
    pixel o reads the input at (o + 0.5) / scale - 0.5, clamped to the image."""
    coord = np.clip((np.arange(n_out) + 0.5) / scale - 0.5, 0, n_in - 1)
    lo = np.floor(coord).astype(np.int64)
    frac = coord - lo
    hi = np.minimum(lo + 1, n_in - 1)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), lo), 1 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m


@lru_cache(maxsize=2)
def _frost_sources(folder: Path) -> tuple[np.ndarray, ...]:
    """The five frost images in `folder`, float64 (h, w, 3) RGB in [0, 1]."""
    from PIL import Image

    sources = []
    for name in FROST_FILES:
        with Image.open(folder / name) as img:
            # cv2.imread drops the alpha channel of the PNGs the same way.
            sources.append(np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0)
    return tuple(sources)


@lru_cache(maxsize=8)
def _frost_textures(folder: Path, scale: float, min_h: int, min_w: int) -> tuple[Tensor, ...]:
    """The five frost textures in `folder`, float32 (3, h, w) in [0, 1] on the CPU, resized by
    `scale` (or more, where needed to cover min_h x min_w) and rounded to 8 bits as cv2 stores
    them."""
    textures = []
    for arr in _frost_sources(folder):
        th, tw = arr.shape[:2]
        s = max(scale, min_h / th, min_w / tw)
        out_h, out_w = max(round(th * s), min_h), max(round(tw * s), min_w)
        if s == 1.0 and (out_h, out_w) == (th, tw):
            resized = arr
        else:
            rows, cols = _resize_matrix(th, out_h, s), _resize_matrix(tw, out_w, s)
            resized = np.stack([rows @ arr[:, :, k] @ cols.T for k in range(3)], axis=2)
        t = (
            torch.from_numpy(np.round(np.clip(resized, 0, 1) * 255) / 255)
            .float()
            .permute(2, 0, 1)
            .contiguous()
        )
        textures.append(t)
    return tuple(textures)


def frost(x: Tensor, params: tuple[float, float], ctx: Context) -> Tensor:
    """c_image * x + c_frost * a random crop of a random frost texture, clipped.

    params = (c_image, c_frost). Texture index ~ U{0..4}; crop corner ~ U{0..size - side - 1}
    per axis, as np.random.randint(0, size - side).
    """
    c_image, c_frost = float(params[0]), float(params[1])
    n, _, h, w = x.shape
    folder = frost_texture_dir()
    if folder is None or not all((folder / name).is_file() for name in FROST_FILES):
        raise FrostTexturesMissing(FROST_INSTALL_HINT)
    textures = _frost_textures(folder, ctx.table.frost_scale, h, w)
    choice = ctx.rng.randint(0, len(textures), (n,))
    u_rows = ctx.rng.uniform((n,))
    u_cols = ctx.rng.uniform((n,))
    layer = torch.empty_like(x)
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    for t, texture in enumerate(textures):
        members = (choice == t).nonzero().squeeze(1)
        if members.numel() == 0:
            continue
        tex = texture.to(device=x.device, dtype=x.dtype)
        span_h = max(tex.shape[1] - h, 1)
        span_w = max(tex.shape[2] - w, 1)
        top = (u_rows[members] * span_h).long().clamp_(max=span_h - 1)
        left = (u_cols[members] * span_w).long().clamp_(max=span_w - 1)
        rows = top.view(-1, 1, 1) + ar_h.view(1, h, 1)
        cols = left.view(-1, 1, 1) + ar_w.view(1, 1, w)
        layer[members] = tex[:, rows, cols].permute(1, 0, 2, 3)
    return (x * c_image).add_(layer, alpha=c_frost).clamp_(0, 1)


# --------------------------------------------------------------------------------------------------
# Fog
# --------------------------------------------------------------------------------------------------


def plasma_fractal(n: int, mapsize: int, wibbledecay: float, rng: ops.Rng) -> Tensor:
    """(n, mapsize, mapsize) diamond-square plasma fractals, each scaled to [0, 1]; mapsize a
    power of 2, the map wraps around (torus).

    Each level sets square centres, then diamond centres, to the mean of their four neighbours
    plus wibble * U(-wibble, wibble) (so the noise scale is wibble^2, as in the generators);
    wibble starts at 100 and is divided by `wibbledecay` per level.
    """
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of 2, got {mapsize}")
    m = torch.zeros((n, mapsize, mapsize), device=rng.device)
    step = mapsize
    wibble = 100.0

    def wibbled_mean(total: Tensor) -> Tensor:
        return rng.uniform(tuple(total.shape), -wibble, wibble).mul_(wibble).add_(total / 4)

    while step >= 2:
        half = step // 2
        corners = m[:, 0::step, 0::step]
        squares = corners + corners.roll(-1, dims=1)
        squares = squares + squares.roll(-1, dims=2)
        m[:, half::step, half::step] = wibbled_mean(squares)
        centres = m[:, half::step, half::step]
        corners = m[:, 0::step, 0::step]
        m[:, 0::step, half::step] = wibbled_mean(
            centres + centres.roll(1, dims=1) + corners + corners.roll(-1, dims=2)
        )
        m[:, half::step, 0::step] = wibbled_mean(
            centres + centres.roll(1, dims=2) + corners + corners.roll(-1, dims=1)
        )
        step //= 2
        wibble /= wibbledecay
    flat = m.view(n, -1)
    flat.sub_(flat.amin(dim=1, keepdim=True))
    flat.div_(flat.amax(dim=1, keepdim=True).clamp_min(1e-30))
    return m


def fog(x: Tensor, params: tuple[float, float], ctx: Context) -> Tensor:
    """(x + strength * plasma) * max(x) / (max(x) + strength), clipped; max over each image.

    params = (strength, wibbledecay). The plasma map is the table's size (or the next power of 2
    covering the image, if larger), cropped at the top left.
    """
    strength, decay = float(params[0]), float(params[1])
    n, _, h, w = x.shape
    size = max(ctx.table.fog_mapsize, 1 << max(math.ceil(math.log2(max(h, w))), 1))
    plasma = plasma_fractal(n, size, decay, ctx.rng)[:, :h, :w].unsqueeze(1)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + strength * plasma).mul_(peak / (peak + strength)).clamp_(0, 1)


# --------------------------------------------------------------------------------------------------
# Spatter
# --------------------------------------------------------------------------------------------------

_WATER = (175 / 255, 238 / 255, 238 / 255)
_MUD = (63 / 255, 42 / 255, 20 / 255)
# cv2.Canny's fixed-point tangent of 22.5 degrees (Q15).
_TAN22_Q15 = 13573


def canny(levels: Tensor, low: float, high: float) -> Tensor:
    """cv2.Canny(img, low, high) with aperture 3 and the L1 gradient, for a batch.

    levels: (N, H, W) integer grey levels as floats. Returns bool (N, H, W) edge pixels.
    """
    h, w = levels.shape[-2:]
    # Sobel with a replicated border, as cv2.Canny computes it.
    smooth, diff = (1.0, 2.0, 1.0), (-1.0, 0.0, 1.0)
    gx = ops.apply_separable(
        levels, ops.filter_matrix(h, smooth, "edge"), ops.filter_matrix(w, diff, "edge")
    )
    gy = ops.apply_separable(
        levels, ops.filter_matrix(h, diff, "edge"), ops.filter_matrix(w, smooth, "edge")
    )
    gx, gy = gx.round().int(), gy.round().int()
    mag = gx.abs() + gy.abs()
    # Neighbours outside the image count as magnitude 0.
    pm = F.pad(mag, (1, 1, 1, 1))

    def at(dr: int, dc: int) -> Tensor:
        return pm[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]

    ax, ay = gx.abs(), gy.abs() << 15
    tg22 = ax * _TAN22_Q15
    tg67 = tg22 + (ax << 16)
    horizontal = ay < tg22
    vertical = ~horizontal & (ay > tg67)
    diagonal = ~horizontal & ~vertical
    same_sign = (gx ^ gy) >= 0
    keep_h = (mag > at(0, -1)) & (mag >= at(0, 1))
    keep_v = (mag > at(-1, 0)) & (mag >= at(1, 0))
    keep_d = torch.where(
        same_sign, (mag > at(-1, -1)) & (mag > at(1, 1)), (mag > at(-1, 1)) & (mag > at(1, -1))
    )
    maximum = (horizontal & keep_h) | (vertical & keep_v) | (diagonal & keep_d)
    candidate = maximum & (mag > math.floor(low))
    edges = candidate & (mag > math.floor(high))
    # Hysteresis: grow strong edges through 8-connected candidates until nothing changes.
    while True:
        grown = (candidate & _dilate3(edges)) | edges
        if torch.equal(grown, edges):
            return edges
        edges = grown


def _dilate3(mask: Tensor) -> Tensor:
    """3x3 binary dilation of bool maps (N, H, W), nothing outside the image."""
    p = F.pad(mask, (1, 1, 1, 1))
    rows = p[:, :, :-2] | p[:, :, 1:-1] | p[:, :, 2:]
    return rows[:, :-2] | rows[:, 1:-1] | rows[:, 2:]


def distance_to_edges(edges: Tensor, cap: float) -> Tensor:
    """min(Euclidean distance to the nearest True pixel, cap), float32 (N, H, W); cap where an image
    has no True pixel. edges: bool (N, H, W)."""
    h, w = edges.shape[-2:]
    far = float(h + w + cap + 1)
    cols = torch.arange(w, device=edges.device, dtype=torch.float32).view(1, 1, w)
    # Distance to the nearest edge within the row (cumulative max/min along the last dim, where
    # they are fast), then the exact 2-D distance as a min over row offsets; offsets beyond the
    # cap cannot matter.
    left = torch.where(edges, cols, torch.full_like(cols, -far)).cummax(dim=2).values
    right = (
        torch.where(edges, cols, torch.full_like(cols, 2 * far))
        .flip(2)
        .cummin(dim=2)
        .values.flip(2)
    )
    g2 = torch.minimum(cols - left, right - cols).clamp_(max=cap + 1).square_()
    d2 = g2.clone()
    for off in range(1, min(h - 1, math.ceil(cap)) + 1):
        extra = float(off * off)
        torch.minimum(d2[:, off:], g2[:, :-off] + extra, out=d2[:, off:])
        torch.minimum(d2[:, :-off], g2[:, off:] + extra, out=d2[:, :-off])
    return d2.sqrt_().clamp_(max=cap)


def equalize_hist(levels: Tensor) -> Tensor:
    """cv2.equalizeHist per image: levels int64 (N, H, W) in 0..255 -> int64 (N, H, W)."""
    n, h, w = levels.shape
    flat = levels.reshape(n, -1)
    total = flat.shape[1]
    hist = torch.zeros((n, 256), dtype=torch.int64, device=levels.device).scatter_add_(
        1, flat, torch.ones_like(flat)
    )
    first = (hist > 0).to(torch.int64).argmax(dim=1, keepdim=True)
    first_count = hist.gather(1, first)
    cdf = hist.cumsum(dim=1)
    scale = 255.0 / (total - first_count).clamp_min(1).to(torch.float32)
    lut = ((cdf - first_count).to(torch.float32) * scale).round_().clamp_(0, 255).to(torch.int64)
    # A one-level image stays as it is.
    constant = first_count == total
    lut = torch.where(constant, torch.arange(256, device=levels.device).view(1, 256), lut)
    return lut.gather(1, flat).reshape(n, h, w)


_EMBOSS = np.array([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])


def spatter(x: Tensor, params: tuple, ctx: Context) -> Tensor:
    """Water drops or mud splashes from a thresholded, blurred normal layer.

    params = (loc, scale, sigma, threshold, intensity, mode). The layer is N(loc, scale^2) per
    pixel, Gaussian-blurred by sigma (edge border), set to 0 below `threshold`.
    mode 0 (water): the layer's 8-bit edges (Canny 50/150) give a distance map (truncated at 20,
    3x3 mean, equalised, embossed, 3x3 mean); the layer times that map, scaled to peak at
    `intensity`, adds pale turquoise (175, 238, 238).
    mode 1 (mud): the mask layer > threshold, Gaussian-blurred by `intensity` and zeroed below 0.8,
    blends the image towards brown (63, 42, 20).
    """
    loc, scale, sigma, threshold, intensity, mode = params
    n, _, h, w = x.shape
    layer = ctx.rng.normal((n, h, w), mean=float(loc), std=float(scale))
    layer = ops.gaussian_filter(layer, float(sigma), mode="edge")
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer)
    if int(mode) == 0:
        # The generators cast to uint8 here; values above 1 are clipped rather than wrapped.
        levels = (layer.clamp(0, 1) * 255).floor_()
        dist = distance_to_edges(canny(levels, 50, 150), 20.0)
        dist = (ops.box_filter3(dist) + 1e-4).floor_().clamp_(0, 255).long()
        dist = equalize_hist(dist).to(x.dtype)
        dist = ops.correlate2d(dist, _EMBOSS, "reflect101").round_().clamp_(0, 255)
        dist = ops.box_filter3(dist).round_()
        m = levels * dist
        peak = m.amax(dim=(1, 2), keepdim=True)
        m = torch.where(peak > 0, m / peak.clamp_min(1e-12), torch.zeros_like(m)).mul_(
            float(intensity)
        )
        colour = torch.tensor(_WATER, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x + m.unsqueeze(1) * colour).clamp_(0, 1)
    mask = (layer > threshold).to(x.dtype)
    m = ops.gaussian_filter(mask, float(intensity), mode="edge")
    m = torch.where(m < 0.8, torch.zeros_like(m), m).unsqueeze(1)
    colour = torch.tensor(_MUD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * (1 - m) + colour * m).clamp_(0, 1)


FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "spatter": spatter,
}

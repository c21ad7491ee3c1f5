"""Tensor building blocks shared by the corruption families.

Images are float (N, C, H, W) in [0, 1] unless a function says otherwise; "maps" are (..., H, W).

Linear filters with a border rule (Gaussian blur, box blur, zoom, resize) are built once as small
(out, in) matrices with the border rule folded in, and applied as two matrix products
(rows, then columns). On a CPU this is an order of magnitude faster than a single-channel
`conv2d` for these image sizes, and it is exact: the matrix holds the same weights the filter would
apply, including at the borders. Non-separable kernels (the defocus disk) are split into a sum of
separable terms by an SVD.

Border rules are named after what they do, with the library that uses them:
    "edge"        ... a a | a b c d | d d ...   scipy "nearest", cv2 BORDER_REPLICATE, ImageMagick edge
    "symmetric"   ... b a | a b c d | d c ...   scipy "reflect"
    "reflect101"  ... c b | a b c d | c b ...   cv2's default BORDER_REFLECT_101, scipy "mirror"
    "wrap"        ... c d | a b c d | a b ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from selectivity.corruptions.tables import Table
from selectivity.rng import draw

BORDER_MODES = ("edge", "symmetric", "reflect101", "wrap")

# The published driver truncates with np.uint8(x * 255). Results that are whole grey levels in exact
# arithmetic (JPEG, pixelate, 8-bit intermediates) come out of float32 a few ulps low, so the
# truncation allows this much slack, in grey levels, before dropping a level.
_TRUNC_SLACK = 2e-4


# --------------------------------------------------------------------------------------------------
# Random numbers
# --------------------------------------------------------------------------------------------------


class Rng:
    """Random draws from one `torch.Generator`, moved to the images' device.

    Numbers are drawn on the generator's own device (the CPU for a default `torch.Generator()`), so
    the same seed gives the same corruption on any device. With no generator, draws use the global
    RNG of the images' device.
    """

    def __init__(self, generator: torch.Generator | None, device: torch.device):
        self.generator = generator
        self.device = device
        self._draw_device = generator.device if generator is not None else device

    def uniform(self, shape: tuple[int, ...], low: float = 0.0, high: float = 1.0) -> Tensor:
        """float32 `shape`, U[low, high)."""
        u = draw("uniform", shape, self.generator, self.device)
        if low != 0.0 or high != 1.0:
            u.mul_(high - low).add_(low)
        return u

    def normal(self, shape: tuple[int, ...], mean: float = 0.0, std: float = 1.0) -> Tensor:
        """float32 `shape`, N(mean, std^2)."""
        z = draw("normal", shape, self.generator, self.device)
        if std != 1.0:
            z.mul_(std)
        if mean != 0.0:
            z.add_(mean)
        return z

    def randint(self, low: int, high: int, shape: tuple[int, ...]) -> Tensor:
        """int64 `shape`, uniform on [low, high) as np.random.randint."""
        return torch.randint(
            low, high, shape, generator=self.generator, device=self._draw_device
        ).to(self.device)

    def poisson(self, rates: Tensor) -> Tensor:
        """float32 Poisson(rates) counts, same shape as `rates` (>= 0).

        `torch.poisson` is several times slower than this on a CPU. Rates of 10 and more are
        sampled by Hoermann's transformed rejection with squeeze (PTRS, 1993), the method numpy
        uses for that range; smaller rates by inversion of the CDF. Both are exact samplers (the
        PTRS acceptance test runs in float64).
        """
        lam = rates.detach().to(self._draw_device, torch.float32).reshape(-1)
        big = lam >= 10
        out = self._ptrs_round(torch.where(big, lam, torch.full_like(lam, 10.0)))
        # One PTRS round accepts ~90% of draws; the rest (and the small rates) are redone on
        # their own, which keeps masked copies of the whole batch to two.
        retry = (big & out.isnan()).nonzero().squeeze(1)
        while retry.numel():
            k = self._ptrs_round(lam[retry])
            out[retry] = k
            retry = retry[k.isnan()]
        small = (~big).nonzero().squeeze(1)
        if small.numel():
            out[small] = self._poisson_inversion(lam[small])
        return out.reshape(rates.shape).to(self.device)

    def poisson_of_levels(self, levels: Tensor, rate: float) -> Tensor:
        """float32 Poisson(rate * levels / 255) counts for 8-bit levels (int64 in 0..255, any shape).

        Inversion through per-level CDF tables (`_poisson_tables`): the count is the smallest k
        with CDF(k) >= u for a uniform u. A guide table over u gives that count directly for ~98%
        of draws; the others take a binary search. Several times faster than rejection sampling.
        Exact but for float32 resolution: CDF and u are held to 2^-24, which moves no count's
        probability by more than ~1e-7.
        """
        cdf, guide, offset_cdf = _poisson_tables(float(rate))
        k_count = cdf.shape[1]
        g_count = guide.shape[1]
        dev = self._draw_device
        lv = levels.detach().to(dev).reshape(-1)
        cdf_flat = cdf.to(dev).reshape(-1)
        u = torch.rand(lv.shape, generator=self.generator, device=dev)
        # guide holds flat indices into cdf: level * K + count.
        idx = guide.to(dev).reshape(-1)[(u * g_count).long().add_(lv * g_count)]
        wrong = (cdf_flat[idx] < u).nonzero().squeeze(1)
        if wrong.numel():
            # Rows of offset_cdf are CDF + level, so one sorted array serves every level.
            idx[wrong] = torch.searchsorted(
                offset_cdf.to(dev).reshape(-1), lv[wrong].double() + u[wrong]
            )
        return idx.sub_(lv * k_count).to(torch.float32).reshape(levels.shape).to(self.device)

    def _ptrs_round(self, lam: Tensor) -> Tensor:
        """One PTRS draw per rate (all >= 10): the count, or NaN where the draw was rejected."""
        u = torch.rand(lam.shape, generator=self.generator, device=lam.device).sub_(0.5)
        v = torch.rand(lam.shape, generator=self.generator, device=lam.device)
        slam = lam.sqrt()
        b = slam.mul(2.53).add_(0.931)
        a = b.mul(0.02483).sub_(0.059)
        us = 0.5 - u.abs()
        k = torch.floor((2 * a / us + b) * u + lam + 0.43)
        vr = 0.9277 - 3.6224 / (b - 2)
        fast = (us >= 0.07) & (v <= vr)
        reject = (k < 0) | ((us < 0.013) & (v > us))
        l64, k64, us64, a64, b64 = lam.double(), k.double(), us.double(), a.double(), b.double()
        invalpha = 1.1239 + 1.1328 / (b64 - 3.4)
        log_ratio = v.double().log() + invalpha.log() - (a64 / (us64 * us64) + b64).log()
        log_pmf = -l64 + k64 * l64.log() - torch.lgamma(k64.clamp_min(0) + 1)
        accept = fast | (~reject & (log_ratio <= log_pmf))
        return torch.where(accept, k, torch.full_like(k, float("nan")))

    def _poisson_inversion(self, lam: Tensor) -> Tensor:
        """Poisson draws for rates below 10: the number of CDF values below one uniform."""
        u = torch.rand(lam.shape, generator=self.generator, device=lam.device, dtype=torch.float64)
        l64 = lam.double()
        p = torch.exp(-l64)
        cdf = p.clone()
        count = torch.zeros_like(l64)
        # P(X > 60 | lam < 10) < 1e-20: the cap only guards against a CDF that rounds below u.
        for k in range(1, 61):
            more = u > cdf
            if not bool(more.any()):
                break
            count += more
            p.mul_(l64).div_(k)
            cdf += p
        return count.float()


@lru_cache(maxsize=32)
def _poisson_tables(rate: float) -> tuple[Tensor, Tensor, Tensor]:
    """CDF and guide tables of Poisson(rate * j / 255), j = 0..255.

    cdf: float32 (256, K), K covering the largest rate's mean + 12 std; the last entry is set to 1
    (the mass cut off is below 1e-30). guide: int64 (256, G), G >= 4K: guide[j, g] = j * K + the
    smallest count whose CDF reaches g / G (a flat index into cdf). offset_cdf: cdf + j per row,
    increasing along the flattened table.
    """
    lam = torch.arange(256, dtype=torch.float64) * rate / 255
    k_count = int(rate + 12 * math.sqrt(rate) + 40)
    ks = torch.arange(k_count, dtype=torch.float64)
    log_pmf = (
        -lam[:, None]
        + ks[None, :] * lam[:, None].clamp_min(1e-300).log()
        - torch.lgamma(ks + 1)[None, :]
    )
    pmf = log_pmf.exp()
    pmf[0] = 0.0
    pmf[0, 0] = 1.0
    cdf = pmf.cumsum(dim=1).clamp_(max=1.0).float()
    cdf[:, -1] = 1.0
    # A power of 2, so that u * G and g / G are exact in float32 and a draw's bin is never off by one.
    g_count = 1 << math.ceil(math.log2(4 * k_count))
    starts = (
        (torch.arange(g_count, dtype=torch.float64) / g_count).expand(256, g_count).contiguous()
    )
    guide = torch.searchsorted(cdf, starts.float()) + k_count * torch.arange(256).view(256, 1)
    return cdf, guide, cdf.double() + torch.arange(256, dtype=torch.float64).view(256, 1)


# --------------------------------------------------------------------------------------------------
# Quantisation and colour
# --------------------------------------------------------------------------------------------------


def truncate_to_uint8(x: Tensor) -> Tensor:
    """uint8 grey levels of `x` (any shape, [0, 1] scale) by truncation, as np.uint8(x * 255)."""
    return (x.clamp(0, 1) * 255 + _TRUNC_SLACK).floor_().to(torch.uint8)


def quantize_trunc(x: Tensor) -> Tensor:
    """`x` ([0, 1] scale) through an 8-bit image that truncates: floor(255 x) / 255, as float."""
    return (x.clamp(0, 1) * 255 + _TRUNC_SLACK).floor_().div_(255)


def to_grey_levels(x: Tensor) -> Tensor:
    """float grey levels 0..255 of an image in [0, 1] that came from uint8 (rounded, not truncated,
    so that x = k / 255 maps back to exactly k)."""
    return (x.clamp(0, 1) * 255).round_()


def rgb_to_grey(x: Tensor) -> Tensor:
    """(N, 3, H, W) -> (N, 1, H, W): ITU-R 601 luma, the weights of cv2.COLOR_RGB2GRAY."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


# --------------------------------------------------------------------------------------------------
# Borders and separable linear operators
# --------------------------------------------------------------------------------------------------


def border_index(idx: Tensor | np.ndarray, n: int, mode: str):
    """Integer indices (any shape, possibly outside [0, n)) mapped into [0, n) by a border rule
    (see the module docstring). Works on numpy arrays and tensors alike."""
    lib = torch if isinstance(idx, Tensor) else np
    if mode == "edge":
        return lib.clip(idx, 0, n - 1)
    if mode == "wrap":
        return idx % n
    if mode == "symmetric":
        i = idx % (2 * n)
        return lib.where(i >= n, 2 * n - 1 - i, i)
    if mode == "reflect101":
        if n == 1:
            return idx * 0
        i = idx % (2 * n - 2)
        return lib.where(i >= n, 2 * n - 2 - i, i)
    raise ValueError(f"unknown border mode {mode!r}; choose one of {', '.join(BORDER_MODES)}")


@lru_cache(maxsize=512)
def filter_matrix(n: int, kernel: tuple[float, ...], mode: str) -> np.ndarray:
    """(n, n) float64 matrix M with (M @ v)[i] = sum_t kernel[t] * v[border(i + t - r)], r = len // 2:
    a centred 1-D correlation of a length-n signal with the border rule folded in."""
    k = np.asarray(kernel, dtype=np.float64)
    r = len(k) // 2
    rows = np.repeat(np.arange(n), len(k))
    cols = border_index(np.arange(n)[:, None] + np.arange(len(k))[None, :] - r, n, mode).reshape(-1)
    m = np.zeros((n, n), dtype=np.float64)
    np.add.at(m, (rows, cols), np.tile(k, n))
    return m


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> tuple[float, ...]:
    """Normalised 1-D Gaussian taps with scipy.ndimage's radius rule int(truncate * sigma + 0.5).
    sigma = 0 gives the identity tap (1,)."""
    if sigma <= 0:
        return (1.0,)
    radius = int(truncate * float(sigma) + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return tuple((w / w.sum()).tolist())


def as_tensor(m: np.ndarray, like: Tensor) -> Tensor:
    return torch.as_tensor(m, dtype=like.dtype, device=like.device)


def apply_separable(x: Tensor, rows: np.ndarray | Tensor, cols: np.ndarray | Tensor) -> Tensor:
    """rows @ x @ cols^T on the last two dims: x (..., H, W), rows (Ho, H), cols (Wo, W) ->
    (..., Ho, Wo)."""
    r = rows if isinstance(rows, Tensor) else as_tensor(rows, x)
    c = cols if isinstance(cols, Tensor) else as_tensor(cols, x)
    shape = x.shape
    # Columns first: one large GEMM over all rows of all maps.
    y = x.reshape(-1, shape[-1]) @ c.T  # (B*H, Wo)
    y = y.reshape(-1, shape[-2], c.shape[0])  # (B, H, Wo)
    y = torch.matmul(r, y)  # (B, Ho, Wo)
    return y.reshape(*shape[:-2], r.shape[0], c.shape[0])


def gaussian_filter(x: Tensor, sigma: float, mode: str = "edge", truncate: float = 4.0) -> Tensor:
    """Gaussian blur of maps x (..., H, W) with std `sigma` pixels, scipy.ndimage.gaussian_filter
    semantics (radius int(truncate * sigma + 0.5), border `mode`). skimage.filters.gaussian on an
    (H, W, C) image with channels kept apart is this per channel with mode="edge"."""
    if sigma <= 0:
        return x.clone()
    k = gaussian_kernel(sigma, truncate)
    h, w = x.shape[-2:]
    return apply_separable(x, filter_matrix(h, k, mode), filter_matrix(w, k, mode))


def box_filter3(x: Tensor, mode: str = "reflect101") -> Tensor:
    """3x3 mean of maps (..., H, W), cv2.blur(x, (3, 3)) with its default border."""
    k = (1 / 3, 1 / 3, 1 / 3)
    h, w = x.shape[-2:]
    return apply_separable(x, filter_matrix(h, k, mode), filter_matrix(w, k, mode))


@lru_cache(maxsize=64)
def _separable_terms(
    kernel: tuple[tuple[float, ...], ...], rel_tol: float
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    k = np.asarray(kernel, dtype=np.float64)
    u, s, vt = np.linalg.svd(k)
    keep = s > rel_tol * s[0]
    return tuple((u[:, i] * s[i], vt[i]) for i in np.nonzero(keep)[0])


def correlate2d(x: Tensor, kernel: np.ndarray, mode: str, rel_tol: float = 1e-9) -> Tensor:
    """Centred 2-D correlation of maps x (..., H, W) with an odd-sized `kernel` (kH, kW), border
    `mode` (cv2.filter2D semantics with mode="reflect101"). The kernel is split into separable
    rank-one terms by SVD; terms below rel_tol of the largest singular value are dropped."""
    h, w = x.shape[-2:]
    terms = _separable_terms(tuple(map(tuple, np.asarray(kernel, dtype=np.float64))), rel_tol)
    out = None
    for vertical, horizontal in terms:
        # Kernel entry K[a, b] weighs the pixel offset by (a - r, b - r): a runs down the rows.
        y = apply_separable(
            x, filter_matrix(h, tuple(vertical), mode), filter_matrix(w, tuple(horizontal), mode)
        )
        out = y if out is None else out.add_(y)
    if out is None:
        raise ValueError("the kernel has no separable terms (all zero)")
    return out


# --------------------------------------------------------------------------------------------------
# Zoom (scipy.ndimage.zoom, order 1) as a matrix
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def clipped_zoom_matrix(n: int, zoom: float) -> np.ndarray:
    """(n, n) float64 matrix of the generators' `clipped_zoom` along one axis of length n.

    The central ceil(n / zoom) pixels are zoomed by scipy.ndimage.zoom(order=1) to
    round(crop * zoom) samples (sample o reads the crop at o * (crop - 1) / (out - 1), linear
    interpolation, corners aligned), and the central n of those are kept."""
    crop = math.ceil(n / zoom)
    top = (n - crop) // 2
    out = round(crop * zoom)
    trim = (out - n) // 2
    o = np.arange(trim, trim + n, dtype=np.float64)
    coord = o * ((crop - 1) / (out - 1)) if out > 1 else np.zeros_like(o)
    lo = np.floor(coord).astype(np.int64)
    frac = coord - lo
    lo = np.clip(lo, 0, crop - 1)
    hi = np.clip(lo + 1, 0, crop - 1)
    m = np.zeros((n, n), dtype=np.float64)
    np.add.at(m, (np.arange(n), top + lo), 1 - frac)
    np.add.at(m, (np.arange(n), top + hi), frac)
    return m


def clipped_zoom(x: Tensor, zoom: float) -> Tensor:
    """The generators' clipped_zoom of maps x (..., H, W) by `zoom` >= 1 (see clipped_zoom_matrix)."""
    h, w = x.shape[-2:]
    return apply_separable(
        x, clipped_zoom_matrix(h, float(zoom)), clipped_zoom_matrix(w, float(zoom))
    )


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------


def sample_bilinear(x: Tensor, rows: Tensor, cols: Tensor, mode: str) -> Tensor:
    """Bilinear samples of images x (N, C, H, W) at real-valued pixel coordinates rows, cols
    (N, Ho, Wo) (pixel centres at integers), neighbours outside the image taken by border `mode`
    ("reflect101", "symmetric" or "edge"). This is cv2.remap/warpAffine (INTER_LINEAR) and
    scipy.ndimage.map_coordinates(order=1), whose border rules map the two neighbours of a
    sample. Returns (N, C, Ho, Wo).

    Runs as torch's grid_sample: reflecting the coordinate about the outer pixel centres
    (align_corners=True) equals reflect-101 on the neighbours, reflecting about the outer pixel
    edges (align_corners=False) equals the symmetric rule, and clamping equals the edge rule;
    linear interpolation commutes with each mirror. Coordinates pass through normalised float32
    grid units, which costs ~1e-5 pixel.
    """
    h, w = x.shape[-2:]
    if mode == "symmetric":
        gx = cols.mul(2 / w).add_(1 / w - 1)
        gy = rows.mul(2 / h).add_(1 / h - 1)
        padding, corners = "reflection", False
    elif mode in ("reflect101", "edge"):
        gx = cols.mul(2 / max(w - 1, 1)).sub_(1)
        gy = rows.mul(2 / max(h - 1, 1)).sub_(1)
        padding, corners = ("reflection" if mode == "reflect101" else "border"), True
    else:
        raise ValueError(
            f"sample_bilinear supports reflect101, symmetric and edge borders, not {mode!r}"
        )
    grid = torch.stack([gx, gy], dim=-1).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=corners)


def motion_blur(x: Tensor, radius: float, sigma: float, angles: Tensor) -> Tensor:
    """Motion blur of images x (N, C, H, W), one angle in degrees per image (N,).

    An equivalent of ImageMagick's MotionBlurImage (what the generators call through Wand), with no
    ImageMagick: the kernel has width 2 * ceil(radius) + 1 taps, tap i (i = 0, 1, ...) weighs
    exp(-i^2 / (2 sigma^2)) (normalised), and reads the pixel at the integer offset
    (round(i cos a), round(i sin a)) (x right, y down) from the output pixel, so the blur is
    one-sided: each pixel averages the pixels behind it along the angle, the nearest weighted most.
    Offsets round half up (ceil(v - 0.5)) and pixels beyond the border repeat the edge, as in
    ImageMagick's default virtual-pixel rule. The 8-bit PNG round trip of the original (which
    truncates) is left to callers.
    """
    if radius <= 0 or sigma <= 0:
        raise ValueError(f"motion blur needs radius > 0 and sigma > 0, got {radius}, {sigma}")
    n, c, h, w = x.shape
    width = 2 * math.ceil(radius) + 1
    taps = np.exp(-(np.arange(width, dtype=np.float64) ** 2) / (2 * float(sigma) ** 2))
    taps /= taps.sum()
    a = torch.deg2rad(angles.to(torch.float64)).view(n, 1)
    i = torch.arange(width, dtype=torch.float64, device=angles.device).view(1, width)
    dx = torch.ceil(i * torch.cos(a) - 0.5).long().to(x.device)  # (N, width)
    dy = torch.ceil(i * torch.sin(a) - 0.5).long().to(x.device)
    rr = torch.arange(h, device=x.device).view(1, h)
    cc = torch.arange(w, device=x.device).view(1, w)
    flat = x.reshape(n, c, h * w)
    out = torch.zeros_like(flat)
    for t in range(width):
        ri = (rr + dy[:, t : t + 1]).clamp_(0, h - 1)  # (N, H)
        ci = (cc + dx[:, t : t + 1]).clamp_(0, w - 1)  # (N, W)
        idx = (ri.unsqueeze(2) * w + ci.unsqueeze(1)).reshape(n, 1, h * w).expand(n, c, h * w)
        out.add_(flat.gather(2, idx), alpha=float(taps[t]))
    return out.reshape(n, c, h, w)


# --------------------------------------------------------------------------------------------------
# What every corruption function receives besides the images
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """rng: the random draws; table: the severity table in use (for its table-level constants)."""

    rng: Rng
    table: Table

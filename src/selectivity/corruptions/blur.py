"""Blur corruptions: defocus_blur, glass_blur, motion_blur, zoom_blur, gaussian_blur.

Every function takes images x float32 (N, 3, H, W) in [0, 1], the severity's parameters from the
table and a `Context`, and returns float32 (N, 3, H, W) in [0, 1].

Where the generators call a library, the same operation is written out here:
- gaussian_blur, glass_blur: skimage.filters.gaussian per channel = scipy's gaussian_filter with
  border "nearest" (edge) and radius int(4 sigma + 0.5).
- defocus_blur: cv2.filter2D with cv2's default reflect-101 border; the kernel is the generators'
  anti-aliased disk (a 0/1 disk on a 17x17 grid, or (2r+1)^2 for radius > 8, normalised, then
  cv2.GaussianBlur with a 3x3 (5x5 for radius > 8) kernel of std alias_blur).
- motion_blur: ImageMagick's motion blur through Wand in the generators. Here, without
  ImageMagick, a line kernel of 2 ceil(radius) + 1 taps with one-sided Gaussian weights
  exp(-i^2 / 2 sigma^2), i = 0, 1, ..., at the drawn angle (see `ops.motion_blur`), followed by
  the 8-bit truncation of the PNG round trip. This is ImageMagick's own kernel: same width rule,
  same weights, same rounded integer offsets, edge pixels repeated. Against ImageMagick 6.9.11
  (`convert -motion-blur RxS+A`) the 8-bit results agree but for ~0.2% of values, one level off.
- glass_blur: the generators' sequential loop of local pixel swaps is computed exactly, for the
  whole batch at once, as a permutation (see `swap_permutation`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from selectivity.corruptions import ops
from selectivity.corruptions.ops import Context

__all__ = [
    "FUNCTIONS",
    "defocus_blur",
    "disk_kernel",
    "gaussian_blur",
    "glass_blur",
    "motion_blur",
    "swap_permutation",
    "zoom_blur",
]


def gaussian_blur(x: Tensor, sigma: float, ctx: Context) -> Tensor:
    """Per-channel Gaussian blur with std `sigma` pixels, edge border, clipped."""
    return ops.gaussian_filter(x, float(sigma), mode="edge").clamp_(0, 1)


@lru_cache(maxsize=32)
def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The generators' anti-aliased defocus disk, float64 (k, k), k = 17 for radius <= 8 else
    2 radius + 1; sums to 1."""
    if radius <= 8:
        grid: np.ndarray = np.arange(-8, 8 + 1)
        ksize = 3
    else:
        grid = np.arange(-radius, radius + 1)
        ksize = 5
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    # cv2.GaussianBlur's kernel for a given sigma: exp(-(i - (k-1)/2)^2 / 2 sigma^2), normalised.
    t = np.arange(ksize) - (ksize - 1) / 2
    g = np.exp(-(t**2) / (2 * float(alias_blur) ** 2))
    g /= g.sum()
    m = ops.filter_matrix(len(grid), tuple(g.tolist()), "reflect101")
    return m @ disk @ m.T


def defocus_blur(x: Tensor, params: tuple[float, float], ctx: Context) -> Tensor:
    """Correlation with the anti-aliased disk of (radius, alias_blur), reflect-101 border, clipped."""
    radius, alias_blur = params
    return ops.correlate2d(
        x, disk_kernel(float(radius), float(alias_blur)), "reflect101", rel_tol=1e-7
    ).clamp_(0, 1)


def swap_permutation(dy: Tensor, dx: Tensor, h: int, w: int, delta: int, iterations: int) -> Tensor:
    """Where each pixel comes from after the generators' glass-blur swaps, for a batch.

    The generators visit the centres (r, c), r from h - delta down to delta + 1 and, inside, c from
    w - delta down to delta + 1, `iterations` times over, and at step k swap the pixel at the
    centre with the one at (r + dy[k], c + dx[k]). dy, dx: int64 (N, K), K = iterations *
    (h - 2 delta) * (w - 2 delta), offsets in [-delta, delta), in that visiting order. Returns
    int64 (N, h * w): flat index of the source pixel of every output pixel.

    Each pass over the centres is one permutation; passes compose by a gather. A pass with
    delta = 1 (every CIFAR-10-C severity) takes `_swap_pass_delta1`, a scan over rows; larger
    deltas take `_swap_pass_events`. Both give exactly the sequential loop's result.
    """
    n = dy.shape[0]
    per_pass = max(h - 2 * delta, 0) * max(w - 2 * delta, 0)
    k = iterations * per_pass
    if dy.shape != (n, k) or dx.shape != (n, k):
        raise ValueError(
            f"expected offsets of shape ({n}, {k}), got {tuple(dy.shape)} and {tuple(dx.shape)}"
        )
    source = torch.arange(h * w, device=dy.device).expand(n, h * w).clone()
    if per_pass == 0:
        return source
    one_pass = _swap_pass_delta1 if delta == 1 else _swap_pass_events
    # The event pass holds ~8 int64 arrays of (2 * per_pass + h * w) per image: bound its memory.
    chunk = n if delta == 1 else max(1, 4_000_000 // (2 * per_pass + h * w))
    for i in range(iterations):
        steps = slice(i * per_pass, (i + 1) * per_pass)
        # The pass moves whatever the earlier passes left at each position.
        moves = torch.cat(
            [
                one_pass(dy[j : j + chunk, steps], dx[j : j + chunk, steps], h, w, delta)
                for j in range(0, n, chunk)
            ]
        )
        source = source.gather(1, moves)
    return source


def _swap_pass_delta1(dy: Tensor, dx: Tensor, h: int, w: int, delta: int = 1) -> Tensor:
    """One pass of swaps with offsets in {-1, 0}^2 (see swap_permutation): (N, h * w) sources.

    With delta = 1 a centre only swaps with itself or a pixel above/left of it, which is visited
    later, so a visited centre is never touched again. Let carry(X) be what X holds when it is
    visited (for a pixel never visited: what it ends with). It is what the last centre to push
    into X held, and those pushers are X's right, lower or lower-right neighbour, the first of
    these in visiting order winning; with none, X's own pixel. A centre X ends with what its
    partner Q holds just before X's step: carry of the last earlier pusher into Q, or Q's own
    pixel. Runs of "pushed from the right" are resolved with a reverse cumulative minimum, so
    carry is filled one row at a time, bottom to top, by a single gather per row.
    """
    n = dy.shape[0]
    device = dy.device
    w1 = w + 1
    own_base = (h + 1) * w1
    # Offset code per pixel: 0 stay, 1 left, 2 up, 3 up-left, 4 not a centre; padded by one row
    # and column of 4 below/right so that neighbour look-ups need no bounds checks.
    code = torch.full((n, h + 1, w1), 4, dtype=torch.int64, device=device)
    steps = dx.neg() + 2 * dy.neg()  # visiting order: rows, then columns, both descending
    code[:, 2:h, 2:w] = steps.view(n, h - 2, w - 2).flip(1).flip(2)
    from_right = code[:, :h, 1:w1] == 1  # (N, h, w): the right neighbour pushes left into X
    from_below = code[:, 1 : h + 1, :w] == 2
    from_below_right = code[:, 1 : h + 1, 1:w1] == 3
    # buffer = [carry on the padded (h + 1, w + 1) grid | every pixel's own index], so that any
    # "take this pixel's carry" or "take that original pixel" is one flat index.
    r_idx = torch.arange(h, device=device).view(1, h, 1)
    c_idx = torch.arange(w, device=device).view(1, 1, w)
    carry_at = r_idx * w1 + c_idx  # flat position of carry(r, c)
    own_at = own_base + r_idx * w + c_idx  # flat position of pixel (r, c)'s own index
    target = torch.where(
        from_below, carry_at + w1, torch.where(from_below_right, carry_at + w1 + 1, own_at)
    )
    # A run of right-pushes takes what the first pixel to its right that is not pushed from the right takes.
    stop = torch.where(from_right, w, c_idx)
    first_stop = stop.flip(2).cummin(2).values.flip(2)
    target = target.gather(2, first_stop)
    buffer = torch.empty((n, own_base + h * w), dtype=torch.int64, device=device)
    buffer[:, own_base:] = torch.arange(h * w, device=device)
    for r in range(h - 1, -1, -1):
        buffer[:, r * w1 : r * w1 + w] = buffer.gather(1, target[:, r])
    # Final contents. Partner on the left: its earlier pushers are X's lower-left (pushing up)
    # and lower (pushing up-left) neighbours, in that visiting order. Partner above: X's right
    # neighbour pushing up-left. Partner up-left: nobody pushes into it before X's step.
    c = code[:, :h, :w]
    lower_left = torch.zeros_like(from_right)
    lower_left[:, :, 1:] = code[:, 1 : h + 1, : w - 1] == 2
    lower = code[:, 1 : h + 1, :w] == 3
    right_up_left = code[:, :h, 1:w1] == 3
    left_src = torch.where(
        lower_left, carry_at + w1 - 1, torch.where(lower, carry_at + w1, own_at - 1)
    )
    up_src = torch.where(right_up_left, carry_at + 1, own_at - w)
    src = torch.where(
        c == 1, left_src, torch.where(c == 2, up_src, torch.where(c == 3, own_at - w - 1, carry_at))
    )
    return buffer.gather(1, src.reshape(n, h * w))


def _swap_pass_events(dy: Tensor, dx: Tensor, h: int, w: int, delta: int) -> Tensor:
    """One pass of swaps with any delta (see swap_permutation): (N, h * w) sources.

    Every step writes two "events" (its two positions after the swap); an event's content is the
    content of the latest earlier event at the other position, or an original pixel. Sorting
    events by (position, step) finds those predecessors; pointer jumping (log2 of the steps in
    rounds) resolves each event to its original pixel; the last event at a position gives its
    final content.
    """
    device = dy.device
    n = dy.shape[0]
    p_count = h * w
    rows = torch.arange(h - delta, delta, -1, device=device)
    cols = torch.arange(w - delta, delta, -1, device=device)
    centres = (rows.view(-1, 1) * w + cols.view(1, -1)).reshape(-1)
    k = centres.numel()
    here = centres.view(1, k).expand(n, k)
    there = (centres // w + dy) * w + (centres % w + dx)  # (N, K)
    e = 2 * k
    # Event 2k sits at the centre, event 2k+1 at the partner.
    pos = torch.stack([here, there], dim=2).reshape(n, e)
    keys, order = (pos * e + torch.arange(e, device=device)).sort(dim=1)
    pos_sorted = keys // e
    same_as_prev = torch.zeros_like(pos_sorted, dtype=torch.bool)
    same_as_prev[:, 1:] = pos_sorted[:, 1:] == pos_sorted[:, :-1]
    prev_sorted = torch.where(same_as_prev, order.roll(1, dims=1), torch.full_like(order, -1))
    pred = torch.empty_like(order).scatter_(
        1, order, prev_sorted
    )  # latest earlier event at the same position
    pred_here, pred_there = pred[:, 0::2], pred[:, 1::2]
    self_swap = there == here
    # The centre receives what the partner held; on a self-swap (event 2k+1 then follows 2k at the
    # same position) both events keep what the centre held.
    src_here = torch.where(self_swap, pred_here, pred_there)
    src_here = torch.where(src_here < 0, e + there, src_here)
    src_there = torch.where(pred_here < 0, e + here, pred_here)
    terminals = (e + torch.arange(p_count, device=device)).view(1, p_count).expand(n, p_count)
    ptr = torch.cat([torch.stack([src_here, src_there], dim=2).reshape(n, e), terminals], dim=1)
    while bool((ptr[:, :e] < e).any()):
        ptr = ptr.gather(1, ptr)
    is_last = torch.ones_like(same_as_prev)
    is_last[:, :-1] = ~same_as_prev[:, 1:]
    final = torch.arange(p_count + 1, device=device).view(1, -1).repeat(n, 1)
    # Non-last events all go to a spare column that is dropped.
    final.scatter_(1, torch.where(is_last, pos_sorted, p_count), ptr.gather(1, order) - e)
    return final[:, :p_count]


def glass_blur(x: Tensor, params: tuple[float, int, int], ctx: Context) -> Tensor:
    """Gaussian blur (sigma), 8-bit truncation, local pixel swaps within max_delta, Gaussian blur
    again, clipped. params = (sigma, max_delta, iterations)."""
    sigma, delta, iterations = float(params[0]), int(params[1]), int(params[2])
    n, c, h, w = x.shape
    y = ops.quantize_trunc(ops.gaussian_filter(x, sigma, mode="edge"))
    k = iterations * max(h - 2 * delta, 0) * max(w - 2 * delta, 0)
    offsets = ctx.rng.randint(-delta, delta, (n, k, 2))
    source = swap_permutation(offsets[..., 1], offsets[..., 0], h, w, delta, iterations)
    y = (
        y.reshape(n, c, h * w)
        .gather(2, source.unsqueeze(1).expand(n, c, h * w))
        .reshape(n, c, h, w)
    )
    return ops.gaussian_filter(y, sigma, mode="edge").clamp_(0, 1)


def motion_blur(x: Tensor, params: tuple[float, float], ctx: Context) -> Tensor:
    """Motion blur of (radius, sigma) at an angle ~ U(-45, 45) degrees per image, truncated to 8
    bits as the generators' PNG round trip through ImageMagick does."""
    radius, sigma = params
    angles = ctx.rng.uniform((x.shape[0],), -45.0, 45.0)
    return ops.quantize_trunc(ops.motion_blur(x, float(radius), float(sigma), angles))


def zoom_blur(x: Tensor, zooms: tuple[float, ...], ctx: Context) -> Tensor:
    """Mean of the image and its clipped zooms by each factor in `zooms`, clipped."""
    h, w = x.shape[-2:]
    # On small images several factors give the same resampling (1.0 and 1.01 are both the
    # identity on 32 pixels): one product per distinct matrix, weighted by its count.
    groups: Counter = Counter()
    matrices = {}
    for z in zooms:
        mh, mw = ops.clipped_zoom_matrix(h, float(z)), ops.clipped_zoom_matrix(w, float(z))
        key = (mh.tobytes(), mw.tobytes())
        matrices[key] = (mh, mw)
        groups[key] += 1
    out = x.clone()
    eye_h, eye_w = np.eye(h), np.eye(w)
    for key, count in groups.items():
        mh, mw = matrices[key]
        if np.array_equal(mh, eye_h) and np.array_equal(mw, eye_w):
            out.add_(x, alpha=count)
        else:
            out.add_(ops.apply_separable(x, mh, mw), alpha=count)
    return out.div_(len(zooms) + 1).clamp_(0, 1)


FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "gaussian_blur": gaussian_blur,
}

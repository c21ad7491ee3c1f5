"""Representational similarity between two networks' layers: PWCCA and linear CKA.

Both compare two representations of the SAME N inputs: X (N, p1) and Y (N, p2), rows matched
(row n of each is the response to input n), any p1, p2. Computation is in float64 on the inputs'
device; the result is a Python float.

Which representation (our rule for conv layers)
-----------------------------------------------
`representation` turns a layer's output into rows: (N, U) stays, (N, C, *spatial) becomes
(N, C) by the spatial mean of each channel. That is the unit the class selectivity index reads
(`metrics.unit_activations`), so the off-axis question "was selectivity only rotated among the
units?" is asked of the very values the index saw. It is also the first of the options the
google/svcca tutorial on convolutional layers lists (average-pool the spatial positions, then
compare channels); flattening (C * H * W columns) would leave far more columns than test images.

PWCCA (Morcos, Raghu & Bengio 2018)
-----------------------------------
Canonical correlations rho_1 >= ... >= rho_r of the column-centred X and Y (r = the smaller of
their ranks), averaged with weights that say how much of the representation each canonical
direction accounts for. We follow the authors' public code, google/svcca (`pwcca.compute_pwcca`,
commit 1f3fbf1), on centred inputs: on the side with fewer dimensions, with u the canonical
directions in the (symmetric) whitened coordinates, the directions u^T x_c are orthonormalised
over the N inputs (QR, in order of decreasing rho) into h_1..h_r, and the weight of rho_i is
alpha_i = sum_j |<h_i, x_j>| over that side's centred neurons x_j, normalised to sum to 1.
PWCCA = sum_i alpha_i rho_i, in [0, 1]: 1 when one side is an invertible linear map of the other.
tests/test_similarity.py holds numbers that google/svcca computed on fixed matrices; this
function matches them to ~1e-12.

Where we differ from that code, on purpose: (1) inputs are centred first. The reference adds each
neuron's mean back to its direction before the QR and weights with uncentred activations, which
makes its result depend on the arbitrary sign of each singular vector (flip one and the value
moves); on centred inputs both agree. (2) The side with fewer dimensions is always the weighted
one (the reference's other branch indexes the wrong activations, google/svcca PR #9). When both
sides have the same rank, X is weighted: pass the reference network (alpha = 0) as X.
(3) Silent neurons (variance <= 1e-10 of the layer's largest) and directions of a rank-deficient
side (singular values below 1e-10 of the largest) are dropped instead of inverted: dead ReLU
units are common in regularized networks and make the covariance singular.

CCA overfits when N is not much larger than the number of dimensions (with N - 1 <= p every
rho is 1). The svcca tutorial asks for about ten times more inputs than neurons; we raise
ValueError only when N <= max(p1, p2) and leave the choice of N to the caller.

Linear CKA (Kornblith, Norouzi, Lee & Hinton 2019)
--------------------------------------------------
CKA(X, Y) = ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F), X_c, Y_c column-centred: the
HSIC of the linear kernels, normalised. In [0, 1]; invariant to orthogonal maps and isotropic
scaling of either side (not to general invertible maps, unlike PWCCA). For independent
isotropic Gaussian X, Y it is not 0 but about sqrt(p1 p2) / sqrt((N + p1)(N + p2)), so
compare values with a baseline (networks of different seeds), never with 0. A side with no
variance at all gives NaN (0 / 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "canonical_correlations",
    "linear_cka",
    "pwcca",
    "representation",
    "similarity_rows",
]

# Relative thresholds below which a neuron counts as silent or a direction as absent.
_SILENT = 1e-10
_RANK = 1e-10


def representation(activations: Tensor) -> Tensor:
    """A layer's output as (N, D) float64 rows: (N, U) as it is, (N, C, *spatial) as the
    spatial mean of each channel (N, C). Raises ValueError for fewer than two dimensions."""
    if activations.ndim < 2:
        raise ValueError(
            f"a representation needs a batch and a unit dimension, got {tuple(activations.shape)}"
        )
    values = activations.detach().double()
    if values.ndim > 2:
        values = values.flatten(2).mean(dim=2)
    return values


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """x, y as centred float64 (N, p) matrices; ValueError for mismatched or unusable shapes."""
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(
            f"expected (N, p) matrices, got shapes {tuple(x.shape)} and {tuple(y.shape)}; "
            "similarity.representation reduces feature maps"
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"X and Y must hold the same inputs: {x.shape[0]} vs {y.shape[0]} rows")
    if x.shape[0] < 2:
        raise ValueError(f"similarity needs at least two inputs, got {x.shape[0]}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("X or Y holds NaN or infinite values")
    x = x.detach().double()
    y = y.detach().to(device=x.device, dtype=torch.float64)
    return x - x.mean(dim=0), y - y.mean(dim=0)


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA of X (N, p1) and Y (N, p2), in [0, 1]; NaN when either has no variance.

    Uses the p x p cross-products (O(N p^2)), never the N x N Gram matrices.
    """
    xc, yc = _pair(x, y)
    # Scaling each side first keeps the fourth powers of large activations inside float64.
    xc = xc / xc.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
    yc = yc / yc.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
    cross = torch.linalg.matrix_norm(yc.T @ xc) ** 2
    norms = torch.linalg.matrix_norm(xc.T @ xc) * torch.linalg.matrix_norm(yc.T @ yc)
    if norms <= 0:
        return math.nan
    return float((cross / norms).clamp(0.0, 1.0))


def _basis(centred: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Orthonormal basis of the column space of centred neurons, silent neurons dropped.

    Returns (q (N, r), v (p_live, r), live (p,) bool) with centred[:, live] = q @ diag(s) @ v^T.
    """
    variance = centred.pow(2).sum(dim=0)
    live = variance > _SILENT * variance.max() if variance.max() > 0 else variance > 0
    kept = centred[:, live]
    if kept.shape[1] == 0:
        return kept.new_zeros(kept.shape[0], 0), kept.new_zeros(0, 0), live
    u, s, vh = torch.linalg.svd(kept, full_matrices=False)
    rank = int((s > _RANK * s[0]).sum())
    return u[:, :rank], vh[:rank].T, live


def canonical_correlations(x: Tensor, y: Tensor) -> Tensor:
    """Canonical correlations of X (N, p1) and Y (N, p2), decreasing, float64 (r,), r the
    smaller rank (silent neurons dropped). Raises ValueError when N <= max(p1, p2)."""
    xc, yc = _pair(x, y)
    _require_more_inputs(xc, yc)
    qx, _, _ = _basis(xc)
    qy, _, _ = _basis(yc)
    return torch.linalg.svdvals(qx.T @ qy).clamp(0.0, 1.0)


def _require_more_inputs(xc: Tensor, yc: Tensor) -> None:
    n, widest = xc.shape[0], max(xc.shape[1], yc.shape[1])
    if n <= widest:
        raise ValueError(
            f"CCA needs more inputs than dimensions: {n} inputs for {widest} dimensions "
            "(every canonical correlation would be 1); use ~10x more inputs than units"
        )


def pwcca(x: Tensor, y: Tensor) -> float:
    """Projection-weighted CCA similarity of X (N, p1) and Y (N, p2), in [0, 1] (module docstring).

    The weights come from the side of smaller rank (X on a tie). NaN when either side has no
    variance. Raises ValueError when N <= max(p1, p2).
    """
    xc, yc = _pair(x, y)
    _require_more_inputs(xc, yc)
    qx, vx, live_x = _basis(xc)
    qy, vy, live_y = _basis(yc)
    if qx.shape[1] == 0 or qy.shape[1] == 0:
        return math.nan
    if qy.shape[1] < qx.shape[1]:
        xc, yc, qx, qy, vx, vy, live_x, live_y = yc, xc, qy, qx, vy, vx, live_y, live_x
    # svd(qx^T qy) = a diag(rho) b^T; in the whitened coordinates of the reference (symmetric
    # inverse square root of the covariance) its canonical directions are u = vx @ a.
    a, rho, _ = torch.linalg.svd(qx.T @ qy, full_matrices=False)
    neurons = xc[:, live_x]
    directions, _ = torch.linalg.qr(neurons @ (vx @ a))
    weights = (directions.T @ neurons).abs().sum(dim=1)
    weights = weights / weights.sum()
    return float((weights * rho.clamp(0.0, 1.0)).sum())


def similarity_rows(
    reference: Mapping[str, Tensor], other: Mapping[str, Tensor]
) -> list[dict[str, Any]]:
    """Rows {metric: "pwcca" | "linear_cka", layer, samples, value} for each layer in both.

    reference, other: layer -> activations of the same inputs in the same order ((N, U) or
    feature maps, read by `representation`); `reference` is PWCCA's X (the alpha = 0 network).
    A layer with no more inputs than units gets NaN for PWCCA (CCA is undefined there).
    """
    rows: list[dict[str, Any]] = []
    for layer in (name for name in reference if name in other):
        x, y = representation(reference[layer]), representation(other[layer])
        try:
            weighted = pwcca(x, y)
        except ValueError:
            if x.shape[0] != y.shape[0]:
                raise
            weighted = math.nan
        for metric, value in (("pwcca", weighted), ("linear_cka", linear_cka(x, y))):
            rows.append({"metric": metric, "layer": layer, "samples": x.shape[0], "value": value})
    return rows

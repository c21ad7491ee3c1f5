"""Stability of a network's input-output map: Jacobian norm and input-unit gradient variability.

Shapes use N samples, C outputs (logits), U units of a layer; x is (N, *input_shape) in [0, 1].
Every quantity is taken with the model in eval mode (each module's flag restored afterwards):
then samples do not interact, so the gradient of a sum over the batch with respect to the batch
input holds each sample's own gradient, and one backward pass serves the whole batch.

Input-output Jacobian
---------------------
J(x_n) = d logits(x_n) / d x_n is C x D for one sample (D = number of input values).
`jacobian_frobenius_norm` returns ||J(x_n)||_F per sample. Exact mode (projections=None) runs one
backward per output class (C one-hot vectors v: sum_c ||J^T e_c||^2 = ||J||_F^2). The estimator
(Hoffman, Roberts & Yaida 2019) draws random unit vectors v uniform on the sphere of R^C;
E[v v^T] = I / C, so C * ||J^T v||^2 is an unbiased estimate of ||J||_F^2, averaged here over
`projections` draws per sample. What is reported per sample is the square root of that
estimate (biased low by Jensen's inequality when projections are few; exact mode has no bias).
The network's value is the mean of the per-sample norms over the test samples
(`measure.dataset_jacobian_norm`).

Input-unit gradient variability (our definition; the source papers give no formula)
-----------------------------------------------------------------------------------
A unit is a channel of a unit site (its activation is the spatial mean of the feature map, as
for class selectivity) or a neuron of a linear layer. For unit u of a layer and sample n,

    g[n, u] = || d a_u(x_n) / d x_n ||_2        (L2 norm over all input values)

Variability across samples = mean over units of CV_n(g[:, u]);
variability across units   = mean over samples of CV_u(g[n, :]);
where CV = std / mean with the population std (divisor N, resp. U), so a constant vector scores
exactly 0 and the value needs no minimum sample count. Units whose gradient is 0 for every
sample (dead units: ReLU never active on these inputs) are excluded from both, since their CV
is 0/0; in the across-units mean a sample whose gradient is 0 for every remaining unit is
likewise excluded. A layer with no live unit scores NaN. A unit that is silent for some samples
keeps those zeros: they are exactly the variation the measure is meant to see (a unit that
fires for one class has gradient 0 on the others). CV across samples does not change when a
unit is rescaled; both are computed per layer, on a random subset of at most
`max_units_per_layer` units when that is set.

Variability across samples partly measures how often a ReLU unit is off (a zero is far from a
positive mean), which is itself tied to the unit's selectivity. The active form keeps only the
samples on which the unit fires (its activation a_u(x_n) > 0):

    variability over active samples = mean over units of CV over {n : a_u(x_n) > 0} of g[n, u]

Units that fire on fewer than 2 samples are left out (one value has no spread), as are units
whose gradient is 0 on every sample where they fire (CV 0/0); NaN when no unit is left. A unit
that is off on half the samples and has the same gradient norm wherever it fires scores 0 here,
> 0 across samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from selectivity.metrics import unit_activations
from selectivity.models import eval_mode, logits_of
from selectivity.probe import ActivationProbe, Sites
from selectivity.rng import draw

__all__ = [
    "GradientVariability",
    "active_gradient_variability",
    "gradient_variability",
    "input_unit_gradient_norms",
    "jacobian_frobenius_norm",
    "layer_gradient_variability",
    "layer_gradient_variability_measures",
]


def _default_units_per_backward(device: torch.device) -> int:
    # Measured on 2 CPU cores (torch 2.13, digits net and ResNet20): a loop of plain backward
    # passes is 1.5-2.5x faster than vmapped ones (is_grads_batched), so the CPU default is 1.
    # Elsewhere batching saves kernel launches; 16 is a guess, not a measurement.
    return 1 if device.type == "cpu" else 16


def _squared_input_norms(
    outputs: Tensor,
    x: Tensor,
    count: int,
    cotangents: Callable[[int, int], Tensor],
    per_backward: int,
) -> Tensor:
    """Squared per-sample norms of vector-Jacobian products, (count, N).

    outputs: any tensor computed from x (N, ...); cotangents(start, stop) returns the vectors
    for rows [start, stop) as (stop - start, *outputs.shape). Row k, sample n of the result is
    || d <cotangent_k, outputs> / d x_n ||^2. Gradients are reduced chunk by chunk, so memory
    holds at most `per_backward` input-sized gradients.
    """
    rows: list[Tensor] = []
    batched = per_backward > 1
    start = 0
    while start < count:
        stop = min(count, start + (per_backward if batched else 1))
        vectors = cotangents(start, stop)
        grads = None
        if batched:
            try:
                (grads,) = torch.autograd.grad(
                    outputs, x, vectors, retain_graph=True, is_grads_batched=True, allow_unused=True
                )
            except torch.cuda.OutOfMemoryError:  # alias of torch.OutOfMemoryError on current torch
                raise
            except RuntimeError:
                # An op without a vmap rule: fall back to one backward per vector from here on.
                batched = False
                stop = start + 1
                vectors = vectors[:1]
        if not batched:
            (grads,) = torch.autograd.grad(
                outputs, x, vectors[0], retain_graph=True, allow_unused=True
            )
            grads = grads.unsqueeze(0) if grads is not None else None
        if grads is None:  # outputs do not depend on x at all
            rows.append(torch.zeros(stop - start, x.shape[0], dtype=x.dtype, device=x.device))
        else:
            rows.append(grads.flatten(2).pow(2).sum(dim=2))
        start = stop
    return torch.cat(rows) if rows else torch.zeros(0, x.shape[0], dtype=x.dtype, device=x.device)


def jacobian_frobenius_norm(
    model: nn.Module,
    x: Tensor,
    projections: int | None = 1,
    generator: torch.Generator | None = None,
    units_per_backward: int | None = None,
) -> Tensor:
    """Per-sample Frobenius norm of the input-output Jacobian d logits / d x.

    model: maps (N, *input_shape) to logits (N, C). x: (N, *input_shape) float.
    projections: number of random unit vectors per sample (estimator, one backward each), or
        None for the exact value (C backward passes). generator: for the random vectors.
    units_per_backward: vectors per (vmapped) backward pass; default 1 on CPU, 16 elsewhere.
    Returns (N,) detached, in x's dtype: sqrt of the (estimated) ||J(x_n)||_F^2. See the module
    docstring for the estimator and its bias.
    """
    if projections is not None and (
        isinstance(projections, bool) or not isinstance(projections, int) or projections < 1
    ):
        raise ValueError(f"projections must be an int >= 1 or None (exact), got {projections!r}")
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "jacobian_frobenius_norm needs autograd: call it outside torch.inference_mode()"
        )
    per_backward = units_per_backward or _default_units_per_backward(x.device)
    with eval_mode(model), torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = logits_of(model(x))
        if logits.ndim != 2:
            raise ValueError(
                f"the model must return logits (N, C), got shape {tuple(logits.shape)}"
            )
        n, c = logits.shape
        if projections is None:
            eye = torch.eye(c, dtype=logits.dtype, device=logits.device)
            squared = _squared_input_norms(
                logits, x, c, lambda s, e: eye[s:e].unsqueeze(1).expand(e - s, n, c), per_backward
            ).sum(dim=0)
        else:
            vectors = draw("normal", (projections, n, c), generator, logits.device, logits.dtype)
            vectors = vectors / vectors.norm(dim=2, keepdim=True)
            squared = c * _squared_input_norms(
                logits, x, projections, lambda s, e: vectors[s:e], per_backward
            ).mean(dim=0)
    return squared.detach().sqrt()


def _select_units(
    num_units: int, max_units: int | None, generator: torch.Generator | None
) -> Tensor:
    if max_units is None or num_units <= max_units:
        return torch.arange(num_units)
    device = generator.device if generator is not None else "cpu"
    return (
        torch.randperm(num_units, generator=generator, device=device)[:max_units]
        .sort()
        .values.cpu()
    )


def input_unit_gradient_norms(
    model: nn.Module,
    x: Tensor,
    layers: Sites = None,
    max_units_per_layer: int | None = None,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    units_per_backward: int | None = None,
) -> dict[str, Tensor]:
    """g[n, u] = ||d a_u(x_n) / d x_n||_2 for the units of every unit site.

    model: any network; x: (N, *input_shape). layers: module names for ActivationProbe (default
    every ReLU call site, output layer excluded). A unit's activation is its spatial mean
    (`metrics.unit_activations`). max_units_per_layer: if set, a random subset of that many units
    per site, drawn as sorted `torch.randperm(U, generator=generator)[:max]` site by site in call
    order (so a seed fixes the subset). batch_size: samples per forward pass (default all N);
    the unit subset is drawn once and used for every batch. units_per_backward: units per
    vmapped backward; default 1 on CPU (faster there), 16 elsewhere.
    Returns site name -> (N, U_selected) detached norms in x's dtype, in call order.
    Cost: per batch, one forward plus one backward (through the layers below the site) per
    selected unit; memory: one batch's autograd graph.
    """
    measured = _norms_and_activations(
        model, x, layers, max_units_per_layer, generator, batch_size, units_per_backward
    )
    return {name: norms for name, (norms, _) in measured.items()}


def _norms_and_activations(
    model: nn.Module,
    x: Tensor,
    layers: Sites,
    max_units_per_layer: int | None,
    generator: torch.Generator | None,
    batch_size: int | None,
    units_per_backward: int | None,
) -> dict[str, tuple[Tensor, Tensor]]:
    """Site name -> (g (N, U_selected), the selected units' activations (N, U_selected)), both
    detached; arguments as for `input_unit_gradient_norms`."""
    if max_units_per_layer is not None and max_units_per_layer < 1:
        raise ValueError(f"max_units_per_layer must be >= 1 or None, got {max_units_per_layer}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
    if x.shape[0] == 0:
        raise ValueError("input_unit_gradient_norms needs at least one sample")
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "input_unit_gradient_norms needs autograd: call it outside torch.inference_mode()"
        )
    per_backward = units_per_backward or _default_units_per_backward(x.device)
    chosen: dict[str, Tensor] = {}
    parts: dict[str, list[Tensor]] = {}
    responses: dict[str, list[Tensor]] = {}
    with eval_mode(model), torch.enable_grad():
        for start in range(0, x.shape[0], batch_size or x.shape[0]):
            xb = x[start : start + (batch_size or x.shape[0])].detach().requires_grad_(True)
            with ActivationProbe(model, layers, reduce=unit_activations) as probe:
                model(xb)
            for name, acts in probe.activations.items():
                n, u = acts.shape
                if name not in chosen:
                    chosen[name] = _select_units(u, max_units_per_layer, generator).to(acts.device)
                units = chosen[name]
                responses.setdefault(name, []).append(acts.detach()[:, units].to(x.dtype))
                if not acts.requires_grad:  # a site that does not depend on the input
                    parts.setdefault(name, []).append(
                        torch.zeros(n, len(units), dtype=x.dtype, device=x.device)
                    )
                    continue

                def one_hot(
                    first: int, stop: int, units: Tensor = units, like: Tensor = acts
                ) -> Tensor:
                    vectors = torch.zeros(
                        stop - first, *like.shape, dtype=like.dtype, device=like.device
                    )
                    vectors[
                        torch.arange(stop - first, device=like.device), :, units[first:stop]
                    ] = 1
                    return vectors

                squared = _squared_input_norms(acts, xb, len(units), one_hot, per_backward)
                parts.setdefault(name, []).append(squared.detach().sqrt().T)
    return {name: (torch.cat(values), torch.cat(responses[name])) for name, values in parts.items()}


def gradient_variability(norms: Tensor) -> tuple[float, float]:
    """(variability across samples, variability across units) of a layer's gradient norms.

    norms: (N, U) non-negative, g[n, u] as returned by `input_unit_gradient_norms`.
    Across samples: mean over units of std_n / mean_n of g[:, u]; across units: mean over samples
    of std_u / mean_u of g[n, :]; population std. Units that are 0 for every sample are left out
    (and samples that are 0 on every remaining unit, for the second); NaN when nothing is left.
    Both are dimensionless, >= 0, and 0 when every value is equal.
    """
    if norms.ndim != 2:
        raise ValueError(f"norms must be (samples, units), got shape {tuple(norms.shape)}")
    g = norms.detach().double()
    if not torch.isfinite(g).all() or (g < 0).any():
        raise ValueError("norms must be finite and non-negative")
    live = g[:, g.amax(dim=0) > 0] if g.shape[0] else g[:, :0]
    if live.shape[1] == 0:
        return math.nan, math.nan
    across_samples = (live.std(dim=0, correction=0) / live.mean(dim=0)).mean()
    row_means = live.mean(dim=1)
    rows = live[row_means > 0]
    across_units = (
        (rows.std(dim=1, correction=0) / row_means[row_means > 0]).mean()
        if rows.shape[0]
        else torch.tensor(math.nan)
    )
    return float(across_samples), float(across_units)


def active_gradient_variability(norms: Tensor, activations: Tensor) -> float:
    """Variability across samples over active samples: the mean over units of std / mean of
    g[n, u] over the samples n where unit u fires (activations[n, u] > 0), population std.

    norms: (N, U) non-negative, as `input_unit_gradient_norms` returns; activations: (N, U) the
    units' responses on the same samples. Units firing on fewer than 2 samples, or with gradient
    0 wherever they fire, are left out; NaN when none is left. Dimensionless, >= 0.
    """
    if norms.ndim != 2 or activations.shape != norms.shape:
        raise ValueError(
            f"norms and activations must both be (samples, units), got shapes "
            f"{tuple(norms.shape)} and {tuple(activations.shape)}"
        )
    g = norms.detach().double()
    if not torch.isfinite(g).all() or (g < 0).any():
        raise ValueError("norms must be finite and non-negative")
    active = activations.detach() > 0
    count = active.sum(dim=0)
    g = torch.where(active, g, torch.zeros_like(g))
    mean = g.sum(dim=0) / count.clamp(min=1)
    deviation = torch.where(active, g - mean, torch.zeros_like(g))
    std = (deviation.pow(2).sum(dim=0) / count.clamp(min=1)).sqrt()
    kept = (count >= 2) & (mean > 0)
    if not kept.any():
        return math.nan
    return float((std[kept] / mean[kept]).mean())


@dataclass(frozen=True)
class GradientVariability:
    """A layer's gradient variability: across samples, across units, and across the samples
    where each unit fires (module docstring). Dimensionless; NaN where nothing is left."""

    samples: float
    units: float
    active: float


def layer_gradient_variability_measures(
    model: nn.Module,
    x: Tensor,
    layers: Sites = None,
    max_units_per_layer: int | None = None,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> dict[str, GradientVariability]:
    """Site name -> its three gradient variabilities over the samples x, from one set of
    gradients. Arguments as for `input_unit_gradient_norms`."""
    measured = _norms_and_activations(
        model, x, layers, max_units_per_layer, generator, batch_size, None
    )
    result = {}
    for name, (norms, activations) in measured.items():
        across_samples, across_units = gradient_variability(norms)
        result[name] = GradientVariability(
            across_samples, across_units, active_gradient_variability(norms, activations)
        )
    return result


def layer_gradient_variability(
    model: nn.Module,
    x: Tensor,
    layers: Sites = None,
    max_units_per_layer: int | None = None,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> dict[str, tuple[float, float]]:
    """Site name -> (across samples, across units) gradient variability over the samples x.

    Arguments as for `input_unit_gradient_norms`; the caller picks the samples (their number
    bounds the cost together with `max_units_per_layer`).
    """
    norms = input_unit_gradient_norms(model, x, layers, max_units_per_layer, generator, batch_size)
    return {name: gradient_variability(value) for name, value in norms.items()}

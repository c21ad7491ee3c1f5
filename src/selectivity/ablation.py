"""Unit ablation (Morcos et al. 2018): accuracy as a layer's units are silenced in order of SI.

A unit is silenced by zeroing its output at its unit site: channel u of every feature map
(N, C, *spatial), or feature u of (N, U), set to 0 by a forward hook on the site's module.
Sites are named as `probe.ActivationProbe` names them, so the keys of a selectivity result
(`measure.SelectivityResult.per_layer`, `metrics.SelectivityAccumulator.selectivity()`) serve
as they are: `name` for a module's first call in a forward, `name#k` for its k-th call (one
module called several times, as torchvision's ResNet blocks call their `relu`, is several
layers). Hooks are removed in `finally`, also when the model raises.

Orders (per layer): "most" silences the most selective units first, "least" the least selective
first (ties in unit order), "random" a uniformly random order, one permutation per draw, shared
by every fraction of that draw (so one draw's curve is nested). A fraction f silences
round(f * U) units of a U-unit layer. "Whole network" silences that fraction of EVERY layer at
once, each layer in its own order: layers count alike, as in mu_SI, whatever their width.

Accuracy is top-1 over all inputs of `batches`, with every module in eval mode (restored after).
Identical ablations (fraction 0 in every order; fraction 1 in every order) are run once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from selectivity.models import eval_mode, logits_of
from selectivity.probe import check_layers, unwrap

__all__ = ["ORDERS", "ablation_curves", "ablation_order", "silenced"]

ORDERS = ("most", "least", "random")

# A unit site: (module name, call number starting at 1).
_Site = tuple[str, int]


def _site(key: str) -> _Site:
    name, _, call = key.partition("#")
    if call and (not call.isdigit() or int(call) < 2):
        raise ValueError(f"bad unit site {key!r}: expected 'name' or 'name#k' with k >= 2")
    return name, int(call) if call else 1


@contextmanager
def silenced(model: nn.Module, units: Mapping[str, Tensor]) -> Iterator[nn.Module]:
    """Within the block, the listed units of `model` output 0.

    units: site name ('name' or 'name#k', as the probe names them) -> 1-d int64 indices of the
    units (channels or features) to silence. Raises UnknownLayerError for a name that is not a
    module of `model`, ValueError (at the forward) for an index past the site's unit count or a
    site that the forward never reached.
    """
    model = unwrap(model)
    sites = {_site(key): idx.long().flatten() for key, idx in units.items()}
    check_layers(model, sorted({name for name, _ in sites}), "unit site(s)")
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    seen: set[_Site] = set()

    def start(module: nn.Module, inputs: tuple) -> None:
        calls.clear()
        seen.clear()

    def hook_for(name: str) -> Callable[[nn.Module, tuple, Tensor], Tensor | None]:
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor | None:
            calls[name] = calls.get(name, 0) + 1
            site = (name, calls[name])
            if site not in sites:
                return None
            seen.add(site)
            index = sites[site]
            if index.numel() == 0:
                return output
            width = output.shape[1]
            if int(index.max()) >= width:
                raise ValueError(f"unit {int(index.max())} of {name!r}: the site has {width} units")
            keep = torch.ones(width, dtype=output.dtype, device=output.device)
            keep[index.to(output.device)] = 0
            return output * keep.view(1, width, *([1] * (output.ndim - 2)))

        return hook

    def finish(module: nn.Module, inputs: tuple, output: object) -> None:
        missing = sorted(set(sites) - seen)
        if missing:
            names = ", ".join(n if k == 1 else f"{n}#{k}" for n, k in missing)
            raise ValueError(f"unit site(s) {names} never ran in the forward pass")

    handles = []
    try:
        handles.append(model.register_forward_pre_hook(start))
        for name in sorted({name for name, _ in sites}):
            handles.append(modules[name].register_forward_hook(hook_for(name)))
        handles.append(model.register_forward_hook(finish))
        yield model
    finally:
        for handle in handles:
            handle.remove()


def ablation_order(selectivity: Tensor, order: str, generator: torch.Generator) -> Tensor:
    """Unit indices (U,) int64 in the order they are silenced; `generator` serves "random"."""
    si = selectivity.detach().double().cpu().flatten()
    if not torch.isfinite(si).all():
        raise ValueError("selectivity holds NaN or infinite values")
    if order == "most":
        return torch.argsort(si, descending=True, stable=True)
    if order == "least":
        return torch.argsort(si, stable=True)
    if order == "random":
        return torch.randperm(si.numel(), generator=generator)
    raise ValueError(f"unknown ablation order {order!r}; known: {', '.join(ORDERS)}")


def _accuracy(model: nn.Module, batches: Sequence[tuple[Tensor, Tensor]]) -> float:
    correct = total = 0
    with torch.no_grad():
        for x, y in batches:
            # Through logits_of: `model` is unwrapped, and may return an output object or dict.
            correct += int((logits_of(model(x)).argmax(dim=1) == y.to(x.device)).sum())
            total += int(y.shape[0])
    return correct / total


def _check(fractions: Sequence[float], draws: int, selectivity: Mapping[str, Tensor]) -> None:
    if not selectivity:
        raise ValueError("ablation needs the selectivity of at least one layer")
    if not fractions or any(not 0.0 <= f <= 1.0 for f in fractions):
        raise ValueError(f"fractions must be in [0, 1], got {list(fractions)}")
    if draws < 0:
        raise ValueError(f"draws must be non-negative, got {draws}")


def ablation_curves(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    selectivity: Mapping[str, Tensor],
    fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    draws: int = 5,
    seed: int = 0,
    per_layer: bool = True,
    whole_network: bool = True,
) -> list[dict[str, Any]]:
    """Accuracy with growing fractions of units silenced, per layer and for the whole network.

    batches: (x, y) pairs on the model's device (a list, a non-shuffling DataLoader, any
    iterable: read into a list once, so the inputs are held in memory; pass a subset). selectivity:
    site name -> (U,) SI of its units (module docstring for names). fractions: in [0, 1].
    draws: random orders per layer (0: no random rows). seed: the random orders' generator.

    Returns rows {metric: "ablation_accuracy", layer (None: whole network), order, fraction,
    draw (0 for the ordered orders), units (how many silenced: per layer, or in all layers),
    samples, value (accuracy, fraction in [0, 1])}.
    """
    _check(fractions, draws, selectivity)
    model = unwrap(model)
    data = list(batches)
    samples = sum(int(y.shape[0]) for _, y in data)
    if samples == 0:
        raise ValueError("no inputs to measure ablation on: the batches are empty")
    generator = torch.Generator().manual_seed(seed)
    plans: list[tuple[str, int, dict[str, Tensor]]] = []
    for order in ORDERS:
        for draw in range(draws if order == "random" else 1):
            plans.append(
                (
                    order,
                    draw,
                    {k: ablation_order(v, order, generator) for k, v in selectivity.items()},
                )
            )
    scopes: list[str | None] = [
        *(selectivity if per_layer else ()),
        *([None] if whole_network else []),
    ]
    cache: dict[tuple, float] = {}
    rows = []
    with eval_mode(model):
        for layer in scopes:
            for order, draw, orders in plans:
                for fraction in fractions:
                    chosen = {
                        key: idx[: _count(fraction, idx.numel())]
                        for key, idx in orders.items()
                        if layer is None or key == layer
                    }
                    key = tuple((k, tuple(sorted(v.tolist()))) for k, v in sorted(chosen.items()))
                    if key not in cache:
                        with silenced(model, chosen):
                            cache[key] = _accuracy(model, data)
                    rows.append(
                        {
                            "metric": "ablation_accuracy",
                            "layer": layer,
                            "order": order,
                            "fraction": float(fraction),
                            "draw": draw,
                            "units": sum(v.numel() for v in chosen.values()),
                            "samples": samples,
                            "value": cache[key],
                        }
                    )
    return rows


def _count(fraction: float, units: int) -> int:
    # Round half up, so 0.5 of 3 units silences 2, not the banker's 2 or 1 by parity.
    return min(units, math.floor(fraction * units + 0.5))

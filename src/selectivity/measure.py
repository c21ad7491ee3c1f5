"""Whole-data-set passes over a model: accuracy, class selectivity, attacks, Jacobian norm.

`in_batches` is the one loop of a measurement over a data set: every pass here, and so every one
of evaluation's, runs through it, with the model in eval mode (training's shuffled loop is
apart). The per-batch work is done by tensor functions (`attacks`, `stability`, `metrics`); this
module sums their results over the batches. A data set is anything with a length and
`batches(batch_size, device)`, such as `data.ImageSet`, or anything `data.as_images` reads (a
torch Dataset, a DataLoader, a pair of tensors, batches).

    measure_model(model, data) -> DataFrame   per-unit selectivity of any model on any data
    ablation_table(model, data) -> DataFrame  accuracy as units are silenced in order of SI

A model may return its logits as a tensor or as Hugging Face does (an object with `.logits`, a
dict holding 'logits'): `models.logits_of` reads them wherever logits are used here, and
`measure_model` wraps the model in `models.LogitsOnly` for attacks and the Jacobian.

Activations are reduced to per-class sums batch by batch (`SelectivityAccumulator`), so a
ResNet50 over 10k images never holds more than one batch of activations.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
import torch
from torch import Tensor, nn

from selectivity import schema
from selectivity.ablation import ablation_curves
from selectivity.attacks import PGD, Attack
from selectivity.data import as_images, labelled
from selectivity.metrics import SelectivityAccumulator, network_selectivity, unit_activations
from selectivity.models import LogitsOnly, eval_mode, logits_of
from selectivity.probe import (
    ActivationProbe,
    FunctionalReluWarning,
    Sites,
    as_units,
    layout_note,
    site_layouts,
    unmeasured_relu_message,
    unwrap,
)
from selectivity.stability import jacobian_frobenius_norm

__all__ = [
    "FunctionalReluWarning",
    "Images",
    "SelectivityResult",
    "StepScore",
    "ablation_rows",
    "ablation_table",
    "accuracy",
    "accuracy_over_steps",
    "accuracy_under_attack",
    "dataset_jacobian_norm",
    "in_batches",
    "layer_activations",
    "measure_model",
    "measure_selectivity",
    "model_device",
    "pgd_over_steps",
    "selectivity_table",
    "unit_responses",
    "units_note",
    "unmeasured_relu_note",
]


# What the functions here take as data: an `Images` (such as `data.ImageSet`) or anything
# `data.as_images` reads (a torch Dataset, a non-shuffling DataLoader, (images, labels), batches).
Data = Any


class Images(Protocol):
    """A data set as the loop sees it (`data.ImageSet` is one): its size, and its batches in
    order as (x float32 (B, C, H, W) in [0, 1], y int64 (B,)) on `device`."""

    def __len__(self) -> int: ...

    def batches(
        self, batch_size: int, device: torch.device | str = "cpu"
    ) -> Iterable[tuple[Tensor, Tensor]]: ...


def _readable(images: Any) -> Images:
    """`images` when it has a length and `batches` (an ImageSet), else `data.as_images(images)`."""
    if hasattr(images, "batches") and hasattr(images, "__len__"):
        return images
    return as_images(images)


@contextmanager
def in_batches(
    model: nn.Module, images: Images, batch_size: int, device: torch.device | str = "cpu"
) -> Iterator[Iterable[tuple[Tensor, Tensor]]]:
    """The batches of `images` in order, with every module of `model` in eval mode meanwhile.

    Used as `with in_batches(model, images, 256) as batches: for x, y in batches: ...`. Eval mode
    (batch-norm running statistics, no dropout) makes each sample's result independent of its
    batch; each module's flag is restored on exit, also when the loop raises. Raises ValueError
    for an empty data set, whose averages would be 0 / 0.
    """
    if len(images) == 0:
        raise ValueError("no images to measure: the data set is empty")
    with eval_mode(model):
        yield images.batches(batch_size, device)


def _correct(model: nn.Module, x: Tensor, y: Tensor) -> int:
    """Images of the batch x (B, ...) whose top-1 class is y (B,)."""
    with torch.no_grad():
        return int((logits_of(model(x)).argmax(dim=1) == y).sum().item())


@dataclass(frozen=True)
class SelectivityResult:
    """Per-layer selectivity of a model over a data set, with accuracy from the same pass.

    Silent units (never fired on the data) score SI 0 by the papers' definition, so `network`
    and `layer_means` fall as units die; `network_live` and `layer_live_means` leave them out,
    and `silent_fraction` says how many there were.
    """

    per_layer: dict[str, Tensor]  # layer -> (U,) SI
    preferred_class: dict[str, Tensor]  # layer -> (U,) class of the largest mean
    accuracy: float
    silent: dict[str, Tensor]  # layer -> (U,) bool, units that never fired
    samples: int = 0  # images the pass ran over
    # layer -> how its units were read (`probe.LAYOUTS`); `layout_note` words the unusual ones
    layouts: dict[str, str] = field(default_factory=dict)
    tokens: str = "mean"  # the token rule of (N, T, D) outputs (`probe.Units.tokens`)

    def layout_note(self) -> str | None:
        """A note for the table saying how token-shaped or 1-D outputs were read (None: none)."""
        return layout_note(self.layouts, self.tokens)

    @property
    def network(self) -> float:
        """mu_SI: mean over layers of the mean over units (silent units count as 0)."""
        return float(network_selectivity(self.per_layer))

    def layer_means(self) -> dict[str, float]:
        return {name: float(si.mean()) for name, si in self.per_layer.items()}

    def layer_live_means(self) -> dict[str, float]:
        """Layer -> mean SI over its live units; NaN for a layer whose units are all silent."""
        return {
            name: float(si[~self.silent[name]].mean())
            if bool((~self.silent[name]).any())
            else math.nan
            for name, si in self.per_layer.items()
        }

    @property
    def network_live(self) -> float:
        """mu_SI over live units: mean over layers with a live unit of their live means.

        NaN when every unit of every layer is silent.
        """
        means = [m for m in self.layer_live_means().values() if not math.isnan(m)]
        return sum(means) / len(means) if means else math.nan

    def layer_silent_fractions(self) -> dict[str, float]:
        """Layer -> fraction of its units that never fired, in [0, 1]."""
        return {name: float(silent.double().mean()) for name, silent in self.silent.items()}

    @property
    def silent_fraction(self) -> float:
        """Mean over layers of the layers' silent fractions (layers weigh equally, as in mu_SI)."""
        fractions = list(self.layer_silent_fractions().values())
        return sum(fractions) / len(fractions)


@torch.inference_mode()
def measure_selectivity(
    model: nn.Module,
    images: Data,
    num_classes: int,
    layers: Sites = None,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> SelectivityResult:
    """Selectivity of every unit over all of `images` (and accuracy, since the logits are there).

    Raises NegativeActivationError naming the layer when a unit site gives negative values.
    """
    images = _readable(images)
    accumulator = SelectivityAccumulator(num_classes)
    correct = 0
    with (
        in_batches(model, images, batch_size, device) as batches,
        ActivationProbe(model, layers=layers, reduce=unit_activations, detach=True) as probe,
    ):
        for x, y in batches:
            logits = logits_of(model(x))
            correct += int((logits.argmax(1) == y).sum())
            accumulator.update(probe.activations, y)
    return SelectivityResult(
        accumulator.selectivity(),
        accumulator.preferred_class(),
        correct / len(images),
        accumulator.silent(),
        len(images),
        dict(probe.layouts),
        probe.units.tokens,
    )


@torch.inference_mode()
def accuracy(
    model: nn.Module, images: Data, batch_size: int = 1024, device: torch.device | str = "cpu"
) -> float:
    """Top-1 accuracy, fraction in [0, 1]."""
    images = _readable(images)
    with in_batches(model, images, batch_size, device) as batches:
        correct = sum(int((logits_of(model(x)).argmax(1) == y).sum()) for x, y in batches)
    return correct / len(images)


def _flat_copy(activations: Tensor) -> Tensor:
    """(N, D) copy: a model may later change its output in place (inplace ReLUs, `+=`)."""
    return activations.flatten(1).clone()


@torch.no_grad()
def layer_activations(
    model: nn.Module,
    images: Data,
    layers: Sites,
    batch_size: int,
    device: torch.device | str = "cpu",
    transform: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> dict[str, Tensor]:
    """Layer -> (N, D) flattened activations over `images`, in order.

    transform: (x, y) -> x', applied to each batch first, with autograd on (an attack, say).
    Memory: all N rows of every layer (this is for analysis subsets, not whole training sets).
    """
    images = _readable(images)
    chunks: dict[str, list[Tensor]] = {}
    with (
        in_batches(model, images, batch_size, device) as batches,
        ActivationProbe(model, layers=layers, reduce=_flat_copy, detach=True) as probe,
    ):
        for x, y in batches:
            if transform is not None:
                with torch.enable_grad():
                    x = transform(x, y)
            model(x)
            for name, value in probe.activations.items():
                chunks.setdefault(name, []).append(value)
    return {name: torch.cat(parts) for name, parts in chunks.items()}


@torch.no_grad()
def unit_responses(
    model: nn.Module,
    images: Data,
    layers: Sites,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, Tensor], Tensor]:
    """(layer -> (N, U) unit values, labels (N,)) over `images`, in order, on the CPU.

    A unit's value is what the selectivity index reads (`metrics.unit_activations`: a channel's
    spatial mean, a feature, a token-mean feature), so rotations and similarities of these
    matrices are about the very values mu_SI sees.
    """
    images = _readable(images)
    chunks: dict[str, list[Tensor]] = {}
    labels = []
    with (
        in_batches(model, images, batch_size, device) as batches,
        ActivationProbe(model, layers=layers, reduce=unit_activations, detach=True) as probe,
    ):
        for x, y in batches:
            model(x)
            for name, value in probe.activations.items():
                chunks.setdefault(name, []).append(value.cpu().clone())
            labels.append(y.cpu())
    return {name: torch.cat(parts) for name, parts in chunks.items()}, torch.cat(labels)


def accuracy_under_attack(
    model: nn.Module,
    images: Data,
    attack: Attack,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> float:
    """Fraction of `images` still classified correctly after `attack`, batch by batch.

    Every image is attacked, including those already misclassified (the attack cannot make them
    correct in expectation, and skipping them would tie the result to the batch composition).
    `generator` feeds the attack's random start, if any. Eval mode throughout, restored after.
    """
    images = _readable(images)
    with in_batches(model, images, batch_size, device) as batches:
        correct = sum(_correct(model, attack(model, x, y, generator), y) for x, y in batches)
    return correct / len(images)


@dataclass(frozen=True)
class StepScore:
    """PGD-k on a set of images: accuracy, and the L-infinity distance from the clean images
    that the attack actually reached ([0, 1] pixel units; mean and max over the images)."""

    accuracy: float
    linf_mean: float
    linf_max: float


def pgd_over_steps(
    model: nn.Module,
    images: Data,
    attack: PGD,
    steps: Sequence[int],
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> dict[int, StepScore]:
    """Accuracy and reached L-inf distance under PGD-k for every k in `steps`, from one run.

    PGD-k is the k-th iterate of PGD-K (same eps, step size and start), so one run scores all
    step counts at the cost of the largest: steps (1, 2, 5, 10) cost 10 steps, not 18. A k of 0
    scores the clean images (distance 0). `attack.steps` is ignored. The distance shows whether
    the eps-ball binds: k steps of size s reach at most k * s.
    """
    images = _readable(images)
    wanted = sorted({int(k) for k in steps})
    if not wanted or wanted[0] < 0:
        raise ValueError(f"steps must be a non-empty list of ints >= 0, got {list(steps)}")
    run = PGD(attack.eps, attack.step_size, wanted[-1], attack.random_start)
    correct = dict.fromkeys(wanted, 0)
    distance_sum = dict.fromkeys(wanted, 0.0)
    distance_max = dict.fromkeys(wanted, 0.0)
    with in_batches(model, images, batch_size, device) as batches:
        for x, y in batches:
            if 0 in correct:
                correct[0] += _correct(model, x, y)
            iterates = run.iterates(model, x, y, generator)
            x_adv = x
            for k in range(1, wanted[-1] + 1):
                # With eps = 0 there are no iterates: every k scores the clean batch.
                x_adv = next(iterates, x_adv)
                if k in correct:
                    correct[k] += _correct(model, x_adv, y)
                    reached = (x_adv - x).abs().flatten(1).amax(dim=1)
                    distance_sum[k] += float(reached.sum())
                    distance_max[k] = max(distance_max[k], float(reached.max()))
    n = len(images)
    return {k: StepScore(correct[k] / n, distance_sum[k] / n, distance_max[k]) for k in wanted}


def accuracy_over_steps(
    model: nn.Module,
    images: Data,
    attack: PGD,
    steps: Sequence[int],
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> dict[int, float]:
    """Accuracy under PGD-k for every k in `steps`, from one run of PGD-max(steps).

    The accuracies of `pgd_over_steps`. Returns {k: accuracy}.
    """
    scores = pgd_over_steps(model, images, attack, steps, batch_size, device, generator)
    return {k: score.accuracy for k, score in scores.items()}


def dataset_jacobian_norm(
    model: nn.Module,
    images: Data,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    projections: int | None = 1,
    generator: torch.Generator | None = None,
) -> float:
    """The network's Jacobian norm: mean over `images` of the per-sample ||J(x_n)||_F.

    Per batch `stability.jacobian_frobenius_norm` (its module docstring: the estimator and its
    bias); `generator` draws the random projections, batch after batch.
    """
    images = _readable(images)
    with in_batches(model, images, batch_size, device) as batches:
        total = sum(
            float(jacobian_frobenius_norm(model, x, projections, generator).double().sum())
            for x, _ in batches
        )
    return total / len(images)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (cpu for a model with neither)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def unmeasured_relu_note(model: nn.Module, images: Images, layers: Sites) -> str | None:
    """A note (and a FunctionalReluWarning) when `layers` leaves the default ReLU module sites
    and a forward of `model` on two images of `images` applies ReLUs outside modules."""
    units = as_units(layers)
    if units.layers is not None or nn.ReLU not in units.types:
        return None
    x, _ = next(iter(images.batches(2, model_device(model))))
    note = unmeasured_relu_message(model, x, layers)
    if note is not None:
        warnings.warn(note, FunctionalReluWarning, stacklevel=3)
    return note


def units_note(model: nn.Module, images: Images, layers: Sites) -> str | None:
    """A note for a table saying how token-shaped or 1-D outputs of the unit sites were read
    (`probe.layout_note`), from one forward on two images of `images`; None for plain (N, U)
    and (N, C, H, W) sites."""
    x, _ = next(iter(images.batches(2, model_device(model))))
    return layout_note(site_layouts(model, x, layers), as_units(layers).tokens)


def measure_model(
    model: nn.Module,
    data: Data,
    *,
    num_classes: int | None = None,
    layers: Sites = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    split: str = "test",
) -> pd.DataFrame:
    """Class selectivity of every unit of any `model` over all of `data`, one row per unit.

    model: any nn.Module taking float (N, C, H, W) images in [0, 1] and returning logits (a
        tensor, an object with `.logits` or a dict holding 'logits'; a `torch.compile`d one is
        measured through its original module). data: anything `data.as_images` reads (dict
        batches, PIL images, (image, label) pairs, ...); a DataSplits gives its test split. num_classes: None takes it from the data (its `classes`
        attribute or the largest label + 1). layers: which outputs are units, as names or a
        `probe.Units` (default every nn.ReLU call site; `Units(tokens="cls")` reads (N, T, D)
        outputs at their class token). device: default the model's.
    Returns columns layer, unit, si (in [0, 1]), preferred_class, silent (never fired), split,
    samples; `table.attrs` holds accuracy (top-1 fraction from the same pass), selectivity
    (mu_SI) and notes (unmeasured F.relu calls, how token-shaped outputs were read, images a
    DataLoader with drop_last=True left out).
    """
    model = LogitsOnly(unwrap(model))
    target = torch.device(device) if device is not None else model_device(model)
    test = labelled(data, num_classes)
    relu_note = unmeasured_relu_note(model, test.images, layers)
    result = measure_selectivity(model, test.images, test.num_classes, layers, batch_size, target)
    table = selectivity_table(result, split)
    notes = [*test.notes, relu_note, result.layout_note()]
    table.attrs.update(
        accuracy=result.accuracy,
        selectivity=result.network,
        notes=[note for note in notes if note],
    )
    return table


def selectivity_table(result: SelectivityResult, split: str) -> pd.DataFrame:
    """One row per unit of `result`: layer, unit, si, preferred_class, silent, split, samples."""
    rows = [
        {
            "layer": layer,
            "unit": unit,
            "si": float(si),
            "preferred_class": int(cls),
            "silent": bool(silent),
            "split": split,
            "samples": result.samples,
        }
        for layer, values in result.per_layer.items()
        for unit, (si, cls, silent) in enumerate(
            zip(
                values.tolist(),
                result.preferred_class[layer].tolist(),
                result.silent[layer].tolist(),
                strict=True,
            )
        )
    ]
    return pd.DataFrame(rows)


# Unit layouts whose units are dimension 1 of the output, where `ablation.silenced` zeroes them.
_SILENCEABLE = ("features", "channels", "channels_1d")


def ablation_rows(
    model: nn.Module,
    images: Data,
    result: SelectivityResult,
    fractions: Sequence[float],
    draws: int,
    seed: int,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    split: str = "test",
) -> list[dict[str, Any]]:
    """Result rows of unit ablation (`ablation.ablation_curves`) on `images`, units ordered by
    the SI of `result`: `ablation_accuracy_most`, `_least`, `_random` per layer and for the
    whole network (layer None), with keys fraction and draw, split and samples.

    Layers whose units are not dimension 1 of their output (tokens, channels-last maps) are
    left out, as `ablation.silenced` cannot address them; with no layer left, no rows.
    """
    images = _readable(images)
    layers = {
        layer: si
        for layer, si in result.per_layer.items()
        if result.layouts.get(layer, "channels") in _SILENCEABLE
    }
    if not layers:
        return []
    model = LogitsOnly(unwrap(model))
    with in_batches(model, images, batch_size, device) as batches:
        curves = ablation_curves(model, batches, layers, fractions, draws, seed)
    return [
        schema.row(
            f"{r['metric']}_{r['order']}",
            r["value"],
            layer=r["layer"],
            fraction=r["fraction"],
            draw=r["draw"],
            split=split,
            samples=r["samples"],
        )
        for r in curves
    ]


def ablation_table(
    model: nn.Module,
    data: Data,
    *,
    num_classes: int | None = None,
    layers: Sites = None,
    fractions: Sequence[float] = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0),
    draws: int = 5,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    split: str = "test",
) -> pd.DataFrame:
    """Unit ablation (Morcos et al. 2018) of any `model` over all of `data`: accuracy as a
    fraction of each layer's units is silenced, most selective first, least selective first,
    and in `draws` random orders, per layer and for the whole network at once.

    SI and accuracy are both measured on `data` (pass a held-out set). Arguments as in
    `measure_model`; fractions in [0, 1]; seed: the random orders. Returns a results table
    (`selectivity.schema`; metrics `ablation_accuracy_most`, `_least`, `_random`, keys layer
    (null: the whole network), fraction, draw); `table.attrs["notes"]` as `measure_model`'s.
    Raises ValueError when no layer's units can be silenced (only token-shaped or channels-last
    outputs) and for fractions outside [0, 1].
    """
    model = LogitsOnly(unwrap(model))
    target = torch.device(device) if device is not None else model_device(model)
    test = labelled(data, num_classes)
    relu_note = unmeasured_relu_note(model, test.images, layers)
    result = measure_selectivity(model, test.images, test.num_classes, layers, batch_size, target)
    rows = ablation_rows(
        model, test.images, result, fractions, draws, seed, batch_size, target, split
    )
    if not rows:
        raise ValueError(
            "no layer whose units ablation can silence: tokens and channels-last maps are not "
            "(N, units, ...) outputs; choose other layers"
        )
    table = schema.frame(rows)
    notes = [*test.notes, relu_note, result.layout_note()]
    table.attrs["notes"] = [note for note in notes if note]
    return table

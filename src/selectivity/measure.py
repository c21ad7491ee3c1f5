"""Whole-data-set passes over a model: accuracy, class selectivity, attacks, Jacobian norm.

`in_batches` is the one loop of a measurement over a data set: every pass here, and so every one
of evaluation's, runs through it, with the model in eval mode (training's shuffled loop is
apart). The per-batch work is done by tensor functions (`attacks`, `stability`, `metrics`); this
module sums their results over the batches. A data set is anything with a length and
`batches(batch_size, device)`, such as `data.ImageSet`.

Activations are reduced to per-class sums batch by batch (`SelectivityAccumulator`), so a
ResNet50 over 10k images never holds more than one batch of activations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from selectivity.attacks import PGD, Attack
from selectivity.metrics import SelectivityAccumulator, network_selectivity, unit_activations
from selectivity.models import eval_mode
from selectivity.probe import ActivationProbe
from selectivity.stability import jacobian_frobenius_norm

__all__ = [
    "Images",
    "SelectivityResult",
    "StepScore",
    "accuracy",
    "accuracy_over_steps",
    "accuracy_under_attack",
    "dataset_jacobian_norm",
    "in_batches",
    "layer_activations",
    "measure_selectivity",
    "pgd_over_steps",
]


class Images(Protocol):
    """A data set as the loop sees it (`data.ImageSet` is one): its size, and its batches in
    order as (x float32 (B, C, H, W) in [0, 1], y int64 (B,)) on `device`."""

    def __len__(self) -> int: ...

    def batches(
        self, batch_size: int, device: torch.device | str = "cpu"
    ) -> Iterable[tuple[Tensor, Tensor]]: ...


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
        return int((model(x).argmax(dim=1) == y).sum().item())


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
    images: Images,
    num_classes: int,
    layers: Iterable[str] | None = None,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> SelectivityResult:
    """Selectivity of every unit over all of `images` (and accuracy, since the logits are there).

    Raises NegativeActivationError naming the layer when a unit site gives negative values.
    """
    accumulator = SelectivityAccumulator(num_classes)
    correct = 0
    with (
        in_batches(model, images, batch_size, device) as batches,
        ActivationProbe(model, layers=layers, reduce=unit_activations, detach=True) as probe,
    ):
        for x, y in batches:
            logits = model(x)
            correct += int((logits.argmax(1) == y).sum())
            accumulator.update(probe.activations, y)
    return SelectivityResult(
        accumulator.selectivity(),
        accumulator.preferred_class(),
        correct / len(images),
        accumulator.silent(),
        len(images),
    )


@torch.inference_mode()
def accuracy(
    model: nn.Module, images: Images, batch_size: int = 1024, device: torch.device | str = "cpu"
) -> float:
    """Top-1 accuracy, fraction in [0, 1]."""
    with in_batches(model, images, batch_size, device) as batches:
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches)
    return correct / len(images)


@torch.no_grad()
def layer_activations(
    model: nn.Module,
    images: Images,
    layers: Iterable[str] | None,
    batch_size: int,
    device: torch.device | str = "cpu",
    transform: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> dict[str, Tensor]:
    """Layer -> (N, D) flattened activations over `images`, in order.

    transform: (x, y) -> x', applied to each batch first, with autograd on (an attack, say).
    Memory: all N rows of every layer (this is for analysis subsets, not whole training sets).
    """
    chunks: dict[str, list[Tensor]] = {}
    with (
        in_batches(model, images, batch_size, device) as batches,
        ActivationProbe(model, layers=layers, reduce=lambda a: a.flatten(1), detach=True) as probe,
    ):
        for x, y in batches:
            if transform is not None:
                with torch.enable_grad():
                    x = transform(x, y)
            model(x)
            for name, value in probe.activations.items():
                chunks.setdefault(name, []).append(value)
    return {name: torch.cat(parts) for name, parts in chunks.items()}


def accuracy_under_attack(
    model: nn.Module,
    images: Images,
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
    images: Images,
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
    images: Images,
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
    images: Images,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    projections: int | None = 1,
    generator: torch.Generator | None = None,
) -> float:
    """The network's Jacobian norm: mean over `images` of the per-sample ||J(x_n)||_F.

    Per batch `stability.jacobian_frobenius_norm` (its module docstring: the estimator and its
    bias); `generator` draws the random projections, batch after batch.
    """
    with in_batches(model, images, batch_size, device) as batches:
        total = sum(
            float(jacobian_frobenius_norm(model, x, projections, generator).double().sum())
            for x, _ in batches
        )
    return total / len(images)

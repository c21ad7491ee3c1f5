"""White-box L-infinity attacks (FGSM, PGD) on tensors.

Inputs live in [0, 1]; any normalisation is the model's first module, so the eps-ball is in pixel
space (eps = 8/255 is eight grey levels). Both attacks maximise the cross-entropy of the true
label. An attack is a frozen dataclass holding its settings and is called as
`attack(model, x, y, generator=None) -> x_adv`, with x (N, C, H, W) float in [0, 1] and y (N,)
int64 class ids; x_adv has the shape, dtype and device of x, lies within eps of x in every
coordinate and inside [0, 1].

During an attack the model runs in eval mode (batch-norm running statistics, no dropout, so one
sample's perturbation does not depend on the others in its batch). Every module's own
training flag is restored afterwards, also when the forward pass raises. Adversarial training
(`selectivity.robust`) may instead run the attack in the mode the caller set (`use_eval_mode=
False`): with the model in train mode, batch norm then normalises each attack pass with the
batch's own statistics and updates its running statistics, as Madry et al.'s and Wong et al.'s
training code do. Gradients are taken with
`torch.autograd.grad` with respect to the input only, so no `.grad` is left on parameters and
no parameter gradient is computed at all.

Accuracy under attack over a whole data set: `measure.accuracy_under_attack`, `pgd_over_steps`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selectivity.models import eval_mode, logits_of
from selectivity.rng import draw

__all__ = ["FGSM", "PGD", "Attack", "input_gradient"]


def _check_inputs(x: Tensor, y: Tensor) -> None:
    if torch.is_inference_mode_enabled():
        # enable_grad() cannot lift inference mode, and the error torch would raise is obscure.
        raise RuntimeError("attacks need autograd: call them outside torch.inference_mode()")
    if x.ndim < 2 or y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"expected x (N, ...) and y (N,), got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor in [0, 1], got dtype {x.dtype}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"x must lie in [0, 1] (normalise inside the model), got range [{x.min().item():.3g}, {x.max().item():.3g}]"
        )


def input_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Gradient of the summed cross-entropy of `model(x)` against `y` with respect to x.

    x: (N, ...) float; y: (N,) int64. The model may return an object with `.logits` or a dict
    holding them (`models.logits_of`). Returns a tensor shaped like x. The loss is summed, not
    averaged, so a sample's gradient does not shrink with the batch size (a mean can round tiny
    gradients to 0 in float32, and sign(0) = 0 leaves such pixels unattacked). The model's mode is
    whatever the caller set.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(logits_of(model(x)), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def _fast_layout(x: Tensor) -> Tensor:
    """x in channels-last memory order on the CPU, where oneDNN's convolutions then run ~1.25x
    faster for a forward-backward pass (ResNet20, batch 128, measured here); values unchanged.
    On GPUs fp32 convolutions gain nothing from it, so other devices keep their layout."""
    if x.device.type == "cpu" and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _uniform_noise(x: Tensor, eps: float, generator: torch.Generator | None) -> Tensor:
    """U[-eps, eps) like x, reproducible on any device (`rng.draw`)."""
    return (draw("uniform", x.shape, generator, x.device, x.dtype) * 2 - 1).mul_(eps)


def _attack_mode(model: nn.Module, use_eval_mode: bool) -> contextlib.AbstractContextManager:
    """Eval mode for the attack's passes, or the mode the caller set."""
    return eval_mode(model) if use_eval_mode else contextlib.nullcontext(model)


def _ball(x0: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Lower and upper bounds of the eps-ball around x0 intersected with [0, 1]."""
    return (x0 - eps).clamp_(min=0), (x0 + eps).clamp_(max=1)


@dataclass(frozen=True)
class FGSM:
    """Fast gradient sign method: x' = clip(x + eps * sign(grad_x CE), 0, 1).

    eps: L-infinity radius in [0, 1] pixel units, >= 0. eps = 0 returns x unchanged.
    random_start: begin at a uniform point of the eps-ball (clipped to [0, 1]) drawn from
    `generator` and take one step of `step_size` from there, projected back onto the ball and
    [0, 1]: the "fast" adversarial training of Wong et al. 2020 (step 1.25 * eps). step_size:
    None: eps. use_eval_mode: False runs the model in the mode the caller set (module docstring).
    """

    eps: float
    random_start: bool = False
    step_size: float | None = None
    use_eval_mode: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"FGSM eps must be finite and >= 0, got {self.eps}")
        if self.step_size is not None and not (
            math.isfinite(self.step_size) and self.step_size > 0
        ):
            raise ValueError(f"FGSM step_size must be finite and > 0, got {self.step_size}")

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """x (N, C, H, W) in [0, 1], y (N,) -> x_adv like x. `generator`: the random start's
        source (unused without a random start: FGSM is then deterministic)."""
        _check_inputs(x, y)
        if self.eps == 0:
            return x.detach().clone()
        step = self.eps if self.step_size is None else self.step_size
        if not self.random_start and step == self.eps:
            # From x itself a step of eps stays in the ball: clipping to [0, 1] is the projection.
            with _attack_mode(model, self.use_eval_mode):
                grad = input_gradient(model, _fast_layout(x), y)
            return (x.detach() + self.eps * grad.sign()).clamp_(0, 1)
        x0 = _fast_layout(x.detach())
        lower, upper = _ball(x0, self.eps)
        start = x0
        if self.random_start:
            start = torch.clamp(x0 + _uniform_noise(x0, self.eps, generator), lower, upper)
        with _attack_mode(model, self.use_eval_mode):
            grad = input_gradient(model, start, y)
        return torch.clamp(start + step * grad.sign(), lower, upper)


@dataclass(frozen=True)
class PGD:
    """Projected gradient descent (ascent on the loss), L-infinity, Madry et al. 2018.

    Each step: x <- clip_[0,1](project_eps(x + step_size * sign(grad_x CE))); projecting onto the
    eps-ball and clipping to [0, 1] is one clamp to [max(x0 - eps, 0), min(x0 + eps, 1)], which
    is the exact projection onto the intersection of the two boxes.

    eps: radius, >= 0. step_size: > 0; the paper's 1e-4 is the default (its appendix A.1.4).
    steps: >= 0; steps = 0 or eps = 0 returns x unchanged. random_start: begin at a uniform
    point of the eps-ball (clipped to [0, 1]) drawn from `generator`; off by default, as in the
    paper, so that PGD-k is the first k steps of PGD-K (see `iterates`). use_eval_mode: False
    runs the model in the mode the caller set (module docstring).
    """

    eps: float
    step_size: float = 1e-4
    steps: int = 10
    random_start: bool = False
    use_eval_mode: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"PGD eps must be finite and >= 0, got {self.eps}")
        if not (math.isfinite(self.step_size) and self.step_size > 0):
            raise ValueError(f"PGD step_size must be finite and > 0, got {self.step_size}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"PGD steps must be an int >= 0, got {self.steps!r}")

    def iterates(
        self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator | None = None
    ) -> Iterator[Tensor]:
        """Yield the adversarial batch after each of the `steps` steps (step 1 first).

        The model stays in eval mode (unless `use_eval_mode` is off) while the iterator is being consumed; its flags come back
        when the iterator is exhausted or closed. Yields nothing when steps = 0 or eps = 0.
        """
        _check_inputs(x, y)
        if self.steps == 0 or self.eps == 0:
            return
        x0 = _fast_layout(x.detach())
        lower, upper = _ball(x0, self.eps)
        x_adv = x0.clone()
        if self.random_start:
            x_adv = torch.clamp(x_adv + _uniform_noise(x0, self.eps, generator), lower, upper)
        with _attack_mode(model, self.use_eval_mode):
            for _ in range(self.steps):
                grad = input_gradient(model, x_adv, y)
                x_adv = torch.clamp(x_adv + self.step_size * grad.sign(), lower, upper)
                yield x_adv

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """x (N, C, H, W) in [0, 1], y (N,) -> x_adv like x, after `steps` steps."""
        x_adv = x.detach().clone()
        for step in self.iterates(model, x, y, generator):
            x_adv = step
        return x_adv


# Either attack; both are called as attack(model, x, y, generator) -> x_adv.
Attack = FGSM | PGD

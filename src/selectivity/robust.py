"""Robustness-training methods on batches of tensors: Gaussian noise, corruption mix, adversarial.

Images are float (N, C, H, W) in [0, 1] on any device; labels (N,) int64 class ids. Each method
is off at strength 0 (`TrainConfig.noise_std`, `mix_severity`, `adv_eps`); `training_batch` applies
those that are on, in this order, to the batch the data set's own augmentation (flip, crop) made:

1. corruption mix (`corruption_mix`), 2. Gaussian noise (`gaussian_noise`), 3. adversarial
examples (`adversarial`), attacked on the already augmented batch.

The training step then trains on what comes out, and the regularizer's minibatch mu_SI is that of
the same forward pass: selectivity is regularized on the images the step trains on.

Every random draw comes from the caller's generator (training's per-epoch CPU generator, which the
last checkpoint saves), through `rng.draw` and the corruptions' `Rng`: the same seed gives the
same batches on any device, and a resumed run the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from selectivity.attacks import FGSM, PGD, Attack
from selectivity.config import ConfigError, TrainConfig
from selectivity.corruptions import corrupt
from selectivity.corruptions.weather import FROST_INSTALL_HINT, frost_available
from selectivity.rng import draw

__all__ = [
    "MAX_DEPTH",
    "adversarial",
    "check_methods",
    "corruption_mix",
    "gaussian_noise",
    "training_attack",
    "training_batch",
    "validation_attack",
]

# Chains are 1 to MAX_DEPTH operations long, the depth drawn per image and chain (AugMix's 1-3).
MAX_DEPTH = 3


def _integers(high: int, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """(n,) int64 uniform on 0..high - 1, through `rng.draw`."""
    u = draw("uniform", (n,), generator, device)
    return (u * high).long().clamp_(max=high - 1)


def gaussian_noise(x: Tensor, std: float, prob: float, generator: torch.Generator | None) -> Tensor:
    """Each image, with probability `prob`, plus N(0, std^2) per pixel, clipped to [0, 1].

    x: (N, C, H, W) in [0, 1]; std in [0, 1] pixel units. Returns a new tensor like x.
    """
    n = x.shape[0]
    chosen = draw("uniform", (n,), generator, x.device) < prob
    noise = draw("normal", x.shape, generator, x.device, x.dtype).mul_(std)
    noisy = (x + noise).clamp_(0, 1)
    return torch.where(chosen.view(n, *([1] * (x.ndim - 1))), noisy, x)


def _chain_step(
    x: Tensor,
    active: Tensor,
    names: tuple[str, ...],
    severity: int,
    generator: torch.Generator | None,
) -> Tensor:
    """One operation of every active image's chain, drawn per image from `names`; the images of
    one operation go through `corrupt` together. active: (N,) bool."""
    ops = _integers(len(names), x.shape[0], generator, x.device)
    out = x.clone()
    for index, name in enumerate(names):
        selected = (active & (ops == index)).nonzero().squeeze(1)
        if selected.numel():
            out[selected] = corrupt(x[selected], name, severity, generator)
    return out


def corruption_mix(
    x: Tensor,
    severity: int,
    names: tuple[str, ...],
    width: int = 3,
    generator: torch.Generator | None = None,
) -> Tensor:
    """AugMix's mixing (Hendrycks et al. 2020) with corruption operations.

    Per image: `width` chains, each of 1..MAX_DEPTH operations drawn uniformly from `names`
    (corruptions, applied at `severity` 1..5 with `corrupt`), mixed with Dirichlet(1) weights; the
    mix is blended with the clean image by m ~ Beta(1, 1): (1 - m) x + m mix. Dirichlet(1) is
    drawn as normalised Exp(1) = -log U, Beta(1, 1) as U. x: (N, C, H, W) in [0, 1], C = 1 or 3.
    Returns a new tensor like x, in [0, 1].
    """
    n = x.shape[0]
    shape = (n, *([1] * (x.ndim - 1)))
    exponential = -torch.log1p(-draw("uniform", (n, width), generator, x.device))
    weights = exponential / exponential.sum(dim=1, keepdim=True)
    skip = draw("uniform", (n,), generator, x.device).view(shape)
    mixed = torch.zeros_like(x)
    for chain_index in range(width):
        depth = _integers(MAX_DEPTH, n, generator, x.device) + 1
        chain = x
        for step in range(MAX_DEPTH):
            chain = _chain_step(chain, depth > step, names, severity, generator)
        mixed += weights[:, chain_index].view(shape) * chain
    return ((1 - skip) * x + skip * mixed).clamp_(0, 1)


def training_attack(config: TrainConfig) -> Attack | None:
    """The attack adversarial training runs (None when adv_eps is 0): PGD with random start
    (Madry et al.) or FGSM with random start (Wong et al.), step `config.adv_step()`, with the
    model in the mode `adv_bn_mode` names (train: the training loop's own mode)."""
    if config.adv_eps == 0:
        return None
    use_eval = config.adv_bn_mode == "eval"
    step = config.adv_step()
    if config.adv_method == "fgsm":
        return FGSM(config.adv_eps, random_start=True, step_size=step, use_eval_mode=use_eval)
    return PGD(config.adv_eps, step, config.adv_steps, random_start=True, use_eval_mode=use_eval)


def validation_attack(config: TrainConfig) -> PGD:
    """The attack of robust validation, which picks an adversarially trained run's kept epoch
    (`TrainConfig.checkpoint_rule`): PGD at adv_eps, `checkpoint_pgd_steps` steps of
    2.5 * adv_eps / steps (Madry et al.'s rule) from a uniform random start, in eval mode."""
    steps = config.checkpoint_pgd_steps
    return PGD(config.adv_eps, 2.5 * config.adv_eps / steps, steps, random_start=True)


def adversarial(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: Attack,
    fraction: float,
    generator: torch.Generator | None,
) -> Tensor:
    """The batch with its first round(fraction * N) images replaced by `attack`'s adversarial
    examples (the batch is shuffled, so they are a random subset); the rest stay clean.

    x: (N, C, H, W) in [0, 1]; y: (N,). Returns a new tensor like x, every image within the
    attack's eps of x and in [0, 1].
    """
    k = round(fraction * x.shape[0])
    if k == 0:
        return x.clone()
    attacked = attack(model, x[:k], y[:k], generator).to(memory_format=torch.contiguous_format)
    return torch.cat([attacked, x[k:]]) if k < x.shape[0] else attacked


def training_batch(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    config: TrainConfig,
    generator: torch.Generator | None,
    attack: Attack | None = None,
) -> Tensor:
    """What the step trains on: x after the methods of `config` that are on, in the module
    docstring's order. attack: `training_attack(config)`, built once per run by the caller.
    x: (N, C, H, W) in [0, 1], y: (N,). Returns x itself when every method is off."""
    if config.mix_severity > 0:
        x = corruption_mix(x, config.mix_severity, config.mix_subset(), config.mix_width, generator)
    if config.noise_std > 0 and config.noise_prob > 0:
        x = gaussian_noise(x, config.noise_std, config.noise_prob, generator)
    if attack is not None and config.adv_fraction > 0:
        x = adversarial(model, x, y, attack, config.adv_fraction, generator)
    return x


def check_methods(config: TrainConfig, in_channels: int) -> None:
    """ConfigError for a method that would fail only once training ran: corruption mix on
    images other than grey or RGB, or with frost when its textures are missing."""
    if config.mix_severity == 0:
        return
    if in_channels not in (1, 3):
        raise ConfigError(
            f"mix_severity needs grey or RGB images (the corruptions' inputs), got {in_channels} channels"
        )
    names = config.mix_subset()
    if "frost" in names and not frost_available():
        raise ConfigError(f"mix_corruptions holds frost: {FROST_INSTALL_HINT}")

"""Cost of the robustness-training methods, measured side by side.

Training-step time (the method's batch, then the package's `train_step`) over a plain step,
ResNet20, 32x32 random images, batch 128: Gaussian noise, corruption mix, FGSM with random start,
PGD-k (expected: at most about k + 1 plain steps, k attack passes of forward and backward plus
the step; an attack pass takes no weight gradients and makes no update, so it costs less),
each also with the regularizer (alpha != 0). Target: the regularizer adds to a method's step no
more than it adds to a plain step (it regularizes the one training forward, not the attack's).

Variants are interleaved round by round (the order reversed every other round) so that drifting
machine load hits them alike; each reported ratio is the median of per-round ratios.

On a CPU shared with other work, `--cpu-time` times the process's own CPU seconds on one thread
(`time.process_time`) instead of wall-clock seconds, which other processes' load distorts.

    python benchmarks/robust_training.py [--rounds 5] [--steps 3] [--pgd-steps 7] [--device auto]
        [--cpu-time]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from selectivity import create_model
from selectivity.config import TrainConfig
from selectivity.regularizer import SelectivityRegularizer
from selectivity.robust import training_attack, training_batch
from selectivity.runs import resolve_device
from selectivity.train import train_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def method_configs(pgd_steps: int) -> dict[str, TrainConfig]:
    """The methods at their presets' strengths (CIFAR10), plain first."""
    return {
        "plain": TrainConfig(),
        "noise": TrainConfig(noise_std=0.1, noise_prob=0.5),
        "mix": TrainConfig(mix_severity=3),
        "fgsm": TrainConfig(adv_eps=8 / 255, adv_method="fgsm"),
        f"pgd-{pgd_steps}": TrainConfig(
            adv_eps=8 / 255, adv_steps=pgd_steps, adv_step_size=2 / 255
        ),
    }


def training_steps(
    model,
    optimizer,
    x,
    y,
    config: TrainConfig,
    regularize: bool,
    steps: int,
    device,
    clock=time.perf_counter,
) -> float:
    """Seconds per step: the method's batch and one SGD step (with the regularizer if asked)."""
    model.train()
    attack = training_attack(config)
    generator = torch.Generator().manual_seed(0)
    regularizer = SelectivityRegularizer(model, 10) if regularize else None
    _sync(device)
    started = clock()
    with regularizer if regularizer is not None else contextlib.nullcontext():
        for _ in range(steps):
            batch = training_batch(model, x, y, config, generator, attack)
            train_step(model, batch, y, optimizer, regularizer, -1.0 if regularize else 0.0)
        _sync(device)
    return (clock() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--pgd-steps", type=int, default=7)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--cpu-time", action="store_true", help="one thread, timed in process CPU seconds"
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    clock = time.perf_counter
    if args.cpu_time:
        torch.set_num_threads(1)
        clock = time.process_time
    torch.manual_seed(0)
    model = create_model("resnet20", 10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.arange(args.batch, device=device) % 10
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{'process CPU' if args.cpu_time else 'wall-clock'} seconds"
    )

    configs = method_configs(args.pgd_steps)
    variants = [(name, regularize) for name in configs for regularize in (False, True)]
    for name, regularize in variants:  # warm-up
        training_steps(model, optimizer, x, y, configs[name], regularize, 1, device, clock)
    times: dict[tuple[str, bool], list[float]] = {variant: [] for variant in variants}
    for round_index in range(args.rounds):
        order = variants if round_index % 2 == 0 else variants[::-1]
        for name, regularize in order:
            times[name, regularize].append(
                training_steps(
                    model, optimizer, x, y, configs[name], regularize, args.steps, device, clock
                )
            )

    def ratio(a: tuple[str, bool], b: tuple[str, bool]) -> float:
        return statistics.median(s / t for s, t in zip(times[a], times[b], strict=True))

    print(
        f"\ntraining step, ResNet20 32x32 batch {args.batch} "
        f"({args.rounds} rounds x {args.steps} steps, interleaved)"
    )
    print(f"  {'method':<8} {'ms/step':>9} {'/ plain':>8} {'+reg ms':>9} {'reg adds':>9}")
    for name in configs:
        print(
            f"  {name:<8} {statistics.median(times[name, False]) * 1000:9.1f} "
            f"{ratio((name, False), ('plain', False)):8.2f} "
            f"{statistics.median(times[name, True]) * 1000:9.1f} "
            f"{ratio((name, True), (name, False)):9.3f}"
        )
    plain_reg = ratio(("plain", True), ("plain", False))
    print(
        f"  the regularizer multiplies a plain step by {plain_reg:.3f}; "
        f"a method's step by at most that (target)"
    )
    print(f"  pgd-{args.pgd_steps} / plain expected at most about {args.pgd_steps + 1}")


if __name__ == "__main__":
    main()

"""Cost of the selectivity regularizer and of the measure pass, measured side by side.

1. Training-step time with the regularizer over a plain step (ResNet20, 32x32, batch 128),
   and the same for a naive implementation (hooks keep full maps, one index per layer).
   Target: at most 1.05 for the package's regularizer.
2. A whole-test-set measure pass (accuracy + selectivity accumulation) over plain inference.
   Target: at most 1.10.

Variants are interleaved round by round so that drifting machine load hits them alike; the
reported ratio is the median of per-round ratios.

    python benchmarks/regularizer_overhead.py [--rounds 7] [--steps 5] [--images 2560] [--device auto] [--channels-last]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from selectivity import create_model
from selectivity.data import ImageSet
from selectivity.measure import accuracy, measure_selectivity
from selectivity.metrics import class_selectivity, network_selectivity
from selectivity.probe import ActivationProbe
from selectivity.regularizer import SelectivityRegularizer
from selectivity.runs import resolve_device
from selectivity.train import train_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def training_steps(
    model, optimizer, x, y, steps: int, mode: str, device: torch.device, alpha: float = -1.0
) -> float:
    """Seconds per step for `steps` steps in one of: plain, package, naive."""
    model.train()
    regularizer = SelectivityRegularizer(model, 10) if mode == "package" else None
    probe = ActivationProbe(model) if mode == "naive" else None
    context = regularizer or probe
    _sync(device)
    started = time.perf_counter()
    if context is not None:
        context.__enter__()
    try:
        for _ in range(steps):
            if probe is None:
                # The package's own step, as training runs it (plain: no regularizer).
                train_step(model, x, y, optimizer, regularizer, alpha)
                continue
            # The common implementation: full maps kept, mean over space, one index per layer.
            loss = F.cross_entropy(model(x), y)
            per_layer = {
                name: class_selectivity(a.mean(dim=(2, 3)), y, 10)
                for name, a in probe.activations.items()
            }
            loss = loss - alpha * network_selectivity(per_layer)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        _sync(device)
    finally:
        if context is not None:
            context.__exit__(None, None, None)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument(
        "--images", type=int, default=2560, help="test-set size for the measure pass"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--channels-last", action="store_true", help="model and batches in NHWC memory order"
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    model = create_model("resnet20", 10).to(device).to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.rand(args.batch, 3, 32, 32, device=device).contiguous(memory_format=layout)
    y = torch.arange(args.batch, device=device) % 10
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, memory order {'NHWC' if args.channels_last else 'NCHW'}"
    )

    for mode in ("plain", "package", "naive"):  # warm-up
        training_steps(model, optimizer, x, y, 2, mode, device)
    times: dict[str, list[float]] = {"plain": [], "package": [], "naive": []}
    for round_index in range(args.rounds):
        order = (
            ["plain", "package", "naive"] if round_index % 2 == 0 else ["naive", "package", "plain"]
        )
        for mode in order:
            times[mode].append(training_steps(model, optimizer, x, y, args.steps, mode, device))
    print(
        f"\ntraining step, ResNet20 32x32 batch {args.batch} ({args.rounds} rounds x {args.steps} steps, interleaved)"
    )
    for mode in times:
        ratio = statistics.median(t / p for t, p in zip(times[mode], times["plain"], strict=True))
        print(
            f"  {mode:<8} {statistics.median(times[mode]) * 1000:8.1f} ms/step  {args.batch / statistics.median(times[mode]):7.0f} img/s  ratio to plain {ratio:.3f}"
        )
    package_ratio = statistics.median(
        t / p for t, p in zip(times["package"], times["plain"], strict=True)
    )
    print(f"  regularizer / plain = {package_ratio:.3f}  (target <= 1.05)")

    generator = np.random.default_rng(0)
    images = ImageSet(
        generator.integers(0, 256, size=(args.images, 32, 32, 3), dtype=np.uint8),
        torch.from_numpy(generator.integers(0, 10, size=args.images)),
    )
    model.eval()
    accuracy(model, images, 256, device)  # warm-up
    plain_times, measure_times = [], []
    for round_index in range(max(3, args.rounds // 2)):
        for mode in ("plain", "measure") if round_index % 2 == 0 else ("measure", "plain"):
            _sync(device)
            started = time.perf_counter()
            if mode == "plain":
                accuracy(model, images, 256, device)
            else:
                measure_selectivity(model, images, 10, batch_size=256, device=device)
            _sync(device)
            (plain_times if mode == "plain" else measure_times).append(
                time.perf_counter() - started
            )
    ratio = statistics.median(m / p for m, p in zip(measure_times, plain_times, strict=True))
    print(f"\nwhole-set pass over {args.images} images, batch 256")
    print(f"  plain inference {args.images / statistics.median(plain_times):7.0f} img/s")
    print(f"  measure pass    {args.images / statistics.median(measure_times):7.0f} img/s")
    print(f"  measure / plain = {ratio:.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()

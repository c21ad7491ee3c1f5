"""PGD throughput: this package against torchattacks, and against the passes PGD cannot avoid.

Settings (both libraries alike): ResNet20 in eval mode, random 32x32 inputs in [0, 1], batch 128,
eps 8/255, step 2/255, 10 steps, no random start (the paper's setting).

1. Images per second of `selectivity.attacks.PGD` and of `torchattacks.PGD`, and their ratio
   (package / torchattacks; target >= 1.0). The two adversarial batches are compared as well.
2. PGD-k time over the time of k forward + backward passes of the cross-entropy to the input
   (the work any k-step gradient attack must do; target ~1.0), and, for scale, over k
   training-style passes that also compute the parameter gradients.

Variants are interleaved round by round so that drifting machine load hits them alike. Each
ratio is printed twice: the median of per-round ratios, and the ratio of the best (least
disturbed) times, which is the steadier of the two on a shared machine.

torchattacks is optional: install it without its declared torchvision dependency,
`pip install --no-deps torchattacks` (its PGD does not import torchvision). Without it, part 1
prints why it was skipped.

    python benchmarks/attacks.py [--rounds 7] [--steps 10] [--batch 128] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from selectivity import create_model
from selectivity.attacks import PGD
from selectivity.runs import resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(run: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    started = time.perf_counter()
    run()
    _sync(device)
    return time.perf_counter() - started


def _load_torchattacks():
    """(module, None) or (None, reason it cannot be used)."""
    try:
        import torchattacks
    except ModuleNotFoundError as error:
        if error.name == "torchattacks":
            return None, "torchattacks is not installed (pip install --no-deps torchattacks)"
        return (
            None,
            f"torchattacks is installed but cannot be imported: missing module {error.name!r}",
        )
    except Exception as error:  # a broken install should not hide the package's own figures
        return None, f"torchattacks cannot be imported: {type(error).__name__}: {error}"
    return torchattacks, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = create_model("resnet20", 10).to(device).eval()
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.arange(args.batch, device=device) % 10
    eps, step = 8 / 255, 2 / 255
    ours = PGD(eps, step_size=step, steps=args.steps)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(
        f"ResNet20, 32x32, batch {args.batch}, eps 8/255, step 2/255, {args.steps} steps, no random start; "
        f"{args.rounds} rounds, interleaved\n"
    )

    torchattacks, reason = _load_torchattacks()
    theirs = None
    if torchattacks is not None:
        theirs = torchattacks.PGD(model, eps=eps, alpha=step, steps=args.steps, random_start=False)

    def input_passes() -> None:
        for _ in range(args.steps):
            xr = x.detach().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(xr), y, reduction="sum"), xr)

    def training_passes() -> None:
        for _ in range(args.steps):
            xr = x.detach().requires_grad_(True)
            F.cross_entropy(model(xr), y).backward()
        model.zero_grad(set_to_none=True)

    variants: dict[str, Callable[[], object]] = {
        "package PGD": lambda: ours(model, x, y),
        "k fwd+bwd to input": input_passes,
        "k fwd+bwd with params": training_passes,
    }
    if theirs is not None:
        variants["torchattacks PGD"] = lambda: theirs(x, y)
    for run in variants.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_index in range(args.rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            times[name].append(_timed(variants[name], device))

    def ratio(a: str, b: str) -> str:
        median = statistics.median(t / u for t, u in zip(times[a], times[b], strict=True))
        return f"{median:.3f} (median of rounds), {min(times[a]) / min(times[b]):.3f} (best times)"

    print(f"  {'':<24} {'median':>8} {'best':>8}")
    for name in names:
        median, best = statistics.median(times[name]), min(times[name])
        print(
            f"  {name:<24} {median * 1000:6.0f} ms {best * 1000:6.0f} ms  {args.batch / median:6.1f} / {args.batch / best:6.1f} img/s"
        )
    print()
    if theirs is not None:
        x_ours, x_theirs = ours(model, x, y), theirs(x, y)
        same = (x_ours == x_theirs).float().mean().item()
        print(
            f"  throughput package / torchattacks = {ratio('torchattacks PGD', 'package PGD')}  (target >= 1.0)"
        )
        print(
            f"    adversarial batches: {same:.2%} of values identical, max |difference| {(x_ours - x_theirs).abs().max().item():.2e}"
        )
    else:
        print(f"  torchattacks comparison skipped: {reason}")
    print(
        f"  PGD-{args.steps} / {args.steps} fwd+bwd passes to the input = {ratio('package PGD', 'k fwd+bwd to input')}  (target ~1.0)"
    )
    print(
        f"  PGD-{args.steps} / {args.steps} training-style fwd+bwd passes = {ratio('package PGD', 'k fwd+bwd with params')}  "
        "(below 1: PGD skips the parameter gradients)"
    )


if __name__ == "__main__":
    main()

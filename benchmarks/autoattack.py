"""AutoAttack's cost per image against PGD-k's, on the same trained model and images.

Trains the demo's digits network (the `digits` preset, seed 0; ~10 s on a CPU), then runs at
eps 8/255 on the first N test images:

- PGD-k: `selectivity.attacks.PGD`, step 2/255 (the demo's), k = 25;
- AutoAttack through pyautoattack (`selectivity.evaluation.autoattack.run_chain`), in three
  settings: the standard version (APGD-CE, APGD-T, FAB-T, Square), the quick suite's subset
  (APGD-CE, APGD-T, 25 iterations, 3 target classes; Square with 300 queries) and the demo
  preset's settings.

Prints seconds per image and the ratio to PGD-k, with each attack's accuracy beside it (an
attack that costs less but breaks fewer images is not cheaper). AutoAttack only attacks images
that are still correct, so its cost per image falls with the model's robustness.

    python benchmarks/autoattack.py [--images 200] [--device auto]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from selectivity.config import SWEEP_PRESETS, EvalConfig, TrainConfig, build, train_preset
from selectivity.evaluation import eval_config
from selectivity.evaluation.autoattack import VERSIONS, run_chain
from selectivity.runs import resolve_device
from selectivity.train import train_model

EPS = 8 / 255


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        config = build(TrainConfig, train_preset("digits"), {"device": str(device)})
        trained = train_model(config, Path(folder) / "run", progress=False)
        model = trained.model.eval()
        x, y = trained.data.test.batch(slice(0, args.images), device)
        print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
        print(
            f"digits net (preset digits, 12 epochs), {len(x)} test images, eps 8/255; seconds per image\n"
        )
        with torch.no_grad():
            clean = model(x).argmax(1) == y
        print(f"  {'attack':<44} {'s/image':>9} {'x PGD':>7} {'accuracy':>9}")
        print(f"  {'none (clean)':<44} {'':>9} {'':>7} {clean.float().mean().item():9.3f}")

        from selectivity.attacks import PGD

        pgd = PGD(EPS, step_size=2 / 255, steps=25)
        _sync(device)
        started = time.perf_counter()
        x_adv = pgd(model, x, y)
        _sync(device)
        pgd_time = (time.perf_counter() - started) / len(x)
        with torch.no_grad():
            pgd_accuracy = (model(x_adv).argmax(1) == y).float().mean().item()
        print(f"  {'PGD-25, step 2/255':<44} {pgd_time:9.5f} {1.0:7.1f} {pgd_accuracy:9.3f}")

        demo = {k: v for k, v in SWEEP_PRESETS["demo"].items() if k.startswith("autoattack")}
        settings: list[tuple[str, EvalConfig]] = [
            ("AutoAttack quick suite", eval_config("quick")),
            ("AutoAttack demo preset", eval_config("full", demo)),
            ("AutoAttack standard (package defaults)", eval_config("full")),
        ]
        for index, (name, eval_settings) in enumerate(settings):
            order = eval_settings.autoattack_attacks or VERSIONS[eval_settings.autoattack_version]
            states = Path(folder) / f"states{index}"
            _sync(device)
            started = time.perf_counter()
            after = run_chain(model, x, y, clean, EPS, order, eval_settings, states, 0, 512)
            _sync(device)
            seconds = (time.perf_counter() - started) / len(x)
            label = name if len(name) <= 44 else name[:41] + "..."
            print(
                f"  {label:<44} {seconds:9.5f} {seconds / pgd_time:7.1f} {list(after.values())[-1]:9.3f}"
            )
            steps = ", ".join(f"{attack} {value:.3f}" for attack, value in after.items())
            print(f"    after each attack: {steps}")
        print(f"\n  demo preset: {demo}")


if __name__ == "__main__":
    main()

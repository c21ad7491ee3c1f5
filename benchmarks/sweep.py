"""Sweep executors side by side: a 4-trial tiny sweep, local sequential vs local parallel vs Ray.

For each executor: wall time of `run_sweep` (start-up, trials, gathering), the sum of the trials'
own seconds (as each trial measured itself), and the overhead per trial:
(wall - sum of trial seconds / parallel slots) / trials. Each executor runs in a fresh folder.

    python benchmarks/sweep.py [--epochs 3] [--skip-ray]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from selectivity.sweep import run_sweep

TINY = {
    "model": "digitsnet",
    "dataset": "digits",
    "batch_size": 64,
    "lr": 0.05,
    "milestones": (),
    "eval_batch_size": 512,
    "corruptions": ("brightness", "gaussian_noise"),
    "generate_corruptions": True,
    "max_samples": 200,
    "analysis_samples": 100,
    "fgsm_eps": (0.0, 8 / 255),
    "pgd_eps": 8 / 255,
    "pgd_step_size": 2 / 255,
    "pgd_steps": (0, 5),
    "dimensionality_pgd_steps": 5,
    "gradient_max_units": 4,
    "alphas": (-1.0, 0.0, 1.0, 10.0),
    "seeds": (0,),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    variants = [
        ("local, sequential", {"executor": "local", "workers": 1}, 1),
        (
            f"local, {min(cores, 4)} workers",
            {"executor": "local", "workers": min(cores, 4)},
            min(cores, 4),
        ),
    ]
    if not args.skip_ray:
        try:
            import ray  # noqa: F401

            variants.append(
                ("ray, local instance", {"executor": "ray", "cpus_per_trial": 1.0}, cores)
            )
        except ImportError:
            print('ray not installed (pip install "selectivity[ray]"): skipping the Ray executor')
    print(
        f"{cores} cores, 4 trials of digitsnet x {args.epochs} epochs + a small evaluation each\n"
    )
    print(f"{'executor':<22} {'wall s':>8} {'trial s (sum)':>14} {'overhead s/trial':>17}")
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as root:
        for name, keys, slots in variants:
            folder = Path(root) / name.replace(" ", "_").replace(",", "")
            started = time.perf_counter()
            trials = run_sweep(folder, [TINY, {"epochs": args.epochs}, keys], progress=False)
            wall = time.perf_counter() - started
            if not (trials["status"] == "done").all():
                print(
                    f"{name}: failed trials: {trials.loc[trials['status'] != 'done', 'reason'].tolist()}"
                )
                continue
            own = float(trials["seconds"].sum())
            overhead = (wall - own / min(slots, len(trials))) / len(trials)
            print(f"{name:<22} {wall:8.1f} {own:14.1f} {overhead:17.2f}")
    print(
        "\nThe first variant also generates the shared corruption set; the others do too, in their own folders."
    )


if __name__ == "__main__":
    main()

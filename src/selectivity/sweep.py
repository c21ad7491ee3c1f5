"""Sweeps: the grid alpha x seed, each trial trained then evaluated, gathered into one table.

A trial is a function from its keys to a status (`run_trial`); executors only decide where
trials run. Everything a trial writes lives in `SWEEP_DIR/alpha=<a>/seed=<s>/` and is resumable,
so running the same command again skips finished trials and resumes interrupted ones.

    SWEEP_DIR/sweep.json        the resolved keys of the sweep (a folder belongs to one sweep)
    SWEEP_DIR/corruptions/      the generated corruption set, shared by all trials (if generated)
    SWEEP_DIR/alpha=<a>/seed=<s>/   run folder + evaluation of one trial, trial.json its status
    SWEEP_DIR/trials.parquet    alpha, seed, status, reason, seconds
    SWEEP_DIR/results.parquet   every trial's evaluation rows with alpha and seed columns
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from selectivity import schema
from selectivity.config import EvalConfig, SweepConfig, TrainConfig, build, suite_defaults, to_dict
from selectivity.files import atomic_path, write_text

__all__ = ["SweepError", "Trial", "gather", "run_sweep", "run_trial", "trial_dir"]


class SweepError(ValueError):
    """A sweep cannot start (folder of another sweep, nothing to do); one line for the user."""


@dataclass(frozen=True)
class Trial:
    alpha: float
    seed: int
    directory: Path
    keys: dict[str, Any]  # every train and evaluation key of this trial


def trial_dir(sweep_dir: Path, alpha: float, seed: int) -> Path:
    return Path(sweep_dir) / f"alpha={alpha:g}" / f"seed={seed}"


def run_trial(trial: Trial, threads: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Train (or resume) and evaluate one trial; never raises for a trial's own failure.

    Returns {alpha, seed, status: done | failed, reason, seconds} and writes it to trial.json.
    """
    from selectivity.evaluate import evaluate
    from selectivity.train import train

    started = time.perf_counter()
    status_path = trial.directory / "trial.json"
    keys = dict(trial.keys)
    if threads and not keys.get("num_threads"):
        # Executors share the cores out; a num_threads key set by the user wins (CPU results
        # depend on the thread count, so equal counts make executors agree bit for bit).
        keys["num_threads"] = threads
    try:
        train_config = build(TrainConfig, keys, {"alpha": trial.alpha, "seed": trial.seed})
        train(train_config, trial.directory, progress=progress)
        # evaluate=false still measures clean accuracy and selectivity, so results.parquet holds
        # what accuracy-versus-selectivity studies need.
        evaluate(
            trial.directory,
            build(EvalConfig, keys),
            progress=progress,
            clean_only=not keys.get("evaluate", True),
        )
        status = {"status": "done", "reason": ""}
    except Exception as error:
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        status = {"status": "failed", "reason": reason, "traceback": traceback.format_exc()}
    record = {
        "alpha": trial.alpha,
        "seed": trial.seed,
        **status,
        "seconds": time.perf_counter() - started,
    }
    write_text(status_path, json.dumps(record, indent=2) + "\n")
    return record


def _trial_is_done(trial: Trial) -> bool:
    path = trial.directory / "trial.json"
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text()).get("status") == "done"
    except json.JSONDecodeError:
        return False


def _failed(trial: Trial, reason: str) -> dict[str, Any]:
    """The record of a trial whose worker died before it could write its own."""
    return {
        "alpha": trial.alpha,
        "seed": trial.seed,
        "status": "failed",
        "reason": reason,
        "seconds": float("nan"),
    }


def _run_in_worker(trial: Trial, threads: int) -> dict[str, Any]:
    return run_trial(trial, threads=threads)


def _local_executor(
    trials: list[Trial], workers: int, on_done: Callable[[dict[str, Any]], None]
) -> None:
    cores = os.cpu_count() or 1
    threads = max(1, cores // workers)
    if workers == 1:
        for trial in trials:
            on_done(run_trial(trial, threads=threads))
        return
    # spawn: a forked child would inherit torch's thread pools and any CUDA state.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_run_in_worker, trial, threads): trial for trial in trials}
        for future in concurrent.futures.as_completed(futures):
            trial = futures[future]
            try:
                on_done(future.result())
            except Exception as error:
                on_done(_failed(trial, f"worker died: {type(error).__name__}: {error}"))


def _ray_executor(
    trials: list[Trial], config: SweepConfig, on_done: Callable[[dict[str, Any]], None]
) -> None:
    try:
        import ray
    except ImportError:
        raise SweepError('executor=ray needs Ray: pip install "selectivity[ray]"') from None
    started_here = not ray.is_initialized()
    if started_here:
        if config.ray_address:
            ray.init(address=config.ray_address, log_to_driver=False)
        else:
            # Ray's session files default to /tmp/ray; keep them in a private temp folder.
            ray.init(
                num_cpus=os.cpu_count(),
                include_dashboard=False,
                log_to_driver=False,
                _temp_dir=tempfile.mkdtemp(prefix="ray-"),
            )
    try:
        remote = ray.remote(
            num_cpus=config.cpus_per_trial, num_gpus=config.gpus_per_trial, max_retries=0
        )(run_trial)
        threads = max(1, int(config.cpus_per_trial))
        pending = {remote.remote(trial, threads): trial for trial in trials}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for reference in ready:
                trial = pending.pop(reference)
                try:
                    on_done(ray.get(reference))
                except Exception as error:
                    on_done(_failed(trial, f"ray task failed: {type(error).__name__}"))
    finally:
        if started_here:
            ray.shutdown()


def _check_sweep_folder(sweep_dir: Path, keys: dict[str, Any]) -> None:
    stamp = sweep_dir / "sweep.json"
    # Engine keys may change between runs of the same sweep; the experiment may not.
    engine = {
        "executor",
        "workers",
        "ray_address",
        "cpus_per_trial",
        "gpus_per_trial",
        "device",
        "num_threads",
    }
    experiment = {k: v for k, v in keys.items() if k not in engine}
    if stamp.exists():
        previous = json.loads(stamp.read_text())
        differing = sorted(
            k
            for k in set(previous) | set(experiment)
            if previous.get(k) != experiment.get(k) and k not in ("alphas", "seeds")
        )
        if differing:
            raise SweepError(
                f"{sweep_dir} holds a sweep with different keys ({', '.join(differing)}); use another --out"
            )
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_text(stamp, json.dumps(experiment, indent=2, default=str) + "\n")


def resolve_keys(layers: Iterable[dict[str, Any]]) -> tuple[SweepConfig, dict[str, Any]]:
    """Check every key (all configs are built, so a bad value fails before any work)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    # The suite's sample bounds sit beneath anything the preset or the user set.
    merged = {**suite_defaults(merged.get("suite", "full")), **merged}
    sweep = build(SweepConfig, merged)
    train_probe = build(TrainConfig, merged)
    eval_probe = build(EvalConfig, merged)
    keys = {**to_dict(train_probe), **to_dict(eval_probe), **to_dict(sweep)}
    keys = {k: (tuple(v) if isinstance(v, list) else v) for k, v in keys.items()}
    return sweep, keys


def run_sweep(
    sweep_dir: str | Path, layers: Iterable[dict[str, Any]], progress: bool = True
) -> pd.DataFrame:
    """Run (or resume) the grid; returns the trials table. Writes results.parquet."""
    sweep_dir = Path(sweep_dir)
    config, keys = resolve_keys(layers)
    _check_sweep_folder(
        sweep_dir, {k: (list(v) if isinstance(v, tuple) else v) for k, v in keys.items()}
    )

    if config.evaluate and keys.get("generate_corruptions") and not keys.get("corruptions_dir"):
        # One corruption set for all trials: the test split does not depend on the seed.
        from selectivity import corruptions
        from selectivity.data import load_dataset
        from selectivity.runs import resolve_device

        data = load_dataset(keys["dataset"], keys["data_dir"], 0, keys["image_size"])
        root = sweep_dir / "corruptions"
        corruptions.generate_corruption_set(
            data.test,
            root,
            seed=keys["corruption_seed"],
            corruptions=keys["corruptions"],
            table=keys["corruption_table"],
            device=resolve_device(keys["device"]),
            progress=progress,
        )
        keys["corruptions_dir"] = str(root.resolve())
        keys["generate_corruptions"] = False

    trials = [
        Trial(alpha, seed, trial_dir(sweep_dir, alpha, seed), keys)
        for alpha in config.alphas
        for seed in config.seeds
    ]
    todo = [t for t in trials if not _trial_is_done(t)]
    records = {
        (t.alpha, t.seed): json.loads((t.directory / "trial.json").read_text())
        for t in trials
        if t not in todo
    }
    bar = tqdm(
        total=len(trials),
        initial=len(trials) - len(todo),
        desc="trials",
        unit="trial",
        disable=not progress,
    )

    def on_done(record: dict[str, Any]) -> None:
        records[(record["alpha"], record["seed"])] = record
        bar.update(1)
        if record["status"] != "done":
            bar.write(
                f"trial alpha={record['alpha']:g} seed={record['seed']} failed: {record['reason']}"
            )

    try:
        if config.executor == "ray":
            _ray_executor(todo, config, on_done)
        else:
            workers = config.workers or max(1, (os.cpu_count() or 1) // 2)
            _local_executor(todo, min(workers, max(1, len(todo))), on_done)
    finally:
        bar.close()
        table = pd.DataFrame(
            [
                {k: r.get(k) for k in ("alpha", "seed", "status", "reason", "seconds")}
                for r in records.values()
            ],
            columns=["alpha", "seed", "status", "reason", "seconds"],
        )
        table = table.sort_values(["alpha", "seed"]).reset_index(drop=True)
        with atomic_path(sweep_dir / "trials.parquet") as temporary:
            table.to_parquet(temporary, index=False)
        gather(sweep_dir, trials)
    return table


def gather(sweep_dir: str | Path, trials: Iterable[Trial] | None = None) -> pd.DataFrame:
    """All finished trials' evaluation rows with alpha and seed, written to results.parquet."""
    sweep_dir = Path(sweep_dir)
    if trials is None:
        folders = sorted(sweep_dir.glob("alpha=*/seed=*"))
        found = [
            (float(f.parent.name.split("=", 1)[1]), int(f.name.split("=", 1)[1]), f)
            for f in folders
        ]
    else:
        found = [(t.alpha, t.seed, t.directory) for t in trials]
    frames = []
    for alpha, seed, folder in sorted(found, key=lambda item: (item[0], item[1])):
        path = folder / "evaluation.parquet"
        if not (folder / "trial.json").exists() or not path.exists():
            continue
        if json.loads((folder / "trial.json").read_text()).get("status") != "done":
            continue
        frame = pd.read_parquet(path)
        frame.insert(0, "seed", seed)
        frame.insert(0, "alpha", alpha)
        frames.append(frame)
    # The schema's columns (settings included), in its order and dtypes.
    results = (
        pd.concat(frames, ignore_index=True)
        .reindex(columns=[*schema.TRIAL, *schema.COLUMNS])
        .astype(schema.DTYPES)
        if frames
        else schema.frame([], extra=schema.TRIAL)
    )
    with atomic_path(sweep_dir / "results.parquet") as temporary:
        results.to_parquet(temporary, index=False)
    return results

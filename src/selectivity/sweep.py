"""Sweeps: the grid alpha x seed, each trial trained then evaluated, gathered into one table.

A trial is a function from its keys to a status (`run_trial`, around
`selectivity.trial.train_and_evaluate`); executors only decide where trials run. Everything a
trial writes lives in `SWEEP_DIR/alpha=<a>/seed=<s>/` and is resumable, so running the same
command again skips finished trials and resumes interrupted ones.

    SWEEP_DIR/sweep.json        the resolved keys of the sweep (a folder belongs to one sweep)
    SWEEP_DIR/corruptions/      the generated corruption set, shared by all trials (if generated)
    SWEEP_DIR/alpha=<a>/seed=<s>/   run folder + evaluation of one trial, trial.json its status
    SWEEP_DIR/trials.parquet    alpha, seed, status, reason, seconds
    SWEEP_DIR/results.parquet   every trial's evaluation rows with alpha and seed columns
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from selectivity import schema
from selectivity.config import EvalConfig, SweepConfig, TrainConfig, build, suite_defaults, to_dict
from selectivity.files import (
    FileError,
    atomic_path,
    one_line,
    read_json,
    read_table,
    refuse_other_contents,
    remove_stale_temporaries,
    write_text,
)
from selectivity.trial import generate_shared_corruptions, train_and_evaluate

__all__ = ["SweepError", "Trial", "alpha_name", "gather", "run_sweep", "run_trial", "trial_dir"]


class SweepError(ValueError):
    """A sweep cannot start (folder of another sweep, nothing to do); one line for the user."""


@dataclass(frozen=True)
class Trial:
    alpha: float
    seed: int
    directory: Path
    keys: dict[str, Any]  # every train and evaluation key of this trial


def alpha_name(alpha: float) -> str:
    """Text that reads back as `alpha` exactly: the short `:g` form where it is exact (-1, 0.1,
    10, 1e-05, 1e+30), else the shortest round-trip repr (0.1234567, where `:g` says 0.123457)."""
    short = f"{alpha:g}"
    return short if float(short) == alpha else repr(float(alpha))


def trial_dir(sweep_dir: Path, alpha: float, seed: int) -> Path:
    # Lossless, so that two alphas never share a folder; gather reads alpha back from the name.
    return Path(sweep_dir) / f"alpha={alpha_name(alpha)}" / f"seed={seed}"


def run_trial(trial: Trial, threads: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Train (or resume) and evaluate one trial; never raises for a trial's own failure.

    Returns {alpha, seed, status: done | failed, reason, seconds} and writes it to trial.json.
    """
    started = time.perf_counter()
    status_path = trial.directory / "trial.json"
    keys = {**trial.keys, "alpha": trial.alpha, "seed": trial.seed}
    if threads and not keys.get("num_threads"):
        # Executors share the cores out; a num_threads key set by the user wins (CPU results
        # depend on the thread count, so equal counts make executors agree bit for bit).
        keys["num_threads"] = threads
    try:
        seconds = train_and_evaluate(keys, trial.directory, progress=progress)
        status = {"status": "done", "reason": ""}
    except Exception as error:  # a trial's failure is data: the sweep goes on
        reason = one_line(error, with_type=True)
        status = {"status": "failed", "reason": reason, "traceback": traceback.format_exc()}
        seconds = time.perf_counter() - started
    record = {"alpha": trial.alpha, "seed": trial.seed, **status, "seconds": seconds}
    write_text(status_path, json.dumps(record, indent=2) + "\n")
    return record


def _status(folder: Path) -> dict[str, Any] | None:
    """A trial's record from its trial.json; None when absent or unreadable (then it runs again:
    the status is written last, and training and evaluation resume from their own files)."""
    try:
        return read_json(folder / "trial.json")
    except (FileNotFoundError, FileError):
        return None


def _trial_is_done(trial: Trial) -> bool:
    status = _status(trial.directory)
    return status is not None and status.get("status") == "done"


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


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the sweep process ends, even by kill -9, so that
    no orphan trains on (and races a rerun in) the sweep's folders.

    Linux: the kernel sends SIGKILL to the worker when its parent dies (prctl PR_SET_PDEATHSIG).
    A parent that died before this ran, or a system without prctl: the parent's pid is checked
    (now, and then every second by a thread).
    """
    armed = False
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:
        os._exit(1)
    if not armed:

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="selectivity-parent-watch", daemon=True).start()


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
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        futures = {pool.submit(_run_in_worker, trial, threads): trial for trial in trials}
        for future in concurrent.futures.as_completed(futures):
            trial = futures[future]
            try:
                on_done(future.result())
            except Exception as error:  # a worker that died takes only its trial with it
                on_done(_failed(trial, f"worker died: {type(error).__name__}: {error}"))


def _ray_executor(
    trials: list[Trial], config: SweepConfig, on_done: Callable[[dict[str, Any]], None]
) -> None:
    try:
        import ray
    except ImportError:
        raise SweepError('executor=ray needs Ray: pip install "selectivity[ray]"') from None
    started_here = not ray.is_initialized()
    with contextlib.ExitStack() as stack:
        if started_here and config.ray_address:
            ray.init(address=config.ray_address, log_to_driver=False)
            stack.callback(ray.shutdown)
        elif started_here:
            stack.enter_context(_local_ray())
        _ray_trials(ray, trials, config, on_done)


@contextlib.contextmanager
def _local_ray() -> Iterator[None]:
    """A Ray instance for this sweep alone: its servers listen on 127.0.0.1 only, its session
    files sit in a private temporary folder, and both end with the sweep."""
    import ray
    from ray._private import ray_constants

    # Ray binds its servers to all interfaces unless cluster mode is off, which on Linux only
    # this switch does (ray.init(_node_ip_address="127.0.0.1") is turned back into the host's
    # address). The variable reaches the processes Ray starts; the constant, this process.
    switch = getattr(
        ray_constants, "ENABLE_RAY_CLUSTERS_ENV_VAR", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    )
    saved = os.environ.get(switch), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[switch] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    # Ray makes its temp folder world-writable; a private (0700) parent keeps others out.
    private = tempfile.mkdtemp(prefix="ray-")
    try:
        ray.init(
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=os.path.join(private, "ray"),
        )
        try:
            yield
        finally:
            ray.shutdown()
    finally:
        if saved[0] is None:
            os.environ.pop(switch, None)
        else:
            os.environ[switch] = saved[0]
        ray_constants.ENABLE_RAY_CLUSTER = saved[1]
        shutil.rmtree(private, ignore_errors=True)


def _ray_trials(
    ray: Any, trials: list[Trial], config: SweepConfig, on_done: Callable[[dict[str, Any]], None]
) -> None:
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
            except Exception as error:  # a lost Ray task fails only its trial
                on_done(_failed(trial, f"ray task failed: {type(error).__name__}"))


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
        "tensorboard",
    }
    experiment = {k: v for k, v in keys.items() if k not in engine}
    if stamp.exists():
        previous = read_json(
            stamp, "; it records which sweep this folder holds: restore it or use another --out"
        )
        refuse_other_contents(
            sweep_dir,
            "a sweep with different keys",
            previous,
            experiment,
            "use another --out",
            ignore=("alphas", "seeds"),
        )
    sweep_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(sweep_dir)  # of a sweep killed while writing
    write_text(stamp, json.dumps(experiment, indent=2, default=str) + "\n")


def resolve_keys(overrides: Iterable[dict[str, Any]]) -> tuple[SweepConfig, dict[str, Any]]:
    """Check every key (all configs are built, so a bad value fails before any work)."""
    merged: dict[str, Any] = {}
    for override in overrides:
        merged.update(override)
    # The suite's sample bounds sit beneath anything the preset or the user set.
    merged = {**suite_defaults(merged.get("suite", "full")), **merged}
    sweep = build(SweepConfig, merged)
    train_probe = build(TrainConfig, merged)
    eval_probe = build(EvalConfig, merged)
    keys = {**to_dict(train_probe), **to_dict(eval_probe), **to_dict(sweep)}
    keys = {k: (tuple(v) if isinstance(v, list) else v) for k, v in keys.items()}
    return sweep, keys


def _check_trial_configs(config: SweepConfig, keys: dict[str, Any]) -> None:
    """Build every trial's training and evaluation config (cheap), so that a value only a trial
    would reject stops the whole sweep before anything is written or trained. EvalConfig checks
    its corruption names and tables itself."""
    build(EvalConfig, keys)
    for alpha in config.alphas:
        for seed in config.seeds:
            build(TrainConfig, keys, {"alpha": alpha, "seed": seed})


def run_sweep(
    sweep_dir: str | Path, overrides: Iterable[dict[str, Any]], progress: bool = True
) -> pd.DataFrame:
    """Run (or resume) the grid; returns the trials table. Writes results.parquet."""
    sweep_dir = Path(sweep_dir)
    config, keys = resolve_keys(overrides)
    _check_trial_configs(config, keys)
    _check_sweep_folder(
        sweep_dir, {k: (list(v) if isinstance(v, tuple) else v) for k, v in keys.items()}
    )

    if config.evaluate and keys.get("generate_corruptions") and not keys.get("corruptions_dir"):
        # One corruption set for all trials.
        root = sweep_dir / "corruptions"
        generate_shared_corruptions(keys, root, progress)
        keys["corruptions_dir"] = str(root.resolve())
        keys["generate_corruptions"] = False

    trials = [
        Trial(alpha, seed, trial_dir(sweep_dir, alpha, seed), keys)
        for alpha in config.alphas
        for seed in config.seeds
    ]
    todo = [t for t in trials if not _trial_is_done(t)]
    records = {
        (t.alpha, t.seed): status
        for t in trials
        if t not in todo and (status := _status(t.directory)) is not None
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
                f"trial alpha={alpha_name(record['alpha'])} seed={record['seed']} failed: "
                f"{record['reason']}"
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
        status = _status(folder)
        if status is None or status.get("status") != "done" or not path.exists():
            continue
        advice = f"; delete {folder / 'trial.json'} and run the sweep again to rebuild it"
        frame = read_table(path, ["metric", "value"], advice)
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

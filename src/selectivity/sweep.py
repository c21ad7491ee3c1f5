"""Sweeps: a grid over any keys (alpha x seed by default), each trial trained then evaluated,
gathered into one table.

Which trials a sweep runs and what their folders are called is `selectivity.grid`. A trial is a
function from its keys to a status (`run_trial`, around `selectivity.trial.train_and_evaluate`);
executors only decide where trials run. Everything a trial writes lives in its own folder and is
resumable, so running the same command again skips finished trials and resumes interrupted ones.

    SWEEP_DIR/sweep.json        the resolved keys of the sweep (a folder belongs to one sweep)
    SWEEP_DIR/corruptions/      the generated corruption set, shared by all trials (if generated)
    SWEEP_DIR/alpha=<a>/seed=<s>/   run folder + evaluation of one trial, trial.json its status
    SWEEP_DIR/<key>=<v>/.../alpha=<a>/seed=<s>/   the same, in a sweep over other keys too
    SWEEP_DIR/trials.parquet    one column per swept key, status, reason, seconds
    SWEEP_DIR/results.parquet   every trial's evaluation rows with one column per swept key
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
from selectivity.comparison import similarity_table
from selectivity.config import (
    ConfigError,
    EvalConfig,
    SweepConfig,
    TrainConfig,
    build,
    key_defaults,
    suite_defaults,
    to_dict,
    typed,
)
from selectivity.errors import SelectivityError
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
from selectivity.grid import (
    alpha_name,
    describe,
    expand,
    layout,
    sort_key,
    split_grids,
    sweep_grids,
    trial_dir,
    trial_frame,
    trial_path,
)
from selectivity.trial import generate_shared_corruptions, train_and_evaluate

__all__ = [
    "Plan",
    "SweepError",
    "Trial",
    "alpha_name",
    "gather",
    "plan_sweep",
    "run_sweep",
    "run_trial",
    "trial_dir",
]


class SweepError(SelectivityError, ValueError):
    """A sweep cannot start (folder of another sweep, nothing to do); one line for the user."""


@dataclass(frozen=True)
class Trial:
    values: dict[str, Any]  # the trial's value of every swept key, alpha and seed: its name
    directory: Path
    keys: dict[str, Any]  # every train and evaluation key of this trial

    @property
    def alpha(self) -> float:
        return float(self.values["alpha"])

    @property
    def seed(self) -> int:
        return int(self.values["seed"])


def run_trial(trial: Trial, threads: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Train (or resume) and evaluate one trial; never raises for a trial's own failure.

    Returns {<each swept key>, alpha, seed, status: done | failed, reason, seconds} and writes it
    to trial.json (gather reads the trial's values back from there).
    """
    started = time.perf_counter()
    status_path = trial.directory / "trial.json"
    keys = {**trial.keys, **trial.values}
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
    record = {**trial.values, **status, "seconds": seconds}
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
    return {**trial.values, "status": "failed", "reason": reason, "seconds": float("nan")}


OnDone = Callable[[Trial, dict[str, Any]], None]


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


def _local_executor(trials: list[Trial], workers: int, on_done: OnDone) -> None:
    cores = os.cpu_count() or 1
    threads = max(1, cores // workers)
    if workers == 1:
        for trial in trials:
            on_done(trial, run_trial(trial, threads=threads))
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
                on_done(trial, future.result())
            except Exception as error:  # a worker that died takes only its trial with it
                on_done(trial, _failed(trial, f"worker died: {type(error).__name__}: {error}"))


def _ray_executor(trials: list[Trial], config: SweepConfig, on_done: OnDone) -> None:
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


def _ray_trials(ray: Any, trials: list[Trial], config: SweepConfig, on_done: OnDone) -> None:
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
                on_done(trial, ray.get(reference))
            except Exception as error:  # a lost Ray task fails only its trial
                on_done(trial, _failed(trial, f"ray task failed: {type(error).__name__}"))


# Keys that may change between runs of the same sweep: they decide where and how fast, not what.
_ENGINE = frozenset(
    {
        "executor",
        "workers",
        "ray_address",
        "cpus_per_trial",
        "gpus_per_trial",
        "device",
        "num_threads",
        "tensorboard",
    }
)
# The layout of a sweep folder written before grids existed (its sweep.json has no swept_keys).
_ALPHA_SEED = ["alpha", "seed"]


def _check_sweep_folder(sweep_dir: Path, plan: Plan) -> None:
    """A folder holds one sweep: the same keys, and the same swept keys (its folder layout).

    The values a grid sweeps may change between runs (adding seeds, alphas, noise levels extends
    the sweep), and so may the sweep's own value of a swept key: every trial's folder names its
    value of each swept key, so no trial is taken for another.
    """
    stamp = sweep_dir / "sweep.json"
    experiment = {
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in plan.keys.items()},
        "swept_keys": list(plan.layout),
        "grids": [{k: list(v) for k, v in grid.items()} for grid in plan.grids],
    }
    experiment = {k: v for k, v in experiment.items() if k not in _ENGINE}
    if stamp.exists():
        previous = read_json(
            stamp, "; it records which sweep this folder holds: restore it or use another --out"
        )
        # A key the record lacks did not exist when it was written: its default is what ran.
        previous = {
            **{k: v for k, v in key_defaults().items() if k not in _ENGINE},
            "swept_keys": _ALPHA_SEED,
            **previous,
        }
        refuse_other_contents(
            sweep_dir,
            "a sweep with different keys",
            previous,
            experiment,
            "use another --out",
            ignore=("alphas", "seeds", "grids", *plan.layout),
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


@dataclass(frozen=True)
class Plan:
    """What a sweep runs: its keys, grids, folder levels, and every trial's values and keys."""

    config: SweepConfig
    keys: dict[str, Any]  # the sweep's keys (a trial's keys are these with its values)
    grids: tuple[dict[str, tuple[Any, ...]], ...]  # completed: seeds filled in
    layout: tuple[str, ...]  # the swept keys in folder order, alpha and seed last
    trials: list[tuple[dict[str, Any], dict[str, Any]]]  # (values, keys) per trial, run order


def plan_sweep(overrides: Iterable[dict[str, Any]]) -> Plan:
    """Resolve the keys (later maps win; `grid`/`grids` in a map replace earlier grids) and
    expand the grids into trials. Every trial's training and evaluation config is built here,
    so that a value only one trial would reject stops the sweep before anything is written."""
    plain: list[dict[str, Any]] = []
    grids = None
    for override in overrides:
        rest, given = split_grids(override)
        plain.append(rest)
        grids = given if given is not None else grids
    config, keys = resolve_keys(plain)
    completed = sweep_grids(grids, config.alphas, config.seeds)
    levels, values = expand(completed, keys)
    # Each trial resolved on its own, so that a swept suite brings its own sample bounds.
    trials = [(trial, resolve_keys([*plain, trial])[1]) for trial in values]
    return Plan(config, keys, completed, levels, trials)


# Keys that decide the generated corruption set: sweeping one, each trial makes its own set.
_CORRUPTION_SET_KEYS = frozenset(
    {
        "dataset",
        "data_dir",
        "image_size",
        "corruptions",
        "corruption_seed",
        "corruption_table",
        "generate_corruptions",
        "corruptions_dir",
    }
)


def run_sweep(
    sweep_dir: str | Path,
    overrides: Iterable[dict[str, Any]],
    progress: bool = True,
    grids: Iterable[dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Run (or resume) the sweep; returns the trials table. Writes results.parquet.

    overrides: maps of keys, later ones win (a preset, a config file, --set); any may hold a
    `grid` or `grids`. grids: [{key: [values]}, ...], whose union the sweep runs (given, it
    replaces the overrides' grids). Without grids the sweep is alphas x seeds.
    """
    sweep_dir = Path(sweep_dir)
    overrides = list(overrides)
    if grids is not None:
        overrides.append({"grids": list(grids)})
    plan = plan_sweep(overrides)
    _check_sweep_folder(sweep_dir, plan)

    config, keys = plan.config, plan.keys
    shared = None
    if (
        config.evaluate
        and keys.get("generate_corruptions")
        and not keys.get("corruptions_dir")
        and not _CORRUPTION_SET_KEYS & set(plan.layout)
    ):
        # One corruption set for all trials.
        root = sweep_dir / "corruptions"
        generate_shared_corruptions(keys, root, progress)
        shared = {"corruptions_dir": str(root.resolve()), "generate_corruptions": False}

    trials = [
        Trial(values, trial_dir(sweep_dir, values), {**trial_keys, **(shared or {})})
        for values, trial_keys in plan.trials
    ]
    todo = [t for t in trials if not _trial_is_done(t)]
    records = {
        t.directory: status
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

    def on_done(trial: Trial, record: dict[str, Any]) -> None:
        records[trial.directory] = record
        bar.update(1)
        if record["status"] != "done":
            bar.write(f"trial {describe(trial.values)} failed: {record['reason']}")

    try:
        if config.executor == "ray":
            _ray_executor(todo, config, on_done)
        else:
            workers = config.workers or max(1, (os.cpu_count() or 1) // 2)
            _local_executor(todo, min(workers, max(1, len(todo))), on_done)
    finally:
        bar.close()
        table = _trials_table(trials, records, plan.layout)
        with atomic_path(sweep_dir / "trials.parquet") as temporary:
            table.to_parquet(temporary, index=False)
        gather(sweep_dir, trials)
    return table


def _trials_table(
    trials: list[Trial], records: dict[Path, dict[str, Any]], levels: tuple[str, ...]
) -> pd.DataFrame:
    """One row per trial with a record: its values (typed columns), status, reason, seconds."""
    ran = sorted(
        (t for t in trials if t.directory in records), key=lambda t: sort_key(t.values, levels)
    )
    table = trial_frame([t.values for t in ran], levels)
    for column in schema.TRIAL_STATUS:
        table[column] = [records[t.directory].get(column) for t in ran]
    return table.astype({"status": "object", "reason": "object", "seconds": "float64"})


def _recorded_layout(sweep_dir: Path) -> tuple[str, ...]:
    """The folder levels of the sweep in `sweep_dir`, from its sweep.json (alpha, seed when it
    has none: a folder from before grids, or trial folders alone)."""
    try:
        record = read_json(sweep_dir / "sweep.json")
    except FileNotFoundError:
        return tuple(_ALPHA_SEED)
    swept = record.get("swept_keys", _ALPHA_SEED)
    if not isinstance(swept, list) or not all(isinstance(key, str) for key in swept):
        raise FileError(f"{sweep_dir / 'sweep.json'} holds no list of swept_keys")
    return layout(swept)


def _recorded_values(folder: Path, status: dict[str, Any], levels: tuple[str, ...]) -> dict:
    """A finished trial's values, read back from its trial.json and checked against its folder."""
    path = folder / "trial.json"
    advice = f"; delete {path} and run the sweep again to rebuild it"
    missing = [key for key in levels if key not in status]
    if missing:
        raise FileError(f"{path} lacks the trial's {', '.join(missing)}{advice}")
    try:
        values = typed({key: status[key] for key in levels})
    except ConfigError as error:
        raise FileError(f"{path} holds a bad value: {error}{advice}") from None
    if folder.parts[-len(levels) :] != trial_path(values).parts:
        raise FileError(f"{path} records the trial {describe(values)}, not this folder's{advice}")
    return values


def gather(sweep_dir: str | Path, trials: Iterable[Trial] | None = None) -> pd.DataFrame:
    """All finished trials' evaluation rows, written to results.parquet: one column per swept
    key (alpha and seed always among them), then the schema's columns.

    trials: the trials to gather (a sweep's own); None: every trial folder in `sweep_dir`.
    Each trial's values are read back from its trial.json.
    """
    sweep_dir = Path(sweep_dir)
    if trials is None:
        levels = _recorded_layout(sweep_dir)
        folders = sorted(sweep_dir.glob("/".join(f"{key}=*" for key in levels)))
    else:
        trials = list(trials)
        levels = layout(trials[0].values) if trials else tuple(_ALPHA_SEED)
        folders = [t.directory for t in trials]
    found = []
    for folder in folders:
        status = _status(folder)
        if status is None or status.get("status") != "done":
            continue
        if not (folder / "evaluation.parquet").exists():
            continue
        found.append((_recorded_values(folder, status, levels), folder))
    found.sort(key=lambda item: sort_key(item[0], levels))
    frames = []
    for index, (_, folder) in enumerate(found):
        advice = f"; delete {folder / 'trial.json'} and run the sweep again to rebuild it"
        frame = read_table(folder / "evaluation.parquet", ["metric", "value"], advice)
        frames.append(frame.assign(_trial=index))
    # Each trial against the alpha = 0 network of its seed, from the responses trials stored.
    similarity = similarity_table(found)
    frames += [similarity.rename(columns={"trial": "_trial"})] if len(similarity) else []
    # The schema's columns (settings included), in its order and dtypes.
    measured = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({"_trial": pd.Series([], dtype="int64")})
    )
    columns = measured.reindex(columns=list(schema.COLUMNS)).astype(schema.DTYPES)
    values = trial_frame([v for v, _ in found], levels).iloc[measured["_trial"].to_numpy()]
    results = pd.concat([values.reset_index(drop=True), columns.reset_index(drop=True)], axis=1)
    results.attrs["notes"] = similarity.attrs["notes"]
    with atomic_path(sweep_dir / "results.parquet") as temporary:
        results.to_parquet(temporary, index=False)
    return results

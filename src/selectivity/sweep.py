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

import json
import os
import time
import traceback
from collections.abc import Iterable
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
from selectivity.executors import (
    available_cores,
    local_executor,
    ray_executor,
    stop_on_signals,
)
from selectivity.files import (
    FileError,
    differing_keys,
    one_line,
    read_json,
    read_table,
    refuse_other_contents,
    remove_stale_temporaries,
    write_table,
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
from selectivity.lock import folder_lock
from selectivity.trial import check_data, generate_shared_corruptions, train_and_evaluate

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
        # One writer per run folder: a trial is not trained or evaluated by hand meanwhile.
        with folder_lock(trial.directory):
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
    """The record of a trial whose worker died before it could write its own, written to its
    trial.json as the worker would have (so that its folder and trials.parquet agree)."""
    record = {**trial.values, "status": "failed", "reason": reason, "seconds": float("nan")}
    if trial.directory.is_dir():
        write_text(trial.directory / "trial.json", json.dumps(record, indent=2) + "\n")
    return record


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


def _record(plan: Plan) -> dict[str, Any]:
    """What sweep.json records of a plan: its keys but the engine's, swept keys and grids."""
    experiment = {
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in plan.keys.items()},
        "swept_keys": list(plan.layout),
        "grids": [{k: list(v) for k, v in grid.items()} for grid in plan.grids],
    }
    return {k: v for k, v in experiment.items() if k not in _ENGINE}


def _check_sweep_folder(sweep_dir: Path, plan: Plan) -> dict[str, Any] | None:
    """A folder holds one sweep: the same keys, and the same swept keys (its folder layout).
    Returns the folder's sweep.json (None: a new sweep).

    The values a grid sweeps may change between runs (adding seeds, alphas, noise levels extends
    the sweep), and so may the sweep's own value of a swept key: every trial's folder names its
    value of each swept key, so no trial is taken for another.
    """
    stamp = sweep_dir / "sweep.json"
    if not stamp.exists():
        return None
    recorded = read_json(
        stamp, "; it records which sweep this folder holds: restore it or use another --out"
    )
    # A key the record lacks did not exist when it was written: its default is what ran.
    previous = {
        **{k: v for k, v in key_defaults().items() if k not in _ENGINE},
        "swept_keys": _ALPHA_SEED,
        **recorded,
    }
    refuse_other_contents(
        sweep_dir,
        "a sweep with different keys",
        previous,
        _record(plan),
        "use another --out",
        ignore=("alphas", "seeds", "grids", _TRIAL_THREADS, *plan.layout),
    )
    return recorded


# The sweep.json key of the torch threads of every trial, fixed when the sweep starts.
_TRIAL_THREADS = "trial_threads"


def trial_threads(config: SweepConfig, trials: int, recorded: Any = None) -> int:
    """The torch CPU threads of each trial of a sweep of `trials` trials (a trial's own
    num_threads key wins). Fixed once for the sweep (`recorded`, from its sweep.json, when it
    has one): CPU results depend on the thread count, so a trial resumed by a rerun with fewer
    trials left than workers computes as it would have in the first run.

    Local: the cores this process may run on (`available_cores`) shared out among the trials that
    first ran at once (min(workers, trials)); Ray: cpus_per_trial.
    """
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 1:
        return recorded
    if config.executor == "ray":
        return max(1, int(config.cpus_per_trial))
    return max(1, available_cores() // min(_workers(config), max(1, trials)))


def _workers(config: SweepConfig) -> int:
    return config.workers or max(1, available_cores() // 2)


# The longest folder name most file systems take (ext4, XFS, btrfs, APFS: 255 bytes).
_NAME_MAX = 255


def _check_names(sweep_dir: Path, plan: Plan) -> None:
    """Every trial folder's levels fit in a folder name (a long word, percent-encoded, may not)."""
    try:
        limit = os.pathconf(_existing(sweep_dir), "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = _NAME_MAX
    for values, _ in plan.trials:
        for part in trial_path(values).parts:
            if len(os.fsencode(part)) > limit:
                raise SweepError(
                    f"the trial folder name {part[:60]}... is {len(os.fsencode(part))} bytes, "
                    f"over the file system's {limit}: use a shorter value of {part.split('=')[0]}"
                )


def _existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


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


# What a second Ctrl-C or SIGTERM prints as the sweep ends at once.
_STOPPED_AT_ONCE = (
    "selectivity: interrupted again: stopped at once; finished files are kept, run the same "
    "command to resume"
)


def run_sweep(
    sweep_dir: str | Path,
    overrides: Iterable[dict[str, Any]],
    progress: bool = True,
    grids: Iterable[dict[str, Any]] | None = None,
    wait: bool = False,
) -> pd.DataFrame:
    """Run (or resume) the sweep; returns the trials table. Writes results.parquet.

    overrides: maps of keys, later ones win (a preset, a config file, --set); any may hold a
    `grid` or `grids`. grids: [{key: [values]}, ...], whose union the sweep runs (given, it
    replaces the overrides' grids). Without grids the sweep is alphas x seeds.
    wait: another sweep running into `sweep_dir` is waited for (False: refused, `FolderLocked`).

    The first Ctrl-C or SIGTERM ends the running trials (they resume on the next run) and leaves
    as KeyboardInterrupt or `executors.Terminated`, after the trials table is written; a
    second one exits at once (`executors.stop_on_signals`).
    """
    sweep_dir = Path(sweep_dir)
    overrides = list(overrides)
    if grids is not None:
        overrides.append({"grids": list(grids)})
    plan = plan_sweep(overrides)
    _check_names(sweep_dir, plan)
    with stop_on_signals(_STOPPED_AT_ONCE), folder_lock(sweep_dir, wait, _tell(progress)):
        return _run_locked(sweep_dir, plan, progress)


def _tell(progress: bool) -> Any:
    return (lambda line: tqdm.write(f"selectivity: {line}")) if progress else None


def _start(sweep_dir: Path, plan: Plan, progress: bool) -> tuple[int, dict[str, Any] | None]:
    """Check and record the sweep in its folder; returns its trials' threads and its shared
    corruption set's keys (None: none shared). A new sweep that fails to start leaves no
    sweep.json, so the corrected command is not taken for another sweep."""
    config, keys = plan.config, plan.keys
    recorded = _check_sweep_folder(sweep_dir, plan)
    if recorded is None:
        # Every data set the trials read, read once: a missing or bad one fails here, not in
        # every trial after the folder was given to this sweep.
        for source in {(k["dataset"], k["data_dir"], k["image_size"]) for _, k in plan.trials}:
            check_data(*source)
    threads = trial_threads(config, len(plan.trials), (recorded or {}).get(_TRIAL_THREADS))
    remove_stale_temporaries(sweep_dir)  # of a sweep killed while writing
    stamp = sweep_dir / "sweep.json"
    write_text(stamp, json.dumps({**_record(plan), _TRIAL_THREADS: threads}, indent=2) + "\n")
    if not (
        config.evaluate
        and keys.get("generate_corruptions")
        and not keys.get("corruptions_dir")
        and not _CORRUPTION_SET_KEYS & set(plan.layout)
    ):
        return threads, None
    # One corruption set for all trials.
    root = sweep_dir / "corruptions"
    try:
        generate_shared_corruptions(keys, root, progress)
    except BaseException:
        if recorded is None:
            stamp.unlink(missing_ok=True)
        raise
    return threads, {"corruptions_dir": str(root.resolve()), "generate_corruptions": False}


def _run_locked(sweep_dir: Path, plan: Plan, progress: bool) -> pd.DataFrame:
    config = plan.config
    threads, shared = _start(sweep_dir, plan, progress)
    trials = [
        Trial(values, trial_dir(sweep_dir, values), {**trial_keys, **(shared or {})})
        for values, trial_keys in plan.trials
    ]
    bar = tqdm(total=len(trials), desc="trials", unit="trial", disable=not progress)
    todo = []
    for trial in trials:
        if not _trial_is_done(trial):
            todo.append(trial)
        elif (changed := evaluated_otherwise(trial)) is not None:
            # Evaluated again by hand since: the sweep's own settings are what it gathers.
            bar.write(
                f"trial {describe(trial.values)} was evaluated with other settings "
                f"({changed}): evaluating it again with the sweep's"
            )
            todo.append(trial)
    bar.update(len(trials) - len(todo))
    records = {
        t.directory: status
        for t in trials
        if t not in todo and (status := _status(t.directory)) is not None
    }

    def on_done(trial: Trial, record: dict[str, Any]) -> None:
        records[trial.directory] = record
        bar.update(1)
        if record["status"] != "done":
            bar.write(f"trial {describe(trial.values)} failed: {record['reason']}")

    try:
        if config.executor == "ray":
            try:
                ray_executor(
                    todo,
                    config.ray_address,
                    config.cpus_per_trial,
                    config.gpus_per_trial,
                    threads,
                    run_trial,
                    _failed,
                    on_done,
                )
            except ModuleNotFoundError as error:
                if error.name != "ray":
                    raise
                raise SweepError('executor=ray needs Ray: pip install "selectivity[ray]"') from None
        else:
            workers = min(_workers(config), max(1, len(todo)))
            local_executor(todo, workers, threads, run_trial, _failed, on_done)
    finally:
        bar.close()
        table = _trials_table(trials, records, plan.layout)
        write_table(table, sweep_dir / "trials.parquet")
        gather(sweep_dir, trials)
    return table


def evaluated_otherwise(trial: Trial) -> str | None:
    """The keys in which the evaluation recorded in a trial's folder differs from the trial's
    own evaluation keys ('a, b'); None when they agree or nothing is recorded there."""
    try:
        recorded = read_json(trial.directory / "evaluation" / "config.json")
    except (FileNotFoundError, FileError):
        return None
    settings = recorded.get("config")
    if not isinstance(settings, dict) or "eval" not in settings:
        return None
    wanted = json.loads(json.dumps(to_dict(build(EvalConfig, trial.keys)), default=str))
    differing = (
        differing_keys(settings["eval"], wanted) if isinstance(settings["eval"], dict) else ["eval"]
    )
    return ", ".join(differing) if differing else None


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
    write_table(results, sweep_dir / "results.parquet")
    return results

"""Faults in files and processes: every broken file is one line, nothing is left behind.

Truncated and bit-flipped files are tried in-process at many cut points (cheap); kill -9 runs
the CLI in a subprocess, a few times only. Everything uses a tiny digits model.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import torch

from configs import DIGITS, TINY_EVAL, fast, set_options
from messages import raises
from selectivity import measure as measure_module
from selectivity.config import ConfigError, TrainConfig, build
from selectivity.evaluation import eval_config, evaluate
from selectivity.files import FileError
from selectivity.runs import (
    RunError,
    build_model,
    load_checkpoint,
    load_model,
    read_config,
    save_checkpoint,
)
from selectivity.sweep import Trial, gather, run_sweep, run_trial
from selectivity.train import train

# The run the tests work on (copies of it): three epochs, the lr dropping after the second, the
# regularizer on. The kill -9 test's uninterrupted reference too.
RUN_KEYS = {**fast(3, 2), "alpha": -1.0}

# One-epoch trials, the clean part only: the same trials as `sweep --preset demo` with these keys.
SWEEP = {**DIGITS, **fast(1), "evaluate": False, "workers": 1}


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message, message
    return message


def cuts(size: int, count: int = 30) -> list[int]:
    """`count` cut points from 0 to size - 1, both ends included."""
    return sorted({round(i * (size - 1) / (count - 1)) for i in range(count)})


def run_config() -> TrainConfig:
    return build(TrainConfig, DIGITS, RUN_KEYS)


def temporaries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*.tmp"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A trained and evaluated run folder, kept pristine: tests work on copies."""
    run = tmp_path_factory.mktemp("faults") / "run"
    train(run_config(), run, progress=False)
    evaluate(run, eval_config("quick", TINY_EVAL), progress=False)
    return run


@pytest.fixture
def run(finished, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A finished sweep folder (one trial, no robustness evaluation), kept pristine."""
    folder = tmp_path_factory.mktemp("faults") / "sweep"
    trials = run_sweep(folder, [SWEEP, {"alphas": (0.0,), "seeds": (0,)}], progress=False)
    assert (trials["status"] == "done").all()
    return folder


@pytest.fixture
def sweep(swept, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(swept, copy)
    return copy


# --- checkpoints ------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["best", "last"])
def test_a_truncated_checkpoint_is_one_line_at_every_cut(run, which):
    path = run / f"checkpoint_{which}.pt"
    config = read_config(run)
    data = path.read_bytes()
    for cut in cuts(len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(RunError) as error:
            load_checkpoint(path, "cpu", which, config)
        assert str(path) in one_line(error), cut


def _resume_training(run, run_cli):
    """`selectivity train` again on the tiny digits run (resumes from checkpoint_last.pt)."""
    options = set_options(RUN_KEYS)  # as run_config() trained it
    return run_cli("train", "--preset", "digits", "--out", run, "--quiet", *options)


def test_a_truncated_checkpoint_through_the_cli_is_exit_2(run, run_cli):
    path = run / "checkpoint_last.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 5])
    code, _, err = _resume_training(run, run_cli)
    assert (
        code == 2
        and err.startswith("selectivity: error: corrupt checkpoint")
        and err.count("\n") == 1
    ), err


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b or (a != a and b != b)


def test_bit_flips_in_a_checkpoint_never_load_silently(run):
    path = run / "checkpoint_last.pt"
    config = read_config(run)
    original = load_checkpoint(path, "cpu", "last", config)
    data = path.read_bytes()
    rng = random.Random(0)
    refused = 0
    for _ in range(60):
        flipped = bytearray(data)
        position = rng.randrange(len(flipped))
        flipped[position] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(flipped))
        try:
            state = load_checkpoint(path, "cpu", "last", config)
        except RunError as error:
            assert "\n" not in str(error) and str(path) in str(error)
            refused += 1
        else:
            # A flip in bytes nobody reads (zip padding, a comment) may pass; a changed value never.
            assert _equal(state, original), f"a flip at byte {position} loaded changed values"
    assert refused >= 55, refused


def test_a_best_checkpoint_copied_over_the_last_is_refused(run, run_cli):
    shutil.copy(run / "checkpoint_best.pt", run / "checkpoint_last.pt")
    code, _, err = _resume_training(run, run_cli)
    assert code == 2 and err.count("\n") == 1, err
    assert "holds a best checkpoint where a last one belongs" in err


def _checkpoint_of_a_cifar_run(run: Path) -> dict:
    """checkpoint_best of this run as a 3-channel CIFAR-10 run of the same model would write it."""
    state = load_checkpoint(run / "checkpoint_best.pt", "cpu", "best", read_config(run))
    cifar = build(TrainConfig, state["config"], {"dataset": "cifar10"})
    three = build_model(cifar, 10, 3, [0.5] * 3, [0.25] * 3)
    return {
        **state,
        "config": {**state["config"], "dataset": "cifar10"},
        "data": {
            **state["data"],
            "in_channels": 3,
            "image_size": 32,
            "mean": [0.5] * 3,
            "std": [0.25] * 3,
        },
        "model": three.state_dict(),
    }


def test_a_checkpoint_of_another_run_is_refused(run, run_cli):
    save_checkpoint(run / "checkpoint_best.pt", _checkpoint_of_a_cifar_run(run))
    code, _, err = run_cli("evaluate", run, "--suite", "quick", "--quiet")
    assert code == 2 and err.count("\n") == 1, err
    assert "checkpoint_best.pt was made by a run with another config (dataset differ" in err


def test_a_checkpoint_trained_on_other_data_is_refused(run):
    # Same config (a data folder that changed under the run): the recorded shapes decide.
    state = _checkpoint_of_a_cifar_run(run)
    state["config"] = {**state["config"], "dataset": "digits"}
    save_checkpoint(run / "checkpoint_best.pt", state)
    with pytest.raises(RunError) as error:
        evaluate(run, eval_config("quick", TINY_EVAL), progress=False)
    assert "trained on other data than this run loads (in_channels 3 != 1" in one_line(error)


class _Payload:
    """Not a tensor nor plain data: torch's safe loader refuses it."""


def test_an_unsafe_pickle_gets_the_projects_line_not_torchs_advice(run):
    state = load_checkpoint(run / "checkpoint_best.pt", "cpu", "best", read_config(run))
    save_checkpoint(run / "checkpoint_best.pt", {**state, "extra": _Payload()})
    with pytest.raises(RunError) as error:
        load_model(run, "best")
    message = one_line(error)
    assert "never loads such a file" in message and "weights_only" not in message


def test_a_checkpoint_without_checksum_is_refused(run):
    state = load_checkpoint(run / "checkpoint_best.pt", "cpu", "best", read_config(run))
    torch.save(state, run / "checkpoint_best.pt")
    with raises(RunError, "checkpoint_best.pt", "checksum"):
        load_model(run, "best")


# --- JSON files -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["[1, 2]", '"text"', "3", "null"])
def test_a_config_json_that_is_not_an_object_is_one_line(run, run_cli, bad):
    (run / "config.json").write_text(bad)
    code, _, err = run_cli("evaluate", run, "--quiet")
    assert code == 2 and err.count("\n") == 1, err
    assert "config.json does not hold a JSON object of keys" in err


def test_truncated_json_files_are_one_line(run, sweep):
    files = {
        run / "config.json": lambda: read_config(run),
        run / "evaluation" / "config.json": lambda: evaluate(
            run, eval_config("quick", TINY_EVAL), progress=False
        ),
        sweep / "sweep.json": lambda: run_sweep(
            sweep, [SWEEP, {"alphas": (0.0,), "seeds": (0,)}], progress=False
        ),
    }
    for path, use in files.items():
        data = path.read_bytes()
        for cut in cuts(len(data), 12)[:-1]:  # the last cut drops only the final newline
            path.write_bytes(data[:cut])
            with pytest.raises((RunError, FileError)) as error:
                use()
            assert str(path) in one_line(error), (path, cut)
        path.write_bytes(data)


def test_an_unreadable_trial_status_reruns_the_trial(sweep):
    trial = sweep / "alpha=0" / "seed=0"
    for bad in ("[1]", '{"status": "do'):
        (trial / "trial.json").write_text(bad)
        trials = run_sweep(sweep, [SWEEP, {"alphas": (0.0,), "seeds": (0,)}], progress=False)
        assert trials["status"].tolist() == ["done"]
        assert json.loads((trial / "trial.json").read_text())["status"] == "done"


# --- tables -----------------------------------------------------------------------------------


def test_truncated_evaluation_parts_are_one_line(run):
    parts = sorted((run / "evaluation").glob("*.parquet"))
    assert {p.stem for p in parts} >= {"clean", "fgsm", "pgd", "dimensionality"}
    for part in parts:
        data = part.read_bytes()
        for cut in cuts(len(data), 6):
            part.write_bytes(data[:cut])
            with pytest.raises(FileError) as error:
                evaluate(run, eval_config("quick", TINY_EVAL), progress=False)
            assert str(part) in one_line(error) and "to evaluate afresh" in str(error.value)
        part.write_bytes(data)


def test_truncated_metrics_on_resume_are_one_line(run):
    (run / "metrics.parquet").write_bytes((run / "metrics.parquet").read_bytes()[:300])
    with pytest.raises(FileError) as error:
        train(run_config(), run, progress=False)
    assert "metrics.parquet is not a readable Parquet table" in one_line(error)


def test_broken_sweep_tables_are_one_line(sweep, run_cli):
    results = sweep / "results.parquet"
    trials = sweep / "trials.parquet"
    data = results.read_bytes()
    for cut in cuts(len(data), 8):
        results.write_bytes(data[:cut])
        code, _, err = run_cli("report", sweep, "--out", sweep / "report")
        assert code == 2 and err.count("\n") == 1 and str(results) in err, (cut, err)
    pd.read_parquet(trials).to_parquet(results)  # a table without metric and value
    code, _, err = run_cli("report", sweep, "--out", sweep / "report")
    assert code == 2 and "results.parquet lacks column(s) metric, value" in err, err
    results.write_bytes(data)
    trials.write_bytes(trials.read_bytes()[:100])
    code, _, err = run_cli("report", sweep, "--out", sweep / "report")
    assert code == 2 and err.count("\n") == 1 and str(trials) in err, err


def test_a_truncated_trial_evaluation_is_one_line_when_gathered(sweep):
    table = sweep / "alpha=0" / "seed=0" / "evaluation.parquet"
    table.write_bytes(table.read_bytes()[:200])
    with pytest.raises(FileError) as error:
        gather(sweep)
    assert str(table) in one_line(error) and "run the sweep again" in str(error.value)


# --- sweeps: checked up front, failures counted ------------------------------------------------


@pytest.mark.parametrize(
    "keys, words",
    [
        ({"dimensionality_corruption": "motion_blurr"}, ("unknown corruption", "motion_blurr")),
        ({"corruptions": ("brightness", "fog2")}, ("unknown corruption", "fog2")),
        ({"corruption_table": "cifar100"}, ("corruption_table", "cifar100")),
        ({"alphas": (0.0, float("nan"))}, ("alpha", "number")),
    ],
)
def test_a_bad_trial_key_stops_the_sweep_before_anything_is_written(tmp_path, keys, words):
    with raises(ConfigError, *words):
        run_sweep(tmp_path / "s", [SWEEP, {"alphas": (0.0,), "seeds": (0,)}, keys], progress=False)
    assert not (tmp_path / "s").exists()


def test_a_sweep_with_a_failed_trial_exits_non_zero(tmp_path, run_cli):
    sweep = tmp_path / "s"
    code, out, err = run_cli(
        "sweep",
        "--preset",
        "demo",
        "--out",
        sweep,
        "--quiet",
        "--set",
        "alphas=0,1e30",
        "--set",
        "seeds=0",
        "--set",
        "epochs=1",
        "--set",
        "milestones=",
        "--set",
        "evaluate=false",
        "--set",
        "workers=1",
        "--set",
        "num_threads=1",
    )
    assert code == 1, err
    assert err.count("\n") == 1 and "1 of 2 trials failed" in err
    assert str(sweep / "trials.parquet") in err and "trial.json" in err
    assert "failed: alpha=1e+30 seed=0: TrainingDiverged" in out


def test_a_resumed_trial_records_its_total_seconds(tmp_path, monkeypatch):
    trial = Trial({"alpha": 0.0, "seed": 0}, tmp_path / "trial", {**SWEEP, "epochs": 3})
    real = measure_module.measure_selectivity
    calls = {"n": 0}

    def slow_then_killed(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            time.sleep(1.0)  # the first part is slow: its time must count
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr("selectivity.train.measure_selectivity", slow_then_killed)
    with pytest.raises(KeyboardInterrupt):
        train(build(TrainConfig, trial.keys), trial.directory, progress=False)
    monkeypatch.setattr("selectivity.train.measure_selectivity", real)
    first = load_checkpoint(trial.directory / "checkpoint_last.pt")["seconds"]
    assert first >= 1.0

    record = run_trial(trial)
    assert record["status"] == "done", record["reason"]
    summary = json.loads((trial.directory / "summary.json").read_text())
    epochs = pd.read_parquet(trial.directory / "metrics.parquet")["seconds"]
    assert summary["seconds"] >= first + epochs.iloc[2]
    assert record["seconds"] >= summary["seconds"] >= epochs.sum()


# --- nothing left behind ----------------------------------------------------------------------


def test_stale_temporaries_are_cleared_in_run_evaluation_and_sweep_folders(run, sweep):
    dead = ".{}.999999999-x.tmp"
    planted = [
        run / dead.format("checkpoint_last.pt"),
        run / "evaluation" / dead.format("fgsm.parquet"),
        sweep / dead.format("results.parquet"),
        sweep / "alpha=0" / "seed=0" / dead.format("trial.json"),
    ]
    for path in planted:
        path.write_bytes(b"x" * 1000)
    train(run_config(), run, progress=False)  # finished: resumes at the end
    evaluate(run, eval_config("quick", TINY_EVAL), progress=False)
    (sweep / "alpha=0" / "seed=0" / "trial.json").unlink()  # so the trial runs again
    run_sweep(sweep, [SWEEP, {"alphas": (0.0,), "seeds": (0,)}], progress=False)
    assert temporaries(run) == [] and temporaries(sweep) == []


# --- kill -9, then the same command again ------------------------------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "selectivity.cli", *map(str, args)]


def _marked_processes(marker: str) -> list[int]:
    """Processes whose environment holds `marker`: the CLI we started and anything it started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def _kill_when(command: list[str], ready, marker: str, timeout: float = 120.0) -> int:
    """Start `command`, SIGKILL it (the process alone, not its group) once `ready()`; its pid."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SELECTIVITY_TEST_MARK": marker}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + timeout
    while not ready():
        assert process.poll() is None, f"it ended (exit {process.returncode}) before the kill"
        assert time.time() < deadline, "the kill point never came"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return process.pid


def _no_orphans(marker: str) -> None:
    deadline = time.time() + 10
    while _marked_processes(marker) and time.time() < deadline:
        time.sleep(0.1)
    assert _marked_processes(marker) == [], "processes outlived the killed command"


def test_kill_9_of_train_and_evaluate_then_rerun_gives_the_uninterrupted_results(
    tmp_path, run_cli, finished
):
    reference = finished  # trained and evaluated uninterrupted, with the same keys
    run = tmp_path / "run"
    arguments = ["train", "--preset", "digits", "--out", run, "--quiet", *set_options(RUN_KEYS)]
    marker = uuid.uuid4().hex
    pid = _kill_when(_cli(*arguments), (run / "checkpoint_last.pt").exists, marker)
    _no_orphans(marker)
    # A writer killed mid-write leaves its temporary: the rerun must clear it.
    (run / f".checkpoint_last.pt.{pid}-killed.tmp").write_bytes(b"half")
    code, _, err = run_cli(*arguments)  # the same command again, in this process (faster)
    assert code == 0, err

    arguments = ["evaluate", run, "--suite=quick", "--quiet", *set_options(TINY_EVAL)]
    marker = uuid.uuid4().hex
    pid = _kill_when(_cli(*arguments), (run / "evaluation" / "clean.parquet").exists, marker)
    _no_orphans(marker)
    (run / "evaluation" / f".pgd.parquet.{pid}-killed.tmp").write_bytes(b"half")
    code, _, err = run_cli(*arguments)
    assert code == 0, err

    pd.testing.assert_frame_equal(
        pd.read_parquet(run / "metrics.parquet").drop(columns="seconds"),
        pd.read_parquet(reference / "metrics.parquet").drop(columns="seconds"),
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(run / "evaluation.parquet"),
        pd.read_parquet(reference / "evaluation.parquet"),
    )
    assert temporaries(run) == []


def test_kill_9_of_a_sweep_with_two_workers_leaves_no_orphans(tmp_path, run_cli):
    keys = ["alphas=-1,0", "seeds=0", "epochs=3", "milestones=", "evaluate=false", "num_threads=1"]
    arguments = ["sweep", "--preset", "demo", "--out", tmp_path / "s", "--quiet"]
    arguments += [f"--set={k}" for k in keys]
    trials = [tmp_path / "s" / f"alpha={a}" / "seed=0" for a in (-1, 0)]
    marker = uuid.uuid4().hex
    _kill_when(
        _cli(*arguments, "--set=workers=2"),
        lambda: all((t / "metrics.parquet").exists() for t in trials),
        marker,
    )
    # Both workers were training; with their parent gone they must end too (so must the
    # multiprocessing resource tracker), not race the rerun below.
    _no_orphans(marker)
    code, _, err = run_cli(*arguments, "--set=workers=1")  # workers may change between runs
    assert code == 0, err
    reference = run_sweep(
        tmp_path / "reference",
        [SWEEP, {"alphas": (-1.0, 0.0), "seeds": (0,), "epochs": 3}],
        progress=False,
    )
    assert (reference["status"] == "done").all()
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "s" / "results.parquet"),
        pd.read_parquet(tmp_path / "reference" / "results.parquet"),
    )
    assert temporaries(tmp_path / "s") == []

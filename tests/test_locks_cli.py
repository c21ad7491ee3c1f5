"""One writer per folder for every command (issue 20): a second process on a folder is refused
in one line naming the holder's pid (exit 2), or waits with --wait; the lock is taken in the
command layer, so a refused command has written nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from configs import TINY_EVAL, set_options
from selectivity import commands
from selectivity.lock import folder_lock

TINY_TRAIN = ["--preset", "digits", "--set", "epochs=1", "--set", "milestones=", "--quiet"]
TINY_EVALUATE = ["--suite", "quick", *set_options(TINY_EVAL), "--quiet"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (the lock file aside) with its bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ".selectivity.lock"
    }


def refused_by_me(code: int, err: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and f"in use by process {os.getpid()}" in err, err
    assert "--wait" in err, err


def start_cli(*args: object) -> subprocess.Popen[str]:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "selectivity.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A digits run of one epoch, evaluated on a few images (as TINY_TRAIN and TINY_EVALUATE
    make it; here, in this process: it only prepares a folder). Tests that write copy it."""
    run = tmp_path_factory.mktemp("locks") / "run"
    commands.train(run, "digits", ["epochs=1", "milestones=", "num_threads=1"], progress=False)
    keys = [option.removeprefix("--set=") for option in set_options(TINY_EVAL)]
    commands.evaluate(commands.ModelSource(run), "quick", items=keys, progress=False)
    return run


def test_a_second_train_into_a_held_folder_is_refused_and_writes_nothing(run_cli, tmp_path):
    # The case: two trains into one folder with different configs. The first holds the
    # folder and has written its config; the second is refused in one line, so the folder keeps
    # the first's config. The second runs in this process: the lock is per open file
    # description, so it is refused as another process is (the --wait tests below start real
    # second processes).
    out = tmp_path / "run"
    with folder_lock(out):
        (out / "config.json").write_text('{"alpha": -1.0}')
        code, _, err = run_cli("train", "--out", out, *TINY_TRAIN, "--set", "alpha=1")
        refused_by_me(code, err)
        assert snapshot(out) == {"config.json": b'{"alpha": -1.0}'}


def test_train_with_wait_waits_for_the_holder_then_trains(tmp_path):
    out = tmp_path / "run"
    with folder_lock(out):
        waiter = start_cli("train", "--out", out, *TINY_TRAIN, "--wait")
        assert waiter.stderr is not None
        line = waiter.stderr.readline()  # the barrier: it has seen the lock and waits
        assert f"waiting for process {os.getpid()}" in line and str(out) in line, line
        assert waiter.poll() is None and not (out / "config.json").exists()
    _, err = waiter.communicate(timeout=600)
    assert waiter.returncode == 0, err
    assert (out / "checkpoint_best.pt").is_file() and not (out / ".selectivity.lock").exists()


def test_evaluate_measure_and_compare_refuse_a_held_folder(run_cli, trained_run, tmp_path):
    before = snapshot(trained_run)
    with folder_lock(trained_run):
        # A second evaluation with other settings (the dimensionality_variance case).
        code, _, err = run_cli(
            "evaluate", trained_run, *TINY_EVALUATE, "--set", "dimensionality_variance=0.5"
        )
        refused_by_me(code, err)
        code, _, err = run_cli("measure", trained_run)
        refused_by_me(code, err)
    assert snapshot(trained_run) == before
    out = tmp_path / "comparison"
    with folder_lock(out):
        code, _, err = run_cli("compare", trained_run, "--out", out)
        refused_by_me(code, err)
    assert not out.exists()


def test_corrupt_refuses_a_held_folder(run_cli, tmp_path):
    out = tmp_path / "corrupted"
    with folder_lock(out):
        code, _, err = run_cli("corrupt", "--out", out, "--corruption", "fog", "--quiet")
        refused_by_me(code, err)
    assert not out.exists()


def test_evaluate_with_wait_waits_for_the_holder(trained_run, tmp_path):
    # A copy without its table (its finished parts kept): the waiter writes it again.
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "evaluation.parquet").unlink()
    held = threading.Event()
    with folder_lock(run):
        waiter = start_cli("evaluate", run, *TINY_EVALUATE, "--wait")
        assert waiter.stderr is not None
        line = waiter.stderr.readline()
        assert f"waiting for process {os.getpid()}" in line, line
        held.set()
        assert not (run / "evaluation.parquet").exists()
    _, err = waiter.communicate(timeout=600)
    assert held.is_set() and waiter.returncode == 0, err
    assert (run / "evaluation.parquet").is_file()


def test_a_refused_evaluation_value_leaves_a_finished_evaluation_untouched(run_cli, trained_run):
    # Before: evaluation/ was deleted, four parts recomputed, then a traceback.
    before = snapshot(trained_run)
    assert "evaluation.parquet" in before
    code, _, err = run_cli("evaluate", trained_run, "--set", "jacobian_projections=0")
    assert code == 2 and err.count("\n") == 1 and "jacobian_projections must be >= 1" in err
    assert snapshot(trained_run) == before


def test_report_refuses_a_held_output_folder(run_cli, tmp_path):
    import pandas as pd

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    rows = [{"alpha": 0.0, "seed": 0, "metric": "test_accuracy", "value": 0.9}]
    pd.DataFrame(rows).to_parquet(sweep / "results.parquet")
    with folder_lock(sweep):  # the default output: the sweep folder, held by its sweep
        code, _, err = run_cli("report", sweep)
        refused_by_me(code, err)
    assert sorted(path.name for path in sweep.iterdir()) == ["results.parquet"]


def test_sweep_refuses_a_held_folder_and_names_wait(run_cli, tmp_path):
    out = tmp_path / "sweep"
    keys = ("--set", "alphas=0", "--set", "seeds=0", "--set", "evaluate=false", "--quiet")
    with folder_lock(out):
        code, _, err = run_cli("sweep", "--preset", "demo", "--out", out, *keys)
        refused_by_me(code, err)
    assert not out.exists()


def test_wait_is_an_option_of_every_writing_command(run_cli):
    for command in (
        "train",
        "measure",
        "evaluate",
        "corrupt",
        "sweep",
        "report",
        "compare",
        "demo",
    ):
        code, out, _ = run_cli(command, "--help")
        assert code == 0 and "--wait" in out, command

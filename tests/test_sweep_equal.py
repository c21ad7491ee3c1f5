"""A sweep's numbers do not depend on how it was run: threads fixed at its start, a trial
evaluated by hand with other settings evaluated again, one sweep per folder at a time, and a
start that fails leaves nothing behind."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from configs import DIGITS
from selectivity import schema
from selectivity.config import SweepConfig
from selectivity.data import DataError
from selectivity.executors import available_cores
from selectivity.lock import FolderLocked
from selectivity.sweep import run_sweep, trial_threads

# The digits preset for one epoch, without num_threads: these tests are about the sweep's share.
TINY_CLEAN = {
    **DIGITS,
    "milestones": (),
    "epochs": 1,
    "evaluate": False,
    "generate_corruptions": False,
}


def test_threads_per_trial_are_fixed_by_the_sweep_settings(monkeypatch):
    monkeypatch.setattr("selectivity.sweep.available_cores", lambda: 8)
    local = SweepConfig(workers=4)
    assert trial_threads(local, trials=20) == 2
    assert trial_threads(local, trials=2) == 4  # a small sweep: only 2 ever run at once
    assert trial_threads(local, trials=20, recorded=2) == 2
    assert trial_threads(local, trials=20, recorded=True) == 2  # not a thread count: ignored
    assert trial_threads(SweepConfig(), trials=20) == 2  # workers none: one per 2 cores
    assert trial_threads(SweepConfig(executor="ray", cpus_per_trial=3.0), trials=20) == 3


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this system")
def test_the_share_of_cores_reads_the_affinity_mask_not_the_machine():
    # Under taskset or a Slurm cpuset, os.cpu_count() still counts the whole machine: a share
    # of that would run more torch threads than the process has cores.
    saved = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(saved)})
        assert available_cores() == 1
        assert trial_threads(SweepConfig(workers=1), trials=4) == 1
    finally:
        os.sched_setaffinity(0, saved)
    assert available_cores() == len(saved)


def test_a_resumed_sweep_with_fewer_trials_than_workers_gives_equal_numbers(tmp_path, monkeypatch):
    # 2 trials on 2 workers (each in its own process): 1 thread each on 2 cores. Rerun with one
    # trial to redo (it runs in this process), the old scheduling gave that trial both.
    monkeypatch.setattr("selectivity.sweep.available_cores", lambda: 2)
    keys = [TINY_CLEAN, {"alphas": (0.0, 1.0), "seeds": (0,), "workers": 2}]
    first = run_sweep(tmp_path / "s", keys, progress=False)
    assert (first["status"] == "done").all(), first["reason"].tolist()
    reference = pd.read_parquet(tmp_path / "s" / "results.parquet")
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["trial_threads"] == 1
    # An interrupted trial is one whose folder holds no finished record yet.
    shutil.rmtree(tmp_path / "s" / "alpha=1" / "seed=0")
    again = run_sweep(tmp_path / "s", keys, progress=False)
    assert (again["status"] == "done").all()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s" / "results.parquet"), reference)
    threads = {
        alpha: json.loads(
            (tmp_path / "s" / f"alpha={alpha}" / "seed=0" / "config.json").read_text()
        )["num_threads"]
        for alpha in ("0", "1")
    }
    assert threads == {"0": 1, "1": 1}


@pytest.fixture
def fake_trials(monkeypatch):
    """Trials that do not train: each records its keys, writes one row (its lr) and, like an
    evaluation does, the settings it evaluated with."""
    seen: list[dict] = []

    def fake(keys, directory, progress=False):
        from selectivity.config import EvalConfig, build, to_dict

        seen.append(dict(keys))
        folder = Path(directory)
        rows = [{"metric": "test_accuracy", "value": keys["lr"]}]
        schema.frame(rows).to_parquet(folder / "evaluation.parquet", index=False)
        (folder / "evaluation").mkdir(exist_ok=True)
        settings = {"config": {"eval": to_dict(build(EvalConfig, keys))}}
        (folder / "evaluation" / "config.json").write_text(json.dumps(settings, default=str))
        return 0.0

    monkeypatch.setattr("selectivity.sweep.train_and_evaluate", fake)
    return seen


def test_a_trial_evaluated_by_hand_with_other_settings_is_evaluated_again(
    tmp_path, fake_trials, capsys
):
    keys = [TINY_CLEAN, {"alphas": (0.0, 1.0), "seeds": (0,), "workers": 1}]
    run_sweep(tmp_path / "s", keys, progress=False)
    assert len(fake_trials) == 2
    # `selectivity evaluate` by hand on one trial, with another PGD radius and its own rows.
    trial = tmp_path / "s" / "alpha=1" / "seed=0"
    stamp = json.loads((trial / "evaluation" / "config.json").read_text())
    stamp["config"]["eval"]["pgd_eps"] = 0.5
    (trial / "evaluation" / "config.json").write_text(json.dumps(stamp))
    rows = [{"metric": "test_accuracy", "value": 99.0}]
    schema.frame(rows).to_parquet(trial / "evaluation.parquet", index=False)
    fake_trials.clear()
    run_sweep(tmp_path / "s", keys, progress=True)
    assert [k["alpha"] for k in fake_trials] == [1.0]  # only that one, again
    assert "alpha=1 seed=0 was evaluated with other settings (pgd_eps)" in capsys.readouterr().out
    results = pd.read_parquet(tmp_path / "s" / "results.parquet")
    assert sorted(results["value"]) == [0.05, 0.05]  # the hand-made row is not gathered
    fake_trials.clear()
    run_sweep(tmp_path / "s", keys, progress=False)
    assert fake_trials == []  # agreed now: nothing to do


HOLD_SWEEP_LOCK = """
import sys
from selectivity.lock import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_two_sweeps_into_one_folder_the_second_is_refused(tmp_path, fake_trials):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SWEEP_LOCK, str(tmp_path / "s")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        keys = [TINY_CLEAN, {"alphas": (0.0,), "seeds": (0,), "workers": 1}]
        with pytest.raises(FolderLocked, match=f"in use by process {holder.pid} "):
            run_sweep(tmp_path / "s", keys, progress=False)
        assert fake_trials == [] and not (tmp_path / "s" / "sweep.json").exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    run_sweep(tmp_path / "s", keys, progress=False)  # once the first is done
    assert len(fake_trials) == 1


def test_a_trial_folder_in_use_fails_only_that_trial(tmp_path, fake_trials):
    trial = tmp_path / "s" / "alpha=1" / "seed=0"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SWEEP_LOCK, str(trial)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        keys = [TINY_CLEAN, {"alphas": (0.0, 1.0), "seeds": (0,), "workers": 1}]
        trials = run_sweep(tmp_path / "s", keys, progress=False)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    status = trials.set_index("alpha")["status"].to_dict()
    assert status == {0.0: "done", 1.0: "failed"}
    assert f"in use by process {holder.pid}" in trials.set_index("alpha").loc[1.0, "reason"]


def _image_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for index in range(5):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


def test_a_start_with_missing_data_leaves_nothing_and_the_fix_is_accepted(tmp_path, fake_trials):
    keys = [TINY_CLEAN, {"alphas": (0.0,), "seeds": (0,), "workers": 1, "dataset": "folder"}]
    with pytest.raises(DataError, match="image folder not found"):
        run_sweep(tmp_path / "s", [*keys, {"data_dir": str(tmp_path / "missing")}], progress=False)
    assert not (tmp_path / "s").exists() and fake_trials == []
    data = _image_folder(tmp_path / "images")
    trials = run_sweep(tmp_path / "s", [*keys, {"data_dir": str(data)}], progress=False)
    assert (trials["status"] == "done").all()


def test_a_grid_value_too_long_for_a_folder_name_is_refused_before_any_work(tmp_path, run_cli):
    long_word = "x" * 40 + "/" * 80  # 120 characters, 280 bytes once percent-encoded
    out = tmp_path / "s"
    code, _, err = run_cli(
        "sweep", "--preset", "demo", "--out", out, "--grid", f"data_dir={long_word}"
    )
    assert code == 2 and err.count("\n") == 1, err
    assert "over the file system's 255: use a shorter value of data_dir" in err
    assert not out.exists()

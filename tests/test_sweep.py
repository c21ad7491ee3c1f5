import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from configs import TINY_EVAL, TINY_SWEEP, set_options
from messages import names, raises
from selectivity import schema
from selectivity.config import ConfigError
from selectivity.files import FileError, FolderError
from selectivity.schema import COLUMNS as SCHEMA_COLUMNS
from selectivity.schema import TRIAL
from selectivity.sweep import gather, run_sweep

TINY = {**TINY_SWEEP, "corruptions": ("brightness", "gaussian_noise"), "generate_corruptions": True}
COLUMNS = [*TRIAL, *SCHEMA_COLUMNS]


def test_grid_gathers_one_tidy_table_and_records_failures(tmp_path):
    trials = run_sweep(
        tmp_path / "s", [TINY, {"alphas": (0.0, -1.0, 1e30), "seeds": (0,)}], progress=False
    )
    assert trials.set_index("alpha")["status"].to_dict() == {
        -1.0: "done",
        0.0: "done",
        1e30: "failed",
    }
    assert "TrainingDiverged" in trials.loc[trials["alpha"] == 1e30, "reason"].item()
    results = pd.read_parquet(tmp_path / "s" / "results.parquet")
    assert list(results.columns) == COLUMNS
    assert sorted(results["alpha"].unique()) == [-1.0, 0.0]
    # The settings travel with every gathered row.
    pgd = results[results["metric"] == "pgd_accuracy"]
    assert (pgd["step_size"] == TINY["pgd_step_size"]).all()
    assert (pgd["samples"] == TINY["max_samples"]).all()
    assert (results.loc[results["metric"] == "test_accuracy", "split"] == "test").all()
    assert (tmp_path / "s" / "corruptions" / "brightness.npy").exists()
    assert not (
        tmp_path / "s" / "alpha=0" / "seed=0" / "corruptions"
    ).exists()  # shared, not per trial
    # Again: finished trials are skipped (their files untouched), the failed one is retried.
    stamp = (tmp_path / "s" / "alpha=0" / "seed=0" / "checkpoint_last.pt").stat().st_mtime_ns
    run_sweep(tmp_path / "s", [TINY, {"alphas": (0.0, -1.0, 1e30), "seeds": (0,)}], progress=False)
    assert (
        tmp_path / "s" / "alpha=0" / "seed=0" / "checkpoint_last.pt"
    ).stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "keys, words",
    [
        ({"alphas": ()}, ("empty",)),
        ({"nope": 1}, ("unknown key", "'nope'")),
        ({"executor": "spark"}, ("executor", "'spark'")),
    ],
)
def test_bad_config_fails_before_any_work(tmp_path, keys, words):
    with raises(ConfigError, *words):
        run_sweep(tmp_path / "s", [TINY, keys], progress=False)
    assert not (tmp_path / "s").exists()


def test_a_folder_belongs_to_one_sweep(tmp_path):
    run_sweep(
        tmp_path / "s", [TINY, {"alphas": (0.0,), "seeds": (0,), "evaluate": False}], progress=False
    )
    # Without evaluation, the clean part still lands in the results table.
    results = pd.read_parquet(tmp_path / "s" / "results.parquet")
    assert set(results["metric"]) == {
        "test_accuracy",
        "val_accuracy",
        "chance_accuracy",
        "selectivity",
        "selectivity_live",
        "silent_fraction",
    }
    with raises(FolderError, str(tmp_path / "s"), "lr: 0.05", "0.01"):
        run_sweep(
            tmp_path / "s",
            [TINY, {"alphas": (0.0,), "seeds": (0,), "evaluate": False, "lr": 0.01}],
            progress=False,
        )


def _listening_addresses(root: int) -> set[str]:
    """Local addresses (hex, as /proc/net writes them) of TCP sockets that process `root` or its
    descendants listen on."""
    listening = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                listening[fields[9]] = fields[1].split(":")[0]
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
    family, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in family} - family
        family, grew = family | more, bool(more)
    found = set()
    for pid in family:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:[") and link[8:-1] in listening:
                        found.add(listening[link[8:-1]])
    return found


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def test_ray_executor_runs_trials_on_a_local_ray(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    # Ray's socket paths must stay short: a short folder of our own for its temporary files.
    short = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(short))
    seen = {}
    real_shutdown = ray.shutdown

    def shutdown(*args, **kwargs):
        seen["listening"] = _listening_addresses(os.getpid())
        seen["files"] = list(short.iterdir())
        return real_shutdown(*args, **kwargs)

    monkeypatch.setattr(ray, "shutdown", shutdown)
    # A general grid (folders lr=0.05/alpha=<a>/seed=0): Ray runs any trial the local way does.
    grid = {"alpha": (0.0, -1.0), "lr": (0.05,)}
    same_threads = {"seeds": (0,), "num_threads": 1, "grid": grid}
    trials = run_sweep(tmp_path / "s", [TINY, same_threads, {"executor": "ray"}], progress=False)
    assert (trials["status"] == "done").all(), trials["reason"].tolist()
    # The local instance listened on the loopback interface only, and its files are gone.
    assert seen["listening"] and seen["listening"] <= LOOPBACK, seen["listening"]
    assert seen["files"] and list(short.iterdir()) == []
    short.rmdir()
    local = run_sweep(tmp_path / "local", [TINY, same_threads], progress=False)
    assert (local["status"] == "done").all()
    ray_results = pd.read_parquet(tmp_path / "s" / "results.parquet")
    local_results = pd.read_parquet(tmp_path / "local" / "results.parquet")
    pd.testing.assert_frame_equal(ray_results, local_results)
    assert list(ray_results.columns[:3]) == ["lr", "alpha", "seed"]
    assert (tmp_path / "s" / "lr=0.05" / "alpha=-1" / "seed=0" / "trial.json").exists()


def _sweep_command(out: Path) -> list[str]:
    # Six epochs a trial: time to kill the second one between its first checkpoint and its end.
    keys = {**TINY_EVAL, "corruptions": ("brightness", "gaussian_noise"), "epochs": 6}
    keys |= {"alphas": (-1, 0), "seeds": (0,), "workers": 1}
    return [
        sys.executable,
        "-m",
        "selectivity.cli",
        "sweep",
        "--preset",
        "demo",
        "--out",
        str(out),
        "--quiet",
        *set_options(keys),
    ]


def test_sigkill_mid_trial_then_rerun_gives_the_uninterrupted_results(tmp_path, run_cli):
    # The uninterrupted reference and the rerun go through the same command in this process;
    # only the run that is killed needs a process of its own.
    code, _, err = run_cli(*_sweep_command(tmp_path / "ref")[3:])
    assert code == 0, err

    out = tmp_path / "killed"
    process = subprocess.Popen(
        _sweep_command(out),
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    second = out / "alpha=0" / "seed=0"
    deadline = time.time() + 300
    # Kill once the first trial is finished and the second has a checkpoint but is not done.
    while time.time() < deadline and not (
        (out / "alpha=-1" / "seed=0" / "trial.json").exists()
        and (second / "checkpoint_last.pt").exists()
    ):
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert (second / "checkpoint_last.pt").exists() and not (second / "trial.json").exists(), (
        "the kill missed the second trial"
    )
    first_stamp = (out / "alpha=-1" / "seed=0" / "checkpoint_last.pt").stat().st_mtime_ns

    code, _, err = run_cli(*_sweep_command(out)[3:])
    assert code == 0, err
    assert (out / "alpha=-1" / "seed=0" / "checkpoint_last.pt").stat().st_mtime_ns == first_stamp
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "results.parquet"),
        pd.read_parquet(tmp_path / "ref" / "results.parquet"),
    )
    assert json.loads((second / "trial.json").read_text())["status"] == "done"


def test_trial_folders_are_named_losslessly(tmp_path):
    from selectivity.sweep import alpha_name, trial_dir

    # Today's names stay (existing sweep folders keep working) ...
    for alpha, name in ((-1.0, "-1"), (0.0, "0"), (0.1, "0.1"), (10.0, "10"), (1e-5, "1e-05")):
        assert trial_dir(tmp_path, {"alpha": alpha, "seed": 3}) == (
            tmp_path / f"alpha={name}" / "seed=3"
        )
    # ... and every name reads back as its alpha exactly.
    for alpha in (0.1234567, 0.1234568, 1 / 3, -2.5e-7, 1e6, 123456789.0, 1e30):
        assert float(alpha_name(alpha)) == alpha
    # Two alphas differing in the 7th digit: two trials, two folders, two rows each.
    alphas = (0.1234567, 0.1234568)
    assert trial_dir(tmp_path, {"alpha": alphas[0], "seed": 0}) != trial_dir(
        tmp_path, {"alpha": alphas[1], "seed": 0}
    )
    keys = {**TINY, "evaluate": False, "alphas": alphas, "seeds": (0,)}
    trials = run_sweep(tmp_path / "s", [keys], progress=False)
    assert list(trials["status"]) == ["done", "done"]
    assert sorted(p.name for p in (tmp_path / "s").glob("alpha=*")) == [
        "alpha=0.1234567",
        "alpha=0.1234568",
    ]
    results = pd.read_parquet(tmp_path / "s" / "results.parquet")
    assert sorted(results["alpha"].unique()) == list(alphas)
    # gather, reading alpha back from the folder alone, finds both.
    assert sorted(gather(tmp_path / "s")["alpha"].unique()) == list(alphas)


# --- grids over any key ------------------------------------------------------------------------

CLEAN = {**TINY, "evaluate": False}


def _trial_folders(sweep_dir: Path) -> list[str]:
    return sorted(p.parent.relative_to(sweep_dir).as_posix() for p in sweep_dir.rglob("trial.json"))


def test_a_union_of_grids_names_runs_and_gathers_each_trial_once(tmp_path):
    out = tmp_path / "s"
    grids = [{"lr": (0.05, 0.02)}, {"alpha": (0.0, -1.0)}]
    # Two worker processes: the trials travel to them as they are.
    keys = {**CLEAN, "seeds": (0,), "workers": 2}
    trials = run_sweep(out, [keys], grids=grids, progress=False)
    # lr 0.05 x alpha 0 is in both grids: it runs once.
    expected = ["lr=0.02/alpha=0/seed=0", "lr=0.05/alpha=-1/seed=0", "lr=0.05/alpha=0/seed=0"]
    assert _trial_folders(out) == expected
    assert list(trials.columns) == ["lr", "alpha", "seed", "status", "reason", "seconds"]
    assert (trials["status"] == "done").all(), trials["reason"].tolist()
    for folder in expected:  # each trial trained with the values its folder names
        config = json.loads((out / folder / "config.json").read_text())
        assert f"lr={config['lr']:g}/alpha={config['alpha']:g}/seed={config['seed']}" == folder
    results = pd.read_parquet(out / "results.parquet")
    assert list(results.columns) == ["lr", "alpha", "seed", *SCHEMA_COLUMNS]
    assert schema.trial_columns(results) == ("lr", "alpha", "seed")
    sizes = results.groupby(["lr", "alpha", "seed"]).size().to_dict()
    assert set(sizes) == {(0.02, 0.0, 0), (0.05, -1.0, 0), (0.05, 0.0, 0)}
    assert len(set(sizes.values())) == 1  # every trial its own rows, once
    assert str(results["lr"].dtype) == "float64" and str(results["seed"].dtype) == "int64"
    pd.testing.assert_frame_equal(gather(out), results)  # from the folder alone
    assert json.loads((out / "sweep.json").read_text())["swept_keys"] == ["lr", "alpha", "seed"]

    # More values of a swept key extend the sweep: only the new trial runs.
    stamp = (out / expected[0] / "checkpoint_last.pt").stat().st_mtime_ns
    grids[0] = {"lr": (0.05, 0.02, 0.01)}
    keys["workers"] = 1
    assert len(run_sweep(out, [keys], grids=grids, progress=False)) == 4
    assert (out / expected[0] / "checkpoint_last.pt").stat().st_mtime_ns == stamp
    assert "lr=0.01/alpha=0/seed=0" in _trial_folders(out)

    # Other swept keys are another sweep (another folder layout).
    with raises(FolderError, str(out), "swept_keys: ['lr', 'alpha', 'seed']"):
        run_sweep(out, [keys], grids=[{"weight_decay": (0.0, 1e-4)}], progress=False)
    # A trial.json that records another trial than its folder names is refused by gather.
    record = out / "lr=0.02" / "alpha=0" / "seed=0" / "trial.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "lr": 0.03}))
    with raises(FileError, str(record), "lr=0.03 alpha=0 seed=0"):
        gather(out)


def test_an_alpha_x_seed_folder_from_before_grids_resumes_and_gathers(tmp_path):
    out = tmp_path / "s"
    run_sweep(out, [CLEAN, {"alphas": (0.0,), "seeds": (0,)}], progress=False)
    # The layout and records of alpha x seed are today's ...
    assert _trial_folders(out) == ["alpha=0/seed=0"]
    record = json.loads((out / "alpha=0" / "seed=0" / "trial.json").read_text())
    assert set(record) == {"alpha", "seed", "status", "reason", "seconds"}
    # ... and sweep.json as it was written before grids: no swept_keys nor grids, and without
    # a key added since (channels_last: its default is what ran).
    stamp = json.loads((out / "sweep.json").read_text())
    for key in ("swept_keys", "grids", "channels_last"):
        del stamp[key]
    (out / "sweep.json").write_text(json.dumps(stamp))
    first = (out / "alpha=0" / "seed=0" / "checkpoint_last.pt").stat().st_mtime_ns
    trials = run_sweep(out, [CLEAN, {"alphas": (0.0,), "seeds": (0, 1)}], progress=False)
    assert trials[["alpha", "seed"]].values.tolist() == [[0.0, 0], [0.0, 1]]
    assert (out / "alpha=0" / "seed=0" / "checkpoint_last.pt").stat().st_mtime_ns == first
    results = pd.read_parquet(out / "results.parquet")
    assert list(results.columns) == COLUMNS
    assert sorted(results["seed"].unique()) == [0, 1]
    pd.testing.assert_frame_equal(gather(out), results)
    # The key the old record lacks counts as its default, not as anything.
    with raises(FolderError, str(out), "channels_last: False", "True"):
        run_sweep(out, [CLEAN, {"seeds": (0,), "channels_last": True}], progress=False)


@pytest.fixture
def fake_trials(monkeypatch):
    """Trials that do not train: each records its keys and writes one row (its lr)."""
    seen: list[dict] = []

    def fake(keys, directory, progress=False):
        seen.append(dict(keys))
        Path(directory).mkdir(parents=True, exist_ok=True)
        rows = [{"metric": "test_accuracy", "value": keys["lr"]}]
        schema.frame(rows).to_parquet(Path(directory) / "evaluation.parquet", index=False)
        return 0.0

    shared: list[Path] = []
    monkeypatch.setattr("selectivity.sweep.train_and_evaluate", fake)
    monkeypatch.setattr(
        "selectivity.sweep.generate_shared_corruptions", lambda keys, root, p: shared.append(root)
    )
    return seen, shared


def test_each_trial_gets_its_values_and_typed_columns(tmp_path, fake_trials):
    seen, _ = fake_trials
    grid = {"image_size": [None, 12], "normalize": [True, False], "lr": [0.5]}
    run_sweep(tmp_path / "s", [CLEAN, {"seeds": (3,)}], grids=[grid], progress=False)
    assert sorted((k["image_size"] or 0, k["normalize"], k["lr"], k["seed"]) for k in seen) == [
        (0, False, 0.5, 3),
        (0, True, 0.5, 3),
        (12, False, 0.5, 3),
        (12, True, 0.5, 3),
    ]
    assert "image_size=none/lr=0.5/normalize=false/alpha=0/seed=3" in _trial_folders(tmp_path / "s")
    results = pd.read_parquet(tmp_path / "s" / "results.parquet")
    assert results.dtypes.astype(str)[:5].to_dict() == {
        "image_size": "Int64",
        "lr": "float64",
        "normalize": "bool",
        "alpha": "float64",
        "seed": "int64",
    }
    assert (results["value"] == 0.5).all() and len(results) == 4


def test_a_swept_key_of_the_corruption_set_gives_each_trial_its_own(tmp_path, fake_trials):
    seen, shared = fake_trials
    keys = {**TINY, "seeds": (0,), "generate_corruptions": True}
    run_sweep(tmp_path / "a", [keys], grids=[{"lr": [0.1, 0.2]}], progress=False)
    assert shared == [tmp_path / "a" / "corruptions"]  # one set, shared
    assert {k["corruptions_dir"] for k in seen} == {str((tmp_path / "a" / "corruptions").resolve())}
    assert not any(k["generate_corruptions"] for k in seen)
    seen.clear()
    shared.clear()
    run_sweep(tmp_path / "b", [keys], grids=[{"corruption_seed": [0, 1]}], progress=False)
    assert shared == []  # the set differs by trial: each generates its own
    assert [(k["corruption_seed"], k["corruptions_dir"]) for k in seen] == [(0, None), (1, None)]
    assert all(k["generate_corruptions"] for k in seen)


def test_cli_grid_end_to_end(tmp_path, run_cli):
    out = tmp_path / "s"
    sets = ["epochs=1", "milestones=", "evaluate=false", "workers=1", "num_threads=1"]
    code, stdout, err = run_cli(
        "sweep",
        "--preset",
        "demo",
        "--out",
        out,
        "--quiet",
        "--grid",
        "lr=0.05,0.02",
        "--grid",
        "seed=0,1",
        *[f"--set={s}" for s in sets],
    )
    assert code == 0, err
    assert "4 of 4 trials done" in stdout
    assert _trial_folders(out) == [
        f"lr={lr}/alpha=0/seed={seed}" for lr in ("0.02", "0.05") for seed in (0, 1)
    ]
    results = pd.read_parquet(out / "results.parquet")
    assert list(results.columns) == ["lr", "alpha", "seed", *SCHEMA_COLUMNS]
    # The preset's alphas are the grid of a sweep without --grid: here alpha stays at 0.
    assert set(results["alpha"]) == {0.0} and set(results["seed"]) == {0, 1}
    trials = pd.read_parquet(out / "trials.parquet")
    assert list(trials.columns) == ["lr", "alpha", "seed", "status", "reason", "seconds"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--grid", "nope=1"], ("unknown grid key", "'nope'")),
        (["--grid", "lr="], ("lr", "no values")),
        (["--grid", "lr=0.1", "--grid", "lr=0.2"], ("lr", "twice")),
        (["--grid", "lr=0.1", "--set", "lr=0.2"], ("lr", "--set", "--grid")),
        (["--grid", "lr=0.1", "--set", "alphas=0"], ("alphas", "alpha")),
        (["--grid", "lr=0,0.1"], ("lr", "> 0")),
        (["--grid", "milestones=3"], ("milestones", "list")),
    ],
)
def test_cli_grid_errors_are_one_line_before_any_work(tmp_path, run_cli, args, words):
    code, _, err = run_cli("sweep", "--preset", "demo", "--out", tmp_path / "s", *args)
    assert code == 2 and err.count("\n") == 1, err
    names(err, *words)
    assert not (tmp_path / "s").exists()


def test_cli_failed_trials_are_named_by_every_swept_key(tmp_path, run_cli, monkeypatch):
    def diverge(keys, directory, progress=False):
        if keys["lr"] > 1:
            raise RuntimeError("diverged")
        Path(directory).mkdir(parents=True, exist_ok=True)
        schema.frame([]).to_parquet(Path(directory) / "evaluation.parquet", index=False)
        return 0.0

    monkeypatch.setattr("selectivity.sweep.train_and_evaluate", diverge)
    code, stdout, _ = run_cli(
        "sweep", "--preset", "demo", "--out", tmp_path / "s", "--quiet",
        "--grid", "lr=0.1,10", "--set", "seeds=0", "--set", "workers=1", "--set", "evaluate=false",
    )  # fmt: skip
    assert code == 1
    assert "failed: lr=10 alpha=0 seed=0: RuntimeError: diverged" in stdout


def test_gather_refuses_trial_records_it_cannot_read(tmp_path, fake_trials):
    out = tmp_path / "s"
    run_sweep(out, [CLEAN, {"seeds": (0,)}], grids=[{"lr": [0.5]}], progress=False)
    record = out / "lr=0.5" / "alpha=0" / "seed=0" / "trial.json"
    good = json.loads(record.read_text())
    for damaged, words in (
        ({k: v for k, v in good.items() if k != "lr"}, ("lacks", "lr")),
        ({**good, "lr": "fast"}, ("lr", "float")),
    ):
        record.write_text(json.dumps(damaged))
        with raises(FileError, str(record), *words):
            gather(out)
    record.write_text(json.dumps(good))
    assert gather(out)["lr"].tolist() == [0.5]
    stamp = json.loads((out / "sweep.json").read_text())
    (out / "sweep.json").write_text(json.dumps({**stamp, "swept_keys": "lr"}))
    with raises(FileError, "sweep.json", "swept_keys"):
        gather(out)


def test_gather_of_trial_folders_without_a_sweep_record_reads_alpha_x_seed(tmp_path, fake_trials):
    out = tmp_path / "s"
    run_sweep(out, [CLEAN, {"alphas": (0.0, -1.0), "seeds": (0,)}], progress=False)
    (out / "sweep.json").unlink()
    assert gather(out)[["alpha", "seed"]].values.tolist() == [[-1.0, 0], [0.0, 0]]

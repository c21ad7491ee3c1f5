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

from selectivity.config import ConfigError
from selectivity.files import FolderError
from selectivity.schema import COLUMNS as SCHEMA_COLUMNS
from selectivity.schema import TRIAL
from selectivity.sweep import run_sweep

TINY = {
    "model": "digitsnet",
    "dataset": "digits",
    "batch_size": 64,
    "lr": 0.05,
    "milestones": (),
    "epochs": 2,
    "eval_batch_size": 512,
    "corruptions": ("brightness", "gaussian_noise"),
    "generate_corruptions": True,
    "max_samples": 80,
    "analysis_samples": 40,
    "fgsm_eps": (0.0, 8 / 255),
    "pgd_eps": 8 / 255,
    "pgd_step_size": 2 / 255,
    "pgd_steps": (0, 2),
    "dimensionality_pgd_steps": 2,
    "gradient_max_units": 2,
    "workers": 1,
}
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
    assert (pgd["step_size"] == 2 / 255).all() and (pgd["samples"] == 80).all()
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
    "keys, message",
    [
        ({"alphas": ()}, "grid is empty"),
        ({"nope": 1}, "unknown key"),
        ({"executor": "spark"}, "executor"),
    ],
)
def test_bad_config_fails_before_any_work(tmp_path, keys, message):
    with pytest.raises(ConfigError, match=message):
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
    with pytest.raises(FolderError, match=r"different keys \(lr: .* there, 0.01 here\)"):
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
    same_threads = {"alphas": (0.0, -1.0), "seeds": (0,), "num_threads": 1}
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


def _sweep_command(out: Path) -> list[str]:
    sets = [
        "alphas=-1,0",
        "seeds=0",
        "epochs=6",
        "corruptions=brightness,gaussian_noise",
        "max_samples=80",
        "analysis_samples=40",
        "fgsm_eps=0,8/255",
        "pgd_steps=0,2",
        "dimensionality_pgd_steps=2",
        "gradient_max_units=2",
        "workers=1",
    ]
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
        *[f"--set={s}" for s in sets],
    ]


def test_sigkill_mid_trial_then_rerun_gives_the_uninterrupted_results(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = subprocess.run(
        _sweep_command(tmp_path / "ref"), env=env, capture_output=True, text=True, timeout=600
    )
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "killed"
    process = subprocess.Popen(
        _sweep_command(out),
        env=env,
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

    rerun = subprocess.run(
        _sweep_command(out), env=env, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr
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
        assert trial_dir(tmp_path, alpha, 3) == tmp_path / f"alpha={name}" / "seed=3"
    # ... and every name reads back as its alpha exactly.
    for alpha in (0.1234567, 0.1234568, 1 / 3, -2.5e-7, 1e6, 123456789.0, 1e30):
        assert float(alpha_name(alpha)) == alpha
    # Two alphas differing in the 7th digit: two trials, two folders, two rows each.
    alphas = (0.1234567, 0.1234568)
    assert trial_dir(tmp_path, alphas[0], 0) != trial_dir(tmp_path, alphas[1], 0)
    keys = {**TINY, "epochs": 1, "evaluate": False, "alphas": alphas, "seeds": (0,)}
    trials = run_sweep(tmp_path / "s", [keys], progress=False)
    assert list(trials["status"]) == ["done", "done"]
    assert sorted(p.name for p in (tmp_path / "s").glob("alpha=*")) == [
        "alpha=0.1234567",
        "alpha=0.1234568",
    ]
    results = pd.read_parquet(tmp_path / "s" / "results.parquet")
    assert sorted(results["alpha"].unique()) == list(alphas)
    # gather, reading alpha back from the folder names alone, finds both.
    from selectivity.sweep import gather

    assert sorted(gather(tmp_path / "s")["alpha"].unique()) == list(alphas)

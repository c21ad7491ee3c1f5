"""Every failure of the command line is one line on stderr, exit code 2, and leaves nothing behind.

Usage errors (with whichever click the installed typer brings), file-system errors (read-only
output, a file where a folder should be, a full disk) and every value that is checked before any
work starts. Read-only and full disks are real tmpfs mounts when the tests run as root and may
mount; otherwise read-only is a folder without write permission and a full disk is injected
where a real one shows itself (posix_fallocate's ENOSPC, torch.save's "unexpected pos").
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from configs import DIGITS, fast, set_options
from messages import names, raises
from selectivity import files
from selectivity.config import ConfigError, TrainConfig, build, to_dict
from selectivity.train import _one_class_risk, train

QUICK_TRAIN = ("--quiet", *set_options(fast(1)))


def one_line(err: str) -> str:
    """The error line, after checking it is the only line on stderr."""
    assert err.startswith("selectivity: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def leftovers(folder: Path) -> list[str]:
    """Temporary files anywhere under `folder` (none may survive a failed write)."""
    return sorted(str(p) for p in folder.rglob("*.tmp")) if folder.exists() else []


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished one-epoch digits run, to be copied, never changed."""
    run = tmp_path_factory.mktemp("trained") / "run"
    config = build(TrainConfig, DIGITS, fast(1))
    train(config, run, progress=False)
    return run


# --- mounts ----------------------------------------------------------------------------------


def _mount(target: Path, options: str) -> bool:
    """A tmpfs at `target` (created); False where mounting is not possible here."""
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True
    )
    return done.returncode == 0


def _unmount(target: Path) -> None:
    if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture
def readonly(tmp_path):
    """make(name, contents=None) -> a read-only folder holding a copy of `contents` (a folder)."""
    mounted: list[Path] = []
    chmodded: list[Path] = []

    def make(name: str, contents: Path | None = None) -> Path:
        target = tmp_path / name
        if _mount(target, "size=4m"):
            mounted.append(target)
            if contents is not None:
                shutil.copytree(contents, target, dirs_exist_ok=True)
            remount = ["mount", "-o", "remount,ro", str(target)]
            assert subprocess.run(remount, capture_output=True).returncode == 0
            return target
        if os.geteuid() == 0:
            pytest.skip("running as root without mount: root writes through any permission")
        if contents is not None:
            shutil.copytree(contents, target, dirs_exist_ok=True)
        for folder in [target, *(p for p in target.rglob("*") if p.is_dir())]:
            folder.chmod(0o555)
            chmodded.append(folder)
        return target

    yield make
    for folder in chmodded:
        folder.chmod(0o755)
    for target in mounted:
        _unmount(target)


@pytest.fixture
def small_disk(tmp_path):
    """make(name, size) -> (folder, real): a tmpfs of `size` when mounting works, else a plain
    folder (real=False: the test injects the full disk itself)."""
    mounted: list[Path] = []

    def make(name: str, size: str) -> tuple[Path, bool]:
        target = tmp_path / name
        if _mount(target, f"size={size}"):
            mounted.append(target)
            return target, True
        return target, False

    yield make
    for target in mounted:
        _unmount(target)


# --- usage errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected", "hint"),
    [
        (("train", "--preset", "digits"), "Missing option '--out'", "selectivity train"),
        (("mesure", "runs/d"), "No such command 'mesure'", "selectivity"),
        (("corrupt", "--set", "seed=3", "--out", "x"), "corruption_seed", None),
        (("train", "--out", "x", "--bogus"), "--bogus", "selectivity train"),
        (("train", "--out", "x", "--set"), "requires an argument", None),
        (("measure",), "give a RUN_DIR or --model", None),
        (("report", "a", "b"), "unexpected extra argument", "selectivity report"),
        (
            ("train", "--out", "x", "--set", "suite=quick"),
            "train takes training keys, not suite",
            None,
        ),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(
    tmp_path, monkeypatch, run_cli, args, expected, hint
):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(*args)
    assert code == 2 and out == ""
    assert expected in one_line(err)
    if hint is not None:
        assert f"Try '{hint} --help' for help." in err
    assert list(tmp_path.iterdir()) == []


def test_no_arguments_lists_the_commands_without_a_traceback(run_cli):
    code, out, err = run_cli()
    assert code == 2
    assert "Traceback" not in out + err
    assert all(name in out + err for name in ("train", "measure", "evaluate", "corrupt", "sweep"))


def test_help_exits_0(run_cli):
    code, out, _ = run_cli("train", "--help")
    assert code == 0 and "--out" in out


def test_the_console_script_exit_code(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "selectivity.cli", "train", "--preset", "digits"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "Missing option '--out'" in one_line(done.stderr)


# --- every command takes --set and --device the same way -------------------------------------


def test_corrupt_takes_set_and_device_like_its_options(tmp_path, run_cli):
    by_options = ("--seed", "3", "--corruption", "fog", "--device", "cpu", "--quiet")
    by_keys = ("--set", "corruption_seed=3", "--set", "corruptions=fog", "--set", "device=cpu")
    code, _, err = run_cli("corrupt", "--out", tmp_path / "a", *by_options)
    assert code == 0, err
    code, _, err = run_cli("corrupt", "--out", tmp_path / "b", *by_keys, "--quiet")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "a" / "fog.npy"), np.load(tmp_path / "b" / "fog.npy"))
    # severities is a key too: two severities, two row blocks.
    code, _, err = run_cli(
        "corrupt", "--out", tmp_path / "c", *by_keys, "--set", "severities=1,5", "--quiet"
    )
    assert code == 0, err
    assert (
        np.load(tmp_path / "c" / "fog.npy").shape[0]
        == 2 * np.load(tmp_path / "a" / "fog.npy").shape[0] // 5
    )


# --- validation before anything is written ---------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (("model=nope",), ("unknown model", "'nope'")),
        (("num_threads=0",), ("num_threads", "in 1..")),
        (("num_threads=-2",), ("num_threads", "in 1..")),
        (("selectivity_layers=relu1,nope",), ("selectivity_layers", "nope")),
        (("device=meta",), ("device", "auto, cpu, cuda", "'meta'")),
        (("device=mps",), ("device", "'mps'")),
        (("device=cpu:1",), ("device", "'cpu:1'")),
        (("image_size=0",), ("image_size", "in 8..1024")),
        (("image_size=-3",), ("image_size", "in 8..1024")),
        (("batch_size=100000",), ("batch_size", "training set")),
        (("batch_size=2", "alpha=1"), ("batch_size 2", "alpha")),
        (("batch_size=3", "alpha=-1"), ("batch_size >= ",)),
    ],
)
def test_train_checks_every_value_before_writing(tmp_path, run_cli, key, expected):
    sets = [item for k in key for item in ("--set", k)]
    out = tmp_path / "run"
    code, _, err = run_cli("train", "--preset", "digits", "--out", out, *QUICK_TRAIN, *sets)
    assert code == 2
    names(one_line(err), *expected)
    assert not out.exists()


def test_the_suggested_batch_size_is_the_smallest_safe_one(tmp_path, run_cli):
    _, _, err = run_cli(
        "train", "--preset", "digits", "--out", tmp_path / "r", *QUICK_TRAIN,
        "--set", "batch_size=2", "--set", "alpha=1",
    )  # fmt: skip
    enough = int(err.rsplit(">= ", 1)[1])
    from selectivity.data import load_dataset

    train_set = load_dataset("digits", None, 0, None).train
    counts = torch.bincount(train_set.labels).tolist()
    risk = lambda b: _one_class_risk(counts, b, len(train_set) // b)  # noqa: E731 - one epoch
    assert risk(enough) <= 0.01 < risk(enough - 1)


def test_an_empty_layer_list_is_refused():
    # From a JSON config file: `--set selectivity_layers=` means none, i.e. every ReLU.
    with raises(ConfigError, "selectivity_layers", "no layer"):
        build(TrainConfig, DIGITS, {"selectivity_layers": []})


def test_one_class_risk_matches_counting():
    # Two classes of two images, batches of two: 2 of the 6 pairs are one class.
    assert _one_class_risk([2, 2], 2, 1) == pytest.approx(2 / 6)
    assert _one_class_risk([2, 2], 2, 2) == pytest.approx(1 - (4 / 6) ** 2)
    assert _one_class_risk([3, 1], 4, 1) == 0.0
    assert _one_class_risk([5], 3, 1) == 1.0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--generate-corruptions", "--set", "corruptions=fog,nope"), ("corruption", "'nope'")),
        (("--set", "corruption_table=nope"), ("corruption_table", "'nope'")),
        (("--set", "dimensionality_corruption=blurry"), ("corruption", "'blurry'")),
        (("--set", "dimensionality_severity=6"), ("dimensionality_severity", "1..5")),
        (("--device", "cpu:1"), ("device", "'cpu:1'")),
        (("--device", "mps"), ("device", "'mps'")),
        (("--set", "epochs=3"), ("evaluate", "evaluation keys", "epochs")),
    ],
)
def test_evaluate_checks_before_writing(tmp_path, trained_run, run_cli, args, expected):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = sorted(p.name for p in run.iterdir())
    code, _, err = run_cli("evaluate", run, "--suite", "quick", "--quiet", *args)
    assert code == 2
    names(one_line(err), *expected)
    assert sorted(p.name for p in run.iterdir()) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--device", "mps"), ("device", "'mps'")),
        (("--set", "device=cpu:1"), ("device", "'cpu:1'")),
        (("--set", "selectivity_layers=nope"), ("selectivity_layers", "nope")),
    ],
)
def test_measure_checks_before_writing(tmp_path, trained_run, run_cli, args, expected):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    code, _, err = run_cli("measure", run, *args)
    assert code == 2
    names(one_line(err), *expected)
    assert not (run / "selectivity.parquet").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--table", "nope"), ("corruption_table", "'nope'")),
        (("--set", "corruption_table=nope"), ("corruption_table", "'nope'")),
        (("--corruption", "nope"), ("corruption", "'nope'")),
        (("--set", "corruptions=fog,nope"), ("corruption", "'nope'")),
        (("--set", "severities=0"), ("severities", "1..5")),
        (("--device", "meta"), ("device", "'meta'")),
        (("--image-size", "0"), ("image_size", "in 8..1024")),
        (("--split", "train"), ("--split", "test", "val")),
    ],
)
def test_corrupt_checks_before_writing(tmp_path, run_cli, args, expected):
    out = tmp_path / "c"
    code, _, err = run_cli("corrupt", "--out", out, "--quiet", *args)
    assert code == 2
    names(one_line(err), *expected)
    assert not out.exists()


def test_a_failed_start_leaves_the_folder_usable(tmp_path, run_cli):
    run = tmp_path / "run"
    code, _, err = run_cli(
        "train", "--preset", "digits", "--out", run, *QUICK_TRAIN,
        "--set", "selectivity_layers=relu9",
    )  # fmt: skip
    assert code == 2 and "relu9" in one_line(err)
    assert not run.exists()
    # A start that got as far as its config and no further (killed, or a full disk at the first
    # checkpoint) holds no run: the corrected command is not refused.
    run.mkdir()
    other = build(TrainConfig, DIGITS, {"alpha": 3.0})
    (run / "config.json").write_text(json.dumps(to_dict(other)))
    code, _, err = run_cli(
        "train", "--preset", "digits", "--out", run, *QUICK_TRAIN,
        "--set", "selectivity_layers=relu1",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["selectivity_layers"] == ["relu1"]
    # A folder with a run in it still refuses another config.
    code, _, err = run_cli("train", "--preset", "digits", "--out", run, *QUICK_TRAIN)
    assert code == 2 and "holds a run with a different config" in one_line(err)


# --- the file system -------------------------------------------------------------------------


def test_a_file_where_a_folder_should_be(tmp_path, trained_run, run_cli):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    sweep = ("--set", "alphas=0", "--set", "seeds=0", "--set", "evaluate=false")
    cases = [
        ("train", "--preset", "digits", "--out", blocker / "run", *QUICK_TRAIN),
        ("train", "--preset", "digits", "--out", blocker, *QUICK_TRAIN),
        ("corrupt", "--out", blocker / "c", "--quiet", "--corruption", "fog"),
        ("sweep", "--preset", "demo", "--out", blocker / "s", "--quiet", *sweep),
    ]
    for args in cases:
        code, _, err = run_cli(*args)
        assert code == 2, args
        assert f"{blocker} is a file, not a folder" in one_line(err)
    # In a run folder: selectivity.parquet is a folder where measure writes a file.
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "selectivity.parquet").mkdir()
    code, _, err = run_cli("measure", run, "--device", "cpu")
    assert code == 2 and "selectivity.parquet: Is a directory" in one_line(err)
    assert leftovers(tmp_path) == []


def test_read_only_output(tmp_path, trained_run, readonly, run_cli):
    sealed = readonly("sealed")
    sealed_run = readonly("sealed-run", contents=trained_run)
    # A run holding the parts of an evaluation with other settings, which evaluate clears first.
    stale = tmp_path / "stale"
    shutil.copytree(trained_run, stale)
    (stale / "evaluation").mkdir()
    (stale / "evaluation" / "config.json").write_text('{"fingerprint": "other settings"}')
    (stale / "evaluation" / "clean.parquet").write_bytes(b"old part")
    sealed_stale = readonly("sealed-stale", contents=stale)
    sweep = ("--set", "alphas=0", "--set", "seeds=0", "--set", "evaluate=false")
    cases = [
        (("train", "--preset", "digits", "--out", sealed / "run", *QUICK_TRAIN), sealed / "run"),
        (("corrupt", "--out", sealed / "c", "--quiet", "--corruption", "fog"), sealed / "c"),
        (("sweep", "--preset", "demo", "--out", sealed / "s", "--quiet", *sweep), sealed / "s"),
        (("measure", sealed_run, "--device", "cpu"), sealed_run / "selectivity.parquet"),
        (("evaluate", sealed_run, "--suite", "quick", "--quiet"), sealed_run / "evaluation"),
        (("evaluate", sealed_stale, "--suite", "quick", "--quiet"), sealed_stale / "evaluation"),
    ]
    for args, path in cases:
        code, _, err = run_cli(*args)
        assert code == 2, args
        line = one_line(err)
        # An existing folder is refused at its lock file, taken before any work.
        assert (str(path) in line or str(path.parent / ".selectivity.lock") in line) and (
            "Read-only file system" in line or "Permission denied" in line
        )
    assert list(sealed.iterdir()) == []
    assert sorted(p.name for p in sealed_run.iterdir()) == sorted(
        p.name for p in trained_run.iterdir()
    )


def test_a_full_disk_during_corrupt_is_one_line_not_sigbus(
    tmp_path, small_disk, monkeypatch, run_cli
):
    # labels.npy (14 KB) and one corruption (460 KB) fit in 600 KB; the second (fog comes after
    # snow) does not.
    disk, real = small_disk("disk", "600k")
    out = disk / "c"
    args = ["corrupt", "--out", str(out), "--quiet", "--corruption", "fog", "--corruption", "snow"]
    if real:
        # A subprocess: the SIGBUS of a memory-mapped write on a full disk would kill pytest.
        done = subprocess.run(
            [sys.executable, "-m", "selectivity.cli", *args], capture_output=True, text=True
        )
        code, err = done.returncode, done.stderr
    else:
        # What a full disk does to the reservation of the second file.
        real_fallocate = os.posix_fallocate

        def fallocate(fd: int, offset: int, length: int) -> None:
            if ".fog.npy." in os.readlink(f"/proc/self/fd/{fd}"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_fallocate(fd, offset, length)

        monkeypatch.setattr(os, "posix_fallocate", fallocate)
        code, _, err = run_cli(*args)
    assert code == 2, err
    assert f"{out / 'fog.npy'}: No space left on device" in one_line(err)
    assert sorted(p.name for p in out.iterdir()) == ["labels.npy", "metadata.json", "snow.npy"]
    assert json.loads((out / "metadata.json").read_text())["corruptions"] == ["snow"]


def test_a_full_disk_during_train_is_one_line(tmp_path, small_disk, monkeypatch, run_cli):
    # config.json, metrics and the best checkpoint (160 KB) fit; the last checkpoint does not.
    disk, real = small_disk("disk", "300k")
    if not real:
        # What torch.save says on a full disk, on a disk with no room left.
        from selectivity import runs

        def full(state, path):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576")

        monkeypatch.setattr(runs.torch, "save", full)
        monkeypatch.setattr(files.shutil, "disk_usage", lambda _: SimpleNamespace(free=0))
    run = disk / "run"
    code, _, err = run_cli("train", "--preset", "digits", "--out", run, *QUICK_TRAIN)
    assert code == 2
    assert "checkpoint" in one_line(err) and "No space left on device" in err
    assert leftovers(disk) == []
    assert not (run / "checkpoint_last.pt").exists()


def test_atomic_path_names_the_file_and_removes_its_temporary(tmp_path, monkeypatch):
    target = tmp_path / "table.parquet"
    # A writer's OSError without a file name (pyarrow, plain writes) names the target.
    with raises(OSError, "No space left") as raised, files.atomic_path(target):
        raise OSError(errno.ENOSPC, "Error writing bytes to file")
    assert raised.value.filename == str(target) and raised.value.errno == errno.ENOSPC
    # One that fails in its own words (torch.save, np.save) on a disk with no room left.
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _: SimpleNamespace(free=0))
    with pytest.raises(OSError) as raised, files.atomic_path(target):
        raise RuntimeError("unexpected pos 576 vs 534")
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert isinstance(raised.value.__cause__, RuntimeError)
    # With room left, the writer's own error stands.
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _: SimpleNamespace(free=1 << 40))
    with raises(RuntimeError, "unexpected pos"), files.atomic_path(target):
        raise RuntimeError("unexpected pos 576 vs 534")
    assert list(tmp_path.iterdir()) == []


def test_a_corruption_set_folder_of_other_settings_or_damaged_is_one_line(tmp_path, run_cli):
    out = tmp_path / "c"
    args = ("corrupt", "--dataset", "digits", "--corruption", "fog", "--quiet", "--out", out)
    assert run_cli(*args)[0] == 0
    written = (out / "fog.npy").stat().st_mtime_ns
    code, _, err = run_cli(*args, "--seed", "3")
    assert code == 2
    assert "holds a corruption set made with other settings (seed: 0 there, 3 here)" in one_line(
        err
    )
    assert (out / "fog.npy").stat().st_mtime_ns == written  # refused, nothing replaced
    (out / "metadata.json").write_text('{"table": ')
    code, _, err = run_cli(*args)
    assert code == 2 and f"{out / 'metadata.json'} is not valid JSON" in one_line(err)


def test_a_warning_reaches_the_user_as_one_line(tmp_path):
    # A model with a GELU beside its ReLU: the GELU is not measured by default, and the CLI
    # says so in one line, not with Python's file, line number and source line.
    (tmp_path / "gelu_and_relu.py").write_text(
        "from torch import nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GELU(), nn.Flatten(),\n"
        "                         nn.Linear(4 * 16 * 16, 8), nn.ReLU(), nn.Linear(8, 10))\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import gelu_and_relu

        torch.save(gelu_and_relu.make().state_dict(), tmp_path / "w.pt")
    finally:
        sys.path.remove(str(tmp_path))
    weights = ["--weights", str(tmp_path / "w.pt")]
    paths = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "selectivity.cli",
            "measure",
            "--model",
            "gelu_and_relu:make",
            *weights,
            "--set",
            "dataset=digits",
            "--device",
            "cpu",
        ],
        # The model's module importable, beside whatever PYTHONPATH this run has (src/).
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *paths])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("selectivity: warning: not measured as units (not ReLU): 1 (GELU)")

"""A sweep stopped by Ctrl-C or SIGTERM, or losing a worker: exit codes, one line, no leftover
processes, bounded time. Sweeps run as `selectivity sweep` in a session of their own, and
signals go to the whole process group, as a terminal sends them."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from selectivity.executors import clear_dead_local_rays

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")


def _command(out: Path, alphas: str, epochs: int, workers: int) -> list[str]:
    sets = [
        f"alphas={alphas}",
        "seeds=0",
        f"epochs={epochs}",
        "milestones=",
        "evaluate=false",
        f"workers={workers}",
        "num_threads=1",
    ]
    return [
        sys.executable, "-m", "selectivity.cli", "sweep", "--preset", "demo", "--out", str(out),
        "--quiet", *[f"--set={s}" for s in sets],
    ]  # fmt: skip


def _start(out: Path, alphas: str, epochs: int, workers: int) -> subprocess.Popen:
    return subprocess.Popen(
        _command(out, alphas, epochs, workers),
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _trial_processes(pid: int) -> list[int]:
    """The trial processes of the sweep `pid`: the children of its fork server (not, say, a
    resource tracker, nor the server itself)."""
    parents: dict[int, int] = {}
    commands: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                commands[int(entry.name)] = (entry / "cmdline").read_bytes()
                parents[int(entry.name)] = int(stat[1])
    servers = {p for p, parent in parents.items() if parent == pid and b"forkserver" in commands[p]}
    return sorted(p for p, parent in parents.items() if parent in servers)


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _group_gone(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


def _training(out: Path, count: int) -> bool:
    """Whether `count` trials have started training (their folder holds a config)."""
    return len(list(out.glob("alpha=*/seed=0/config.json"))) >= count


@pytest.mark.parametrize(
    "signals, code, line",
    [
        ([signal.SIGINT], 130, "selectivity: interrupted; finished files are kept"),
        ([signal.SIGTERM], 143, "selectivity: terminated; finished files are kept"),
        ([signal.SIGINT, signal.SIGINT], 130, "selectivity: interrupted again: stopped at once"),
    ],
    ids=["ctrl-c", "sigterm", "ctrl-c-twice"],
)
def test_a_signal_ends_the_running_trials_and_exits_in_one_line(tmp_path, signals, code, line):
    out = tmp_path / "s"
    # Two workers, four long trials: two run when the signal comes, two are queued.
    process = _start(out, "-1,0,1,2", epochs=200, workers=2)
    try:
        assert _wait_for(lambda: _training(out, 2), 240), "the trials did not start"
        sent = time.monotonic()
        for number in signals:
            os.killpg(process.pid, number)
            time.sleep(0.05)
        _, err = process.communicate(timeout=60)
        assert time.monotonic() - sent < 30
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == code, err
    assert "Traceback" not in err and err.startswith("selectivity: "), err
    if len(signals) == 1:
        assert err.startswith(line) and err.count("\n") == 1, err
        assert not (out / ".selectivity.lock").exists()  # let go of on the way out
    else:
        # The second came while the first was being handled (one line), or after its line.
        assert line in err and err.count("\n") <= 2, err
    assert _wait_for(lambda: _group_gone(process.pid), 10), "trial processes were left running"
    # No trial was started after the signal, and none is recorded as failed: a rerun resumes.
    assert len(list(out.glob("alpha=*/seed=0/config.json"))) == 2
    assert list(out.glob("alpha=*/seed=0/trial.json")) == []


def test_a_worker_killed_fails_only_its_own_trial(tmp_path):
    out = tmp_path / "s"
    process = _start(out, "-1,0", epochs=20, workers=2)
    try:
        assert _wait_for(lambda: len(_trial_processes(process.pid)) == 2 and _training(out, 2), 240)
        victim = _trial_processes(process.pid)[0]
        os.kill(victim, signal.SIGKILL)  # as the out-of-memory killer would
        _, err = process.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 1, err
    assert "1 of 2 trials failed" in err and "Traceback" not in err
    records = [json.loads(p.read_text()) for p in sorted(out.glob("alpha=*/seed=0/trial.json"))]
    assert sorted(r["status"] for r in records) == ["done", "failed"]
    failed = next(r for r in records if r["status"] == "failed")
    assert failed["reason"] == "worker died: killed by SIGKILL (out of memory?)"
    trials = pd.read_parquet(out / "trials.parquet")
    assert sorted(trials["reason"]) == ["", failed["reason"]]
    assert _wait_for(lambda: _group_gone(process.pid), 10)


def test_a_dead_sweeps_local_ray_is_cleared_by_the_next(tmp_path):
    # What a local Ray leaves after its sweep's kill -9: its private folder, naming the dead
    # sweep, and processes whose command lines name the folder (here a stand-in agent).
    folder = tmp_path / "ray-dead"
    (folder / "ray").mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (folder / "selectivity-owner").write_text(f"{gone.pid} 1\n")
    agent = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", f"--temp-dir={folder}/ray"]
    )
    # A live sweep's Ray is left alone.
    live = tmp_path / "ray-live"
    live.mkdir()
    stat = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    (live / "selectivity-owner").write_text(f"{os.getpid()} {stat[19]}\n")
    try:
        assert clear_dead_local_rays(tmp_path) == [folder]
        assert agent.wait(timeout=10) == -signal.SIGKILL
        assert not folder.exists() and live.exists()
    finally:
        agent.kill()


def _processes_naming(folder: Path) -> list[int]:
    """Processes whose command line or open files name `folder` (as the clearing finds them)."""
    needle = str(folder).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                links = [os.readlink(fd).encode() for fd in (entry / "fd").iterdir()]
                if needle in (entry / "cmdline").read_bytes() or any(needle in x for x in links):
                    found.append(int(entry.name))
    return found


def test_kill_9_of_a_ray_sweep_leaves_agents_that_the_next_start_clears(tmp_path):
    pytest.importorskip("ray")
    import tempfile

    # Ray's socket paths must stay short: a short temporary folder of this test's own.
    short = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))
    command = [*_command(tmp_path / "s", "0", epochs=200, workers=1), "--set=executor=ray"]
    process = subprocess.Popen(
        command,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(short)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if not _wait_for(lambda: _training(tmp_path / "s", 1), 120):
            pytest.skip("Ray took over 2 minutes to start a trial here")
        (private,) = short.glob("ray-*")
        os.kill(process.pid, signal.SIGKILL)  # the driver alone, as an out-of-memory kill
        process.wait(timeout=30)
        time.sleep(2)
        assert _processes_naming(private), "nothing was left to clear"
        assert clear_dead_local_rays(short) == [private]
        assert _wait_for(lambda: not _processes_naming(private), 10)
        assert not private.exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for pid in _processes_naming(short):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(short, ignore_errors=True)

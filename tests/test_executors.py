"""The local executor's trial processes: forked from a fork server that outlives a sweep, yet each
sees the sweep's environment as it is when the trial starts; spawned where no fork server is."""

import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from selectivity.executors import local_executor

FORK_SERVER = sys.platform.startswith("linux")


def _what_the_trial_sees(trial: str, threads: int) -> dict:
    return {
        "value": os.environ.get("SELECTIVITY_TEST_VALUE"),
        "pid": os.getpid(),
        "parent": os.getppid(),
        "threads": threads,
    }


def _run(trials: list[str], run=_what_the_trial_sees) -> dict[str, dict]:
    """The record of each trial, run by two local workers on one thread each."""
    records: dict[str, dict] = {}
    local_executor(
        trials,
        workers=2,
        threads=1,
        run=run,
        failed=lambda trial, reason: {"failed": reason},
        on_done=records.__setitem__,
    )
    return records


@pytest.mark.skipif(not FORK_SERVER, reason="trials are forked from a server on Linux only")
def test_trials_forked_from_one_server_see_the_environment_as_it_is_when_they_start(monkeypatch):
    monkeypatch.setenv("SELECTIVITY_TEST_VALUE", "first")
    first = _run(["a", "b"])
    monkeypatch.setenv("SELECTIVITY_TEST_VALUE", "second")  # the server started before this
    second = _run(["c"])
    assert {t: r["value"] for t, r in {**first, **second}.items()} == {
        "a": "first",
        "b": "first",
        "c": "second",
    }
    servers = {r["parent"] for r in (*first.values(), *second.values())}
    assert len(servers) == 1 and os.getpid() not in servers  # one server, not this process
    assert {r["threads"] for r in first.values()} == {1}
    assert len({r["pid"] for r in (*first.values(), *second.values())}) == 3


def test_without_a_fork_server_each_trial_is_spawned(monkeypatch):
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    monkeypatch.setenv("SELECTIVITY_TEST_VALUE", "spawned")
    (record,) = _run(["a"]).values()
    assert record["value"] == "spawned" and record["parent"] == os.getpid()


def _report_then_sleep(trial: str, threads: int) -> dict:
    if trial.startswith("/"):  # a file to name this process's parent in, then a long trial
        with open(trial + ".tmp", "w") as file:
            file.write(f"{os.getppid()} {os.getpid()}")
        os.rename(trial + ".tmp", trial)
        time.sleep(120)
    return {"parent": os.getppid()}


def _running(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped by whoever adopted it, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not FORK_SERVER, reason="trials are forked from a server on Linux only")
def test_a_killed_fork_server_fails_its_running_trial_and_the_next_sweep_starts_another(
    tmp_path,
):
    named = tmp_path / "parent"

    def kill_the_server() -> None:
        deadline = time.monotonic() + 60
        while not named.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        server = int(named.read_text().split()[0])
        os.kill(server, signal.SIGKILL)  # as the out-of-memory killer would

    killer = threading.Thread(target=kill_the_server)
    killer.start()
    started = time.monotonic()
    records = _run([str(named)], run=_report_then_sleep)
    killer.join()
    assert time.monotonic() - started < 60
    server, trial = map(int, named.read_text().split())
    deadline = time.monotonic() + 10
    while _running(trial) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _running(trial), "the trial outlived its fork server"
    assert records[str(named)]["failed"] == (
        "worker died: exit code 255, or its fork server was killed (out of memory?)"
    )
    (record,) = _run(["after"]).values()  # a new server
    assert "failed" not in record and record["parent"] != server

"""The local executor's trial processes: forked from a fork server that outlives a sweep, yet each
sees the sweep's environment as it is when the trial starts; spawned where no fork server is."""

import multiprocessing
import os

import pytest

from selectivity.executors import local_executor


def _what_the_trial_sees(trial: str, threads: int) -> dict:
    return {
        "value": os.environ.get("SELECTIVITY_TEST_VALUE"),
        "pid": os.getpid(),
        "parent": os.getppid(),
        "threads": threads,
    }


def _run(trials: list[str]) -> dict[str, dict]:
    records: dict[str, dict] = {}
    local_executor(
        trials,
        workers=2,
        threads=1,
        run=_what_the_trial_sees,
        failed=lambda trial, reason: {"failed": reason},
        on_done=records.__setitem__,
    )
    return records


@pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server here"
)
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

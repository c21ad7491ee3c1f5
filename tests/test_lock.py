"""One writer per folder: folder_lock between processes (a barrier, kill -9, waiting)."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from selectivity.lock import LOCK_NAME, FolderLocked, folder_lock, lock_holder

# A holder in another process: takes the lock, says so on stdout (the barrier), holds it until
# its stdin closes.
HOLDER = """
import sys
from selectivity.lock import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def _holder(folder: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def test_a_second_process_is_refused_in_one_line_naming_the_holder(tmp_path):
    holder = _holder(tmp_path / "run")
    try:
        with pytest.raises(FolderLocked) as refused, folder_lock(tmp_path / "run"):
            pass
        message = str(refused.value)
        assert f"process {holder.pid}" in message and "\n" not in message
        assert str(tmp_path / "run") in message
        assert lock_holder(tmp_path / "run").startswith(f"process {holder.pid} (")
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    # The holder let go: its lock file and the folder it created (left empty) are gone.
    assert not (tmp_path / "run").exists()


def test_kill_9_of_the_holder_frees_the_lock(tmp_path):
    holder = _holder(tmp_path / "run")
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    # The killed holder's lock file stays, naming a dead process; the kernel released its lock.
    assert (tmp_path / "run" / LOCK_NAME).exists()
    started = time.monotonic()
    with folder_lock(tmp_path / "run"):
        assert lock_holder(tmp_path / "run").startswith(f"process {os.getpid()}")
    assert time.monotonic() - started < 5
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    assert (tmp_path / "run").is_dir()  # it existed before this lock: kept


def test_wait_blocks_until_the_holder_is_done(tmp_path):
    holder = _holder(tmp_path / "run")
    told: list[str] = []
    order: list[str] = []

    def waiter() -> None:
        with folder_lock(tmp_path / "run", wait=True, waiting=told.append):
            order.append("acquired")

    thread = threading.Thread(target=waiter)
    thread.start()
    deadline = time.monotonic() + 30
    while not told and time.monotonic() < deadline:
        time.sleep(0.01)
    assert told and f"process {holder.pid}" in told[0]
    assert order == []  # still waiting while the holder holds it
    order.append("released")
    holder.stdin.close()
    holder.wait(timeout=30)
    thread.join(timeout=30)
    assert order == ["released", "acquired"]


def test_one_process_is_refused_a_folder_it_already_holds(tmp_path):
    with folder_lock(tmp_path) as folder:
        assert folder == tmp_path
        with pytest.raises(FolderLocked, match=f"process {os.getpid()}"), folder_lock(tmp_path):
            pass
    with folder_lock(tmp_path):  # and the first release frees it
        pass


def test_a_failed_block_releases_the_lock_and_leaves_no_new_folder(tmp_path):
    with pytest.raises(ValueError), folder_lock(tmp_path / "new"):
        raise ValueError("a start that failed")
    assert not (tmp_path / "new").exists()
    with folder_lock(tmp_path / "kept"):
        (tmp_path / "kept" / "config.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["config.json"]

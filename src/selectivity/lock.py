"""One writer per folder: an advisory lock on a file in the folder.

    with folder_lock(run_dir):              # refused at once when another process holds it
        ...
    with folder_lock(run_dir, wait=True):   # waits until the holder is done
        ...

The lock is `fcntl.flock` on FOLDER/.selectivity.lock, which records the holder's pid and
command line for the refusal message. The kernel releases a flock when the last descriptor of
the lock file closes, so a holder killed by kill -9 (or an out-of-memory kill) never leaves a
stale lock behind, unlike a lock file whose mere existence is the lock. Like git's index.lock,
the lock file is removed when the holder is done (so a failed start leaves no file behind); a
waiter that got the lock on a file removed meanwhile takes it again on the new one.

The lock is advisory: it keeps selectivity's own commands apart (train, evaluate, measure,
corrupt, sweep and report on one folder), not other programs. It is per open file description:
a process that takes it twice on one folder is refused the second time too (nothing in
selectivity nests the same folder), and a child process does not inherit it (the descriptor is
close-on-exec; the spawned workers of a sweep do not hold the sweep's lock).

On systems without fcntl (Windows) the lock does nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from selectivity.files import FileError

__all__ = ["LOCK_NAME", "FolderLocked", "folder_lock", "lock_holder"]

LOCK_NAME = ".selectivity.lock"

if sys.platform != "win32":
    import fcntl


class FolderLocked(FileError):
    """Another process writes into the folder; the message is one line naming its pid."""


def lock_holder(folder: str | Path) -> str:
    """'process 1234 (selectivity train --out run)': who the lock file says holds the lock of
    `folder`; 'another process' when it says nothing readable."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text(errors="replace").strip()
    except OSError:
        return "another process"
    pid, _, command = text.partition(" ")
    if not pid.isdigit():
        return "another process"
    return f"process {pid} ({command})" if command else f"process {pid}"


def _command_line() -> str:
    """This process's command line, short: the program's name and its arguments."""
    arguments = list(sys.argv) or [sys.executable]
    arguments[0] = Path(arguments[0]).name
    if arguments[0] in ("__main__.py", "cli.py", "-c", "-m"):
        arguments[0] = "selectivity"
    text = " ".join(arguments).replace("\n", " ")
    return text if len(text) <= 200 else text[:197] + "..."


def _same_file(descriptor: int, path: Path) -> bool:
    """Whether `path` still names the file open as `descriptor` (a holder that finished removes
    the lock file; a lock on the removed file keeps no one out)."""
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _acquire(path: Path, wait: bool, waiting: Callable[[str], None] | None) -> int:
    """An open descriptor of `path` holding its exclusive flock."""
    told = False
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            # The folder was removed by a holder that created it and found it empty.
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise FolderLocked(
                        f"{path.parent} is in use by {_holder_now(path)}; wait for it to finish "
                        "or give --wait (one writer per folder)"
                    ) from None
                if waiting is not None and not told:
                    waiting(f"waiting for {_holder_now(path)} to finish with {path.parent}")
                    told = True
                fcntl.flock(descriptor, fcntl.LOCK_EX)
            if _same_file(descriptor, path):
                return descriptor
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)  # the holder removed the file as it let go: take the new one


def _holder_now(path: Path) -> str:
    """The holder named in the lock file, read again briefly if it has just taken the lock and
    not yet written its name."""
    for _ in range(20):
        holder = lock_holder(path.parent)
        if holder != "another process":
            return holder
        time.sleep(0.01)
    return holder


@contextlib.contextmanager
def folder_lock(
    folder: str | Path,
    wait: bool = False,
    waiting: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold the write lock of `folder` (created if missing) for the block; yields the folder.

    wait: False refuses at once with FolderLocked when another process holds the lock (one line
    naming its pid and command); True blocks until the holder lets go (`waiting` is told once,
    in one line, that it waits). On leaving, the lock file is removed, and the folder too when
    this call created it and nothing else was put there (a start that failed leaves nothing).
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    if sys.platform == "win32":  # no flock: no lock
        yield folder
        return
    path = folder / LOCK_NAME
    try:
        descriptor = _acquire(path, wait, waiting)
    except BaseException:
        _remove_if_empty(folder, created)
        raise
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()} {_command_line()}\n".encode())
        yield folder
    finally:
        # Removed while still held, so that no one takes a lock on a file about to vanish.
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(descriptor)
        _remove_if_empty(folder, created)


def _remove_if_empty(folder: Path, created: bool) -> None:
    if created:
        with contextlib.suppress(OSError):
            folder.rmdir()  # fails, as it should, when anything is in it

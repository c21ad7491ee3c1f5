"""Where a sweep's trials run: here, in local processes, or on Ray; and how a sweep stops.

An executor takes the trials, a function that runs one (`run(trial, threads) -> record`, which
never raises for the trial's own failure), the torch thread count of every trial, and a
callback for each finished record. It knows nothing else about trials.

Local processes: one process per trial, at most `workers` at once. A process that dies (kill -9,
an out-of-memory kill) fails only its own trial; the others run on. On Linux each is forked from
a fork server that imported the trial's module once: a trial starts in milliseconds instead of
seconds of importing torch and pandas (elsewhere each is spawned, a fresh interpreter).

Signals (`stop_on_signals`): the first Ctrl-C (SIGINT) or SIGTERM stops starting trials, ends
the running ones (their files stay; the next run resumes them) and leaves as an exception
(KeyboardInterrupt for SIGINT, exit code 130; `Terminated`, exit code 143); a second one ends
the sweep at once with one line. Trial processes ignore Ctrl-C, which a terminal sends to the
whole process group: only the sweep decides when they end.

Ray: a local instance is the sweep's own (loopback only, its files in a private temporary
folder). One left by a sweep killed with kill -9 (its agents and folder) is cleared when the
next local Ray sweep starts.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "Terminated",
    "available_cores",
    "clear_dead_local_rays",
    "local_executor",
    "local_ray",
    "ray_executor",
    "stop_on_signals",
]

Record = dict[str, Any]
RunTrial = Callable[[Any, int], Record]
Failed = Callable[[Any, str], Record]
OnDone = Callable[[Any, Record], None]

# How long trial processes get to end after SIGTERM before they are killed.
_END_GRACE_SECONDS = 10.0


class Terminated(SystemExit):
    """The sweep was stopped by SIGTERM: exit code 143 (128 + 15), as a shell reports it."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def available_cores() -> int:
    """The CPU cores this process may run on: its affinity mask where the system keeps one
    (taskset, a Slurm allocation, a container's cpuset), else every core of the machine.

    A share of `os.cpu_count()` inside a smaller mask would run more torch threads than cores,
    and torch's OpenMP threads wait busily: measured here, a sweep trial on two threads with one
    core taken by another process ran 5x slower than on one thread.
    """
    if hasattr(os, "sched_getaffinity"):
        with contextlib.suppress(OSError):
            return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


_children: set[int] = set()  # pids of live trial processes, for a second signal to kill


def _kill_children() -> None:
    for pid in list(_children):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def stop_on_signals(message: str) -> Iterator[None]:
    """Within the block, the first SIGINT raises KeyboardInterrupt and the first SIGTERM
    `Terminated`, in the main thread; a second signal of either kind kills the trial
    processes, prints `message` (one line) to stderr and exits at once (130 or 143), also
    after the block, since a stopped process is on its way out.

    Outside the main thread (where Python cannot take signals) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    first: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if not first:
            first.append(signum)
            if signum == signal.SIGTERM:
                raise Terminated()
            raise KeyboardInterrupt
        _kill_children()
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"{message}\n")
            sys.stderr.flush()
        os._exit(128 + signum)

    saved = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
    _armed.append(handler)
    try:
        yield
    finally:
        _armed.remove(handler)
        # Once stopped, a later signal still ends the process at once, wherever it is on its
        # way out (a handler put back here would raise again with a traceback).
        if not first:
            for number, previous in saved.items():
                signal.signal(number, previous)


_armed: list[Callable[[int, Any], None]] = []  # the handler of `stop_on_signals`, while on


def _rearm() -> None:
    """Put `stop_on_signals`' handler back where a library replaced it (ray.init makes SIGTERM
    exit with code 15 and no word)."""
    if _armed and threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, _armed[-1])


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (on every system; `_start_time` reads Linux's /proc)."""
    try:
        os.kill(pid, 0)  # no signal: only whether it could be sent
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's
    return True


def _die_with_parent(sweep: int) -> None:
    """End this process when the sweep process ends, even by kill -9, so that no orphan trains
    on (and races a rerun in) the sweep's folders.

    The parent is the sweep (spawned processes) or its fork server, which ends when the sweep
    does. Linux: the kernel sends SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG). A
    sweep that died before this ran, or a system without prctl: the parent and the sweep are
    checked (now, and then every second by a thread).
    """
    parent = os.getppid()
    armed = False
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent or not _alive(sweep):
        os._exit(1)
    if not armed:

        def watch() -> None:
            while os.getppid() == parent and _alive(sweep):
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="selectivity-parent-watch", daemon=True).start()


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _trial_process(
    run: RunTrial, trial: Any, threads: int, writer: Any, sweep: int, environment: dict[str, str]
) -> None:  # pragma: no cover - runs in the trial process
    # Ctrl-C reaches the whole process group: the sweep ends its trials, they do not end
    # themselves (with a traceback each). SIGTERM from the sweep ends this process at once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by the sweep at start
    _die_with_parent(sweep)
    # A forked trial has its fork server's environment, as it was when the server started:
    # the sweep's, as it is now, is what a trial (and what it starts) must see.
    if os.environ != environment:
        os.environ.clear()
        os.environ.update(environment)
    record = run(trial, threads)
    writer.send(record)
    writer.close()


def _death(exitcode: int | None) -> str:
    """Why a trial process ended without a record, in words."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"worker died: killed by {name}{hint}"
    if exitcode == 255:  # also what multiprocessing says of a trial whose fork server died
        return "worker died: exit code 255, or its fork server was killed (out of memory?)"
    return f"worker died: exit code {exitcode}"


def local_executor(
    trials: Sequence[Any],
    workers: int,
    threads: int,
    run: RunTrial,
    failed: Failed,
    on_done: OnDone,
) -> None:
    """Run `trials`, at most `workers` at once; each trial in its own process (in this process
    when workers is 1). `run` must be a module-level function (it is pickled by name)."""
    if workers == 1:
        for trial in trials:
            on_done(trial, run(trial, threads))
        return
    context = _trial_context(run.__module__)
    queue = list(trials)
    # Per running trial: its process and the reading end of the pipe its record comes through.
    running: dict[Any, tuple[Any, Any, Any]] = {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                trial = queue.pop(0)
                process, reader = _start(context, run, trial, threads)
                running[process.sentinel] = (process, reader, trial)
            _collect(running, failed, on_done)
    finally:
        _end(running)


def _trial_context(module: str) -> Any:
    """The multiprocessing context of trial processes: on Linux a fork server that imported
    `module`, else spawn.

    Not a plain fork of this process: it would inherit torch's thread pools (used here, they
    deadlock a forked child) and any CUDA state. The fork server is a fresh interpreter that
    only imported `module` (torch, pandas: seconds per trial otherwise) and never ran torch.
    It lives as long as this process, for every later sweep in it; its preload is that of
    the first. Not on macOS, which has a fork server too: a fork after its system frameworks
    were loaded (numpy's Accelerate) can crash the child, why Python spawns there by default.
    """
    if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([module])
        return context
    return multiprocessing.get_context("spawn")


def _start(context: Any, run: RunTrial, trial: Any, threads: int) -> tuple[Any, Any]:
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(
        target=_trial_process,
        args=(run, trial, threads, writer, os.getpid(), dict(os.environ)),
        name="selectivity-trial",
        # Not daemonic: a trial may start processes of its own (a DataLoader's workers).
        daemon=False,
    )
    # The child starts with the stop signals blocked (the mask survives exec, and the fork
    # server, started here, passes on its own) until it ignores Ctrl-C; here they wait until
    # the process is on record, so that none is left unended.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        process.start()
        assert process.pid is not None
        _children.add(process.pid)
    finally:
        writer.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    return process, reader


def _collect(running: dict[Any, tuple[Any, Any, Any]], failed: Failed, on_done: OnDone) -> None:
    """Wait for at least one running trial to end; hand on the record of each that ended (or,
    for a process that died without one, a failed record saying how it died)."""
    readers = {reader: sentinel for sentinel, (_, reader, _) in running.items()}
    for ready in multiprocessing.connection.wait([*running, *readers]):
        sentinel = readers.get(ready, ready)
        if sentinel not in running:
            continue  # its pipe and its end were both ready: handled once
        process, reader, trial = running.pop(sentinel)
        record = None
        if reader.poll():  # its record, or the end of the pipe of a process that died
            with contextlib.suppress(EOFError, OSError):
                record = reader.recv()
        process.join()
        reader.close()
        _children.discard(process.pid)
        on_done(trial, record if record is not None else failed(trial, _death(process.exitcode)))


def _end(running: dict[Any, tuple[Any, Any, Any]]) -> None:
    """End the trial processes still running (an interrupted sweep): SIGTERM, then SIGKILL
    after a grace period. They leave no record: the next run resumes them."""
    processes = [process for process, _, _ in running.values()]
    for process in processes:
        with contextlib.suppress(OSError):
            process.terminate()
    deadline = time.monotonic() + _END_GRACE_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    for process, reader, _ in running.values():
        reader.close()
        _children.discard(process.pid)
    running.clear()


# The file in a local Ray's private folder that names the sweep process that owns it.
_OWNER = "selectivity-owner"


def _start_time(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (None: no such process); with
    the pid it names one process, whatever later reuses the number."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def clear_dead_local_rays(root: str | Path | None = None) -> list[Path]:
    """Clear what local Ray instances of sweeps that died without shutting them down (kill -9)
    left: their processes (found by their private folder in their command line) and folder.

    root: where the private folders are (default: the temporary folder). Returns the folders
    cleared. Linux only (it reads /proc); elsewhere it clears nothing.
    """
    root = Path(root or tempfile.gettempdir())
    if not Path("/proc/self/stat").exists():
        return []
    cleared = []
    for owner in root.glob(f"ray-*/{_OWNER}"):
        try:
            pid, started = owner.read_text().split()
        except (OSError, ValueError):
            continue
        if _start_time(int(pid)) == started:
            continue  # its sweep still runs
        folder = owner.parent
        _kill_processes_naming(str(folder))
        shutil.rmtree(folder, ignore_errors=True)
        cleared.append(folder)
    return cleared


def _kill_processes_naming(text: str) -> None:
    """SIGKILL every process whose command line or open files name `text` (a private folder's
    path). Ray's agents rename themselves (`ray::DashboardAgent`), but keep their logs there
    open."""
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        if _names(entry, needle):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


def _names(process: Path, needle: bytes) -> bool:
    """Whether the process at /proc/<pid> has `needle` in its command line or open files."""
    try:
        if needle in (process / "cmdline").read_bytes():
            return True
        return any(needle in os.readlink(fd).encode() for fd in (process / "fd").iterdir())
    except OSError:
        return False


def ray_executor(
    trials: Sequence[Any],
    address: str | None,
    cpus: float,
    gpus: float,
    threads: int,
    run: RunTrial,
    failed: Failed,
    on_done: OnDone,
) -> None:
    """Run `trials` as Ray tasks, each reserving `cpus` CPUs and `gpus` GPUs:
    on the cluster at `address`, or on a local instance of this sweep's own (`local_ray`)."""
    import ray

    started_here = not ray.is_initialized()
    with contextlib.ExitStack() as stack:
        if started_here and address:
            ray.init(address=address, log_to_driver=False)
            stack.callback(ray.shutdown)
        elif started_here:
            stack.enter_context(local_ray())
        _rearm()
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run)
        pending = {remote.remote(trial, threads): trial for trial in trials}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for reference in ready:
                trial = pending.pop(reference)
                try:
                    on_done(trial, ray.get(reference))
                except Exception as error:  # a lost Ray task fails only its trial
                    on_done(trial, failed(trial, f"ray task failed: {type(error).__name__}"))


@contextlib.contextmanager
def local_ray() -> Iterator[None]:
    """A Ray instance for this sweep alone: its servers listen on 127.0.0.1 only, its session
    files sit in a private temporary folder, and both end with the sweep (or, after a kill -9,
    when the next one starts)."""
    import ray
    from ray._private import ray_constants

    clear_dead_local_rays()
    # Ray binds its servers to all interfaces unless cluster mode is off, which on Linux only
    # this switch does (ray.init(_node_ip_address="127.0.0.1") is turned back into the host's
    # address). The variable reaches the processes Ray starts; the constant, this process.
    switch = getattr(
        ray_constants, "ENABLE_RAY_CLUSTERS_ENV_VAR", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    )
    saved = os.environ.get(switch), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[switch] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    # Ray makes its temp folder world-writable; a private (0700) parent keeps others out.
    private = tempfile.mkdtemp(prefix="ray-")
    Path(private, _OWNER).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
    try:
        ray.init(
            num_cpus=available_cores(),
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=os.path.join(private, "ray"),
        )
        try:
            yield
        finally:
            ray.shutdown()
    finally:
        if saved[0] is None:
            os.environ.pop(switch, None)
        else:
            os.environ[switch] = saved[0]
        ray_constants.ENABLE_RAY_CLUSTER = saved[1]
        shutil.rmtree(private, ignore_errors=True)

import atexit
import os
import shutil
import sys
import tempfile

import pytest

# Keep matplotlib's cache out of the home folder: one folder for the run (xdist's workers
# inherit it; matplotlib locks its font cache), removed when the run ends.
if "MPLCONFIGDIR" not in os.environ:
    os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="mpl-")
    atexit.register(shutil.rmtree, os.environ["MPLCONFIGDIR"], ignore_errors=True)


# Each xdist worker on a core of its own. torch's OpenMP threads wait busily, so two workers
# running two threads each on two cores slow each other down several times over (measured: a
# two-trial sweep took 12 s on one thread, 68 s on two beside another worker). The processes a
# test starts inherit the core, and what counts cores (torch, a sweep's share) reads the mask.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and hasattr(os, "sched_setaffinity"):
    _cores = sorted(os.sched_getaffinity(0))
    if len(_cores) >= int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        os.sched_setaffinity(0, {_cores[int(_worker[2:]) % len(_cores)]})
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run the `selectivity` console entry point in-process: (exit code, stdout, stderr)."""
    from selectivity.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["selectivity", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture(scope="session")
def digits_test_size() -> int:
    """Images in the digits test split as the loader draws it: the `samples` of every row (and
    the count in every message) computed on the whole test set."""
    from selectivity.data import load_dataset

    return len(load_dataset("digits").test)

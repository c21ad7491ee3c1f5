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

import os
import sys
import tempfile

import pytest

# Keep matplotlib and Ray caches out of the home folder.
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-"))


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

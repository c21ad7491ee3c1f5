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

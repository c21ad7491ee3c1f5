"""examples/own_model.py runs as a researcher would run it, and says what it measured."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_model.py"


def test_own_model_example_measures_and_evaluates(tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "48 units in layers 1, 3" in out
    accuracy = float(re.search(r"test_accuracy: ([0-9.]+)", out).group(1))
    assert accuracy > 0.8  # three epochs learn digits; chance is 0.1
    mu_si = float(re.search(r"mu_SI ([0-9.]+), accuracy ([0-9.]+)", out).group(1))
    assert f"selectivity: {mu_si:.3f}" in out  # one measurement, two paths
    assert re.search(r"PGD accuracy by steps \(eps 8/255\): 0:[0-9.]+  5:[0-9.]+  10:", out)
    assert list(tmp_path.iterdir()) == []  # nothing written

"""examples/regularizer_in_your_loop.py runs as a user runs it, and shows what it claims."""

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "regularizer_in_your_loop.py"


def test_the_regularizer_in_a_plain_loop_moves_mu_si_with_alpha():
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    epochs = re.findall(
        r"^alpha (\S+)  epoch (\d+)  loss \S+  cross-entropy \S+  test accuracy (\S+)  "
        r"minibatch mu_SI (\S+)$",
        done.stdout,
        flags=re.MULTILINE,
    )
    assert [(alpha, int(epoch)) for alpha, epoch, _, _ in epochs] == [
        (alpha, epoch) for alpha in ("-1", "0", "1") for epoch in range(6)
    ]
    final = {
        float(alpha): float(value)
        for alpha, value in re.findall(
            r"^final minibatch mu_SI at alpha (\S+): (\S+)$", done.stdout, re.M
        )
    }
    assert final[-1.0] < final[0.0] < final[1.0]
    # The printed final values are the last epoch's, and the networks learned the digits.
    last = {
        float(alpha): (float(acc), float(mu)) for alpha, epoch, acc, mu in epochs if epoch == "5"
    }
    assert {alpha: mu for alpha, (_, mu) in last.items()} == final
    assert all(acc > 0.9 for acc, _ in last.values())

"""The evaluation's former home, kept so that `selectivity.evaluate` imports keep working: its
names live in `selectivity.evaluation` (see that package's docstring)."""

from selectivity.evaluation import (
    derived_rows,
    dimensionality_cap,
    eval_config,
    evaluate,
    evaluate_model,
    run_settings,
)

# The name tests/test_robust.py imports; the function is public as `derived_rows`.
_derived_rows = derived_rows

__all__ = [
    "derived_rows",
    "dimensionality_cap",
    "eval_config",
    "evaluate",
    "evaluate_model",
    "run_settings",
]

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

__all__ = [
    "derived_rows",
    "dimensionality_cap",
    "eval_config",
    "evaluate",
    "evaluate_model",
    "run_settings",
]

"""AutoAttack's former home, kept so that `selectivity.worstcase` imports keep working: its names
live in `selectivity.evaluation.autoattack` (see that module's docstring)."""

from selectivity.evaluation.autoattack import (
    ATTACKS,
    INSTALL_HINT,
    MIN_CLASSES,
    VERSIONS,
    autoattack_rows,
    eps_values,
    pgd_trace,
    robust_flags,
    run_chain,
    runnable,
    skipped_attacks_note,
)
from selectivity.evaluation.context import Context as WorstCaseContext

__all__ = [
    "ATTACKS",
    "INSTALL_HINT",
    "MIN_CLASSES",
    "VERSIONS",
    "WorstCaseContext",
    "autoattack_rows",
    "eps_values",
    "pgd_trace",
    "robust_flags",
    "run_chain",
    "runnable",
    "skipped_attacks_note",
]

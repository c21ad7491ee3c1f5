"""The claims tables: `papers` (`CLAIMS`, `evaluate_claims`: each finding of the papers tested on
the alpha experiment) and `methods` (`METHOD_CLAIMS`, `evaluate_method_claims`: the second
direction, robustness training -> selectivity), both decided by the verdict machinery of `engine`
(`holm_verdicts`: the Holm adjustment over a report's claims).
"""

from __future__ import annotations

from selectivity.report.claims.engine import (
    MIN_ALPHAS,
    MIN_SAMPLES,
    MIN_TRIALS,
    SILENT_SPREAD,
    holm_verdicts,
)
from selectivity.report.claims.methods import (
    METHOD_CLAIMS,
    MIN_LEVELS,
    MethodClaimSpec,
    evaluate_method_claims,
)
from selectivity.report.claims.papers import CLAIMS, SOURCES, ClaimSpec, evaluate_claims

__all__ = [
    "CLAIMS",
    "METHOD_CLAIMS",
    "MIN_ALPHAS",
    "MIN_LEVELS",
    "MIN_SAMPLES",
    "MIN_TRIALS",
    "SILENT_SPREAD",
    "SOURCES",
    "ClaimSpec",
    "MethodClaimSpec",
    "evaluate_claims",
    "evaluate_method_claims",
    "holm_verdicts",
]

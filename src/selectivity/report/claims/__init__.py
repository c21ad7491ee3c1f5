"""The claims tables: `papers` (`CLAIMS`, `evaluate_claims`: each finding of the papers tested on
the alpha experiment) and `methods` (`METHOD_CLAIMS`, `evaluate_method_claims`: the second
direction, robustness training -> selectivity) and `firstpaper` (`evaluate_first_paper_claims`,
`alpha_effects`: the first paper's off-axis and accuracy findings), decided by the verdict
machinery of `engine` (`holm_verdicts`: the Holm adjustment over a report's claims).
"""

from __future__ import annotations

from selectivity.report.claims.engine import (
    MIN_ALPHAS,
    MIN_SAMPLES,
    MIN_TRIALS,
    SILENT_SPREAD,
    holm_verdicts,
)
from selectivity.report.claims.firstpaper import (
    EQUIVALENCE_MARGIN,
    alpha_effects,
    evaluate_first_paper_claims,
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
    "EQUIVALENCE_MARGIN",
    "METHOD_CLAIMS",
    "MIN_ALPHAS",
    "MIN_LEVELS",
    "MIN_SAMPLES",
    "MIN_TRIALS",
    "SILENT_SPREAD",
    "SOURCES",
    "ClaimSpec",
    "MethodClaimSpec",
    "alpha_effects",
    "evaluate_claims",
    "evaluate_first_paper_claims",
    "evaluate_method_claims",
    "holm_verdicts",
]

"""The report's figures, one `plot_<name>(table, ax=None)` each: `papers` (the papers' figures,
`FIGURES`), `methods` (one per robustness-training method, `METHOD_FIGURES`), `worstcase` (PGD
against AutoAttack, `WORST_CASE_FIGURES`), all drawn in the shared house style of `style`.
"""

from __future__ import annotations

from selectivity.report.figures.methods import (
    METHOD_FIGURES,
    MethodFigureSpec,
    plot_adversarial_training,
    plot_mix_training,
    plot_noise_training,
)
from selectivity.report.figures.papers import (
    FIGURES,
    plot_accuracy_per_corruption,
    plot_accuracy_vs_selectivity,
    plot_clean_vs_corrupted,
    plot_corruption_vs_alpha,
    plot_dimensionality,
    plot_fgsm_accuracy,
    plot_gradient_variability,
    plot_jacobian_norm,
    plot_normalised_accuracy_per_corruption,
    plot_pgd_accuracy,
    plot_silent_units,
)
from selectivity.report.figures.style import FigureSpec, alpha_colors
from selectivity.report.figures.worstcase import WORST_CASE_FIGURES, plot_pgd_vs_autoattack

__all__ = [
    "FIGURES",
    "METHOD_FIGURES",
    "WORST_CASE_FIGURES",
    "FigureSpec",
    "MethodFigureSpec",
    "alpha_colors",
    "plot_accuracy_per_corruption",
    "plot_accuracy_vs_selectivity",
    "plot_adversarial_training",
    "plot_clean_vs_corrupted",
    "plot_corruption_vs_alpha",
    "plot_dimensionality",
    "plot_fgsm_accuracy",
    "plot_gradient_variability",
    "plot_jacobian_norm",
    "plot_mix_training",
    "plot_noise_training",
    "plot_normalised_accuracy_per_corruption",
    "plot_pgd_accuracy",
    "plot_pgd_vs_autoattack",
    "plot_silent_units",
]

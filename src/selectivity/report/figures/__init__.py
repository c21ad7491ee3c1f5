"""The report's figures, one `plot_<name>(table, ax=None)` each: `papers` (the papers' figures,
`FIGURES`), `methods` (one per robustness-training method, `METHOD_FIGURES`), `worstcase` (PGD
against AutoAttack, `WORST_CASE_FIGURES`), and the first paper's (`offaxis`: similarity, the
rotated-basis bound, unit ablation; `accuracy`: accuracy against alpha, selectivity per layer and
unit, the per-corruption panel, training curves), all drawn in the shared house style of `style`.
"""

from __future__ import annotations

from selectivity.report.figures.accuracy import (
    plot_accuracy_vs_alpha,
    plot_corruption_panel,
    plot_layer_selectivity,
    plot_training_curves,
    plot_unit_selectivity,
)
from selectivity.report.figures.methods import (
    METHOD_FIGURES,
    MethodFigureSpec,
    plot_adversarial_training,
    plot_mix_training,
    plot_noise_training,
)
from selectivity.report.figures.offaxis import (
    plot_rotated_selectivity,
    plot_similarity,
    plot_unit_ablation,
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
    "plot_accuracy_vs_alpha",
    "plot_accuracy_vs_selectivity",
    "plot_adversarial_training",
    "plot_clean_vs_corrupted",
    "plot_corruption_panel",
    "plot_corruption_vs_alpha",
    "plot_dimensionality",
    "plot_fgsm_accuracy",
    "plot_gradient_variability",
    "plot_jacobian_norm",
    "plot_layer_selectivity",
    "plot_mix_training",
    "plot_noise_training",
    "plot_normalised_accuracy_per_corruption",
    "plot_pgd_accuracy",
    "plot_pgd_vs_autoattack",
    "plot_rotated_selectivity",
    "plot_silent_units",
    "plot_similarity",
    "plot_training_curves",
    "plot_unit_ablation",
    "plot_unit_selectivity",
]

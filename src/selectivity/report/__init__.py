"""From a sweep's results table to figures, a claims table and one self-contained HTML report.

The report reads result tables only (the tidy schema of docs/results.md); it never imports torch
or model code, so a report can be rebuilt anywhere from `results.parquet` alone. Importing it has
no side effects: matplotlib is loaded, and its config folder set up, on the first figure drawn.

The package, each module importing only those above it in this list, and no module importing an
underscore name of another (what modules share is public where it lives):
- `catalog`: the robustness-training methods by name (`METHODS`, `METHOD_KEYS`, `REGULARIZER`);
- `stats`: loading a table (`load_results`), the rows of one metric (`metric_rows`), one value
  per trial (`per_trial`), `summarise` (the one place that aggregates over seeds) and
  `summary_table`; the percentile bootstrap (`bootstrap_ci` for a mean, `percentile_bootstrap`
  for any statistic, through `scipy.stats.bootstrap`); keys and counts as text (`alpha_text`,
  `eps_text`, `range_text`);
- `checks`: `find_collapsed` (trials whose network collapsed: those near chance are left out of
  the claims, those with mostly silent layers read again without), the settings behind a figure,
  PGD's radius binding, dimensionality near its cap;
- `methods`: `experiments`, which trials form the alpha experiment and each robustness-training
  method's (Gaussian noise, corruption mix, adversarial);
- `worstcase`: PGD against AutoAttack per trial and the gradient-masking flags, as tables;
- `gains`: what each training method gained per corruption (`corruption_gains`), the corruptions
  it trained on (`trained_on`) and the note when a held-out gain comes from one or two corruptions;
- `claims`: `engine` (a claim's statistic, its bootstrap CI, p-value and verdict, the Holm
  adjustment, the other readings' mark, shared by both lists),
  `papers` (`CLAIMS`, `evaluate_claims`: each finding of the papers tested on the table) and
  `methods` (`METHOD_CLAIMS`, `evaluate_method_claims`: robustness training -> selectivity);
- `figures`: `style` (matplotlib on first use, the house style, alpha colours and axes,
  `FigureSpec`), `papers` (one `plot_<name>(table, ax=None)` per figure of the papers, `FIGURES`),
  `methods` (one `plot_<method>_training` per training method, `METHOD_FIGURES`) and `worstcase`
  (`plot_pgd_vs_autoattack`, `WORST_CASE_FIGURES`);
- `trials`: `load_trial_tables`, each finished trial's metrics.parquet and selectivity.parquet
  gathered from a sweep folder (the first paper's training curves and unit SI);
- `firstpaper`: the section on the first paper (arXiv:2003.01262), from `claims.firstpaper`
  (`evaluate_first_paper_claims`, `alpha_effects`) and `figures.offaxis` / `figures.accuracy`;
- `html`: `write_report`, the HTML page and the files beside it.
"""

from __future__ import annotations

from selectivity.report.catalog import METHODS, REGULARIZER, Method
from selectivity.report.checks import (
    Collapse,
    find_collapsed,
)
from selectivity.report.claims import (
    CLAIMS,
    EQUIVALENCE_MARGIN,
    METHOD_CLAIMS,
    SOURCES,
    ClaimSpec,
    MethodClaimSpec,
    alpha_effects,
    evaluate_claims,
    evaluate_first_paper_claims,
    evaluate_method_claims,
)
from selectivity.report.figures import (
    FIGURES,
    METHOD_FIGURES,
    FigureSpec,
    MethodFigureSpec,
    alpha_colors,
    plot_accuracy_per_corruption,
    plot_accuracy_vs_alpha,
    plot_accuracy_vs_selectivity,
    plot_adversarial_training,
    plot_clean_vs_corrupted,
    plot_corruption_panel,
    plot_corruption_vs_alpha,
    plot_dimensionality,
    plot_fgsm_accuracy,
    plot_gradient_variability,
    plot_jacobian_norm,
    plot_layer_selectivity,
    plot_mix_training,
    plot_noise_training,
    plot_normalised_accuracy_per_corruption,
    plot_pgd_accuracy,
    plot_rotated_selectivity,
    plot_silent_units,
    plot_similarity,
    plot_training_curves,
    plot_unit_ablation,
    plot_unit_selectivity,
)
from selectivity.report.html import write_report
from selectivity.report.methods import Experiment, experiments
from selectivity.report.stats import (
    bootstrap_ci,
    load_results,
    summarise,
    summary_table,
    trial_columns,
)
from selectivity.report.trials import TrialTables, load_trial_tables

__all__ = [
    "CLAIMS",
    "EQUIVALENCE_MARGIN",
    "FIGURES",
    "METHODS",
    "METHOD_CLAIMS",
    "METHOD_FIGURES",
    "REGULARIZER",
    "SOURCES",
    "ClaimSpec",
    "Collapse",
    "Experiment",
    "FigureSpec",
    "Method",
    "MethodClaimSpec",
    "MethodFigureSpec",
    "TrialTables",
    "alpha_colors",
    "alpha_effects",
    "bootstrap_ci",
    "evaluate_claims",
    "evaluate_first_paper_claims",
    "evaluate_method_claims",
    "experiments",
    "find_collapsed",
    "load_results",
    "load_trial_tables",
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
    "plot_rotated_selectivity",
    "plot_silent_units",
    "plot_similarity",
    "plot_training_curves",
    "plot_unit_ablation",
    "plot_unit_selectivity",
    "summarise",
    "summary_table",
    "trial_columns",
    "write_report",
]

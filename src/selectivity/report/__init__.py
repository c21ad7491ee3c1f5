"""From a sweep's results table to figures, a claims table and one self-contained HTML report.

The report reads result tables only (the tidy schema of docs/results.md); it never imports torch
or model code, so a report can be rebuilt anywhere from `results.parquet` alone. Importing it has
no side effects: matplotlib is loaded, and its config folder set up, on the first figure drawn.

The package, each module importing only those above it:
- `stats`: loading a table (`load_results`), one value per trial, `summarise` (the one place that
  aggregates over seeds) and `summary_table`; the percentile bootstrap (`bootstrap_ci` for a
  mean, `percentile_bootstrap` for any statistic, through `scipy.stats.bootstrap`);
- `checks`: `find_collapsed` (trials whose network collapsed, left out of the selectivity-framed
  claims), the settings behind a figure, PGD's radius binding, dimensionality near its cap;
- `methods`: `experiments`, which trials form the alpha experiment and each robustness-training
  method's (Gaussian noise, corruption mix, adversarial);
- `claims`: `CLAIMS` and `evaluate_claims`, each finding of the papers tested on the table;
- `method_claims`: `METHOD_CLAIMS` and `evaluate_method_claims`, the second direction (robustness
  training -> selectivity) tested on each method's experiment;
- `plotting`: matplotlib on first use, the house style, alpha colours and axes;
- `figures`: one `plot_<name>(table, ax=None)` per figure of the papers and the `FIGURES`
  registry with their captions;
- `method_figures`: one `plot_<method>_training(table, ax=None)` per training method and the
  `METHOD_FIGURES` registry;
- `html`: `write_report`, the HTML page and the files beside it.
"""

from __future__ import annotations

from selectivity.report.checks import (
    Collapse,
    find_collapsed,
)
from selectivity.report.claims import (
    CLAIMS,
    SOURCES,
    ClaimSpec,
    evaluate_claims,
)
from selectivity.report.figures import (
    FIGURES,
    FigureSpec,
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
from selectivity.report.html import write_report
from selectivity.report.method_claims import (
    METHOD_CLAIMS,
    MethodClaimSpec,
    evaluate_method_claims,
)
from selectivity.report.method_figures import (
    METHOD_FIGURES,
    MethodFigureSpec,
    plot_adversarial_training,
    plot_mix_training,
    plot_noise_training,
)
from selectivity.report.methods import METHODS, REGULARIZER, Experiment, Method, experiments
from selectivity.report.plotting import alpha_colors
from selectivity.report.stats import (
    bootstrap_ci,
    load_results,
    summarise,
    summary_table,
    trial_columns,
)

__all__ = [
    "CLAIMS",
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
    "alpha_colors",
    "bootstrap_ci",
    "evaluate_claims",
    "evaluate_method_claims",
    "experiments",
    "find_collapsed",
    "load_results",
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
    "plot_silent_units",
    "summarise",
    "summary_table",
    "trial_columns",
    "write_report",
]

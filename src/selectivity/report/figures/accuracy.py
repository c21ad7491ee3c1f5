"""The first paper's accuracy story and selectivity views (arXiv:2003.01262), and the second
paper's per-corruption panel at severity 5 (ICML-W 2020 Fig. 1c):

- `plot_accuracy_vs_alpha`: test accuracy per seed, the mean with its CI, the alpha = 0 band;
- `plot_layer_selectivity`: each layer's mean SI against alpha, beside mu_SI;
- `plot_unit_selectivity`: the distribution of unit SI per layer for chosen alphas (violins),
  from the per-unit table (`selectivity.parquet` of each trial);
- `plot_corruption_panel`: corrupted / clean accuracy per corruption at severity 5 and the mean
  over severities, for the lowest, zero and highest alpha;
- `plot_training_curves`: validation mu_SI and accuracy per epoch per alpha (`metrics.parquet`).

The first four take a results table; `plot_unit_selectivity` a per-unit table and
`plot_training_curves` a per-epoch table, each with the trial columns (alpha, seed) in front
(`selectivity.report.trials`). Each raises ValueError naming what it lacks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from selectivity.report.figures.papers import plot_normalised_accuracy_per_corruption
from selectivity.report.figures.style import (
    STYLE,
    alpha_axis,
    alpha_colors,
    alpha_legend,
    alphas_of,
    figure_of,
    line_ci,
    load_matplotlib,
    new_axes,
    new_panels,
    percent_axis,
    styled,
)
from selectivity.report.stats import (
    alpha_text,
    appearance_order,
    bootstrap_ci,
    load_results,
    metric_rows,
    per_trial,
    require_metrics,
    summarise,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "EPOCH_METRICS",
    "chosen_alphas",
    "panel_severity",
    "plot_accuracy_vs_alpha",
    "plot_corruption_panel",
    "plot_layer_selectivity",
    "plot_training_curves",
    "plot_unit_selectivity",
]

EPOCH_METRICS = {
    "val_selectivity": r"validation $\mu_{SI}$",
    "val_accuracy": "validation accuracy",
}


# The columns of metrics.parquet (docs/results.md); a per-epoch table adds its trial columns.
RUN_COLUMNS = (
    "epoch",
    "train_loss",
    "train_cross_entropy",
    "train_batch_selectivity",
    "val_accuracy",
    "val_selectivity",
    "lr",
    "seconds",
)


def _in_style(function: Callable) -> Callable:
    """Run a plot function of a per-unit or per-epoch table under the house style."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with load_matplotlib().rc_context(STYLE):
            return function(*args, **kwargs)

    return wrapper


def chosen_alphas(alphas: Sequence[float]) -> list[float]:
    """The most negative alpha, 0 (or the alpha closest to it) and the most positive one."""
    alphas = sorted(alphas)
    return list(dict.fromkeys([alphas[0], min(alphas, key=abs), alphas[-1]])) if alphas else []


@styled
def plot_accuracy_vs_alpha(
    table: pd.DataFrame, ax: Axes | None = None, margin: float | None = None
) -> Axes:
    """Clean test accuracy against alpha: one dot per seed, the mean over seeds with its
    bootstrapped 95% CI, and the alpha = 0 mean and CI as a grey band across the axis (dashed:
    +-`margin` around it, the equivalence margin of the claims)."""
    require_metrics(table, ["test_accuracy"], "accuracy_vs_alpha")
    ax = new_axes(ax, (6.6, 4.2))
    alphas = alphas_of(table)
    alpha_axis(ax, alphas)
    colors = alpha_colors(alphas)
    trials = per_trial(table, "test_accuracy")
    ax.scatter(
        trials["alpha"],
        trials["value"],
        s=14,
        alpha=0.6,
        lw=0,
        c=[colors[a] for a in trials["alpha"]],
        zorder=2,
    )
    summary = summarise(table, "test_accuracy")
    line_ci(ax, summary["alpha"], summary, "0.2", "mean over seeds (95% CI)")
    zero = trials.loc[trials["alpha"] == 0, "value"].to_numpy(float)
    if zero.size:
        mean, low, high = bootstrap_ci(zero)
        ax.axhspan(low, high, color="0.6", alpha=0.25, lw=0, label="α = 0 (95% CI)")
        if margin:
            for sign in (-1, 1):
                ax.axhline(mean + sign * margin, color="0.4", ls="--", lw=0.9)
            ax.plot([], [], color="0.4", ls="--", lw=0.9, label=f"α = 0 ± margin ({margin:g})")
    ax.set_ylabel("clean test accuracy")
    percent_axis(ax.yaxis)
    ax.set_title("Test accuracy against α")
    ax.legend(frameon=False, loc="best")
    return ax


@styled
def plot_layer_selectivity(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Each layer's mean SI against alpha (colour: depth, light = input side), mu_SI in black;
    lines: means over seeds, bands: bootstrapped 95% CIs."""
    rows = metric_rows(table, "selectivity")
    layers = appearance_order(rows["layer"])
    if not layers:
        raise ValueError("figure 'layer_selectivity' needs per-layer selectivity rows")
    ax = new_axes(ax, (7.6, 4.6))
    alpha_axis(ax, alphas_of(table))
    shades = load_matplotlib().colormaps["viridis"](np.linspace(0.9, 0.05, len(layers)))
    by_layer = summarise(table, "selectivity", by=("alpha", "layer"), where={"layer": layers})
    for layer, shade in zip(layers, shades, strict=True):
        part = by_layer[by_layer["layer"] == layer]
        line_ci(ax, part["alpha"], part, shade, str(layer), marker=".")
    if rows["layer"].isna().any():
        summary = summarise(table, "selectivity")
        ax.plot(
            summary["alpha"], summary["mean"], color="black", lw=2.4, label=r"$\mu_{SI}$ (network)"
        )
    ax.set_ylabel("mean class-selectivity index of the layer (0–1)")
    ax.set_title("Selectivity per layer against α")
    ax.legend(
        frameon=False,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        fontsize=7,
        ncols=1 + len(layers) // 18,
    )
    return ax


@_in_style
def plot_unit_selectivity(
    units: pd.DataFrame, ax: Axes | None = None, alphas: Sequence[float] | None = None
) -> Axes:
    """Distribution of unit SI per layer (violins, pooled over seeds) for `alphas` (default: the
    lowest, zero and highest). units: columns alpha, layer, si (a per-unit table)."""
    if units is None or units.empty or not {"alpha", "layer", "si"} <= set(units.columns):
        raise ValueError("figure 'unit_selectivity' needs per-unit SI (selectivity.parquet)")
    shown = (
        chosen_alphas(sorted(set(units["alpha"].astype(float)))) if alphas is None else list(alphas)
    )
    layers = appearance_order(units["layer"])
    colors = alpha_colors(sorted(set(units["alpha"].astype(float))))
    ax = new_axes(ax, (max(6.5, 0.45 * len(layers) * len(shown) + 2.5), 4.4))
    width = 0.8 / max(len(shown), 1)
    for j, alpha in enumerate(shown):
        part = units[np.isclose(units["alpha"].astype(float), alpha)]
        for i, layer in enumerate(layers):
            values = part.loc[part["layer"] == layer, "si"].dropna().to_numpy(float)
            x = i - 0.4 + width * (j + 0.5)
            if values.size > 1 and np.ptp(values) > 0:
                body = ax.violinplot(
                    [values],
                    positions=[x],
                    widths=width * 0.95,
                    showextrema=False,
                    showmedians=True,
                )
                for patch in list(body["bodies"]):  # type: ignore[call-overload]
                    patch.set_facecolor(colors[alpha])
                    patch.set_alpha(0.6)
                body["cmedians"].set_color(colors[alpha])
            elif values.size:  # one value or all equal: no density to draw
                ax.plot([x], [values[0]], marker="_", ms=10, color=colors[alpha])
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(layers, rotation=90, fontsize=7)
    ax.set_xlim(-0.6, len(layers) - 0.4)
    ax.set_xlabel("layer (input → output)")
    ax.set_ylabel("unit class-selectivity index (0–1)")
    ax.set_title("Unit selectivity per layer (line: median)")
    alpha_legend(ax, {a: colors[a] for a in shown}, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax


def panel_severity(table: pd.DataFrame, wanted: int = 5) -> int:
    """Severity 5 (the paper's Fig. 1c) where the table has it, else its highest severity."""
    severities = sorted(set(metric_rows(table, "corruption_accuracy")["severity"].dropna()))
    if not severities:
        raise ValueError("figure 'corruption_panel' needs corruption_accuracy with severities")
    return wanted if wanted in severities else int(severities[-1])


@styled
def plot_corruption_panel(table: pd.DataFrame, ax: Sequence[Axes] | None = None) -> Figure:
    """Corrupted / clean accuracy per corruption for the lowest, zero and highest alpha: at
    severity 5 (the highest severity present where 5 is not; the title says which) above, the
    mean over severities below."""
    require_metrics(table, ["corruption_accuracy", "test_accuracy"], "corruption_panel")
    severity = panel_severity(table)
    n = len(set(metric_rows(table, "corruption_accuracy")["corruption"].dropna()))
    if ax is None:
        fig = load_matplotlib().figure.Figure(
            figsize=(max(7.0, 0.5 * n + 3.5), 8.4), layout="constrained"
        )
        top, bottom = fig.subplots(2, 1)
    else:
        top, bottom = list(np.ravel(np.asarray(ax, dtype=object)))[:2]
    plot_normalised_accuracy_per_corruption(table, ax=top, severity=severity)
    plot_normalised_accuracy_per_corruption(table, ax=bottom)
    top.set_xlabel("")
    return figure_of(top)


def _epoch_table(epochs: pd.DataFrame) -> pd.DataFrame:
    """A per-epoch table as a results table (one metric per column of EPOCH_METRICS)."""
    if epochs is None or epochs.empty or not {"alpha", "seed", "epoch"} <= set(epochs.columns):
        raise ValueError("figure 'training_curves' needs per-epoch rows (metrics.parquet)")
    present = [m for m in EPOCH_METRICS if m in epochs.columns]
    if not present:
        raise ValueError(f"figure 'training_curves' needs {list(EPOCH_METRICS)} per epoch")
    # The trial columns and the epoch identify a row; the run's other numbers are left out.
    keys = [c for c in epochs.columns if c not in RUN_COLUMNS] + ["epoch"]
    long = epochs.melt(id_vars=keys, value_vars=present, var_name="metric")
    return load_results(long)


@_in_style
def plot_training_curves(epochs: pd.DataFrame, ax: Sequence[Axes] | None = None) -> Figure:
    """Validation mu_SI and validation accuracy per epoch, one line per alpha (mean over seeds,
    band: bootstrapped 95% CI). epochs: a per-epoch table with alpha, seed, epoch and the
    columns of metrics.parquet."""
    long = _epoch_table(epochs)
    have = [m for m in EPOCH_METRICS if m in set(long["metric"])]
    axes = new_panels(ax, len(have), (5.4 * len(have) + 1.0, 4.0))
    colors = alpha_colors(alphas_of(long))
    for axis, metric in zip(axes, have, strict=True):
        summary = summarise(long, metric, by=("alpha", "epoch"), n_resamples=500)
        for alpha in alphas_of(summary):
            part = summary[summary["alpha"] == alpha]
            line_ci(axis, part["epoch"], part, colors[alpha], alpha_text(alpha), marker=".")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(load_matplotlib().ticker.MaxNLocator(integer=True))
        axis.set_ylabel(EPOCH_METRICS[metric])
        axis.set_title(
            f"{EPOCH_METRICS[metric][0].upper()}{EPOCH_METRICS[metric][1:]} over training"
        )
        if metric == "val_accuracy":
            percent_axis(axis.yaxis)
        else:
            axis.set_ylim(bottom=0)
    fig = figure_of(axes[0])
    alpha_legend(fig, {a: colors[a] for a in alphas_of(long)}, loc="outside right center")
    return fig

"""The first paper's off-axis figures (arXiv:2003.01262): is selectivity suppressed or only
rotated off the unit axes? And the unit ablation readers expect beside it (Morcos et al. 2018).

- `plot_similarity`: PWCCA and linear CKA between each regularized network and the alpha = 0
  network of the same seed, against alpha and per layer, beside the alpha = 0 seed-to-seed band;
- `plot_rotated_selectivity`: the rotated-basis upper bound on mean SI beside mu_SI (unit axes);
- `plot_unit_ablation`: accuracy as units are silenced, most / least selective first and in
  random order, one figure per alpha, per layer and for the whole network.

Each takes a results table (schema of docs/results.md) and raises ValueError naming the metrics
it lacks. Lines: means over seeds; bands: bootstrapped 95% CIs (`summarise`) unless said.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from selectivity.report.figures.style import (
    SELECTIVITY_LABEL,
    alpha_axis,
    alpha_colors,
    alpha_legend,
    alphas_of,
    figure_of,
    line_ci,
    load_matplotlib,
    new_panels,
    percent_axis,
    styled,
)
from selectivity.report.stats import (
    alpha_text,
    appearance_order,
    bootstrap_ci,
    metric_rows,
    per_trial,
    require_metrics,
    summarise,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "ABLATION_ORDERS",
    "SIMILARITY",
    "ablation_alphas",
    "plot_rotated_selectivity",
    "plot_similarity",
    "plot_unit_ablation",
]

SIMILARITY = {"pwcca": "PWCCA", "linear_cka": "linear CKA"}
# metric -> (legend words, colour)
ABLATION_ORDERS = {
    "ablation_accuracy_most": ("most selective first", "tab:red"),
    "ablation_accuracy_least": ("least selective first", "tab:blue"),
    "ablation_accuracy_random": ("random order (band: range over draws)", "0.35"),
}
BASELINE_COLOR = "0.55"


def _baseline_band(ax: Axes, table: pd.DataFrame, metric: str) -> bool:
    """The alpha = 0 seed-to-seed level (mean over layers per trial) as a grey band across ax."""
    try:
        values = per_trial(table, f"{metric}_seed_baseline")["value"].to_numpy(float)
    except ValueError:
        return False
    mean, low, high = bootstrap_ci(values)
    if not math.isfinite(mean):
        return False
    ax.axhspan(low, high, color=BASELINE_COLOR, alpha=0.25, lw=0)
    ax.axhline(mean, color=BASELINE_COLOR, ls="--", lw=1.2, label="α = 0, seed to seed")
    return True


@styled
def plot_similarity(table: pd.DataFrame, ax=None) -> Figure:
    """Similarity to the same seed's alpha = 0 network: one row per measure present (pwcca,
    linear_cka); left, the mean over layers against alpha; right, per layer, one line per alpha.

    Grey: the alpha = 0 seed-to-seed level (`<measure>_seed_baseline`), band = its 95% CI; left
    across the axis, right per layer. alpha = 0 itself is left out (a network against itself).
    """
    have = require_metrics(table, list(SIMILARITY), "similarity", any_of=True)
    layers = appearance_order(table.loc[table["metric"].isin(have), "layer"])
    width = min(7.0, max(4.5, 0.25 * len(layers) + 2.5))
    if ax is None:
        fig = load_matplotlib().figure.Figure(
            figsize=(5.0 + width, 3.8 * len(have)), layout="constrained"
        )
        axes = fig.subplots(len(have), 2, squeeze=False)
    else:
        axes = np.asarray(ax, dtype=object).reshape(len(have), 2)
    regularized = table[table["alpha"] != 0]
    alphas = alphas_of(regularized)
    colors = alpha_colors(alphas_of(table))
    position = {layer: i for i, layer in enumerate(layers)}
    for (left, right), metric in zip(axes, have, strict=True):
        name = SIMILARITY[metric]
        alpha_axis(left, alphas_of(table))
        if (regularized["metric"] == metric).any():
            summary = summarise(regularized, metric)
            line_ci(left, summary["alpha"], summary, "0.2", f"{name} to α = 0, same seed")
            left.scatter(
                summary["alpha"],
                summary["mean"],
                c=[colors[a] for a in summary["alpha"]],
                s=30,
                zorder=3,
            )
        if not _baseline_band(left, table, metric):
            left.text(
                0.02,
                0.02,
                "seed-to-seed baseline not measured",
                transform=left.transAxes,
                fontsize=8,
            )
        left.set_ylabel(f"{name} (mean over layers)")
        left.set_title(f"{name} against α")
        left.legend(frameon=False, loc="lower right")
        if (regularized["metric"] == metric).any():
            by_layer = summarise(regularized, metric, by=("alpha", "layer"))
            for alpha in alphas_of(by_layer):
                part = by_layer[by_layer["alpha"] == alpha]
                x = part["layer"].map(position).to_numpy(float)
                line_ci(right, x, part, colors[alpha], alpha_text(alpha), marker=".")
        try:
            base = summarise(table, f"{metric}_seed_baseline", by=("layer",))
            x = base["layer"].map(position).to_numpy(float)
            keep = np.isfinite(x)
            right.fill_between(
                x[keep],
                base["ci_low"][keep],
                base["ci_high"][keep],
                color=BASELINE_COLOR,
                alpha=0.3,
                lw=0,
            )
            right.plot(x[keep], base["mean"][keep], color=BASELINE_COLOR, ls="--", lw=1.2)
        except ValueError:
            pass
        right.set_xticks(range(len(layers)))
        right.set_xticklabels(layers, rotation=90, fontsize=7)
        right.set_xlabel("layer (input → output)")
        right.set_ylabel(name)
        right.set_title(f"{name} per layer (grey: α = 0 seed to seed)")
    fig = figure_of(axes[0][0])
    if alphas:
        alpha_legend(fig, {a: colors[a] for a in alphas}, loc="outside right center")
    return fig


@styled
def plot_rotated_selectivity(table: pd.DataFrame, ax=None) -> Figure:
    """Left: the rotated-basis bound on mean SI (`selectivity_rotated`, network level: the
    layer-null rows, else the mean over layers) and mu_SI on the unit axes against alpha. Right:
    the bound per layer, one line per alpha, the axis-aligned layer SI dotted."""
    require_metrics(table, ["selectivity_rotated"], "rotated_selectivity")
    left, right = new_panels(ax, 2, (11.0, 4.2))
    alpha_axis(left, alphas_of(table))
    summary = summarise(table, "selectivity_rotated")
    line_ci(left, summary["alpha"], summary, "tab:purple", "rotated-basis bound", marker="s")
    if "selectivity" in set(table["metric"]):
        summary = summarise(table, "selectivity")
        line_ci(left, summary["alpha"], summary, "0.2", r"$\mu_{SI}$ (unit axes)")
    left.set_ylabel(
        SELECTIVITY_LABEL.replace("network selectivity ", "").replace(r"$\mu_{SI}$ ", "mean SI ")
    )
    left.set_title("Selectivity in an optimized basis")
    left.legend(frameon=False)
    rows = metric_rows(table, "selectivity_rotated")
    layers = appearance_order(rows["layer"])
    colors = alpha_colors(alphas_of(table))
    if layers:
        position = {layer: i for i, layer in enumerate(layers)}
        where = {"layer": layers}
        bound = summarise(table, "selectivity_rotated", by=("alpha", "layer"), where=where)
        for alpha in alphas_of(bound):
            part = bound[bound["alpha"] == alpha]
            line_ci(
                right,
                part["layer"].map(position).to_numpy(float),
                part,
                colors[alpha],
                alpha_text(alpha),
                ".",
            )
        try:
            axis = summarise(table, "selectivity", by=("alpha", "layer"), where=where)
        except ValueError:  # no axis-aligned rows for these layers: the bound alone
            axis = bound.iloc[:0]
        for alpha in alphas_of(axis):
            part = axis[axis["alpha"] == alpha]
            right.plot(
                part["layer"].map(position).to_numpy(float),
                part["mean"],
                color=colors[alpha],
                ls=":",
                lw=1.0,
            )
        right.set_xticks(range(len(layers)))
        right.set_xticklabels(layers, rotation=90, fontsize=7)
        right.legend(
            title="α (dotted: unit axes)",
            frameon=False,
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
        )
    else:
        right.text(0.5, 0.5, "no per-layer rows", ha="center", transform=right.transAxes)
    right.set_xlabel("layer (input → output)")
    right.set_ylabel("rotated-basis bound on mean SI")
    right.set_title("Per layer")
    return figure_of(left)


def ablation_alphas(table: pd.DataFrame) -> list[float]:
    """The alphas with ablation rows (one figure each)."""
    rows = table[table["metric"].isin(list(ABLATION_ORDERS))]
    return alphas_of(rows)


def _ablation_panel(ax: Axes, rows: pd.DataFrame) -> None:
    """Accuracy against the fraction silenced, one line per order present in `rows`."""
    for metric, (words, color) in ABLATION_ORDERS.items():
        part = rows[rows["metric"] == metric]
        if part.empty:
            continue
        if metric == "ablation_accuracy_random":
            spread = part.groupby("fraction")["value"].agg(["mean", "min", "max"]).reset_index()
            ax.fill_between(
                spread["fraction"], spread["min"], spread["max"], color=color, alpha=0.2, lw=0
            )
            ax.plot(spread["fraction"], spread["mean"], color=color, lw=1.4, ls="--", label=words)
            continue
        summary = summarise(part, metric, by=("fraction",))
        line_ci(ax, summary["fraction"], summary, color, words, marker=".")
    percent_axis(ax.xaxis)
    percent_axis(ax.yaxis)


@styled
def plot_unit_ablation(table: pd.DataFrame, ax=None, alpha: float | None = None) -> Figure:
    """Accuracy as a layer's units are silenced (x: fraction of its units, `fraction`) in
    order of SI, at one alpha (default: the first with ablation rows): one panel for the whole
    network (layer null: that fraction of every layer at once) and one per layer.

    Most / least selective first: mean over seeds with bootstrapped 95% CI; random order: mean
    over seeds and draws, band = the range over them.
    """
    require_metrics(table, list(ABLATION_ORDERS), "unit_ablation", any_of=True)
    rows = table[table["metric"].isin(list(ABLATION_ORDERS))]
    alphas = alphas_of(rows)
    alpha = alphas[0] if alpha is None else alpha
    rows = rows[np.isclose(rows["alpha"], alpha)]
    if rows.empty:
        raise ValueError(f"figure 'unit_ablation' has no rows at α = {alpha_text(alpha)}")
    layers = [None, *appearance_order(rows["layer"])]
    n_cols = min(4, len(layers))
    n_rows = -(-len(layers) // n_cols)
    if ax is None:
        fig = load_matplotlib().figure.Figure(
            figsize=(3.3 * n_cols + 0.5, 2.8 * n_rows + 0.6), layout="constrained"
        )
        axes = list(fig.subplots(n_rows, n_cols, squeeze=False, sharey=True).ravel())
    else:
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
    for axis, layer in zip(axes, layers, strict=False):
        part = rows[rows["layer"].isna()] if layer is None else rows[rows["layer"] == layer]
        _ablation_panel(axis, part)
        axis.set_title("whole network" if layer is None else str(layer), fontsize=9)
        axis.set_xlabel("units silenced", fontsize=8)
    for axis in axes[len(layers) :]:
        axis.set_visible(False)
    fig = figure_of(axes[0])
    fig.supylabel("test accuracy")
    fig.suptitle(f"Unit ablation, α = {alpha_text(alpha)}")
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        for axis in axes[: len(layers)]:
            handles, labels = axis.get_legend_handles_labels()
            if handles:
                break
    fig.legend(handles, labels, loc="outside lower center", ncols=3, frameon=False)
    return fig

"""The report's figures: one `plot_<name>(table, ax=None)` per figure of the papers, and the
registry `FIGURES` that `write_report` draws them from, each with the caption it builds from the
table.

table: a DataFrame in the results schema or the path of a results file. A plot function returns
the Axes (one panel) or Figure (several) it drew; `ax` draws into the caller's axes instead. Each
raises ValueError naming the metrics it lacks. Lines and points are means over seeds, bands and
bars their bootstrapped 95% CIs (`summarise`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from selectivity.report.checks import (
    COLLAPSE_SILENT_FRACTION,
    DIMENSIONALITY_METRICS,
    near_cap_text,
    pgd_binding_text,
)
from selectivity.report.figures.style import (
    DIMENSIONALITY_LABEL,
    SELECTIVITY_LABEL,
    FigureSpec,
    alpha_axis,
    alpha_colors,
    alpha_legend,
    alphas_of,
    eps_axis,
    figure_of,
    line_ci,
    load_matplotlib,
    new_axes,
    new_panels,
    outside_legend,
    percent_axis,
    seeds_text,
    styled,
)
from selectivity.report.stats import (
    alpha_text,
    appearance_order,
    as_metric,
    eps_text,
    metric_rows,
    per_trial,
    require_metrics,
    summarise,
    trial_columns,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

__all__ = [
    "FIGURES",
    "plot_accuracy_per_corruption",
    "plot_accuracy_vs_selectivity",
    "plot_clean_vs_corrupted",
    "plot_corruption_vs_alpha",
    "plot_dimensionality",
    "plot_fgsm_accuracy",
    "plot_gradient_variability",
    "plot_jacobian_norm",
    "plot_normalised_accuracy_per_corruption",
    "plot_pgd_accuracy",
    "plot_silent_units",
]


def _normalised_corruption_table(table: pd.DataFrame) -> pd.DataFrame:
    """corruption_accuracy / test_accuracy of the same trial, per corruption and severity."""
    corrupted = metric_rows(table, "corruption_accuracy")
    clean = per_trial(table, "test_accuracy").rename(columns={"value": "clean"})
    merged = corrupted.merge(clean, on=trial_columns(table), how="inner")
    merged["value"] = merged["value"] / merged["clean"]
    return as_metric(merged.drop(columns=["clean"]), "corruption_accuracy_normalised")


@styled
def plot_accuracy_vs_selectivity(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Clean test accuracy against network selectivity, one point per alpha (paper Fig. A1).

    Points: mean over seeds with bootstrapped 95% CIs on both axes; faint dots are single trials.
    One error-bar container per alpha.
    """
    require_metrics(table, ["selectivity", "test_accuracy"], "accuracy_vs_selectivity")
    ax = new_axes(ax, (6.4, 4.2))
    colors = alpha_colors(alphas_of(table))
    sel = summarise(table, "selectivity")
    acc = summarise(table, "test_accuracy")
    both = sel.merge(acc, on="alpha", suffixes=("_sel", "_acc"))
    trials = per_trial(table, "selectivity").merge(
        per_trial(table, "test_accuracy"), on=trial_columns(table)
    )
    ax.scatter(
        trials["value_x"],
        trials["value_y"],
        s=10,
        alpha=0.35,
        lw=0,
        c=[colors[a] for a in trials["alpha"]],
        zorder=1,
    )
    for _, row in both.iterrows():
        ax.errorbar(
            row["mean_sel"],
            row["mean_acc"],
            xerr=[[row["mean_sel"] - row["ci_low_sel"]], [row["ci_high_sel"] - row["mean_sel"]]],
            yerr=[[row["mean_acc"] - row["ci_low_acc"]], [row["ci_high_acc"] - row["mean_acc"]]],
            fmt="o",
            ms=6,
            color=colors[row["alpha"]],
            mec="white",
            mew=0.6,
            elinewidth=1.2,
            zorder=3,
        )
    ax.set_xlabel(SELECTIVITY_LABEL)
    ax.set_ylabel("clean test accuracy")
    percent_axis(ax.yaxis)
    ax.set_title("Accuracy vs selectivity")
    outside_legend(ax, {a: colors[a] for a in both["alpha"]})
    return ax


def _metric_vs_alpha(ax: Axes, table: pd.DataFrame, metric: str, alphas: list[float]) -> None:
    """One metric against alpha on `ax`: mean over seeds with its CI band, points coloured by alpha."""
    colors = alpha_colors(alphas)
    summary = summarise(table, metric)
    line_ci(ax, summary["alpha"], summary, color="0.25")
    ax.scatter(
        summary["alpha"], summary["mean"], c=[colors[a] for a in summary["alpha"]], s=30, zorder=3
    )
    alpha_axis(ax, alphas)


@styled
def plot_corruption_vs_alpha(table: pd.DataFrame, ax: Sequence[Axes] | None = None) -> Figure:
    """Mean corrupted accuracy and corrupted / clean accuracy against alpha (Fig. 1a-b, A4a-b).

    One panel per metric present (corruption_accuracy_mean, corruption_accuracy_relative), each
    with one line: mean over seeds, band = bootstrapped 95% CI.
    """
    panels = {
        "corruption_accuracy_mean": (
            "Corrupted accuracy",
            "corrupted test accuracy\n(mean over corruptions, severities)",
        ),
        "corruption_accuracy_relative": (
            "Corrupted / clean accuracy",
            "corrupted / clean accuracy (ratio)",
        ),
    }
    have = require_metrics(table, list(panels), "corruption_vs_alpha", any_of=True)
    axes = new_panels(ax, len(have), (5.2 * len(have), 4.0))
    alphas = alphas_of(table)
    for axis, metric in zip(axes, have, strict=True):
        _metric_vs_alpha(axis, table, metric, alphas)
        title, ylabel = panels[metric]
        axis.set_title(title)
        axis.set_ylabel(ylabel)
        if metric == "corruption_accuracy_mean":
            percent_axis(axis.yaxis)
    return figure_of(axes[0])


def _three_alphas(alphas: Sequence[float]) -> list[float]:
    """The most negative alpha, 0 (or the alpha closest to it) and the most positive alpha."""
    middle = min(alphas, key=abs)
    return list(dict.fromkeys([min(alphas), middle, max(alphas)]))


def _dodged_points(
    ax: Axes,
    summary: pd.DataFrame,
    category: str,
    order: list,
    alphas: Sequence[float],
    colors: Mapping[float, tuple],
) -> None:
    """Points with CI bars per category, side by side per alpha (one container per alpha)."""
    width = 0.8
    step = width / max(len(alphas), 1)
    positions = {c: i for i, c in enumerate(order)}
    for i, alpha in enumerate(alphas):
        part = summary[summary["alpha"] == alpha]
        x = part[category].map(positions).to_numpy(dtype=float) - width / 2 + step * (i + 0.5)
        ax.errorbar(
            x,
            part["mean"],
            yerr=[part["mean"] - part["ci_low"], part["ci_high"] - part["mean"]],
            fmt="o",
            ms=4,
            lw=0,
            elinewidth=1.1,
            color=colors[alpha],
            label=alpha_text(alpha),
        )
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([str(c).replace("_", " ") for c in order], rotation=40, ha="right")
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.grid(False, axis="x")
    for boundary in np.arange(0.5, len(order) - 1, 1.0):
        ax.axvline(boundary, color="0.9", lw=0.6, zorder=0)


@styled
def plot_normalised_accuracy_per_corruption(
    table: pd.DataFrame, ax: Axes | None = None, severity: int | None = None
) -> Axes:
    """Corrupted / clean accuracy per corruption for the lowest, zero and highest alpha (Fig. 1c, A4c).

    Each trial's corruption accuracy is divided by its own clean accuracy, then averaged over
    severities (or taken at `severity`). One error-bar container per alpha shown (at most 3).
    """
    require_metrics(
        table, ["corruption_accuracy", "test_accuracy"], "normalised_accuracy_per_corruption"
    )
    derived = _normalised_corruption_table(table)
    where = None if severity is None else {"severity": severity}
    summary = summarise(
        derived, "corruption_accuracy_normalised", by=("alpha", "corruption"), where=where
    )
    order = appearance_order(metric_rows(table, "corruption_accuracy")["corruption"])
    shown = _three_alphas(alphas_of(summary))
    colors = alpha_colors(alphas_of(table))
    ax = new_axes(ax, (max(6.5, 0.5 * len(order) + 3.0), 4.4))
    _dodged_points(ax, summary[summary["alpha"].isin(shown)], "corruption", order, shown, colors)
    ax.set_ylabel("corrupted / clean accuracy (ratio)")
    ax.set_xlabel("corruption")
    which = "mean over severities" if severity is None else f"severity {severity}"
    ax.set_title(f"Normalised accuracy per corruption ({which})")
    ax.legend(title="α", frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax


@styled
def plot_accuracy_per_corruption(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Corrupted accuracy per corruption (mean over severities) for every alpha (Fig. A2, A5).

    One error-bar container per alpha.
    """
    require_metrics(table, ["corruption_accuracy"], "accuracy_per_corruption")
    summary = summarise(table, "corruption_accuracy", by=("alpha", "corruption"))
    order = appearance_order(metric_rows(table, "corruption_accuracy")["corruption"])
    alphas = alphas_of(summary)
    colors = alpha_colors(alphas_of(table))
    ax = new_axes(ax, (max(7.0, 0.6 * len(order) + 3.0), 4.4))
    _dodged_points(ax, summary, "corruption", order, alphas, colors)
    ax.set_ylabel("corrupted test accuracy\n(mean over severities)")
    ax.set_xlabel("corruption")
    percent_axis(ax.yaxis)
    ax.set_title("Accuracy per corruption")
    ax.legend(title="α", frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax


@styled
def plot_clean_vs_corrupted(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Clean against corrupted accuracy, per severity (lines) and alpha (fill colour) (Fig. A3, A6).

    Corrupted accuracy is the mean over corruptions at one severity. One line per severity joins
    the alphas in order; marker fill = alpha, marker edge and line = severity; bars = 95% CIs.
    """
    require_metrics(table, ["corruption_accuracy", "test_accuracy"], "clean_vs_corrupted")
    clean = summarise(table, "test_accuracy")
    corrupted = summarise(table, "corruption_accuracy", by=("alpha", "severity"))
    merged = corrupted.merge(clean, on="alpha", suffixes=("", "_clean"))
    severities = sorted(merged["severity"].dropna().unique())
    mpl = load_matplotlib()
    shades = mpl.colormaps["viridis"](np.linspace(0.0, 0.85, max(len(severities), 1)))
    colors = alpha_colors(alphas_of(table))
    ax = new_axes(ax, (6.6, 4.6))
    for severity, shade in zip(severities, shades, strict=True):
        part = merged[merged["severity"] == severity].sort_values("alpha")
        ax.errorbar(
            part["mean_clean"],
            part["mean"],
            xerr=[
                part["mean_clean"] - part["ci_low_clean"],
                part["ci_high_clean"] - part["mean_clean"],
            ],
            yerr=[part["mean"] - part["ci_low"], part["ci_high"] - part["mean"]],
            fmt="none",
            ecolor=shade,
            elinewidth=0.8,
            alpha=0.6,
            zorder=1,
        )
        ax.plot(
            part["mean_clean"],
            part["mean"],
            color=shade,
            lw=1.2,
            zorder=2,
            label=f"severity {int(severity)}",
        )
        ax.scatter(
            part["mean_clean"],
            part["mean"],
            s=42,
            zorder=3,
            linewidths=1.6,
            c=[colors[a] for a in part["alpha"]],
            edgecolors=[shade] * len(part),
        )
    ax.set_xlabel("clean test accuracy")
    ax.set_ylabel("corrupted test accuracy\n(mean over corruptions)")
    percent_axis(ax.xaxis)
    percent_axis(ax.yaxis)
    ax.set_title("Clean vs corrupted accuracy")

    # One legend with two sections: constrained layout makes room for a single outside legend
    # but not for a second one added with add_artist.
    def header(text: str) -> Line2D:
        return mpl.lines.Line2D([], [], ls="none", label=text)

    severity_handles, _ = ax.get_legend_handles_labels()
    alpha_handles = [
        mpl.lines.Line2D(
            [], [], ls="none", marker="o", ms=6, mfc=colors[a], mec="0.5", label=alpha_text(a)
        )
        for a in alphas_of(merged)
    ]
    handles = [
        header("severity (line, edge)"),
        *severity_handles,
        header(" "),
        header("α (fill)"),
        *alpha_handles,
    ]
    legend = ax.legend(
        handles=handles,
        frameon=False,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        handlelength=1.6,
    )
    for text in legend.get_texts():
        if text.get_text() in ("severity (line, edge)", "α (fill)"):
            text.set_fontweight("bold")
    return ax


def _lines_by_alpha(ax: Axes, summary: pd.DataFrame, x: str) -> dict[float, tuple]:
    """One mean-with-CI line per alpha of `summary` against its column `x`; returns the colours."""
    alphas = alphas_of(summary)
    colors = alpha_colors(alphas)
    for alpha in alphas:
        part = summary[summary["alpha"] == alpha]
        line_ci(ax, part[x], part, colors[alpha], alpha_text(alpha))
    return colors


@styled
def plot_fgsm_accuracy(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """FGSM accuracy against eps, one line per alpha (Fig. 2a, A7a)."""
    require_metrics(table, ["fgsm_accuracy"], "fgsm_accuracy")
    summary = summarise(table, "fgsm_accuracy", by=("alpha", "eps"))
    ax = new_axes(ax, (6.4, 4.2))
    colors = _lines_by_alpha(ax, summary, "eps")
    eps_axis(ax, sorted(summary["eps"].dropna().unique()))
    ax.set_xlabel("FGSM ε  (L∞ radius, pixel scale [0, 1])")
    ax.set_ylabel("test accuracy under attack")
    percent_axis(ax.yaxis)
    ax.set_title("FGSM")
    outside_legend(ax, colors)
    return ax


@styled
def plot_pgd_accuracy(
    table: pd.DataFrame, ax: Axes | None = None, eps: float | None = None
) -> Axes:
    """PGD accuracy against the number of steps, one line per alpha (Fig. 2b, A7b).

    `eps`: the attack radius to show; by default the largest present (the paper shows one).
    """
    require_metrics(table, ["pgd_accuracy"], "pgd_accuracy")
    rows = metric_rows(table, "pgd_accuracy")
    radii = sorted(rows["eps"].dropna().unique())
    eps = float(radii[-1]) if eps is None and radii else eps
    where = None if eps is None else {"eps": lambda s: np.isclose(s.astype(float), eps)}
    summary = summarise(table, "pgd_accuracy", by=("alpha", "steps"), where=where)
    ax = new_axes(ax, (6.4, 4.2))
    colors = _lines_by_alpha(ax, summary, "steps")
    ax.set_xlabel("PGD steps")
    ax.set_ylabel("test accuracy under attack")
    percent_axis(ax.yaxis)
    ax.set_title("PGD" + ("" if eps is None else f", ε = {eps_text(eps)}"))
    outside_legend(ax, colors)
    return ax


@styled
def plot_jacobian_norm(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Input-output Jacobian norm against alpha, one line (Fig. 2c, A7c)."""
    require_metrics(table, ["jacobian_norm"], "jacobian_norm")
    ax = new_axes(ax, (5.6, 4.0))
    _metric_vs_alpha(ax, table, "jacobian_norm", alphas_of(table))
    ax.set_ylabel(
        "Jacobian norm "
        + r"$\|\partial\,\mathrm{logits} / \partial\,\mathrm{input}\|_F$"
        + "\n(mean over test samples)"
    )
    ax.set_title("Input-output Jacobian")
    return ax


@styled
def plot_dimensionality(table: pd.DataFrame, ax: Sequence[Axes] | None = None) -> Figure:
    """Dimensionality against layer, one line per alpha (Fig. 3, A8).

    Panels for the metrics present: clean activations, clean - corrupted, clean - adversarial
    (each averaged over the perturbation settings in the table). Layers in table order.
    """
    panels = {
        "dimensionality": "Clean activations",
        "dimensionality_corruption": "Change under corruption",
        "dimensionality_adversarial": "Change under adversarial attack",
    }
    have = require_metrics(table, list(panels), "dimensionality", any_of=True)
    layers = appearance_order(table.loc[table["metric"].isin(have), "layer"])
    panel_width = min(6.0, max(4.2, 0.22 * len(layers) + 2.0))
    axes = new_panels(ax, len(have), (panel_width * len(have) + 1.0, 4.8), sharey=True)
    colors = alpha_colors(alphas_of(table))
    position = {layer: i for i, layer in enumerate(layers)}
    for axis, metric in zip(axes, have, strict=True):
        summary = summarise(table, metric, by=("alpha", "layer"))
        for alpha in alphas_of(summary):
            part = summary[summary["alpha"] == alpha]
            line_ci(
                axis,
                part["layer"].map(position).to_numpy(dtype=float),
                part,
                colors[alpha],
                alpha_text(alpha),
                marker=".",
            )
        axis.set_xticks(range(len(layers)))
        axis.set_xticklabels(layers, rotation=90, fontsize=7)
        axis.set_xlabel("layer (input → output)")
        axis.set_title(panels[metric])
    axes[0].set_ylabel(DIMENSIONALITY_LABEL)
    fig = figure_of(axes[0])
    alpha_legend(fig, {a: colors[a] for a in alphas_of(table)}, loc="outside right center")
    return fig


@styled
def plot_gradient_variability(table: pd.DataFrame, ax: Sequence[Axes] | None = None) -> Figure:
    """Input-unit gradient variability across samples and across units against alpha.

    One panel per metric present, one line each: per trial the mean over layers, then the mean
    and bootstrapped 95% CI over seeds.
    """
    panels = {
        "gradient_variability_samples": "across samples",
        "gradient_variability_units": "across units",
    }
    have = require_metrics(table, list(panels), "gradient_variability", any_of=True)
    axes = new_panels(ax, len(have), (5.2 * len(have), 4.0))
    alphas = alphas_of(table)
    for axis, metric in zip(axes, have, strict=True):
        _metric_vs_alpha(axis, table, metric, alphas)
        axis.set_title(f"Input-unit gradient variability {panels[metric]}")
        axis.set_ylabel("variability (a.u., mean over layers)")
    return figure_of(axes[0])


@styled
def plot_silent_units(table: pd.DataFrame, ax: Sequence[Axes] | None = None) -> Figure:
    """Silent units against alpha, beside mu_SI and mu_SI over live units.

    Left: the fraction of units silent on the split (mean over layers, and the largest layer's
    fraction, which the collapse criterion reads; dotted: COLLAPSE_SILENT_FRACTION). Right: mu_SI
    (silent units score 0, the papers' definition) and, where the table has it, mu_SI over live
    units only. Lines: mean over seeds, bands: bootstrapped 95% CI, as in the other figures.
    """
    require_metrics(table, ["silent_fraction", "selectivity"], "silent_units")
    left, right = new_panels(ax, 2, (10.4, 4.0))
    for axis in (left, right):
        # Before drawing: limits autoscaled on a linear axis would stay when it turns symlog.
        alpha_axis(axis, alphas_of(table))
    summary = summarise(table, "silent_fraction")
    line_ci(left, summary["alpha"], summary, "0.25", "mean over layers")
    rows = metric_rows(table, "silent_fraction")
    if rows["layer"].notna().any():
        per_layer = per_trial(table, "silent_fraction", ("layer",), {"layer": lambda s: s.notna()})
        trials = per_layer.groupby(trial_columns(table), dropna=False, sort=False)
        worst = trials["value"].max().reset_index()
        summary = summarise(as_metric(worst, "silent_fraction_max"), "silent_fraction_max")
        line_ci(left, summary["alpha"], summary, "tab:red", "largest layer", marker="s")
    left.axhline(COLLAPSE_SILENT_FRACTION, color="tab:red", ls=":", lw=1.0)
    left.set_ylim(-0.02, 1.02)
    left.set_ylabel("fraction of units silent")
    percent_axis(left.yaxis)
    left.set_title("Silent units")
    left.legend(frameon=False)
    summary = summarise(table, "selectivity")
    line_ci(right, summary["alpha"], summary, "0.25", r"$\mu_{SI}$ (silent units = 0)")
    if "selectivity_live" in set(table["metric"]):
        summary = summarise(table, "selectivity_live")
        line_ci(right, summary["alpha"], summary, "tab:blue", r"$\mu_{SI}$ over live units", "s")
    right.set_ylabel("network selectivity (0–1)")
    right.set_title("Selectivity")
    right.legend(frameon=False)
    return figure_of(left)


def _settings(table: pd.DataFrame, metric: str, columns: Sequence[str]) -> str:
    """The perturbation settings a metric was averaged over, in words ("" when it is absent)."""
    try:
        rows = metric_rows(table, metric)
    except ValueError:
        return ""
    combos = rows[list(columns)].drop_duplicates()
    words = []
    for _, combo in combos.iterrows():
        parts = []
        for column in columns:
            value = combo[column]
            if pd.isna(value):
                continue
            if column == "eps":
                parts.append(f"ε = {eps_text(float(value))}")
            elif column == "steps":
                parts.append(f"{int(value)} steps")
            elif column == "severity":
                parts.append(f"severity {int(value)}")
            else:
                parts.append(str(value).replace("_", " "))
        words.append(", ".join(parts))
    return "; ".join(words[:4]) + (f"; … ({len(words)} settings in all)" if len(words) > 4 else "")


def _caption_dimensionality(table: pd.DataFrame) -> str:
    present = set(table["metric"])
    text = "Fraction of PCA dimensions needed for 90% of the variance, per layer; lines: mean per α, bands: bootstrapped 95% CI over seeds."
    if "dimensionality_corruption" in present:
        text += f" Corruption change averaged over: {_settings(table, 'dimensionality_corruption', ('corruption', 'severity'))}."
    if "dimensionality_adversarial" in present:
        text += f" Adversarial change averaged over: {_settings(table, 'dimensionality_adversarial', ('eps', 'steps'))}."
    missing = [
        m
        for m in ("dimensionality", "dimensionality_corruption", "dimensionality_adversarial")
        if m not in present
    ]
    if missing:
        text += f" Panels left out (metric absent): {', '.join(missing)}."
    return f"{text} {near_cap_text(table)} Paper: Fig. 3, A8."


def _caption_pgd(table: pd.DataFrame) -> str:
    radii = sorted(metric_rows(table, "pgd_accuracy")["eps"].dropna().unique())
    binding = f" {pgd_binding_text(table, float(radii[-1]))}" if radii else ""
    return (
        "Accuracy under PGD against the number of steps per α, at the largest ε in the table; bands: "
        f"bootstrapped 95% CI ({seeds_text(table, 'pgd_accuracy')}).{binding} Paper: Fig. 2b, A7b."
    )


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "accuracy_vs_selectivity",
        "Accuracy against selectivity",
        plot_accuracy_vs_selectivity,
        lambda t: (
            "Clean test accuracy against network selectivity; large points: mean per α with bootstrapped "
            f"95% CIs on both axes ({seeds_text(t, 'test_accuracy')}), small dots: single trials; collapsed "
            "trials are shown too (see Collapsed trials). Paper: Fig. A1."
        ),
        ("selectivity", "test_accuracy"),
    ),
    FigureSpec(
        "silent_units",
        "Silent units and selectivity against α",
        plot_silent_units,
        lambda t: (
            "Left: fraction of units that never fire on the split, mean over layers and the largest "
            f"layer's (dotted: the collapse threshold, {COLLAPSE_SILENT_FRACTION:.0%}). Right: μ_SI as the "
            "papers define it (a silent unit scores 0) and, where recorded, μ_SI over live units only: "
            "where units fall silent, μ_SI falls by the formula, and the live-unit line shows how "
            "selective the units that still fire are. Bands: "
            f"bootstrapped 95% CI over seeds ({seeds_text(t, 'silent_fraction')})."
        ),
        ("silent_fraction", "selectivity", "selectivity_live"),
    ),
    FigureSpec(
        "corruption_vs_alpha",
        "Corruption robustness against α",
        plot_corruption_vs_alpha,
        lambda t: (
            "Mean accuracy over all corruptions and severities, and the same divided by clean accuracy, "
            "against α; bands: bootstrapped 95% CI over seeds"
            f" ({seeds_text(t, require_metrics(t, ['corruption_accuracy_mean', 'corruption_accuracy_relative'], 'corruption_vs_alpha', any_of=True)[0])})."
            " Paper: Fig. 1a-b, A4a-b."
        ),
        ("corruption_accuracy_mean", "corruption_accuracy_relative"),
    ),
    FigureSpec(
        "normalised_accuracy_per_corruption",
        "Normalised accuracy per corruption",
        plot_normalised_accuracy_per_corruption,
        lambda t: (
            "Per-corruption accuracy divided by the same trial's clean accuracy, mean over severities, for "
            f"the lowest, zero and highest α; bars: bootstrapped 95% CI ({seeds_text(t, 'corruption_accuracy')}). "
            "Paper: Fig. 1c, A4c (the paper's Fig. 1c uses severity 5 only)."
        ),
        ("corruption_accuracy", "test_accuracy"),
    ),
    FigureSpec(
        "accuracy_per_corruption",
        "Accuracy per corruption",
        plot_accuracy_per_corruption,
        lambda t: (
            "Accuracy per corruption, mean over severities, for every α; bars: bootstrapped 95% CI "
            f"({seeds_text(t, 'corruption_accuracy')}). Paper: Fig. A2, A5."
        ),
        ("corruption_accuracy",),
    ),
    FigureSpec(
        "clean_vs_corrupted",
        "Clean against corrupted accuracy",
        plot_clean_vs_corrupted,
        lambda t: (
            "Clean against corrupted accuracy (mean over corruptions) per severity; each line joins the α "
            f"values at one severity; bars: bootstrapped 95% CIs ({seeds_text(t, 'corruption_accuracy')}). Paper: Fig. A3, A6."
        ),
        ("corruption_accuracy", "test_accuracy"),
    ),
    FigureSpec(
        "fgsm_accuracy",
        "FGSM",
        plot_fgsm_accuracy,
        lambda t: (
            f"Accuracy under FGSM against ε per α; bands: bootstrapped 95% CI ({seeds_text(t, 'fgsm_accuracy')}). "
            "Paper: Fig. 2a, A7a."
        ),
        ("fgsm_accuracy",),
    ),
    FigureSpec("pgd_accuracy", "PGD", plot_pgd_accuracy, _caption_pgd, ("pgd_accuracy",)),
    FigureSpec(
        "jacobian_norm",
        "Input-output Jacobian",
        plot_jacobian_norm,
        lambda t: (
            "Frobenius norm of the input-output Jacobian (mean over test samples) against α; band: "
            f"bootstrapped 95% CI ({seeds_text(t, 'jacobian_norm')}). Paper: Fig. 2c, A7c."
        ),
        ("jacobian_norm",),
    ),
    FigureSpec(
        "dimensionality",
        "Dimensionality per layer",
        plot_dimensionality,
        _caption_dimensionality,
        DIMENSIONALITY_METRICS,
    ),
    FigureSpec(
        "gradient_variability",
        "Input-unit gradient variability",
        plot_gradient_variability,
        lambda t: (
            "Input-unit gradient variability across samples and across units (mean over layers per trial) "
            "against α; bands: bootstrapped 95% CI over seeds"
            f" ({seeds_text(t, require_metrics(t, ['gradient_variability_samples', 'gradient_variability_units'], 'gradient_variability', any_of=True)[0])})."
            " Paper: arXiv:2010.07693 (abstract)."
        ),
        ("gradient_variability_samples", "gradient_variability_units"),
    ),
)

"""The worst-case figure: AutoAttack against PGD accuracy on the same images, per trial and per
group (`plot_pgd_vs_autoattack`), and its registry entry `WORST_CASE_FIGURES`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from selectivity import masking
from selectivity.report.figures.style import (
    FigureSpec,
    alpha_colors,
    load_matplotlib,
    new_axes,
    outside_legend,
    percent_axis,
    seeds_text,
    styled,
)
from selectivity.report.stats import bootstrap_ci, eps_text
from selectivity.report.worstcase import pgd_vs_autoattack

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["WORST_CASE_FIGURES", "plot_pgd_vs_autoattack"]


@styled
def plot_pgd_vs_autoattack(table: pd.DataFrame, ax: Axes | None = None, by: str = "alpha") -> Axes:
    """AutoAttack against PGD accuracy at PGD's eps, on the same images: small dots are trials,
    large points the mean per `by` group (alpha, or a method's strength) with bootstrapped 95%
    CIs on both axes. Below the diagonal AutoAttack finds more adversarial images than PGD."""
    pairs = pgd_vs_autoattack(table)
    if by not in pairs.columns:
        raise ValueError(f"cannot group by {by!r}: not a trial column of the results table")
    ax = new_axes(ax, (6.0, 4.6))
    groups = sorted(pairs[by].dropna().unique())
    colors = alpha_colors(groups) if by == "alpha" else _ordered_colors(groups)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", zorder=0)
    ax.scatter(pairs["pgd"], pairs["autoattack"], s=10, alpha=0.35, lw=0, zorder=1,
               c=[colors[g] for g in pairs[by]])  # fmt: skip
    for group in groups:
        part = pairs[pairs[by] == group]
        (mx, xl, xh), (my, yl, yh) = (
            bootstrap_ci(part[column].to_numpy()) for column in ("pgd", "autoattack")
        )
        ax.errorbar(mx, my, xerr=[[mx - xl], [xh - mx]], yerr=[[my - yl], [yh - my]], fmt="o",
                    ms=6, color=colors[group], mec="white", mew=0.6, elinewidth=1.2, zorder=3)  # fmt: skip
    eps = sorted(pairs["eps"].unique())
    steps = int(pairs["steps"].max())
    ax.set_xlabel(f"PGD-{steps} accuracy (the evaluation's PGD)")
    ax.set_ylabel("AutoAttack accuracy")
    percent_axis(ax.xaxis)
    percent_axis(ax.yaxis)
    ax.set_title("PGD vs AutoAttack, ε = " + ", ".join(eps_text(e) for e in eps))
    outside_legend(ax, colors, "α" if by == "alpha" else by)
    return ax


def _ordered_colors(groups: list) -> dict:
    cmap = load_matplotlib().colormaps["viridis"]
    shades = np.linspace(0.1, 0.9, len(groups)) if len(groups) > 1 else [0.5]
    return {g: cmap(float(s)) for g, s in zip(groups, shades, strict=True)}


def _caption(table: pd.DataFrame) -> str:
    pairs = pgd_vs_autoattack(table)
    below = int((pairs["pgd"] - pairs["autoattack"] > masking.AUTOATTACK_MARGIN).sum())
    return (
        "AutoAttack accuracy against the accuracy under the evaluation's own PGD (its step size "
        "and most steps) at the same ε on the same images; large points: mean per α with "
        f"bootstrapped 95% CIs ({seeds_text(table, 'autoattack_accuracy')}), small dots: trials, "
        f"dashed: equal accuracy. {below} of {len(pairs)} trials lie more than "
        f"{masking.AUTOATTACK_MARGIN:g} below PGD (gradient-masking flag autoattack_below_pgd, "
        "unless PGD cannot reach its ε)."
    )


WORST_CASE_FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "pgd_vs_autoattack",
        "PGD against AutoAttack",
        plot_pgd_vs_autoattack,
        _caption,
        ("masking_pgd_accuracy", "autoattack_accuracy"),
    ),
)

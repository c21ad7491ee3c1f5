"""What every figure shares: matplotlib, loaded on the first figure, the house style, alpha
colours and axes, the attack-radius axis, legends, the check that a figure's metrics are in the table, the seed counts
captions quote, and `FigureSpec`, a figure of the report with its caption.

Alpha is symmetric around 0 and log-spaced in |alpha|, so every alpha axis is symlog and alpha
colours are blue (alpha < 0, selectivity discouraged), black (alpha = 0) and red (alpha > 0),
darker for larger |alpha|.

Figures are built on `matplotlib.figure.Figure` directly, never through pyplot: no global figure
registry to leak, no backend switch forced on the caller; savefig renders with Agg. Matplotlib is
imported by `load_matplotlib`, on the first figure, not when the report is imported: reading tables
creates no folder and leaves the environment as it was.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from selectivity.report.stats import alpha_text, eps_text, load_results, range_text, summarise

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "ALPHA_LABEL",
    "DIMENSIONALITY_LABEL",
    "SELECTIVITY_LABEL",
    "STYLE",
    "FigureSpec",
    "alpha_axis",
    "alpha_colors",
    "alpha_legend",
    "alphas_of",
    "eps_axis",
    "figure_of",
    "line_ci",
    "load_matplotlib",
    "n_seeds_text",
    "new_axes",
    "new_panels",
    "outside_legend",
    "percent_axis",
    "seeds_text",
    "styled",
]

STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8,
    "legend.title_fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
}

ALPHA_LABEL = "regularizer scale α  (< 0 lowers selectivity, > 0 raises it)"
SELECTIVITY_LABEL = r"network selectivity $\mu_{SI}$ (mean class-selectivity index, 0–1)"
DIMENSIONALITY_LABEL = "dimensionality\n(fraction of dims for 90% variance)"


@functools.cache
def load_matplotlib() -> ModuleType:
    """matplotlib with the submodules the figures use, imported on the first call.

    Matplotlib writes a font cache into MPLCONFIGDIR when it is first loaded; when nothing was
    configured, that goes into a temporary folder made here rather than the user's home
    (read-only homes, shared CI runners). Done on the first figure, so that importing the report
    or reading tables with it neither creates a folder nor changes the environment. The folder
    made here is removed when the process that made it exits (one per drawing process otherwise
    piles up in the temporary directory).
    """
    if not os.environ.get("MPLCONFIGDIR"):
        folder = tempfile.mkdtemp(prefix="selectivity-mpl-")
        os.environ["MPLCONFIGDIR"] = folder
        atexit.register(_remove_config_folder, folder, os.getpid())
    import matplotlib
    import matplotlib.figure
    import matplotlib.lines
    import matplotlib.ticker

    return matplotlib


def _remove_config_folder(folder: str, owner: int) -> None:
    # A forked child inherits the handler and the folder; only the process that made it cleans up.
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


def figure_of(drawn: Axes | Figure) -> Figure:
    """The Figure a plot function drew: itself, or the one its Axes belongs to."""
    if isinstance(drawn, load_matplotlib().figure.Figure):
        return drawn
    # Our axes always sit on a top-level Figure (never a SubFigure).
    return cast("Figure", drawn.figure)


def alpha_colors(alphas: Iterable[float]) -> dict[float, tuple]:
    """Colour per alpha: blues below 0, black at 0, reds above, darker with larger |alpha|."""
    values = sorted({float(a) for a in alphas})
    colormaps = load_matplotlib().colormaps
    colors: dict[float, tuple] = {}
    negative = sorted((a for a in values if a < 0), key=abs)
    positive = [a for a in values if a > 0]
    for group, cmap in ((negative, "Blues"), (positive, "Reds")):
        # One alpha on a side gets a middle shade; none (a grid without negative alphas) gets none.
        shades = np.linspace(0.45, 0.95, len(group)) if len(group) > 1 else [0.75] * len(group)
        for a, shade in zip(group, shades, strict=True):
            colors[a] = colormaps[cmap](float(shade))
    if 0.0 in values:
        colors[0.0] = (0.0, 0.0, 0.0, 1.0)
    return colors


def alphas_of(table: pd.DataFrame) -> list[float]:
    return sorted(set(table["alpha"].dropna().astype(float)))


def alpha_axis(ax: Axes, alphas: Sequence[float]) -> None:
    """Symlog x-axis: |alpha| is log-spaced and alpha = 0 must sit in the middle, not at -inf."""
    nonzero = [abs(a) for a in alphas if a != 0]
    ax.set_xscale("symlog", linthresh=min(nonzero) if nonzero else 1.0, linscale=0.6)
    ax.xaxis.set_major_formatter(load_matplotlib().ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(ALPHA_LABEL)


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    return load_matplotlib().figure.Figure(figsize=figsize, layout="constrained").add_subplot()


def new_panels(
    ax: Sequence[Axes] | None, n: int, figsize: tuple[float, float], sharey: bool = False
) -> list[Axes]:
    if ax is not None:
        axes: list[Axes] = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) < n:
            raise ValueError(f"this figure needs {n} axes, got {len(axes)}")
        return axes[:n]
    fig = load_matplotlib().figure.Figure(figsize=figsize, layout="constrained")
    return list(np.atleast_1d(fig.subplots(1, n, sharey=sharey, squeeze=False)[0]))


def line_ci(
    ax: Axes, x, summary: pd.DataFrame, color, label: str | None = None, marker: str = "o"
) -> None:
    """Mean as a line with markers, its bootstrapped CI as a band."""
    ax.plot(x, summary["mean"], marker=marker, ms=4, lw=1.6, color=color, label=label)
    ax.fill_between(x, summary["ci_low"], summary["ci_high"], color=color, alpha=0.18, lw=0)


def eps_axis(ax: Axes, eps_values: Sequence[float]) -> None:
    """Ticks at the grid's radii (at most 8), labelled k/255 where they are whole grey levels.

    Radii usually double (0, 1/255, 2/255, 4/255, 8/255): on a linear axis the small ones crowd
    at 0 and their labels overlap. Such a grid gets a symlog axis, linear up to the smallest
    radius and logarithmic above, with linscale 0.3 (log10 2) so that the step from 0 to the
    smallest radius is as wide as one doubling; an evenly spaced grid keeps its linear axis.
    """
    positive = [e for e in eps_values if e > 0]
    steps = np.diff(sorted({0.0, *positive}))
    if len(steps) > 1 and not np.allclose(steps, steps[0]):
        ax.set_xscale("symlog", linthresh=min(positive), linscale=0.3)
    ticker = load_matplotlib().ticker
    ticks = list(eps_values)[:: max(1, -(-len(eps_values) // 8))]
    ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: eps_text(v) if v > 0 else "0"))
    ax.xaxis.set_minor_locator(ticker.NullLocator())


def alpha_legend(target, colors: Mapping[float, tuple], title: str = "α", **kwargs) -> None:
    """Legend of alpha colours (or of another trial column's, named by `title`: a radius column,
    *eps, reads in grey levels) on an Axes or Figure."""
    fmt = eps_text if title.endswith("eps") else alpha_text
    handles = [
        load_matplotlib().lines.Line2D([], [], color=c, marker="o", ms=5, lw=1.6, label=fmt(a))
        for a, c in sorted(colors.items())
    ]
    target.legend(handles=handles, title=title, frameon=False, **kwargs)


def outside_legend(ax: Axes, colors: Mapping[float, tuple], title: str = "α") -> None:
    alpha_legend(ax, colors, title, loc="center left", bbox_to_anchor=(1.01, 0.5))


def percent_axis(axis) -> None:
    # decimals=None picks enough digits for the tick spacing (0.725 must not read "73%").
    axis.set_major_formatter(load_matplotlib().ticker.PercentFormatter(xmax=1.0, decimals=None))


def styled(function: Callable) -> Callable:
    """Run a plot function on a checked table (or a path to one) under the house style.

    rc_context keeps the style local: the caller's rcParams are left as they were.
    """

    @functools.wraps(function)
    def wrapper(table, *args, **kwargs):
        table = load_results(table)
        with load_matplotlib().rc_context(STYLE):
            return function(table, *args, **kwargs)

    return wrapper


def n_seeds_text(summary: pd.DataFrame) -> str:
    return f"n = {range_text(summary['n'])} seeds"


def seeds_text(table: pd.DataFrame, metric: str, by: Sequence[str] = ("alpha",)) -> str:
    """ "n = 3 seeds" (or "n = 2–3 seeds"): the seeds behind each point of `metric` per `by` group."""
    return n_seeds_text(summarise(table, metric, by=by, n_resamples=1))


@dataclass(frozen=True)
class FigureSpec:
    """A report figure: its file name, the function drawing it and a caption built from the table."""

    name: str
    title: str
    draw: Callable[[pd.DataFrame], Axes | Figure]
    caption: Callable[[pd.DataFrame], str]
    settings: tuple[str, ...] = ()  # metrics whose split, sample count, step size decide the figure

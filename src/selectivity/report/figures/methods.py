"""Figures of the second direction: what each robustness-training method did to selectivity, and
the robustness it bought (`plot_noise_training`, `plot_mix_training`, `plot_adversarial_training`
and their registry `METHOD_FIGURES`).

Each figure reads one method's experiment (`methods.experiments`: the trials at the base alpha
with the other methods off) and has four panels against the method's strength: network mu_SI
(and mu_SI over live units), the per-layer mean SI (one line per strength), the silent units,
and the robustness the method is for beside clean accuracy, so a reader sees both what the
method did to selectivity and that it did what it is for. Lines: means over seeds; bands and
bars: bootstrapped 95% CIs over seeds (`summarise`). Collapsed trials are drawn too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from selectivity.report.checks import COLLAPSE_SILENT_FRACTION
from selectivity.report.figures.style import (
    figure_of,
    line_ci,
    load_matplotlib,
    n_seeds_text,
    new_panels,
    percent_axis,
    styled,
)
from selectivity.report.methods import Experiment, experiments
from selectivity.report.stats import (
    ATTACKED,
    PGD_ATTACKED,
    alpha_text,
    appearance_order,
    as_metric,
    eps_text,
    metric_rows,
    per_trial,
    summarise,
    trial_columns,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "METHOD_FIGURES",
    "MethodFigureSpec",
    "plot_adversarial_training",
    "plot_mix_training",
    "plot_noise_training",
]

# A method's robustness curves: (metric, where, label, colour); clean accuracy is always added.
_Series = tuple[str, Mapping[str, object], str, str]
_GAUSSIAN = {"corruption": "gaussian_noise"}
_ROBUSTNESS: dict[str, tuple[_Series, ...]] = {
    "noise": (
        ("corruption_accuracy_mean", {}, "corrupted (mean over corruptions)", "tab:blue"),
        ("corruption_accuracy", _GAUSSIAN, "gaussian noise (mean over severities)", "tab:green"),
    ),
    "mix": (
        ("corruption_accuracy_heldout_mean", {}, "held-out corruptions", "tab:blue"),
        ("corruption_accuracy_mean", {}, "all corruptions (mix's own included)", "tab:cyan"),
    ),
    "adversarial": (
        ("pgd_accuracy", PGD_ATTACKED, "PGD (mean over ε > 0, steps > 0)", "tab:red"),
        ("fgsm_accuracy", ATTACKED, "FGSM (mean over ε > 0)", "tab:orange"),
    ),
}
_CMAPS = {"noise": "Greens", "mix": "Purples", "adversarial": "Oranges"}


def _experiment(table: pd.DataFrame, method: str, name: str | None) -> Experiment:
    """The experiment of `method` named `name` (default: the method's first); ValueError if none."""
    found = [e for e in experiments(table) if e.method.name == method]
    if name is not None:
        found = [e for e in found if e.name == name]
    if not found:
        which = f"experiment {name!r}" if name else f"trials of {method} training"
        raise ValueError(f"the results table has no {which} (a strength > 0, other methods off)")
    return found[0]


def _strength_axis(ax: Axes, experiment: Experiment, levels: Sequence[float]) -> None:
    if len(levels) <= 8:
        ax.set_xticks(list(levels))
        eps = experiment.method.key == "adv_eps"
        ax.set_xticklabels([eps_text(v) if eps and v > 0 else f"{v:g}" for v in levels])
    ax.set_xlabel(experiment.method.strength_label)


def _selectivity_panel(ax: Axes, exp: Experiment) -> None:
    key = exp.method.key
    summary = summarise(exp.table, "selectivity", by=(key,))
    line_ci(ax, summary[key], summary, "0.25", r"$\mu_{SI}$ (silent units = 0)")
    if "selectivity_live" in set(exp.table["metric"]):
        summary = summarise(exp.table, "selectivity_live", by=(key,))
        line_ci(ax, summary[key], summary, "tab:blue", r"$\mu_{SI}$ over live units", "s")
    ax.set_ylabel("network selectivity (0–1)")
    ax.set_title("Network selectivity")
    ax.legend(frameon=False)


def _layers_panel(ax: Axes, exp: Experiment, levels: Sequence[float]) -> None:
    """Per-layer mean SI, one line per strength: 0 black, stronger darker."""
    key = exp.method.key
    where = {"layer": lambda s: s.notna()}
    try:
        summary = summarise(exp.table, "selectivity", by=(key, "layer"), where=where)
    except ValueError:
        ax.text(
            0.5, 0.5, "no per-layer selectivity in the table", ha="center", transform=ax.transAxes
        )
        ax.set_title("Selectivity per layer")
        return
    layers = appearance_order(summary["layer"])
    position = {layer: i for i, layer in enumerate(layers)}
    positive = [v for v in levels if v > 0]
    shades = np.linspace(0.45, 0.95, len(positive)) if len(positive) > 1 else [0.75]
    cmap = load_matplotlib().colormaps[_CMAPS[exp.method.name]]
    colors = {v: cmap(float(s)) for v, s in zip(positive, shades, strict=False)}
    colors[0.0] = (0.0, 0.0, 0.0, 1.0)
    for level in levels:
        part = summary[summary[key] == level]
        x = part["layer"].map(position).to_numpy(dtype=float)
        label = eps_text(level) if key == "adv_eps" and level > 0 else f"{level:g}"
        line_ci(ax, x, part, colors[level], label, marker=".")
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(layers, rotation=90, fontsize=7)
    ax.set_xlabel("layer (input → output)")
    ax.set_ylabel("mean class-selectivity index")
    ax.set_title("Selectivity per layer")
    ax.legend(title=key, frameon=False, fontsize=7)


def _silent_panel(ax: Axes, exp: Experiment) -> None:
    """Silent units: mean over layers and the largest layer's fraction (the collapse criterion)."""
    key = exp.method.key
    if "silent_fraction" not in set(exp.table["metric"]):
        ax.text(
            0.5, 0.5, "silent_fraction absent from the table", ha="center", transform=ax.transAxes
        )
    else:
        summary = summarise(exp.table, "silent_fraction", by=(key,))
        line_ci(ax, summary[key], summary, "0.25", "mean over layers")
        rows = metric_rows(exp.table, "silent_fraction")
        if rows["layer"].notna().any():
            per = per_trial(
                exp.table, "silent_fraction", ("layer",), {"layer": lambda s: s.notna()}
            )
            worst = per.groupby(trial_columns(exp.table), dropna=False, sort=False)["value"].max()
            worst_table = as_metric(worst.reset_index(), "silent_fraction_max")
            summary = summarise(worst_table, "silent_fraction_max", by=(key,))
            line_ci(ax, summary[key], summary, "tab:red", "largest layer", marker="s")
        ax.legend(frameon=False)
    ax.axhline(COLLAPSE_SILENT_FRACTION, color="tab:red", ls=":", lw=1.0)
    ax.set_ylim(-0.02, 1.02)
    percent_axis(ax.yaxis)
    ax.set_ylabel("fraction of units silent")
    ax.set_title("Silent units")


def _robustness_panel(ax: Axes, exp: Experiment) -> None:
    """The robustness the method is for (and clean accuracy) against its strength."""
    key = exp.method.key
    series: list[_Series] = [*_ROBUSTNESS[exp.method.name], ("test_accuracy", {}, "clean", "0.5")]
    missing = []
    for metric, where, label, color in series:
        try:
            summary = summarise(exp.table, metric, by=(key,), where=where)
        except ValueError:
            missing.append(metric if not where else f"{metric} {dict(where)}")
            continue
        line_ci(ax, summary[key], summary, color, label)
    if missing:
        ax.text(
            0.02,
            0.02,
            "not in the table: " + "; ".join(missing),
            transform=ax.transAxes,
            fontsize=7,
            color="0.4",
            va="bottom",
        )
    percent_axis(ax.yaxis)
    ax.set_ylabel("test accuracy")
    ax.set_title("Robustness bought")
    ax.legend(frameon=False, fontsize=7)


def _plot_method(
    table: pd.DataFrame, method: str, ax: Sequence[Axes] | None, experiment: str | None
) -> Figure:
    """The four panels of one method's experiment (module doc)."""
    exp = _experiment(table, method, experiment)
    if "selectivity" not in set(exp.table["metric"]):
        raise ValueError(
            f"figure {method + '_training'!r} needs metric(s) ['selectivity'] absent from the results table"
        )
    levels = sorted(exp.table[exp.method.key].unique())
    axes = new_panels(ax, 4, (17.0, 4.2))
    _selectivity_panel(axes[0], exp)
    _layers_panel(axes[1], exp, levels)
    _silent_panel(axes[2], exp)
    _robustness_panel(axes[3], exp)
    for axis in (axes[0], axes[2], axes[3]):
        _strength_axis(axis, exp, levels)
    figure = figure_of(axes[0])
    if ax is None:
        figure.suptitle(f"{exp.title} at α = {alpha_text(exp.alpha)}")
    return figure


@styled
def plot_noise_training(
    table: pd.DataFrame, ax: Sequence[Axes] | None = None, experiment: str | None = None
) -> Figure:
    """Gaussian-noise training: selectivity, per-layer SI, silent units and corrupted accuracy
    (mean over corruptions; gaussian_noise) against noise_std. Four axes in `ax`, if given."""
    return _plot_method(table, "noise", ax, experiment)


@styled
def plot_mix_training(
    table: pd.DataFrame, ax: Sequence[Axes] | None = None, experiment: str | None = None
) -> Figure:
    """Corruption-mix training: as `plot_noise_training`, robustness on the held-out corruptions
    (and on all, the mix's own included) against mix_severity."""
    return _plot_method(table, "mix", ax, experiment)


@styled
def plot_adversarial_training(
    table: pd.DataFrame, ax: Sequence[Axes] | None = None, experiment: str | None = None
) -> Figure:
    """Adversarial training: as `plot_noise_training`, robustness under PGD and FGSM against
    adv_eps. `experiment` picks the attack ("adversarial (pgd)") where several were swept."""
    return _plot_method(table, "adversarial", ax, experiment)


@dataclass(frozen=True)
class MethodFigureSpec:
    """A method's report figure: drawn once per experiment of that method in the table."""

    method: str
    name: str
    title: str
    draw: Callable[..., Figure]
    robustness_words: str
    settings: tuple[str, ...] = ()  # metrics whose split, sample count, step size decide it

    def caption(self, experiment: Experiment) -> str:
        key = experiment.method.key
        seeds = summarise(experiment.table, "selectivity", by=(key,), n_resamples=1)
        return (
            f"{experiment.describe()}; every other method off. Left to right: network μ_SI (silent "
            "units score 0) and μ_SI over live units; mean SI per layer, one line per strength "
            "(0 black, stronger darker); silent units (mean over layers and the largest layer; "
            f"dotted: the collapse threshold, {COLLAPSE_SILENT_FRACTION:.0%}); "
            f"{self.robustness_words} beside clean accuracy, so the figure shows whether the "
            "method bought what it is for. Lines: means over seeds; bands: bootstrapped 95% CI "
            f"({n_seeds_text(seeds)} per strength). Collapsed trials are drawn too."
        )


METHOD_FIGURES: tuple[MethodFigureSpec, ...] = (
    MethodFigureSpec(
        "noise",
        "noise_training",
        "Gaussian-noise training and selectivity",
        plot_noise_training,
        "corrupted accuracy (mean over corruptions and severities, and gaussian noise alone)",
        ("selectivity", "corruption_accuracy_mean", "corruption_accuracy"),
    ),
    MethodFigureSpec(
        "mix",
        "mix_training",
        "Corruption-mix training and selectivity",
        plot_mix_training,
        "corrupted accuracy on the corruptions held out of the mix (and on all corruptions)",
        ("selectivity", "corruption_accuracy_heldout_mean"),
    ),
    MethodFigureSpec(
        "adversarial",
        "adversarial_training",
        "Adversarial training and selectivity",
        plot_adversarial_training,
        "accuracy under PGD (mean over ε > 0, steps > 0) and FGSM (mean over ε > 0)",
        ("selectivity", "pgd_accuracy", "fgsm_accuracy"),
    ),
)

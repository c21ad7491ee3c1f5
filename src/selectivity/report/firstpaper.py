"""The report's section on the first paper (arXiv:2003.01262, "Selectivity considered harmful"):
is class selectivity suppressed or only rotated off the unit axes, what lowering or raising it
costs in accuracy, unit ablation, selectivity per layer and per unit, the per-corruption panel
at severity 5 and selectivity over training.

`first_paper_parts` returns the section as a list of HTML strings and `Drawn` figures (which
html.py saves and embeds). A part whose rows the sweep lacks says "not measured" and why; no
figure of the section is drawn from rows that are not there.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from selectivity.report.claims.firstpaper import (
    EQUIVALENCE_MARGIN,
    TEST_LEVEL,
    improved_corruptions,
)
from selectivity.report.figures.accuracy import (
    plot_accuracy_vs_alpha,
    plot_corruption_panel,
    plot_layer_selectivity,
    plot_training_curves,
    plot_unit_selectivity,
)
from selectivity.report.figures.offaxis import (
    ablation_alphas,
    plot_rotated_selectivity,
    plot_similarity,
    plot_unit_ablation,
)
from selectivity.report.figures.style import seeds_text
from selectivity.report.stats import alpha_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FIRST_PAPER_FIGURES", "Drawn", "PaperTables", "SectionFigure", "first_paper_parts"]


@dataclass(frozen=True)
class PaperTables:
    """What the section reads: the alpha experiment's results rows, the per-epoch and per-unit
    tables of its trials (None: not gathered), the equivalence margin and the claims rows of
    `evaluate_first_paper_claims`, the table of `alpha_effects`."""

    results: pd.DataFrame
    epochs: pd.DataFrame | None = None
    units: pd.DataFrame | None = None
    margin: float = EQUIVALENCE_MARGIN
    claims: pd.DataFrame | None = None
    effects: pd.DataFrame | None = None


@dataclass(frozen=True)
class SectionFigure:
    """A figure of the section: file name, title, subsection, drawing and caption."""

    name: str
    title: str
    part: str
    draw: Callable[[PaperTables], Any]
    caption: Callable[[PaperTables], str]


@dataclass(frozen=True)
class Drawn:
    """A figure drawn for the page: html.py writes figures/<name>.png and embeds it."""

    name: str
    title: str
    figure: Axes | Figure
    caption: str


def _corruption_caption(t: PaperTables) -> str:
    text = (
        "Corrupted / clean accuracy per corruption (each trial's own clean accuracy) for the "
        "lowest, zero and highest α; top: at severity 5 only (as the paper's Fig. 1c; the "
        "highest severity present where 5 is absent), bottom: the mean over severities; bars: "
        f"bootstrapped 95% CIs ({seeds_text(t.results, 'corruption_accuracy')})."
    )
    try:
        found = improved_corruptions(t.results, n_resamples=500)
    except ValueError:
        return text
    return (
        f"{text} At severity {found['severity']}, α = {alpha_text(found['lowest'])} improved "
        f"{found['count']} of {found['n']} corruptions against α = 0 (95% CI {found['low']:g}–"
        f"{found['high']:g}, bootstrap over seeds); the papers report 12 of 15 (Tiny ImageNet-C) "
        "and 15 of 19 (CIFAR-10-C)."
    )


FIRST_PAPER_FIGURES: tuple[SectionFigure, ...] = (
    SectionFigure(
        "similarity",
        "Representational similarity to the α = 0 network of the same seed",
        "offaxis",
        lambda t: plot_similarity(t.results),
        lambda t: (
            "PWCCA (invariant to invertible linear maps) and linear CKA (invariant to rotations "
            "and isotropic scaling) between each regularized network and the α = 0 network of "
            "the same seed, on the same test images; left: mean over layers against α, right: "
            "per layer. Grey band: α = 0 networks of different seeds compared with each other "
            "(mean and 95% CI). Lines: mean over seeds, bands: bootstrapped 95% CIs "
            f"({seeds_text(t.results, 'pwcca' if (t.results['metric'] == 'pwcca').any() else 'linear_cka')})."
        ),
    ),
    SectionFigure(
        "rotated_selectivity",
        "Selectivity in an optimized basis against α",
        "offaxis",
        lambda t: plot_rotated_selectivity(t.results),
        lambda t: (
            "The rotated-basis bound: the largest mean SI over orthogonal rotations of each "
            "layer's units (found by optimization with restarts, never below the unit-axis value), "
            "beside μ_SI on the unit axes; left: network level, right: per layer (dotted: unit "
            f"axes). Bands: bootstrapped 95% CIs ({seeds_text(t.results, 'selectivity_rotated')})."
        ),
    ),
    SectionFigure(
        "accuracy_vs_alpha",
        "Test accuracy against α",
        "accuracy",
        lambda t: plot_accuracy_vs_alpha(t.results, margin=t.margin),
        lambda t: (
            "Clean test accuracy; dots: single seeds, line: mean over seeds with its bootstrapped "
            f"95% CI ({seeds_text(t.results, 'test_accuracy')}); grey band: the α = 0 mean's CI; "
            f"dashed: ±{t.margin:g} around it, the equivalence margin of the claims below."
        ),
    ),
    SectionFigure(
        "layer_selectivity_vs_alpha",
        "Selectivity per layer against α",
        "layers",
        lambda t: plot_layer_selectivity(t.results),
        lambda t: (
            "Each layer's mean SI (silent units count 0) against α, colour by depth; black: μ_SI. "
            f"Bands: bootstrapped 95% CIs ({seeds_text(t.results, 'selectivity')})."
        ),
    ),
    SectionFigure(
        "unit_selectivity",
        "Distribution of unit selectivity per layer",
        "layers",
        lambda t: plot_unit_selectivity(t.units),
        lambda t: (
            "Unit SI per layer for the lowest, zero and highest α, pooled over seeds (each "
            "trial's selectivity.parquet, test split); violins: density, line: median."
        ),
    ),
    SectionFigure(
        "corruption_panel",
        "Normalised accuracy per corruption at severity 5",
        "corruption",
        lambda t: plot_corruption_panel(t.results),
        _corruption_caption,
    ),
    SectionFigure(
        "training_curves",
        "Selectivity and accuracy over training",
        "training",
        lambda t: plot_training_curves(t.epochs),
        lambda t: (
            "Validation μ_SI and validation accuracy after each epoch (each trial's "
            "metrics.parquet), one line per α: mean over seeds, band: bootstrapped 95% CI."
        ),
    ),
)

_PARTS = {
    "offaxis": (
        "Suppressed or rotated off the unit axes?",
        "A regularizer that lowers μ_SI might only rotate class information off the unit axes, "
        "spreading it linearly over units, without removing it. Two checks. (1) Representational "
        "similarity: PWCCA and linear CKA do not change when a representation is rotated (PWCCA "
        "not under any invertible linear map), so if the regularizer only rotated selectivity "
        "off-axis, each regularized network would stay as similar to the α = 0 network of its "
        "seed as α = 0 networks of different seeds are to each other (the grey band); similarity "
        "falling below the band means the representation changed beyond a rotation. (2) "
        "Selectivity in an optimized basis: the largest mean SI over rotations of each layer's "
        "units bounds what a rotation could hide; the paper finds this bound falls with α < 0 "
        "too, so selectivity is suppressed rather than moved off-axis.",
    ),
    "accuracy": (
        "The accuracy story",
        "The paper (arXiv:2003.01262): μ_SI of ResNet20 on CIFAR-10 could be lowered by a factor "
        "of ~2.5 without changing test accuracy and by ~20 (nearly to 0) at a cost of ~2%, while "
        "raising selectivity even slightly cost accuracy. Below, per α, the factor by which μ_SI "
        "fell or rose against α = 0 and the accuracy change, with 95% CIs (percentile bootstrap "
        "over seeds, paired by seed where both α hold the same seeds); then the claims: "
        "<i>costs no accuracy</i> as equivalence within the margin (two one-sided bootstrap tests, "
        "TOST) and <i>hurts</i> as a one-sided test at the smallest α > 0.",
    ),
    "ablation": (
        "Unit ablation",
        "The analysis the paper argues against, shown for comparison (Morcos et al. 2018): test "
        "accuracy as a layer's units are silenced (set to 0) in order of their SI, most "
        "selective first, least selective first, and in random order; the whole-network panel "
        "silences that fraction of every layer at once. One figure per α.",
    ),
    "layers": ("Selectivity per layer and per unit", ""),
    "corruption": ("Corruptions one by one", ""),
    "training": ("Selectivity and accuracy over training", ""),
}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _claims_table(claims: pd.DataFrame) -> str:
    lines = [
        "<table class='claims'><thead><tr><th>finding (source)</th><th>x</th><th>statistic</th>"
        "<th>expected</th><th>estimate [CI]</th><th>found</th><th>n</th><th>verdict</th></tr>"
        "</thead><tbody>"
    ]
    for _, r in claims.iterrows():
        verdict = str(r["verdict"])
        lines.append(
            f"<tr><td>{html.escape(r['claim'])}<br><span class='src'>{html.escape(r['source'])}</span></td>"
            f"<td>{html.escape(r['x'])}</td><td>{html.escape(r['statistic'])}</td>"
            f"<td>{html.escape(r['expected'])}</td>"
            f"<td>{_fmt(r['estimate'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]</td>"
            f"<td>{html.escape(str(r['direction']))}</td>"
            f"<td>{r['n_trials']} trials ({html.escape(str(r['seeds_per_alpha']))} per α); "
            f"{html.escape(str(r['trials_used']))}</td>"
            f"<td class='{verdict.replace(' ', '-')}'>{verdict}<br><span class='src'>rule: "
            f"{html.escape(r['verdict_rule'])}; {html.escape(str(r['note']))}</span></td></tr>"
        )
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _effects_table(effects: pd.DataFrame | None) -> str:
    if effects is None or effects.empty:
        return "<p>Not measured: the table needs selectivity or test_accuracy at α = 0 and another α.</p>"
    lines = [
        "<table><thead><tr><th>α</th><th>seeds (α; α = 0)</th><th>μ_SI against α = 0</th>"
        "<th>ratio μ_SI(α) / μ_SI(0) [95% CI]</th><th>accuracy change [95% CI]</th></tr>"
        "</thead><tbody>"
    ]
    for _, r in effects.iterrows():
        paired = " (paired)" if str(r["paired"]) == "True" else ""
        lines.append(
            f"<tr><td>{alpha_text(float(r['alpha']))}</td>"
            f"<td>{_fmt(r['n_seeds'])}; {_fmt(r['n_control'])}{paired}</td>"
            f"<td>{html.escape(str(r['selectivity_change']))}</td>"
            f"<td>{_fmt(r['selectivity_ratio'])} [{_fmt(r['selectivity_ratio_low'])}, {_fmt(r['selectivity_ratio_high'])}]</td>"
            f"<td>{_fmt(r['accuracy_change'])} [{_fmt(r['accuracy_change_low'])}, {_fmt(r['accuracy_change_high'])}]</td></tr>"
        )
    lines.append("</tbody></table><p class='src'>Also in alpha_effects.csv.</p>")
    return "\n".join(lines)


def _draw(spec: SectionFigure, tables: PaperTables) -> Drawn | str:
    try:
        return Drawn(spec.name, spec.title, spec.draw(tables), spec.caption(tables))
    except ValueError as error:
        return f"<p><b>{html.escape(spec.title)}</b>: not measured ({html.escape(str(error))}).</p>"


def _ablation_parts(tables: PaperTables) -> list[Drawn | str]:
    alphas = ablation_alphas(tables.results)
    if not alphas:
        return ["<p><b>Unit ablation</b>: not measured (no ablation_accuracy_* rows).</p>"]
    parts: list[Drawn | str] = []
    for alpha in alphas:
        name = "unit_ablation_alpha=" + re.sub(r"[^A-Za-z0-9_.-]", "_", alpha_text(alpha))
        try:
            figure = plot_unit_ablation(tables.results, alpha=alpha)
        except ValueError as error:
            parts.append(f"<p>{html.escape(name)}: not measured ({html.escape(str(error))}).</p>")
            continue
        caption = (
            f"α = {alpha_text(alpha)}: test accuracy against the fraction of units silenced; "
            "most / least selective first: mean over seeds with bootstrapped 95% CI; random "
            "order: mean over seeds and draws, band: their range."
        )
        parts.append(Drawn(name, f"Unit ablation, α = {alpha_text(alpha)}", figure, caption))
    return parts


def first_paper_parts(tables: PaperTables) -> list[Drawn | str]:
    """The section: per subsection its words, its figures (or "not measured") and claims."""
    claims = tables.claims if tables.claims is not None else pd.DataFrame()
    groups = {
        "offaxis": ("rotated_bound_falls", "pwcca_below", "linear_cka_below"),
        "accuracy": ("no_accuracy_cost", "raising_hurts"),
        "corruption": ("corruptions_improved",),
    }
    parts: list[Drawn | str] = [
        "<h2 id='first-paper'>Selectivity considered harmful: suppressed or rotated, and what "
        "it costs</h2>",
        f"<p>The first paper's questions (arXiv:2003.01262) on the α experiment. Equivalence "
        f"margin: ±{tables.margin:g} accuracy (<code>selectivity report --margin</code>); "
        f"one-sided tests at {TEST_LEVEL:g}, so their intervals are 90% ones.</p>",
    ]
    for key, (title, words) in _PARTS.items():
        parts.append(f"<h3>{html.escape(title)}</h3>")
        if words:
            parts.append(f"<p>{words}</p>")
        if key == "accuracy":
            parts.append(_effects_table(tables.effects))
        if key == "ablation":
            parts.extend(_ablation_parts(tables))
        parts.extend(_draw(spec, tables) for spec in FIRST_PAPER_FIGURES if spec.part == key)
        if key in groups and not claims.empty:
            rows = claims[claims["key"].str.startswith(groups[key])]
            if len(rows):
                parts.append(_claims_table(rows))
    return parts

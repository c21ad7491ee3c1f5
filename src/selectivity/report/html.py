"""The report's output: `write_report` writes report.html (one self-contained file, figures
embedded), figures/<name>.png, summary.csv (`summary_table`) and claims.csv.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from selectivity.files import remove_stale_temporaries, write_bytes
from selectivity.report.checks import (
    COLLAPSE_ACCURACY_MARGIN,
    COLLAPSE_SILENT_FRACTION,
    Collapse,
    find_collapsed,
    settings_text,
)
from selectivity.report.claims import (
    EQUIVALENCE_MARGIN,
    MIN_ALPHAS,
    MIN_LEVELS,
    MIN_SAMPLES,
    MIN_TRIALS,
    SILENT_SPREAD,
    SOURCES,
    alpha_effects,
    evaluate_claims,
    evaluate_first_paper_claims,
    evaluate_method_claims,
    holm_verdicts,
)
from selectivity.report.figures import (
    FIGURES,
    METHOD_FIGURES,
    WORST_CASE_FIGURES,
    FigureSpec,
    plot_pgd_vs_autoattack,
)
from selectivity.report.figures.style import alphas_of, figure_of
from selectivity.report.firstpaper import Drawn, PaperTables, first_paper_parts
from selectivity.report.gains import corruption_gains, trained_on
from selectivity.report.methods import Experiment, experiments, unassigned
from selectivity.report.stats import (
    N_RESAMPLES,
    alpha_text,
    appearance_order,
    eps_text,
    load_results,
    range_text,
    summary_table,
    trial_columns,
)
from selectivity.report.worstcase import masked_html

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["write_report"]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}g}"


MARK = "⚑"  # on a verdict that another reading of the same claim changes (`hangs_on`)


def _verdict_cell(r: pd.Series) -> str:
    """The verdict, its Holm-adjusted form beside it, the mark when a reading changes it, and the
    rule and note."""
    verdict = r["verdict"]
    marked = bool(r.get("hangs_on"))
    flag = f" <span class='mark' title='the verdict changes with the reading'>{MARK}</span>"
    lines = [f"{verdict}{flag if marked else ''}"]
    if verdict != "not tested":
        adjusted = f"Holm: {html.escape(str(r['verdict_holm']))}"
        if np.isfinite(r["p_holm"]):
            raw = "p ≈ 0" if r["p_value"] == 0 else f"p = {_fmt(r['p_value'], 2)}"
            adjusted += f" ({raw}, adjusted {_fmt(r['p_holm'], 2)})"
        lines.append(f"<span class='holm'>{adjusted}</span>")
    if marked:
        lines.append(f"<span class='hangs'>{MARK} changes with {html.escape(r['hangs_on'])}</span>")
    lines.append(
        f"<span class='src'>rule: {html.escape(r['verdict_rule'])}; {html.escape(r['note'])}</span>"
    )
    css = verdict.replace(" ", "-") + (" marked" if marked else "")
    return f"<td class='{css}'>{'<br>'.join(lines)}</td>"


def _readings_cell(r: pd.Series) -> str:
    """The claim's other readings: over live units, under the silent-unit rule, per layer."""
    lines = []
    if r["verdict_live"]:
        lines.append(
            f"live units: {html.escape(r['verdict_live'])} "
            f"({_fmt(r['live_estimate'])} [{_fmt(r['live_ci_low'])}, {_fmt(r['live_ci_high'])}])"
        )
    if r["verdict_silent_rule"]:
        lines.append(
            f"silent-unit rule: {html.escape(r['verdict_silent_rule'])} "
            f"({r['n_silent_left_out']} more left out)"
        )
    if r["by_layer"]:
        lines.append(f"<span class='src'>per layer: {html.escape(r['by_layer'])}</span>")
    shown = "<br>".join(lines) if lines else "<span class='src'>no μ_SI in this claim</span>"
    return f"<td class='readings'>{shown}</td>"


def _claims_html(claims: pd.DataFrame) -> str:
    tested = claims[claims["verdict"] != "not tested"]
    untested = claims[claims["verdict"] == "not tested"]
    lines = [
        "<table class='claims'><thead><tr><th>finding (paper)</th><th>x</th><th>statistic</th>"
        "<th>expected</th><th>estimate [95% CI]</th><th>direction found</th>"
        "<th>Δ lowest α − (α = 0) [95% CI]</th><th>n</th><th>verdict</th>"
        "<th>other readings</th></tr></thead><tbody>"
    ]
    for _, r in tested.iterrows():
        n = f"{r['n_trials']} trials ({r['n_alphas']} α × {r['seeds_per_alpha']} seeds); {r['trials_used']}"
        if r["n_collapsed_left_out"]:
            n += f": {r['n_collapsed_left_out']}"
        estimate = f"{_fmt(r['estimate'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
        if r["check_statistic"]:
            estimate += (
                f"<br>{html.escape(r['check_statistic'])}: {_fmt(r['check_estimate'])} "
                f"[{_fmt(r['check_ci_low'])}, {_fmt(r['check_ci_high'])}]"
            )
        lines.append(
            "<tr>"
            f"<td>{html.escape(r['claim'])}<br><span class='src'>{html.escape(r['source'])}</span></td>"
            f"<td>{html.escape(r['x'])}</td>"
            f"<td>{html.escape(r['statistic'])}</td><td>{html.escape(r['expected'])}</td>"
            f"<td>{estimate}</td>"
            f"<td>{html.escape(r['direction'])}</td>"
            f"<td>{_fmt(r['contrast'])} [{_fmt(r['contrast_low'])}, {_fmt(r['contrast_high'])}]</td>"
            f"<td>{html.escape(n)}</td>"
            f"{_verdict_cell(r)}{_readings_cell(r)}"
            "</tr>"
        )
    lines.append("</tbody></table>")
    if not untested.empty:
        lines.append("<p>Not tested (metric absent from the table):</p><ul>")
        lines.extend(
            f"<li>{html.escape(r['claim'])} — {html.escape(r['note'])}</li>"
            for _, r in untested.iterrows()
        )
        lines.append("</ul>")
    return "\n".join(lines)


def _cell(column: str, value: object) -> str:
    """A trial column's value as text: a radius (a column named *eps) in 8-bit grey levels where
    it is a whole number of them (8/255), other floats in their short form (0.1)."""
    if isinstance(value, float):
        return eps_text(value) if column.endswith("eps") else f"{value:g}"
    return str(value)


def _collapse_html(collapse: Collapse) -> str:
    """The collapse policy (stated once, here), the collapsed trials, the criteria, and what
    could not be checked."""
    lines = [
        f"<h2 id='collapse'>Collapsed trials ({len(collapse.trials)} of {collapse.n_trials}) and "
        "the collapse policy</h2>",
        "<p><b>One policy for every claim.</b> A trial is left out of a claim when its network no "
        f"longer classifies: clean test accuracy at most {COLLAPSE_ACCURACY_MARGIN:g} of the way "
        "from chance (1 / classes) to 1. Only the claim about the regularizer's cost in clean "
        "accuracy keeps such trials, since reaching chance is the outcome it measures. Trials with "
        f"more than {COLLAPSE_SILENT_FRACTION:.0%} of some layer's units silent on the test set "
        "stay in: silent units are part of what α or a training method does to μ_SI (they score 0 "
        "by the papers' formula), and leaving trials out by their silent fraction would select "
        "them on the quantity under test. What the silent units decide is shown instead, for every "
        "claim about μ_SI: its reading over live units (selectivity_live), its reading without the "
        "mostly silent trials too (<i>silent-unit rule</i>, a sensitivity reading), and its "
        f"reading per layer whose silent fraction spans at least {SILENT_SPREAD:.0%} across the "
        f"claim's trials. {MARK} marks a verdict that the live-unit reading or the silent-unit "
        "rule changes. Every trial stays in the figures.</p>",
    ]
    if len(collapse.trials):
        # Swept keys beyond alpha and seed (method strengths) get a column each.
        others = [c for c in collapse.columns if c not in ("alpha", "seed")]
        heads = "".join(f"<th>{html.escape(c)}</th>" for c in others)
        lines.append(
            f"<table><thead><tr><th>α</th><th>seed</th>{heads}<th>why</th>"
            "<th>in the claims</th></tr></thead><tbody>"
        )
        for _, r in collapse.trials.iterrows():
            cells = "".join(f"<td>{html.escape(_cell(c, r[c]))}</td>" for c in others)
            near_chance = "clean accuracy" in str(r["reason"])
            kept = "left out" if near_chance else "kept; left out by the silent-unit rule only"
            lines.append(
                f"<tr><td>{alpha_text(float(r['alpha']))}</td><td>{html.escape(str(r['seed']))}</td>"
                f"{cells}<td>{html.escape(str(r['reason']))}</td><td>{kept}</td></tr>"
            )
        lines.append("</tbody></table>")
    else:
        lines.append("<p>No trial met a criterion that could be checked.</p>")
    if collapse.unchecked:
        lines.append("<p><b>Not checked:</b></p><ul>")
        lines.extend(f"<li>{html.escape(u)}</li>" for u in collapse.unchecked)
        lines.append(
            "</ul><p>Collapsed trials the table cannot reveal may remain in the claims; results "
            "written by this version of evaluate carry chance_accuracy and silent_fraction.</p>"
        )
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1250px; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #f4f4f4; }
.src { color: #777; font-size: 0.9em; }
td.supported { background: #e3f4e1; } td.contradicted { background: #fbe1e1; }
td.inconclusive { background: #f3f3f3; } td.not-tested { background: #fdf3d8; }
td.marked { box-shadow: inset 4px 0 0 #d08a00; }
.mark, .hangs { color: #a05a00; font-weight: bold; } .hangs { font-size: 0.9em; }
.holm { font-size: 0.9em; } td.readings { min-width: 16em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; max-width: 1000px; }
"""


def write_report(
    results: pd.DataFrame | str | os.PathLike,
    out_dir: str | os.PathLike,
    failed: pd.DataFrame | str | os.PathLike | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    epochs: pd.DataFrame | None = None,
    units: pd.DataFrame | None = None,
    equivalence_margin: float = EQUIVALENCE_MARGIN,
) -> Path:
    """Write out_dir/report.html, out_dir/figures/<name>.png, summary.csv, claims.csv and
    alpha_effects.csv.

    report.html is one self-contained file (PNG figures embedded as base64): the claims table
    first, then the figures with captions, then the figures skipped because their metrics are
    absent and, when `failed` is given (a table or its parquet/csv path), the failed trials.
    The collapsed trials (`find_collapsed`) follow the claims table, with the criterion each met
    and what the table did not allow to check. Figure captions name the split, sample count and
    PGD step size behind them, whether PGD's ε-ball binds, and dimensionality values near their
    sample-count cap. Every file is written under a temporary name and renamed; temporaries that
    an interrupted earlier report left are removed, and so, once report.html is written, are the
    figures in figures/ that this report did not write. Returns the path of report.html.

    The first paper's section (`firstpaper`) reads the alpha experiment's rows and, where given,
    the trials' per-epoch (`epochs`) and per-unit (`units`) tables (`trials.load_trial_tables`);
    `equivalence_margin` is the margin of its "costs no accuracy" claims (accuracy fraction).
    """
    table = load_results(results)
    out = Path(out_dir)
    folder = _FigureFolder(out / "figures")
    folder.path.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    remove_stale_temporaries(folder.path)
    if failed is not None and not isinstance(failed, pd.DataFrame):
        path = Path(failed)
        failed = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)

    summary = summary_table(table, n_resamples=n_resamples, seed=seed)
    write_bytes(out / "summary.csv", summary.to_csv(index=False).encode())
    collapse = find_collapsed(table)
    # The papers' claims and figures read the alpha experiment: every training method off.
    found = experiments(table)
    alpha = next((e.table for e in found if not e.training), table.iloc[:0])
    claims = evaluate_claims(alpha, n_resamples=n_resamples, seed=seed, collapse=collapse)
    method_claims = evaluate_method_claims(
        table, n_resamples=n_resamples, seed=seed, collapse=collapse
    )
    paper = _first_paper(alpha, collapse, epochs, units, equivalence_margin, n_resamples, seed)
    # One family for the multiple-testing adjustment: every claim of the report with a p-value.
    family = [c for c in (claims, paper.claims, method_claims) if c is not None and not c.empty]
    both = holm_verdicts(pd.concat(family, ignore_index=True))
    adjusted, start = [], 0
    for part in family:
        adjusted.append(both.iloc[start : start + len(part)].set_index(part.index))
        start += len(part)
    claims = adjusted[0]
    if paper.claims is not None and not paper.claims.empty:
        paper = replace(paper, claims=adjusted[1])
    if not method_claims.empty:
        method_claims = adjusted[-1]
    write_bytes(out / "claims.csv", both.to_csv(index=False).encode())
    effects = paper.effects if paper.effects is not None else pd.DataFrame()
    write_bytes(out / "alpha_effects.csv", effects.to_csv(index=False).encode())

    figures, skipped = _draw_figures(alpha, folder)
    parts = [
        *_head_html(alpha, n_resamples, _experiments_html(table, found)),
        _claims_html(claims),
        _collapse_html(collapse),
        masked_html(table),
        "<p class='src'>Sources: "
        + "; ".join(f"{html.escape(k)} = {html.escape(v)}" for k, v in SOURCES.items())
        + ".</p>",
        *_figures_html(figures, skipped),
        *_first_paper_html(paper, folder),
        *_training_html(found, method_claims, folder, n_resamples, seed),
    ]
    if failed is not None:
        parts.append(f"<h2>Failed trials ({len(failed)})</h2>")
        parts.append(
            failed.to_html(index=False, escape=True, na_rep="") if len(failed) else "<p>None.</p>"
        )
    parts.append(
        "<p class='src'>Files next to this report: summary.csv (mean, ci_low, ci_high, n per α and metric keys), "
        "claims.csv, alpha_effects.csv (μ_SI factor and accuracy change per α), figures/*.png.</p></body></html>"
    )
    report = out / "report.html"
    write_bytes(report, "\n".join(parts).encode("utf-8"))
    folder.remove_others()
    return report


def _first_paper(
    alpha: pd.DataFrame,
    collapse: Collapse,
    epochs: pd.DataFrame | None,
    units: pd.DataFrame | None,
    margin: float,
    n_resamples: int,
    seed: int,
) -> PaperTables:
    """The first paper's tables: claims and alpha effects of the alpha experiment, and the
    per-epoch and per-unit rows of its trials."""
    claims = evaluate_first_paper_claims(alpha, collapse, margin, n_resamples, seed)
    effects = alpha_effects(alpha, n_resamples, seed)
    columns = trial_columns(alpha)
    trials = alpha[columns].drop_duplicates()

    def own(frame: pd.DataFrame | None) -> pd.DataFrame | None:
        if frame is None or not set(columns) <= set(frame.columns):
            return None
        return frame.merge(trials, on=columns, how="inner")

    return PaperTables(alpha, own(epochs), own(units), margin, claims, effects)


def _first_paper_html(paper: PaperTables, folder: _FigureFolder) -> list[str]:
    """The first paper's section, its figures saved to folder."""
    return [
        _figure_html(part.name, part.title, folder.save(part.figure, part.name), part.caption)
        if isinstance(part, Drawn)
        else part
        for part in first_paper_parts(paper)
    ]


def _draw_figures(
    table: pd.DataFrame, folder: _FigureFolder
) -> tuple[list[tuple[FigureSpec, str, str]], list[tuple[str, str]]]:
    """Every figure the table allows, written to folder/<name>.png: ([(spec, caption, base64
    PNG)], [(name, why skipped)])."""
    figures, skipped = [], []
    for spec in (*FIGURES, *WORST_CASE_FIGURES):
        try:
            drawn = spec.draw(table)
            caption = spec.caption(table)
            if spec.settings:
                caption += " " + settings_text(table, spec.settings)
        except ValueError as error:
            skipped.append((spec.name, str(error)))
            continue
        figures.append((spec, caption, folder.save(drawn, spec.name)))
    return figures, skipped


class _FigureFolder:
    """The report's figures/ folder: the PNGs this report writes, and the clearing of the rest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written: set[str] = set()

    def save(self, drawn: Axes | Figure, name: str) -> str:
        """Write the figure `drawn` (a plot function's return) as <name>.png; its base64 text."""
        data = _png(figure_of(drawn))
        write_bytes(self.path / f"{name}.png", data)
        self.written.add(f"{name}.png")
        return base64.b64encode(data).decode("ascii")

    def remove_others(self) -> None:
        """Delete the PNGs this report did not write: an earlier report's figures (one whose
        metrics this table lacks) would otherwise sit beside this report's as if they were its."""
        for stale in self.path.glob("*.png"):
            if stale.name not in self.written and stale.is_file():
                stale.unlink(missing_ok=True)


def _figure_html(name: str, title: str, encoded: str, caption: str) -> str:
    """A figure embedded in the page (base64 PNG) with its caption."""
    return (
        f"<figure id='{html.escape(name)}'><img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'>"
        f"<figcaption><b>{html.escape(title)}</b> ({html.escape(name)}.png). {html.escape(caption)}</figcaption></figure>"
    )


def _head_html(table: pd.DataFrame, n_resamples: int, described: list[str]) -> list[str]:
    """The page head, the sweep's description and how the claims table reads.

    table: the alpha experiment's rows; described: the list of the sweep's experiments, when it
    has more than that one (then the description is the alpha experiment's).
    """
    alphas = alphas_of(table)
    trials = table[trial_columns(table)].drop_duplicates()
    per_alpha = trials.groupby("alpha").size()
    present = appearance_order(table["metric"])
    return [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Class selectivity and robustness: sweep report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Class selectivity and robustness: sweep report</h1>",
        f"<p>{'α experiment: ' if described else ''}{len(trials)} trials: {len(alphas)} α values ({html.escape(', '.join(alpha_text(a) for a in alphas))}), "
        f"{range_text(per_alpha)} seeds per α; "
        f"{len(table)} result rows; metrics: {html.escape(', '.join(present))}.</p>",
        *described,
        "<h2>Claims of the papers, tested on this table</h2>",
        "<p>Each claim is tested against the variable it is about (column x): claims about the "
        "regularizer's effect use Spearman's ρ across trials between α (the manipulated variable) and "
        "the metric; claims stated about selectivity use the trial's measured network selectivity μ_SI "
        "(clean test set). The dimensionality comparisons use the mean per-trial difference. "
        "Trials whose network no longer classifies are left out by the one collapse policy "
        "(<a href='#collapse'>Collapsed trials</a>). Adversarial claims are tested on accuracy "
        "under attack and on the same divided by clean accuracy, and are supported or contradicted "
        "only when both agree, so that the regularizer's cost in clean accuracy cannot decide them; "
        "the PGD claim reads the strongest PGD attack run (the most steps). 95% CIs: percentile "
        f"bootstrap ({n_resamples} resamples) over trials, each trial being one training run with "
        "its own seed. <b>supported</b>: CI excludes 0 on the paper's side; <b>contradicted</b>: CI "
        "excludes 0 on the other side; <b>inconclusive</b>: CI includes 0, the two adversarial tests "
        f"disagree, or fewer than {MIN_TRIALS} trials, {MIN_ALPHAS} α values or {MIN_SAMPLES} images "
        "per trial. Early layers = first half of the layers. <b>Multiple testing</b>: beside each "
        "verdict, its Holm-adjusted form over every claim tested in this report (papers' and "
        "training methods' together): the two-sided bootstrap p-value of each claim (from the "
        "resamples of its CI; for a claim with a check, the larger of the two), adjusted by Holm's "
        "step-down method; a supported or contradicted verdict whose adjusted p is not below 0.05 "
        "becomes inconclusive. <b>Other readings</b>: a claim about μ_SI is read again over live "
        f"units, under the silent-unit rule and per layer where units fall silent; {MARK} marks "
        "a verdict that one of the first two changes. Correlations across trials show association; "
        "the regularizer supplies the intervention.</p>",
    ]


def _experiments_html(table: pd.DataFrame, found: list[Experiment]) -> list[str]:
    """The sweep's experiments, when it trained robustness methods too (nothing otherwise)."""
    if not any(e.training for e in found):
        pooled = [c for e in found for c in e.pooled()]
        if not pooled:
            return []
        return [
            f"<p>Swept keys besides α and seed: {html.escape(', '.join(pooled))}. Trials differing "
            "in them are pooled per α as seeds are (summary.csv keeps them apart).</p>"
        ]
    items = [f"<li><b>{html.escape(e.title)}</b>: {html.escape(e.describe())}</li>" for e in found]
    left = unassigned(table, found)
    if len(left):
        items.append(
            f"<li><b>In no experiment</b>: {len(left)} trial(s) with several methods on, or a "
            "method at another α than its experiment's; they enter summary.csv only.</li>"
        )
    return [
        "<p>This sweep holds several experiments. The claims and figures of the papers below read "
        "the trials with every robustness-training method off; each method's experiment (the "
        "trials at one α with the other methods off, the baseline at strength 0 included) has "
        "its own section, <a href='#training'>Robustness training → selectivity</a>.</p><ul>",
        *items,
        "</ul>",
    ]


def _figures_html(
    figures: list[tuple[FigureSpec, str, str]], skipped: list[tuple[str, str]]
) -> list[str]:
    """The figures with their captions, then the ones skipped and why."""
    parts = ["<h2>Figures</h2>"]
    for spec, caption, encoded in figures:
        parts.append(_figure_html(spec.name, spec.title, encoded, caption))
    parts.append("<h2>Skipped figures</h2>")
    if skipped:
        parts.append("<ul>")
        parts.extend(
            f"<li><b>{html.escape(n)}</b>: {html.escape(reason)}</li>" for n, reason in skipped
        )
        parts.append("</ul>")
    else:
        parts.append("<p>None: every figure had its metrics.</p>")
    return parts


def _method_claims_html(claims: pd.DataFrame) -> str:
    """The method claims, every row (a "not tested" row says why: that is a finding here)."""
    lines = [
        "<table class='claims'><thead><tr><th>claim</th><th>experiment</th><th>statistic</th>"
        "<th>expected</th><th>estimate [95% CI]</th><th>robustness bought [95% CI]</th>"
        "<th>direction found</th><th>Δ μ_SI largest strength − 0 [95% CI]</th><th>n</th>"
        "<th>verdict</th><th>other readings</th></tr></thead><tbody>"
    ]
    for _, r in claims.iterrows():
        n = (
            f"{r['n_trials']} trials ({r['n_levels']} {r['strength']} values × "
            f"{r['seeds_per_level']} seeds, α = {alpha_text(float(r['alpha']))}); trials near "
            f"chance left out: {r['n_collapsed_left_out']}"
        )
        lines.append(
            "<tr>"
            f"<td>{html.escape(r['claim'])}<br><span class='src'>{html.escape(r['source'])}</span></td>"
            f"<td>{html.escape(r['experiment'])}</td><td>{html.escape(r['statistic'])}</td>"
            f"<td>{html.escape(r['expected'])}</td>"
            f"<td>{_fmt(r['estimate'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]</td>"
            f"<td>{html.escape(r['check_statistic'])}: {_fmt(r['check_estimate'])} "
            f"[{_fmt(r['check_ci_low'])}, {_fmt(r['check_ci_high'])}]</td>"
            f"<td>{html.escape(r['direction'])}</td>"
            f"<td>{_fmt(r['contrast'])} [{_fmt(r['contrast_low'])}, {_fmt(r['contrast_high'])}]</td>"
            f"<td>{html.escape(n)}</td>"
            f"{_verdict_cell(r)}{_readings_cell(r)}"
            "</tr>"
        )
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _gains_html(methods: list[Experiment], n_resamples: int, seed: int) -> list[str]:
    """The table of what each training method gained per corruption (nothing without
    corruption_accuracy rows): gain at the largest strength minus at strength 0, [95% CI]."""
    gains = {e.name: corruption_gains(e, n_resamples=n_resamples, seed=seed) for e in methods}
    gains = {name: frame for name, frame in gains.items() if not frame.empty}
    if not gains:
        return []
    corruptions = list(dict.fromkeys(c for frame in gains.values() for c in frame["corruption"]))
    heads = "".join(f"<th>{html.escape(name)}</th>" for name in gains)
    lines = [
        "<h3 id='gains'>Gains per corruption</h3>",
        "<p>Mean accuracy on each corruption (over severities) at the method's largest strength "
        "minus at strength 0, [95% CI] (bootstrap over trials). <b>trained</b>: the method trained "
        "on that corruption; every other corruption is held out of it. A corruption-training "
        "claim notes when more than half of the gain it rests on (held out, for the mix) comes "
        "from one or two corruptions. "
        + " ".join(
            f"{html.escape(e.title)}: {html.escape(trained_on(e)[1])}."
            for e in methods
            if e.name in gains and trained_on(e)[1]
        )
        + "</p>",
        f"<table class='gains'><thead><tr><th>corruption</th>{heads}</tr></thead><tbody>",
    ]
    for corruption in corruptions:
        cells = []
        for frame in gains.values():
            hit = frame[frame["corruption"] == corruption]
            if hit.empty:
                cells.append("<td>–</td>")
                continue
            r = hit.iloc[0]
            tag = " <b>trained</b>" if r["trained"] else ""
            cells.append(
                f"<td>{r['gain']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]{tag}</td>"
            )
        lines.append(f"<tr><td>{html.escape(str(corruption))}</td>{''.join(cells)}</tr>")
    lines.append("</tbody></table>")
    return lines


def _training_html(
    found: list[Experiment],
    claims: pd.DataFrame,
    folder: _FigureFolder,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> list[str]:
    """The section "Robustness training → selectivity": claims, the gains per corruption, then
    each method's figure.

    Nothing when the sweep trained no robustness method.
    """
    methods = [e for e in found if e.training]
    if not methods:
        return []
    parts = [
        "<h2 id='training'>Robustness training → selectivity</h2>",
        "<p>The second direction of the link (authors' summary of arXiv:2010.07693): methods that "
        "improve robustness to corruptions should lower class selectivity, methods that improve "
        "adversarial robustness should raise it. Each method's experiment is the trials at one α "
        "with the other methods off; x is the method's strength (0 = off). A claim is about a method "
        "that <i>improves</i> robustness, so it is tested only where the method raised the robustness "
        "it is for in this sweep (Spearman ρ between strength and that robustness, 95% CI above 0); "
        "otherwise it is <b>not tested</b>, and the note says what the method did. Then: "
        "<b>supported</b> / <b>contradicted</b> when the 95% CI of ρ(strength, μ_SI) excludes 0 on "
        "the claim's / the other side, <b>inconclusive</b> when it includes 0 or with fewer than "
        f"{MIN_TRIALS} trials, {MIN_LEVELS} strengths or {MIN_SAMPLES} images per trial. Trials "
        "are left out, and the claims read again, by the one collapse policy "
        "(<a href='#collapse'>Collapsed trials</a>); the Holm column adjusts over every claim of "
        "this report. Robustness of the mix method is measured on the corruptions held out of its "
        "training set only; adversarial robustness on the strongest PGD attack run.</p>",
    ]
    if not claims.empty:
        parts.append(_method_claims_html(claims))
    parts += _gains_html(methods, n_resamples, seed)
    for experiment in methods:
        for spec in METHOD_FIGURES:
            if spec.method != experiment.method.name:
                continue
            variant = re.sub(r"[^A-Za-z0-9_.-]", "_", experiment.variant or "")
            name = spec.name + (f"_{variant}" if variant else "")
            try:
                drawn = spec.draw(experiment.table, experiment=experiment.name)
                caption = (
                    spec.caption(experiment) + " " + settings_text(experiment.table, spec.settings)
                )
            except ValueError as error:
                parts.append(
                    f"<p>Figure {html.escape(name)} skipped: {html.escape(str(error))}</p>"
                )
                continue
            encoded = folder.save(drawn, name)
            parts.append(_figure_html(name, f"{spec.title} ({experiment.title})", encoded, caption))
        parts += _autoattack_by_strength(experiment, folder)
    return parts


def _autoattack_by_strength(experiment: Experiment, folder: _FigureFolder) -> list[str]:
    """PGD against AutoAttack per strength of an adversarial-training experiment (nothing when
    the sweep ran no AutoAttack): a method that buys PGD robustness by masking gradients lies
    below the diagonal at large strengths."""
    if experiment.method.key != "adv_eps":
        return []
    try:
        drawn = plot_pgd_vs_autoattack(experiment.table, by=experiment.method.key)
    except ValueError:  # no AutoAttack rows
        return []
    name = f"pgd_vs_autoattack_{experiment.method.key}"
    if experiment.variant:
        name += "_" + re.sub(r"[^A-Za-z0-9_.-]", "_", experiment.variant)
    caption = (
        f"As the PGD-against-AutoAttack figure above, one colour per training radius "
        f"({experiment.method.key}) of the {experiment.title} experiment."
    )
    encoded = folder.save(drawn, name)
    return [_figure_html(name, f"PGD against AutoAttack ({experiment.title})", encoded, caption)]

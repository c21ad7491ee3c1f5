"""The report's output: `write_report` writes report.html (one self-contained file, figures
embedded), figures/<name>.png, summary.csv (`summary_table`) and claims.csv.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from selectivity.files import write_bytes
from selectivity.report.checks import (
    COLLAPSE_ACCURACY_MARGIN,
    COLLAPSE_SILENT_FRACTION,
    Collapse,
    _settings_text,
    find_collapsed,
)
from selectivity.report.claims import MIN_ALPHAS, MIN_SAMPLES, MIN_TRIALS, SOURCES, evaluate_claims
from selectivity.report.figures import FIGURES, FigureSpec
from selectivity.report.plotting import _alphas, _figure_of
from selectivity.report.stats import (
    N_RESAMPLES,
    _appearance,
    _fmt_alpha,
    _range_text,
    load_results,
    summary_table,
)
from selectivity.report.worstcase import WORST_CASE_FIGURES, masked_html
from selectivity.schema import TRIAL

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["write_report"]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}g}"


def _claims_html(claims: pd.DataFrame) -> str:
    tested = claims[claims["verdict"] != "not tested"]
    untested = claims[claims["verdict"] == "not tested"]
    lines = [
        "<table class='claims'><thead><tr><th>finding (paper)</th><th>x</th><th>statistic</th>"
        "<th>expected</th><th>estimate [95% CI]</th><th>direction found</th>"
        "<th>Δ lowest α − (α = 0) [95% CI]</th><th>n</th><th>verdict</th></tr></thead><tbody>"
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
            f"<td class='{r['verdict']}'>{r['verdict']}<br><span class='src'>rule: {html.escape(r['verdict_rule'])}; "
            f"{html.escape(r['note'])}</span></td>"
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


def _collapse_html(collapse: Collapse) -> str:
    """The collapsed trials, the criteria, and what could not be checked."""
    lines = [
        f"<h2>Collapsed trials ({len(collapse.trials)} of {collapse.n_trials})</h2>",
        "<p>A trial is collapsed when its clean test accuracy is at most "
        f"{COLLAPSE_ACCURACY_MARGIN:g} of the way from chance (1 / classes) to 1, or when more than "
        f"{COLLAPSE_SILENT_FRACTION:.0%} of some layer's units are silent on the test set. Silent units "
        "score SI 0 by the formula, so such trials carry μ_SI and accuracy down together; they are "
        "left out of the claims above except the regularizer's effect on accuracy, and kept in the "
        "figures.</p>",
    ]
    if len(collapse.trials):
        lines.append("<table><thead><tr><th>α</th><th>seed</th><th>why</th></tr></thead><tbody>")
        lines.extend(
            f"<tr><td>{_fmt_alpha(float(alpha))}</td><td>{html.escape(str(seed))}</td>"
            f"<td>{html.escape(str(reason))}</td></tr>"
            for alpha, seed, reason in collapse.trials[["alpha", "seed", "reason"]].itertuples(
                index=False, name=None
            )
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
td.inconclusive { background: #f3f3f3; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; max-width: 1000px; }
"""


def write_report(
    results: pd.DataFrame | str | os.PathLike,
    out_dir: str | os.PathLike,
    failed: pd.DataFrame | str | os.PathLike | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Path:
    """Write out_dir/report.html, out_dir/figures/<name>.png, summary.csv and claims.csv.

    report.html is one self-contained file (PNG figures embedded as base64): the claims table
    first, then the figures with captions, then the figures skipped because their metrics are
    absent and, when `failed` is given (a table or its parquet/csv path), the failed trials.
    The collapsed trials (`find_collapsed`) follow the claims table, with the criterion each met
    and what the table did not allow to check. Figure captions name the split, sample count and
    PGD step size behind them, whether PGD's ε-ball binds, and dimensionality values near their
    sample-count cap. Every file is written under a temporary name and renamed. Returns the path
    of report.html.
    """
    table = load_results(results)
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    if failed is not None and not isinstance(failed, pd.DataFrame):
        path = Path(failed)
        failed = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)

    summary = summary_table(table, n_resamples=n_resamples, seed=seed)
    write_bytes(out / "summary.csv", summary.to_csv(index=False).encode())
    collapse = find_collapsed(table)
    claims = evaluate_claims(table, n_resamples=n_resamples, seed=seed, collapse=collapse)
    write_bytes(out / "claims.csv", claims.to_csv(index=False).encode())

    figures, skipped = _draw_figures(table, out / "figures")
    parts = [
        *_head_html(table, n_resamples),
        _claims_html(claims),
        _collapse_html(collapse),
        masked_html(table),
        "<p class='src'>Sources: "
        + "; ".join(f"{html.escape(k)} = {html.escape(v)}" for k, v in SOURCES.items())
        + ".</p>",
        *_figures_html(figures, skipped),
    ]
    if failed is not None:
        parts.append(f"<h2>Failed trials ({len(failed)})</h2>")
        parts.append(
            failed.to_html(index=False, escape=True, na_rep="") if len(failed) else "<p>None.</p>"
        )
    parts.append(
        "<p class='src'>Files next to this report: summary.csv (mean, ci_low, ci_high, n per α and metric keys), "
        "claims.csv, figures/*.png.</p></body></html>"
    )
    report = out / "report.html"
    write_bytes(report, "\n".join(parts).encode("utf-8"))
    return report


def _draw_figures(
    table: pd.DataFrame, folder: Path
) -> tuple[list[tuple[FigureSpec, str, str]], list[tuple[str, str]]]:
    """Every figure the table allows, written to folder/<name>.png: ([(spec, caption, base64
    PNG)], [(name, why skipped)])."""
    figures, skipped = [], []
    for spec in (*FIGURES, *WORST_CASE_FIGURES):
        try:
            drawn = spec.draw(table)
            caption = spec.caption(table)
            if spec.settings:
                caption += " " + _settings_text(table, spec.settings)
        except ValueError as error:
            skipped.append((spec.name, str(error)))
            continue
        data = _png(_figure_of(drawn))
        write_bytes(folder / f"{spec.name}.png", data)
        figures.append((spec, caption, base64.b64encode(data).decode("ascii")))
    return figures, skipped


def _head_html(table: pd.DataFrame, n_resamples: int) -> list[str]:
    """The page head, the sweep's description and how the claims table reads."""
    alphas = _alphas(table)
    trials = table[list(TRIAL)].drop_duplicates()
    per_alpha = trials.groupby("alpha").size()
    present = _appearance(table["metric"])
    return [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Class selectivity and robustness: sweep report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Class selectivity and robustness: sweep report</h1>",
        f"<p>{len(trials)} trials: {len(alphas)} α values ({html.escape(', '.join(_fmt_alpha(a) for a in alphas))}), "
        f"{_range_text(per_alpha)} seeds per α; "
        f"{len(table)} result rows; metrics: {html.escape(', '.join(present))}.</p>",
        "<h2>Claims of the papers, tested on this table</h2>",
        "<p>Each claim is tested against the variable it is about (column x): claims about the "
        "regularizer's effect use Spearman's ρ across trials between α (the manipulated variable) and "
        "the metric; claims stated about selectivity use the trial's measured network selectivity μ_SI "
        "(clean test set). The dimensionality comparisons use the mean per-trial difference. "
        "Collapsed trials (below) are left out of every claim except the regularizer's effect on "
        "accuracy. Adversarial claims are tested on accuracy under attack and on the same divided by "
        "clean accuracy, and are supported or contradicted only when both agree, so that the "
        f"regularizer's cost in clean accuracy cannot decide them. 95% CIs: percentile bootstrap ({n_resamples} "
        "resamples) over trials, each trial being one training run with its own seed. <b>supported</b>: CI excludes 0 on "
        "the paper's side; <b>contradicted</b>: CI excludes 0 on the other side; <b>inconclusive</b>: CI "
        f"includes 0, the two adversarial tests disagree, or fewer than {MIN_TRIALS} trials, {MIN_ALPHAS} α "
        f"values or {MIN_SAMPLES} images per trial. Early layers = first half "
        "of the layers. Claims are tested separately, without a multiple-comparison correction; "
        "correlations across trials show association, and the regularizer supplies the intervention.</p>",
    ]


def _figures_html(
    figures: list[tuple[FigureSpec, str, str]], skipped: list[tuple[str, str]]
) -> list[str]:
    """The figures with their captions, then the ones skipped and why."""
    parts = ["<h2>Figures</h2>"]
    for spec, caption, encoded in figures:
        parts.append(
            f"<figure id='{spec.name}'><img alt='{html.escape(spec.title)}' src='data:image/png;base64,{encoded}'>"
            f"<figcaption><b>{html.escape(spec.title)}</b> ({spec.name}.png). {html.escape(caption)}</figcaption></figure>"
        )
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

"""The worst case in the report, as tables: PGD against AutoAttack accuracy, and the networks that
the gradient-masking flags (`selectivity.masking`, a pure function of one network's rows) mark.
The figure is `figures.worstcase.plot_pgd_vs_autoattack`.

    pgd_vs_autoattack(table) -> per trial: eps, PGD accuracy, AutoAttack accuracy (same images)
    find_masked(table) -> per trial and flag: value (1 / 0 / NaN) and reason
    masked_html(table) -> the report's section
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from selectivity import masking
from selectivity.report.stats import alpha_text, require_metrics, trial_columns

__all__ = ["find_masked", "masked_html", "pgd_vs_autoattack"]


def pgd_vs_autoattack(table: pd.DataFrame) -> pd.DataFrame:
    """Per trial: the evaluation's PGD (most steps) and AutoAttack accuracy at PGD's eps, both on
    the AutoAttack images. Columns: the trial's, eps, steps, pgd, autoattack.

    ValueError when the table has no such pair (no autoattack part ran)."""
    require_metrics(table, ["masking_pgd_accuracy", "autoattack_accuracy"], "pgd_vs_autoattack")
    trial = trial_columns(table)
    records = []
    for key, rows in table.groupby(trial, sort=True, dropna=False):
        pgd = rows[(rows["metric"] == "masking_pgd_accuracy") & (rows["steps"] > 0)]
        if not len(pgd):
            continue
        last = pgd.loc[pgd["steps"].astype(float).idxmax()]
        eps = float(last["eps"])
        ensemble = rows[rows["metric"] == "autoattack_accuracy"]
        ensemble = ensemble[np.isclose(ensemble["eps"].astype(float), eps)]
        if len(ensemble):
            key = key if isinstance(key, tuple) else (key,)
            records.append(
                {
                    **dict(zip(trial, key, strict=True)),
                    "eps": eps,
                    "steps": int(last["steps"]),
                    "pgd": float(last["value"]),
                    "autoattack": float(ensemble["value"].iloc[0]),
                }
            )
    if not records:
        raise ValueError("no trial has PGD and AutoAttack accuracy at the same eps")
    return pd.DataFrame.from_records(records)


def find_masked(table: pd.DataFrame) -> pd.DataFrame:
    """Every flag of `selectivity.masking` on every trial: the trial's columns, flag, value
    (1 flagged, 0 not, NaN not testable), reason. Computed from the numbers, so a table written
    before the flags existed gets them too."""
    trial = trial_columns(table)
    records = []
    for key, rows in table.groupby(trial, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        for flag in masking.flags(rows):
            records.append(
                {
                    **dict(zip(trial, key, strict=True)),
                    "flag": flag.name,
                    "value": flag.value,
                    "reason": flag.reason,
                }
            )
    return pd.DataFrame.from_records(records, columns=[*trial, "flag", "value", "reason"])


def masked_html(table: pd.DataFrame) -> str:
    """The report's section: the checks and their thresholds, the flagged networks with reasons,
    and how many networks each check could not test."""
    found = find_masked(table)
    n_trials = len(found[trial_columns(table)].drop_duplicates()) if len(found) else 0
    flagged = found[found["value"] == 1]
    lines = [
        f"<h2>Gradient-masking flags ({flagged[trial_columns(table)].drop_duplicates().shape[0]} "
        f"of {n_trials} networks flagged)</h2>",
        "<p>Signs that a network's gradient attacks are fooled rather than defeated, read from its "
        "own rows (Carlini et al. 2019; AutoAttack's checks). A flagged network's FGSM and PGD "
        "numbers overstate its robustness; AutoAttack's are the worst case measured. Checks: "
        f"AutoAttack more than {masking.AUTOATTACK_MARGIN:g} below PGD at PGD's ε; Square more "
        f"than {masking.SQUARE_MARGIN:g} below the white-box attacks; accuracy above "
        f"{masking.LARGE_EPS_CHANCE_FACTOR:g} × chance at ε ≥ {masking.LARGE_EPS:g} (the "
        "mid-grey image is within reach of every image); FGSM more than "
        f"{masking.FGSM_MARGIN:g} below PGD; PGD's loss rising less than "
        f"{masking.LOSS_RISE:g} nats over its steps. PGD comparisons are not testable when PGD "
        "cannot reach its ε (steps × step size &lt; ε).</p>",
    ]
    if len(flagged):
        lines.append(
            "<table><thead><tr><th>trial</th><th>flag</th><th>why</th></tr></thead><tbody>"
        )
        for _, row in flagged.iterrows():
            lines.append(
                f"<tr><td>{html.escape(_trial_text(row, trial_columns(table)))}</td>"
                f"<td>{html.escape(masking.FLAGS[row['flag']][0])}</td>"
                f"<td>{html.escape(row['reason'])}</td></tr>"
            )
        lines.append("</tbody></table>")
    else:
        lines.append("<p>No network was flagged by a check it could be tested on.</p>")
    untested = found[found["value"].isna()]
    if len(untested):
        lines.append("<p><b>Not testable:</b></p><ul>")
        for name, rows in untested.groupby("flag", sort=False):
            reasons = "; ".join(dict.fromkeys(rows["reason"]))
            lines.append(
                f"<li>{html.escape(str(name))} on {len(rows)} network(s): {html.escape(reasons)}</li>"
            )
        lines.append("</ul>")
    return "\n".join(lines)


def _trial_text(row: pd.Series, columns: list[str]) -> str:
    parts = []
    for column in columns:
        value = row[column]
        if column == "alpha" and not (isinstance(value, float) and math.isnan(value)):
            parts.append(f"α = {alpha_text(float(value))}")
        else:
            parts.append(f"{column} = {value}")
    return ", ".join(parts)

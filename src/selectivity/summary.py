"""Lines for the terminal from result tables (tables only: no torch, no models).

summarise_evaluation(table)   headline numbers of an evaluation table (`selectivity.schema`)
selectivity_lines(table)      per-layer means of a per-unit table (`measure.measure_model`)
"""

from __future__ import annotations

import math

import pandas as pd

from selectivity import masking
from selectivity.catalog import pixel_text
from selectivity.schema import metric_rows

__all__ = ["autoattack_lines", "autoattack_ran", "selectivity_lines", "summarise_evaluation"]


def summarise_evaluation(table: pd.DataFrame) -> list[str]:
    """A few lines for the terminal: the headline numbers of an evaluation table, each with the
    settings that decide it (sample counts, attack step sizes, how far PGD actually went)."""
    return [
        *_headline_lines(table),
        *_fgsm_lines(table),
        *_pgd_lines(table),
        *autoattack_lines(table),
        *masking.flag_lines(table),
        *_dimensionality_lines(table),
    ]


def _samples(table: pd.DataFrame, metric: str) -> str:
    """'test, N=359' for the first row of `metric`, '' when it has no sample count."""
    rows = metric_rows(table, metric)
    if not len(rows) or pd.isna(rows["samples"].iloc[0]):
        return ""
    return f"{rows['split'].iloc[0]}, N={int(rows['samples'].iloc[0])}"


def _headline_lines(table: pd.DataFrame) -> list[str]:
    """One line per whole-network number present: its value and the samples it was measured on."""
    lines = []
    for label, metric in (
        ("clean accuracy", "test_accuracy"),
        ("chance accuracy", "chance_accuracy"),
        ("selectivity mu_SI", "selectivity"),
        ("mu_SI over live units", "selectivity_live"),
        ("silent units (fraction)", "silent_fraction"),
        ("corrupted accuracy (mean)", "corruption_accuracy_mean"),
        ("corrupted / clean", "corruption_accuracy_relative"),
        ("Jacobian norm", "jacobian_norm"),
    ):
        rows = metric_rows(table, metric, layer=None)
        if len(rows):
            where = _samples(table, metric)
            lines.append(
                f"{label:<28} {float(rows['value'].iloc[0]):.4f}"
                + (f"  ({where})" if where else "")
            )
    return lines


def _fgsm_lines(table: pd.DataFrame) -> list[str]:
    fgsm = metric_rows(table, "fgsm_accuracy")
    if not len(fgsm):
        return []
    return [
        "FGSM accuracy by eps*255     "
        + "  ".join(f"{e * 255:g}:{v:.3f}" for e, v in zip(fgsm["eps"], fgsm["value"], strict=True))
        + f"  (step = eps; {_samples(table, 'fgsm_accuracy')})"
    ]


def _pgd_lines(table: pd.DataFrame) -> list[str]:
    """PGD accuracy by steps with its eps and step size; whether the eps-ball was reached."""
    pgd = metric_rows(table, "pgd_accuracy")
    if not len(pgd):
        return []
    eps, step = float(pgd["eps"].iloc[0]), float(pgd["step_size"].iloc[0])
    lines = [
        f"PGD accuracy by steps (eps*255={eps * 255:g}, step {pixel_text(step)}; "
        f"{_samples(table, 'pgd_accuracy')})  "
        + "  ".join(f"{int(s)}:{v:.3f}" for s, v in zip(pgd["steps"], pgd["value"], strict=True))
    ]
    reached = metric_rows(table, "pgd_linf_max")
    if len(reached):
        furthest = float(reached["value"].max())
        binds = (
            "the eps-ball binds"
            if furthest >= eps * (1 - 1e-4)
            else "the eps-ball never binds: the attack is weaker than its eps"
        )
        lines.append(f"PGD reached L-inf (max)      {pixel_text(furthest)} of eps: {binds}")
    return lines


def autoattack_ran(table: pd.DataFrame) -> str | None:
    """What AutoAttack ran, from the rows: 'standard', 'rand' (each as published), or 'custom'
    with its attacks and settings; None when it did not run."""
    attacks = [
        m.removeprefix("autoattack_accuracy_")
        for m in dict.fromkeys(table["metric"])
        if str(m).startswith("autoattack_accuracy_")
    ]
    if not attacks:
        return None
    for version in ("standard", "rand"):
        ran = metric_rows(table, f"autoattack_ran_{version}")
        if len(ran) and float(ran["value"].iloc[0]) == 1:
            return f"{version} (as published: {', '.join(attacks)})"
    settings = []
    for label, metric in (
        ("iterations", "autoattack_iterations"),
        ("target classes", "autoattack_target_classes"),
        ("Square queries", "autoattack_square_queries"),
        ("EOT samples", "autoattack_eot_samples"),
    ):
        rows = metric_rows(table, metric)
        if len(rows) and (metric != "autoattack_eot_samples" or rows["value"].iloc[0] > 1):
            settings.append(f"{int(rows['value'].iloc[0])} {label}")
    return f"custom ({', '.join(attacks)}; {', '.join(settings)})"


def autoattack_lines(table: pd.DataFrame) -> list[str]:
    """One line: which AutoAttack ran, on how many images (none when it did not run)."""
    ran = autoattack_ran(table)
    if ran is None:
        return []
    return [f"AutoAttack ran                {ran}  ({_samples(table, 'autoattack_accuracy')})"]


def _dimensionality_lines(table: pd.DataFrame) -> list[str]:
    """First and last layer of each dimensionality measure, with the caps N samples set."""
    lines = []
    cap = metric_rows(table, "dimensionality_cap")
    for metric in ("dimensionality", "dimensionality_corruption", "dimensionality_adversarial"):
        rows = metric_rows(table, metric)
        if len(rows):
            note = (
                f" (N={int(rows['samples'].iloc[0])}: cap first {cap['value'].iloc[0]:.3f}, "
                f"last {cap['value'].iloc[-1]:.3f})"
                if len(cap)
                else ""
            )
            lines.append(
                f"{metric:<28} first layer {rows['value'].iloc[0]:.3f}, "
                f"last layer {rows['value'].iloc[-1]:.3f}{note}"
            )
    return lines


def selectivity_lines(table: pd.DataFrame) -> list[str]:
    """Per layer: units, silent units, mean SI and mean over live units; then mu_SI, its live
    version, the silent fraction and the accuracy (from `table.attrs`), for the terminal.

    Silent units score 0 by definition, so a layer's mean SI falls as units die: the mean over
    live units and the silent count stand beside it.
    """
    lines = [f"{'layer':<24} {'units':>6} {'silent':>6} {'mean SI':>8} {'live SI':>8}"]
    means, live_means, fractions = [], [], []
    for layer, rows in table.groupby("layer", sort=False):
        live = rows.loc[~rows["silent"], "si"]
        live_mean = float(live.mean()) if len(live) else math.nan
        means.append(float(rows["si"].mean()))
        fractions.append(float(rows["silent"].mean()))
        live_means += [live_mean] if len(live) else []
        lines.append(
            f"{layer!s:<24} {len(rows):>6} {int(rows['silent'].sum()):>6} "
            f"{means[-1]:>8.4f} {live_mean:>8.4f}"
        )
    network_live = sum(live_means) / len(live_means) if live_means else math.nan
    lines.append(
        f"mu_SI ({table['split'].iloc[0]}, {int(table['samples'].iloc[0])} images): "
        f"{sum(means) / len(means):.4f}   over live units: {network_live:.4f}   "
        f"silent fraction: {sum(fractions) / len(fractions):.4f}   "
        f"accuracy: {table.attrs.get('accuracy', math.nan):.4f}"
    )
    return lines

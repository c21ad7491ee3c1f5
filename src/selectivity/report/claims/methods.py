"""Claims of the second direction (robustness training -> selectivity), tested on a sweep's own
trials of each training method (`METHOD_CLAIMS`, `evaluate_method_claims`).

The authors' summary of arXiv:2010.07693 states that methods improving robustness to
naturalistic corruptions lower class selectivity and methods improving adversarial robustness
raise it. Each claim is tested on one method's experiment (`methods.experiments`): Spearman's rho
across trials between the method's strength (the manipulated variable) and the measured network
selectivity mu_SI, with a percentile-bootstrap CI over trials (each trial one training run with
its own seed), as the papers' claims are. A claim is about methods that *improve* robustness, so
it is only tested when the method raised the robustness it is for in this sweep (rho between
strength and that robustness, CI above 0); otherwise the verdict is "not tested" and says so.
Trials near chance are left out (the report's one collapse policy); each claim is read again with
mu_SI over live units, without the trials that have a mostly silent layer, and per layer where
units fall silent, as the papers' claims are. A corruption claim whose gain comes mostly from one
or two corruptions says so (`gains.concentration_note`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from selectivity.report.checks import Collapse, find_collapsed
from selectivity.report.claims.engine import (
    MIN_ALPHAS,
    MIN_SAMPLES,
    MIN_TRIALS,
    by_layer,
    contrast_ci,
    fewest_samples,
    hangs_on,
    holm_verdicts,
    replaced,
    statistic_test,
    untested_row,
    verdict_of,
)
from selectivity.report.gains import concentration_note, corruption_gains
from selectivity.report.methods import Experiment, experiments
from selectivity.report.stats import (
    ATTACKED,
    CONFIDENCE,
    N_RESAMPLES,
    PGD_STRONGEST,
    load_results,
    per_trial,
    range_text,
    trial_columns,
)

__all__ = ["METHOD_CLAIMS", "MIN_LEVELS", "MethodClaimSpec", "evaluate_method_claims"]

# A correlation with a strength needs as many strengths (0 included) as one with alpha needs alphas.
MIN_LEVELS = MIN_ALPHAS
_SOURCE = "arXiv:2010.07693 (authors' summary: the link runs both ways)"


def _robustness(
    *options: tuple[str, str, dict],
) -> Callable[[pd.DataFrame], tuple[pd.DataFrame, str]]:
    """Builder of one robustness value per trial: the first of `options` (metric, words, where)
    the table has. Returns (per-trial values, the words naming it); ValueError naming every
    option when none is there."""

    def build(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
        problems = []
        for metric, words, where in options:
            try:
                return per_trial(table, metric, (), where), words
            except ValueError as error:
                problems.append(str(error))
        raise ValueError("; ".join(problems))

    return build


@dataclass(frozen=True)
class MethodClaimSpec:
    """One claim about a robustness-training method and how it is tested.

    method: the `Method.name` whose experiment tests it. expected: the sign of Spearman's rho
    between the method's strength and network mu_SI that the claim states. robustness: per-trial
    robustness the method is for (with the words naming it); the claim is tested only where rho
    between strength and robustness has a 95% CI above 0. metrics: the metrics whose sample
    counts decide whether a verdict can stand.
    """

    key: str
    method: str
    text: str
    expected: int
    robustness: Callable[[pd.DataFrame], tuple[pd.DataFrame, str]]
    robustness_label: str
    metrics: tuple[str, ...]
    source: str = _SOURCE


METHOD_CLAIMS: tuple[MethodClaimSpec, ...] = (
    MethodClaimSpec(
        "noise_training_lowers_selectivity",
        "noise",
        "Corruption-robustness training (Gaussian-noise augmentation) lowers network selectivity.",
        -1,
        _robustness(
            (
                "corruption_accuracy_mean",
                "corrupted accuracy (mean over corruptions and severities)",
                {},
            )
        ),
        "corrupted accuracy",
        ("selectivity", "corruption_accuracy_mean", "corruption_accuracy"),
    ),
    MethodClaimSpec(
        "mix_training_lowers_selectivity",
        "mix",
        "Corruption-robustness training (corruption-mix augmentation) lowers network selectivity.",
        -1,
        # Training on some corruptions inflates accuracy on them: only held-out ones count.
        _robustness(
            (
                "corruption_accuracy_heldout_mean",
                "corrupted accuracy on the corruptions held out of the mix",
                {},
            )
        ),
        "held-out corrupted accuracy",
        ("selectivity", "corruption_accuracy_heldout_mean"),
    ),
    MethodClaimSpec(
        "adversarial_training_raises_selectivity",
        "adversarial",
        "Adversarial training raises network selectivity.",
        +1,
        _robustness(
            ("pgd_accuracy", "PGD accuracy (the most steps run; mean over ε > 0)", PGD_STRONGEST),
            ("fgsm_accuracy", "FGSM accuracy (mean over ε > 0; no PGD rows)", ATTACKED),
        ),
        "accuracy under attack",
        ("selectivity", "pgd_accuracy", "fgsm_accuracy"),
    ),
)


def _blank_row(spec: MethodClaimSpec, experiment: Experiment) -> dict:
    """The claims-table row before testing: the columns of `evaluate_claims`, then the method's."""
    key = experiment.method.key
    return untested_row(
        claim=spec.text,
        key=spec.key,
        source=spec.source,
        x=f"{key} (training strength per trial)",
        statistic=f"Spearman ρ({key}, μ_SI) across trials",
        expected="> 0" if spec.expected > 0 else "< 0",
        check_statistic=f"Spearman ρ({key}, {spec.robustness_label}) across trials",
        verdict_rule=(
            f"the method must raise {spec.robustness_label} (95% CI of its ρ above 0); "
            "then the 95% CI of ρ against 0"
        ),
        n_alphas=1,
        experiment=experiment.name,
        strength=key,
        alpha=experiment.alpha,
        n_levels=0,
        seeds_per_level="",
    )


def _trials(
    spec: MethodClaimSpec, experiment: Experiment, collapse: Collapse
) -> tuple[pd.DataFrame, str, int, list[str]]:
    """Per trial: x (strength), y (network mu_SI), r (robustness, NaN where absent).

    Trials collapsed to near-chance accuracy left out (the report's one collapse policy). Returns
    (trials, the robustness's words, trials left out, notes on collapse); ValueError when
    selectivity or the robustness metric is absent.
    """
    table = experiment.table
    selectivity = per_trial(table, "selectivity")
    robustness, words = spec.robustness(table)
    columns = trial_columns(selectivity)
    trials = selectivity.rename(columns={"value": "y"}).merge(
        robustness.rename(columns={"value": "r"}), on=columns, how="left"
    )
    trials["x"] = trials[experiment.method.key].astype(float)
    trials, n_left_out, notes = collapse.near_chance().leave_out(
        trials.dropna(subset=["y"]), "trial(s) near chance"
    )
    return trials.sort_values(columns).reset_index(drop=True), words, n_left_out, notes


def _bought(method_title: str, row: dict, words: str) -> str:
    """Empty when the method raised its robustness (CI above 0); else why the claim is not tested."""
    rho, low, high = row["check_estimate"], row["check_ci_low"], row["check_ci_high"]
    if np.isfinite(low) and low > 0:
        return ""
    numbers = f"ρ = {rho:.3g}, 95% CI [{low:.3g}, {high:.3g}]"
    if not (np.isfinite(low) and np.isfinite(high)):
        how = "cannot be shown to have raised"
    elif high < 0:
        how = "lowered"
    else:
        how = "did not measurably raise"
    return f"{method_title} {how} {words} in this sweep ({numbers})"


def _gate(
    spec: MethodClaimSpec,
    experiment: Experiment,
    trials: pd.DataFrame,
    measured: pd.DataFrame,
    row: dict,
    words: str,
    min_trials: int,
) -> tuple[str, str] | None:
    """The verdict and reason when the claim cannot be decided on mu_SI (too few trials or
    samples, robustness missing or not bought); None when mu_SI decides it."""
    key, title = experiment.method.key, experiment.method.title
    n_levels = trials["x"].nunique()
    if len(trials) < min_trials or n_levels < MIN_LEVELS:
        return "inconclusive", (
            f"too few trials (n = {len(trials)}, {n_levels} {key} values; need ≥ "
            f"{min_trials} trials and ≥ {MIN_LEVELS} {key} values)"
        )
    if len(measured) < len(trials):
        return "inconclusive", f"{words} missing for {len(trials) - len(measured)} trial(s)"
    fewest = fewest_samples(experiment.table, spec.metrics)
    if fewest < MIN_SAMPLES:
        return "inconclusive", (
            f"too few samples (measured on {int(fewest)} images per trial; need ≥ {MIN_SAMPLES})"
        )
    not_bought = _bought(title, row, words)
    return ("not tested", not_bought) if not_bought else None


def _readings(
    spec: MethodClaimSpec,
    experiment: Experiment,
    trials: pd.DataFrame,
    silent: Collapse,
    row: dict,
    gate: tuple[str, str] | None,
    settings: tuple[float, int, int],
) -> None:
    """Fill the row's other readings (live units, silent-unit rule, per layer) and `hangs_on`.
    A gate (`_gate`) holds for every reading; otherwise each is the CI of its rho against 0."""

    def decide(frame: pd.DataFrame) -> tuple[tuple[float, ...], str]:
        numbers = statistic_test(frame, "correlation", *settings)
        if gate is not None:
            return numbers, gate[0]
        if len(frame) < 3:
            return numbers, "inconclusive"
        return numbers, verdict_of(*numbers[:3], spec.expected)[0]

    table = experiment.table
    try:
        live = replaced(trials, table, "y", "selectivity_live")
        numbers, row["verdict_live"] = decide(live)
        row.update(live_estimate=numbers[0], live_ci_low=numbers[1], live_ci_high=numbers[2])
    except ValueError:
        row["verdict_live"] = "not tested"
    kept, n_silent, _ = silent.leave_out(trials)
    row["n_silent_left_out"] = n_silent
    row["verdict_silent_rule"] = decide(kept)[1] if n_silent else row["verdict"]

    def read(metric: str, where: dict[str, object]) -> tuple[float, str]:
        numbers, verdict = decide(replaced(trials, table, "y", metric, where))
        return numbers[0], verdict

    row["by_layer"] = by_layer(table, trials, read)
    row["hangs_on"] = hangs_on(row)


def _gain_note(spec: MethodClaimSpec, experiment: Experiment, settings: tuple) -> str:
    """The note when the corruption gain the claim rests on comes from one or two corruptions."""
    name = experiment.method.name
    if name not in ("mix", "noise"):
        return ""
    gains = corruption_gains(experiment, *settings)
    if name == "mix":
        return concentration_note(gains, None, "held-out gain")
    return concentration_note(gains, list(gains["corruption"]), "corrupted-accuracy gain")


def _method_claim_row(
    spec: MethodClaimSpec,
    experiment: Experiment,
    collapse: Collapse,
    confidence: float,
    n_resamples: int,
    seed: int,
    min_trials: int,
) -> dict:
    """Test one claim on one method's experiment; the verdict rules are in the module doc."""
    row = _blank_row(spec, experiment)
    try:
        trials, words, n_left_out, notes = _trials(spec, experiment, collapse)
    except ValueError as error:
        row["note"] = f"not testable on this table ({error})"
        return row
    key, title = experiment.method.key, experiment.method.title
    counts = trials.groupby("x").size()
    row.update(
        n_trials=len(trials),
        n_levels=int(counts.size),
        seeds_per_level=range_text(counts),
        seeds_per_alpha=range_text(pd.Series([len(trials)])),
        n_collapsed_left_out=n_left_out,
    )
    row["check_statistic"] = f"Spearman ρ({key}, {words}) across trials"
    if trials.empty:
        row["note"] = "; ".join([*notes, "no trials with selectivity"])
        return row
    settings = (confidence, n_resamples, seed)
    estimate, low, high, p = statistic_test(trials, "correlation", *settings)
    row.update(estimate=estimate, ci_low=low, ci_high=high, p_value=p)
    measured = trials.dropna(subset=["r"]).rename(columns={"y": "selectivity", "r": "y"})
    checked = statistic_test(measured, "correlation", *settings)
    row.update(check_estimate=checked[0], check_ci_low=checked[1], check_ci_high=checked[2])
    if np.isfinite(estimate) and estimate != 0:
        row["direction"] = f"μ_SI {'rises' if estimate > 0 else 'falls'} as {key} rises"
    else:
        row["direction"] = "no monotone relation"
    # Mean mu_SI at the largest strength minus at strength 0.
    contrast = contrast_ci(trials, *settings, column="x", largest=True)
    row.update(contrast=contrast[0], contrast_low=contrast[1], contrast_high=contrast[2])

    gate = _gate(spec, experiment, trials, measured, row, words, min_trials)
    if gate is not None:
        verdict, reason = gate
        row["p_value"] = math.nan
    else:
        verdict, reason = verdict_of(estimate, low, high, spec.expected)
        reason += f"; {title} raised {words} (95% CI of its ρ above 0)"
    gained = _gain_note(spec, experiment, settings)
    row["verdict"] = verdict
    row["note"] = "; ".join([*notes, reason, *([gained] if gained else [])])
    _readings(spec, experiment, trials, collapse.silent_only(), row, gate, settings)
    return row


def evaluate_method_claims(
    results: pd.DataFrame | str | os.PathLike,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    min_trials: int = MIN_TRIALS,
    collapse: Collapse | None = None,
) -> pd.DataFrame:
    """Test each claim of `METHOD_CLAIMS` on the experiments of its method in a results table.

    Experiments: `methods.experiments`. Trials collapsed to near-chance accuracy (`find_collapsed`
    of the whole table, or `collapse` when given, `Collapse.near_chance`) are left out. One row per
    claim and experiment (an adversarial experiment per attack where several were swept); none
    for a method the sweep did not train. Columns: those of `evaluate_claims` plus experiment,
    strength (the strength column), alpha (the experiment's alpha), n_levels and seeds_per_level;
    x is the strength, check_* the robustness the method had to raise, contrast the mean mu_SI at
    the largest strength minus at strength 0.
    Verdicts: "inconclusive" with too few trials (< `min_trials`) or strengths (< MIN_LEVELS), a
    trial lacking the robustness metric, or too few samples; "not tested" when a metric is absent
    or the method did not raise its robustness (CI of rho(strength, robustness) not above 0);
    otherwise supported / contradicted / inconclusive by the CI of rho(strength, mu_SI) against 0.
    The readings over live units, under the silent-unit rule and per layer, and the Holm columns
    (over these rows), are those of `evaluate_claims`.
    """
    table = load_results(results)
    if collapse is None:
        collapse = find_collapsed(table)
    rows = [
        _method_claim_row(spec, experiment, collapse, confidence, n_resamples, seed, min_trials)
        for experiment in experiments(table)
        for spec in METHOD_CLAIMS
        if spec.method == experiment.method.name
    ]
    return holm_verdicts(pd.DataFrame.from_records(rows), confidence)

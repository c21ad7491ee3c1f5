"""The claims table: each finding of the papers (`CLAIMS`), tested on a sweep's own results by
`evaluate_claims`.

A claim is a Spearman correlation across trials (x = alpha or the measured network selectivity)
or a mean per-trial difference; its verdict comes from a percentile-bootstrap CI over trials,
each trial being one training run with its own seed. Trials whose network fell to near-chance
accuracy are left out (the report's one collapse policy, `Collapse.near_chance`); a claim about
mu_SI is read again over live units, without the trials whose layers are mostly silent, and per
layer where units fall silent, and `hangs_on` names the readings that change its verdict.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from selectivity.masking import LARGE_EPS
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
from selectivity.report.stats import (
    ATTACKED,
    CONFIDENCE,
    N_RESAMPLES,
    PGD_STRONGEST,
    appearance_order,
    load_results,
    metric_rows,
    per_trial,
    range_text,
    trial_columns,
)

__all__ = [
    "CLAIMS",
    "SOURCES",
    "ClaimSpec",
    "evaluate_claims",
]

# The papers the claims come from, by the short names used in the report.
SOURCES = {
    "ICML-W 2020": "Leavitt & Morcos, On the relationship between class selectivity, dimensionality, and "
    "robustness (ICML 2020 workshop on uncertainty and robustness)",
    "arXiv:2010.07693": "Leavitt & Morcos, Linking average- and worst-case perturbation robustness via class "
    "selectivity and dimensionality",
    "arXiv:2003.01262": "Leavitt & Morcos, Selectivity considered harmful: evaluating the causal impact of class "
    "selectivity in DNNs",
}


def _early_layers(table: pd.DataFrame, metric: str) -> list:
    """The first half (rounded up) of a layer-wise metric's layers, in network order.

    The paper sees the dimensionality effects in early layers (up to layer 9 of 17 in ResNet18,
    all of ResNet20); the first half is a fixed, model-agnostic reading of "early".
    """
    layers = appearance_order(metric_rows(table, metric)["layer"])
    return layers[: max(1, math.ceil(len(layers) / 2))]


def _trial_metric(
    metric: str, where: Mapping[str, object] | None = None, early: bool = False
) -> Callable:
    """Builder of one value per trial for `metric` (mean over its other keys)."""

    def build(table: pd.DataFrame) -> pd.DataFrame:
        condition = dict(where or {})
        if early:
            condition["layer"] = _early_layers(table, metric)
        return per_trial(table, metric, (), condition)

    return build


# Gradient variability across samples counts a ReLU unit's zero gradient where it is off, so it
# follows how often units are off, which selectivity also follows: partly by construction.
_BY_CONSTRUCTION = (
    "tested on gradient_variability_samples (gradient_variability_active absent): zeros where "
    "a unit is off count, so the reading holds partly by construction"
)


def _first_metric(*options: tuple[str, str]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Builder of one value per trial of the first of `options` (metric, note) the table has; the
    note (which metric, and what that means) travels in the frame's attrs["note"]."""

    def build(table: pd.DataFrame) -> pd.DataFrame:
        present = set(table["metric"])
        for metric, note in options:
            if metric in present:
                values = per_trial(table, metric)
                values.attrs["note"] = note or f"tested on {metric}"
                return values
        raise ValueError(f"none of the metrics {[m for m, _ in options]} is in the results table")

    return build


def _adversarial_minus_corruption(table: pd.DataFrame) -> pd.DataFrame:
    """Per trial: early-layer dimensionality of adversarial minus corruption changes."""
    adversarial = _trial_metric("dimensionality_adversarial", early=True)(table)
    corruption = _trial_metric("dimensionality_corruption", early=True)(table)
    columns = trial_columns(adversarial)
    merged = adversarial.merge(corruption, on=columns, suffixes=("_adv", "_corr"))
    merged["value"] = merged["value_adv"] - merged["value_corr"]
    return merged[[*columns, "value"]]


def _corruption_minus_clean(table: pd.DataFrame) -> pd.DataFrame:
    """Per trial: dimensionality of the corruption change minus that of clean activations.

    Paired per layer within the trial (same layer, same images), then the mean over layers.
    """
    corruption = per_trial(table, "dimensionality_corruption", ("layer",))
    clean = per_trial(table, "dimensionality", ("layer",))
    columns = trial_columns(clean)
    merged = corruption.merge(clean, on=[*columns, "layer"], suffixes=("_corr", "_clean"))
    if merged.empty:
        raise ValueError("dimensionality and dimensionality_corruption share no layer and trial")
    merged["value"] = merged["value_corr"] - merged["value_clean"]
    return merged.groupby(columns, dropna=False, sort=False)["value"].mean().reset_index()


def _relative_to_clean(
    metric: str, where: Mapping[str, object], clean_where: Mapping[str, object]
) -> Callable[[pd.DataFrame], tuple[pd.DataFrame, str]]:
    """Builder of one value per trial of accuracy under attack divided by clean accuracy.

    Uses the table's `<metric>_relative` rows (clean accuracy on the same images) when present;
    otherwise divides by the attack's own unperturbed rows (`clean_where`: eps 0 or 0 steps, the
    same images), else by test_accuracy (the attack may have used a subset of the test set).
    Returns (per-trial values, the words saying which).
    """

    def build(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
        relative = f"{metric}_relative"
        if relative in set(table["metric"]):
            return per_trial(table, relative, (), where), f"{relative} from the table"
        attacked = per_trial(table, metric, (), where)
        try:
            clean, words = per_trial(table, metric, (), clean_where), "its unperturbed rows"
        except ValueError:
            clean, words = per_trial(table, "test_accuracy"), "test_accuracy"
        columns = trial_columns(attacked)
        merged = attacked.merge(clean, on=columns, suffixes=("", "_clean"))
        with np.errstate(divide="ignore", invalid="ignore"):
            merged["value"] = merged["value"] / merged["value_clean"]
        return merged[[*columns, "value"]], f"{metric} / {words}, computed here"

    return build


def _nonnegative_alpha(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["alpha"] >= 0]


@dataclass(frozen=True)
class ClaimSpec:
    """One finding of the papers and how it is tested.

    kind "correlation": Spearman rho across trials between x and the per-trial value; x is what
    the claim is about: "alpha" for the regularizer's effect (the manipulated variable, ordinal per
    trial), "selectivity" for claims stated about selectivity (measured network mu_SI per trial).
    kind "paired": the per-trial value is itself a within-trial difference; its mean across trials
    is tested against 0. `expected` is the sign the paper implies.
    frame "selectivity": trials near chance (`Collapse.near_chance`) are left out, since such a
    network measures nothing; frame "regularizer": every trial counts, since clean accuracy is
    what the claim is about (never select trials on the claim's own outcome).
    `check`: a second per-trial value (with words saying where it came from) whose verdict must
    agree with the first for the claim to be supported or contradicted (accuracy under attack
    relative to clean, so that clean accuracy alone cannot carry an adversarial claim).
    `metrics`: the metrics whose sample counts (samples column) decide whether a verdict can stand.
    """

    key: str
    text: str
    source: str
    y_label: str
    value: Callable[[pd.DataFrame], pd.DataFrame]
    expected: int
    x: str = "selectivity"
    kind: str = "correlation"
    subset: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    sign_words: tuple[str, str] = ("positive", "negative")  # paired claims: what each sign means
    frame: str = "selectivity"
    check: Callable[[pd.DataFrame], tuple[pd.DataFrame, str]] | None = None
    check_label: str = ""
    metrics: tuple[str, ...] = ()
    y_is_selectivity: bool = False  # y is mu_SI itself: its live-unit reading replaces y


# AutoAttack's radii without the large one of the masking check, where every network is broken.
_AA_EPS = {"eps": lambda s: (s > 0) & (s < LARGE_EPS)}

CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        "regularizer_sign",
        "The regularizer moves network selectivity in the sign of α "
        "(negative α lowers it, positive α raises it).",
        "ICML-W 2020: §2, Fig. A1; arXiv:2003.01262",
        "network selectivity",
        _trial_metric("selectivity"),
        +1,
        x="alpha",
        metrics=("selectivity",),
        y_is_selectivity=True,
    ),
    ClaimSpec(
        "corruption_relative",
        "Less selective networks keep a larger share of their clean accuracy under "
        "corruption (corrupted / clean accuracy).",
        "ICML-W 2020: Fig. 1b, A4b",
        "corrupted/clean accuracy",
        _trial_metric("corruption_accuracy_relative"),
        -1,
        metrics=("corruption_accuracy_relative", "corruption_accuracy"),
    ),
    ClaimSpec(
        "corruption_mean",
        "Less selective networks are more accurate on corrupted images (mean over "
        "corruptions and severities).",
        "ICML-W 2020: Fig. 1a, A4a",
        "corrupted accuracy",
        _trial_metric("corruption_accuracy_mean"),
        -1,
        metrics=("corruption_accuracy_mean", "corruption_accuracy"),
    ),
    ClaimSpec(
        "fgsm",
        "Less selective networks are less accurate under FGSM attack (mean over ε > 0).",
        "ICML-W 2020: Fig. 2a, A7a",
        "FGSM accuracy",
        _trial_metric("fgsm_accuracy", ATTACKED),
        +1,
        check=_relative_to_clean("fgsm_accuracy", ATTACKED, {"eps": 0.0}),
        check_label="FGSM accuracy / clean accuracy",
        metrics=("fgsm_accuracy",),
    ),
    ClaimSpec(
        "pgd",
        "Less selective networks are less accurate under PGD attack (the strongest attack run: "
        "the most steps; mean over ε > 0).",
        "ICML-W 2020: Fig. 2b, A7b",
        "PGD accuracy",
        _trial_metric("pgd_accuracy", PGD_STRONGEST),
        +1,
        check=_relative_to_clean("pgd_accuracy", PGD_STRONGEST, {"steps": 0}),
        check_label="PGD accuracy / clean accuracy",
        metrics=("pgd_accuracy",),
    ),
    ClaimSpec(
        "autoattack",
        "The PGD claim re-tested on AutoAttack, the worst case measured (mean over 0 < ε < "
        f"{LARGE_EPS:g}); the note says whether the two verdicts agree.",
        "ICML-W 2020: Fig. 2b, A7b (attack: Croce & Hein 2020)",
        "AutoAttack accuracy",
        _trial_metric("autoattack_accuracy", _AA_EPS),
        +1,
        check=_relative_to_clean("autoattack_accuracy", _AA_EPS, {"eps": 0.0}),
        check_label="AutoAttack accuracy / clean accuracy",
        metrics=("autoattack_accuracy",),
    ),
    ClaimSpec(
        "jacobian",
        "Less selective networks have a larger input-output Jacobian norm (are less stable); "
        "the paper finds the norm inversely related to selectivity.",
        "ICML-W 2020: §3.2, Fig. 2c, A7c",
        "Jacobian norm",
        _trial_metric("jacobian_norm"),
        -1,
        metrics=("jacobian_norm",),
    ),
    ClaimSpec(
        "dimensionality_clean",
        "Less selective networks have higher-dimensional clean representations in "
        "early layers (first half of the layers).",
        "ICML-W 2020: Fig. 3a, A8a; arXiv:2010.07693",
        "early-layer dimensionality",
        _trial_metric("dimensionality", early=True),
        -1,
        metrics=("dimensionality",),
    ),
    ClaimSpec(
        "dimensionality_corruption",
        "In less selective networks, corruption changes early-layer activations "
        "in more dimensions.",
        "ICML-W 2020: Fig. 3b, A8b",
        "early-layer dim. of corruption change",
        _trial_metric("dimensionality_corruption", early=True),
        -1,
        metrics=("dimensionality_corruption",),
    ),
    ClaimSpec(
        "dimensionality_adversarial",
        "In less selective networks, adversarial attacks change early-layer "
        "activations in more dimensions.",
        "ICML-W 2020: Fig. 3c, A8c",
        "early-layer dim. of adversarial change",
        _trial_metric("dimensionality_adversarial", early=True),
        -1,
        metrics=("dimensionality_adversarial",),
    ),
    ClaimSpec(
        "corruption_vs_clean",
        "Corruption-induced changes of activations are higher-dimensional than the clean "
        "representations (per layer, paired within trial).",
        "ICML-W 2020: §3.3, Fig. 3a vs 3b",
        "corruption-change − clean dimensionality",
        _corruption_minus_clean,
        +1,
        kind="paired",
        sign_words=("corruption change higher", "clean higher"),
        metrics=("dimensionality", "dimensionality_corruption"),
    ),
    ClaimSpec(
        "adversarial_vs_corruption",
        "Adversarial changes of early-layer activations are higher-dimensional "
        "than corruption changes.",
        "ICML-W 2020: §3.3, Fig. 3b vs 3c; arXiv:2010.07693",
        "adversarial − corruption dimensionality",
        _adversarial_minus_corruption,
        +1,
        kind="paired",
        sign_words=("adversarial higher", "corruption higher"),
        metrics=("dimensionality_adversarial", "dimensionality_corruption"),
    ),
    ClaimSpec(
        "gradient_samples",
        "More selective networks have input-unit gradients that vary more across samples "
        "(counted over the samples where the unit fires).",
        "arXiv:2010.07693 abstract",
        "gradient variability (samples)",
        _first_metric(
            ("gradient_variability_active", ""),
            ("gradient_variability_samples", _BY_CONSTRUCTION),
        ),
        +1,
        metrics=("gradient_variability_active", "gradient_variability_samples"),
    ),
    ClaimSpec(
        "gradient_units",
        "More selective networks have input-unit gradients that vary more across units.",
        "arXiv:2010.07693 abstract",
        "gradient variability (units)",
        _trial_metric("gradient_variability_units"),
        +1,
        metrics=("gradient_variability_units",),
    ),
    ClaimSpec(
        "accuracy_positive_alpha",
        "Raising selectivity with the regularizer (α ≥ 0 only) lowers clean test accuracy.",
        "arXiv:2003.01262 abstract",
        "clean test accuracy",
        _trial_metric("test_accuracy"),
        -1,
        x="alpha",
        subset=_nonnegative_alpha,
        frame="regularizer",
        metrics=("test_accuracy",),
    ),
)


_X_WORDS = {
    "alpha": "α (per trial, ordinal)",
    "selectivity": "μ_SI (measured per trial, clean test set)",
    "paired": "none: within-trial difference",
}


@dataclass(frozen=True)
class _Test:
    """How claims are decided in one call: the bootstrap's settings and the least evidence."""

    confidence: float
    n_resamples: int
    seed: int
    min_trials: int


def _blank_row(spec: ClaimSpec, x_kind: str, statistic: str) -> dict:
    """The claims-table row of `spec` before testing: verdict "not tested", numbers NaN."""
    if spec.check is not None:
        rule = f"{spec.y_label} and {spec.check_label} must agree"
    else:
        rule = "the 95% CI against 0"
    return untested_row(
        claim=spec.text,
        key=spec.key,
        source=spec.source,
        x=_X_WORDS[x_kind],
        statistic=statistic,
        expected="> 0" if spec.expected > 0 else "< 0",
        verdict_rule=rule,
        trials_used="all trials" if spec.frame == "regularizer" else "trials near chance left out",
    )


def _claim_trials(
    spec: ClaimSpec,
    y: pd.DataFrame,
    x_trials: pd.DataFrame | None,
    x_kind: str,
    x_problem: str,
    near_chance: Collapse,
) -> tuple[pd.DataFrame, int, list[str]]:
    """The trials a claim is tested on (trial columns, x, y; sorted by trial).

    Returns them with the number of trials near chance left out and the notes saying what was
    done.
    """
    columns = trial_columns(y)
    if x_kind == "selectivity" and x_trials is not None:
        trials = y.merge(x_trials.rename(columns={"value": "x"}), on=columns)
    else:
        # Paired claims do not use x; alpha keeps the contrast and the counts per alpha.
        trials = y.assign(x=y["alpha"])
    trials = trials.rename(columns={"value": "y"}).dropna(subset=["x", "y"])
    notes = []
    if spec.kind == "correlation" and spec.x == "selectivity" and x_kind == "alpha":
        notes.append(f"network selectivity unusable ({x_problem}): α used in its place")
    if "note" in y.attrs:
        notes.append(y.attrs["note"])
    n_left_out = 0
    if spec.frame == "selectivity":
        trials, n_left_out, collapse_notes = near_chance.leave_out(trials, "trial(s) near chance")
        notes.extend(collapse_notes)
    if spec.subset is not None:
        trials = spec.subset(trials)
    return trials.sort_values(columns).reset_index(drop=True), n_left_out, notes


def _check_verdict(
    spec: ClaimSpec,
    table: pd.DataFrame,
    trials: pd.DataFrame,
    row: dict,
    verdict: str,
    reason: str,
    test: _Test,
) -> tuple[str, str, float]:
    """The verdict once the claim's check (`spec.check`) is tested too: both must agree.

    Fills the row's check_* columns; returns the verdict, the reason for it and the check's p.
    """
    assert spec.check is not None
    row["check_statistic"] = row["statistic"].replace(spec.y_label, spec.check_label)
    try:
        check_y, source = spec.check(table)
    except ValueError as error:
        return (
            "inconclusive",
            f"{spec.check_label} unavailable ({error}); {spec.y_label} alone can follow "
            "clean accuracy",
            math.nan,
        )
    columns = trial_columns(check_y)
    paired = trials[[*columns, "x"]].merge(check_y.rename(columns={"value": "y"}), on=columns)
    paired = paired.dropna(subset=["y"]).reset_index(drop=True)
    checked = statistic_test(paired, spec.kind, test.confidence, test.n_resamples, test.seed)
    row.update(check_estimate=checked[0], check_ci_low=checked[1], check_ci_high=checked[2])
    check_verdict, _ = verdict_of(*checked[:3], spec.expected)
    if len(paired) < len(trials):
        return (
            "inconclusive",
            f"{spec.check_label} missing for {len(trials) - len(paired)} trial(s)",
            math.nan,
        )
    if check_verdict != verdict:
        return (
            "inconclusive",
            f"{spec.y_label}: {verdict}, {spec.check_label} ({source}): {check_verdict}; "
            "they must agree",
            checked[3],
        )
    words = f"{reason}, for {spec.y_label} and {spec.check_label} ({source}) alike"
    return verdict, words, checked[3]


def _decide(
    spec: ClaimSpec, table: pd.DataFrame, trials: pd.DataFrame, row: dict, test: _Test
) -> tuple[tuple[float, float, float, float], str, str]:
    """The claim on `trials` (x, y): ((estimate, low, high, p), verdict, reason).

    p: the bootstrap p-value; with a check, the larger of the two (both must reject: an
    intersection-union test); NaN where the verdict cannot stand (too few trials or samples).
    Fills the row's check_* columns.
    """
    estimate, low, high, p = statistic_test(
        trials, spec.kind, test.confidence, test.n_resamples, test.seed
    )
    verdict, reason = verdict_of(estimate, low, high, spec.expected)
    if spec.check is not None:
        verdict, reason, p_check = _check_verdict(spec, table, trials, row, verdict, reason, test)
        p = max(p, p_check) if np.isfinite(p) and np.isfinite(p_check) else math.nan
    counts = trials.groupby("alpha").size()
    fewest = fewest_samples(table, spec.metrics)
    if len(trials) < test.min_trials or (spec.kind == "correlation" and counts.size < MIN_ALPHAS):
        verdict, p = "inconclusive", math.nan
        reason = (
            f"too few trials (n = {len(trials)}, {counts.size} α values; need ≥ "
            f"{test.min_trials} trials"
            + (f" and ≥ {MIN_ALPHAS} α values)" if spec.kind == "correlation" else ")")
        )
    elif fewest < MIN_SAMPLES:
        verdict, p = "inconclusive", math.nan
        reason = (
            f"too few samples (measured on {int(fewest)} images per trial; need ≥ {MIN_SAMPLES})"
        )
    return (estimate, low, high, p), verdict, reason


def _substituted(
    spec: ClaimSpec,
    table: pd.DataFrame,
    trials: pd.DataFrame,
    x_kind: str,
    metric: str,
    where: dict[str, object] | None = None,
) -> pd.DataFrame | None:
    """The claim's trials with its mu_SI (x, or y for a claim about mu_SI itself) replaced by
    `metric` (`engine.replaced`); None when the claim has no mu_SI."""
    if x_kind == "selectivity":
        return replaced(trials, table, "x", metric, where)
    return replaced(trials, table, "y", metric, where) if spec.y_is_selectivity else None


def _other_readings(
    spec: ClaimSpec,
    table: pd.DataFrame,
    trials: pd.DataFrame,
    x_kind: str,
    silent: Collapse,
    row: dict,
    test: _Test,
) -> None:
    """Fill the row's other readings: over live units, under the silent-unit rule, per layer
    where units fall silent, and `hangs_on`."""
    scratch = {"statistic": row["statistic"]}
    try:
        live = _substituted(spec, table, trials, x_kind, "selectivity_live")
    except ValueError:
        row["verdict_live"] = "not tested"
        live = None
    if live is not None:
        numbers, verdict, _ = _decide(spec, table, live, scratch, test)
        row.update(live_estimate=numbers[0], live_ci_low=numbers[1], live_ci_high=numbers[2])
        row["verdict_live"] = verdict
    if spec.frame == "selectivity":
        kept, n_silent, _ = silent.leave_out(trials)
        row["n_silent_left_out"] = n_silent
        decided = _decide(spec, table, kept, scratch, test)[1] if n_silent else row["verdict"]
        row["verdict_silent_rule"] = decided

    def read(metric: str, where: dict[str, object]) -> tuple[float, str]:
        layer = _substituted(spec, table, trials, x_kind, metric, where)
        if layer is None or layer.empty:
            raise ValueError(f"no {metric} rows for {where}")
        (estimate, *_), verdict, _ = _decide(spec, table, layer, dict(scratch), test)
        return estimate, verdict

    if row["verdict_live"] or spec.y_is_selectivity:
        row["by_layer"] = by_layer(table, trials, read)
    row["hangs_on"] = hangs_on(row)


def _claim_row(
    spec: ClaimSpec,
    table: pd.DataFrame,
    x_trials: pd.DataFrame | None,
    x_problem: str,
    collapse: Collapse,
    test: _Test,
) -> dict:
    """Test one claim; absent metrics give the verdict "not tested" with the reason."""
    x_kind = "paired" if spec.kind == "paired" else spec.x
    if x_kind == "selectivity" and x_trials is None:
        x_kind = "alpha"  # the stand-in when the table has no selectivity, said in the note
    x_name = {"alpha": "α", "selectivity": "μ_SI", "paired": ""}[x_kind]
    if spec.kind == "paired":
        statistic = f"mean per-trial difference: {spec.y_label}"
    else:
        statistic = f"Spearman ρ({x_name}, {spec.y_label}) across trials"
    row = _blank_row(spec, x_kind, statistic)
    try:
        y = spec.value(table)
    except ValueError as error:
        row["note"] = str(error)
        return row
    trials, n_left_out, notes = _claim_trials(
        spec, y, x_trials, x_kind, x_problem, collapse.near_chance()
    )
    counts = trials.groupby("alpha").size()
    row.update(n_trials=len(trials), n_alphas=int(counts.size), n_collapsed_left_out=n_left_out)
    row["seeds_per_alpha"] = range_text(counts)
    if len(trials) == 0:
        row["note"] = "; ".join([*notes, "no trials with this metric"])
        return row
    numbers, verdict, reason = _decide(spec, table, trials, row, test)
    estimate = numbers[0]
    row.update(estimate=estimate, ci_low=numbers[1], ci_high=numbers[2], p_value=numbers[3])
    if spec.kind == "paired":
        words = spec.sign_words[0] if estimate > 0 else spec.sign_words[1]
        row["direction"] = f"{spec.y_label} = {estimate:+.3g} ({words if estimate else 'equal'})"
    elif np.isfinite(estimate) and estimate != 0:
        rises = "rises" if estimate > 0 else "falls"
        row["direction"] = f"{spec.y_label} {rises} as {x_name} rises"
    else:
        row["direction"] = "no monotone relation"
    contrast = contrast_ci(trials, test.confidence, test.n_resamples, test.seed)
    row.update(contrast=contrast[0], contrast_low=contrast[1], contrast_high=contrast[2])
    row["verdict"] = verdict
    row["note"] = "; ".join([*notes, reason])
    _other_readings(spec, table, trials, x_kind, collapse.silent_only(), row, test)
    return row


def evaluate_claims(
    results: pd.DataFrame | str | os.PathLike,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    min_trials: int = MIN_TRIALS,
    collapse: Collapse | None = None,
) -> pd.DataFrame:
    """Test each finding of the papers on a results table.

    Correlation claims: Spearman rho across trials between the claim's x and the per-trial metric:
    alpha for claims about the regularizer's effect, the per-trial network selectivity mu_SI for
    claims stated about selectivity (column `x` says which). Paired claims: the mean across trials
    of a per-trial difference. Trials whose accuracy fell to near chance (`find_collapsed`, or
    `collapse` when given, `Collapse.near_chance`) are left out of every claim but the
    regularizer's effect on accuracy (columns `trials_used`, `n_collapsed_left_out`). Adversarial
    claims are also tested on accuracy relative to clean (`check_*` columns) and need both
    verdicts to agree (`verdict_rule`).
    CIs: percentile bootstrap over trials (each trial is one training run with its own seed),
    `n_resamples` resamples. Verdict: "supported" when the CI excludes 0 on the paper's side,
    "contradicted" when it excludes 0 on the other side, "inconclusive" when it includes 0, the
    checks disagree, or the table has too few trials (< `min_trials`, or < 3 alpha values for a
    correlation) or samples (< MIN_SAMPLES images per trial where recorded), and "not tested"
    when a metric is absent. `p_value`: the bootstrap p; `p_holm`, `verdict_holm`: Holm's
    adjustment over these claims (`engine.holm_verdicts`; the report adjusts over all its claims).
    Claims about mu_SI are read again with mu_SI over live units (`verdict_live`), without the
    trials that have a mostly silent layer (`verdict_silent_rule`), and per layer where units fall
    silent (`by_layer`); `hangs_on` names the readings whose verdict differs.
    `contrast` is the mean at the most negative alpha minus the mean at alpha = 0, in the metric's
    units, with its own bootstrapped CI (context only; it does not decide the verdict).
    """
    table = load_results(results)
    if collapse is None:
        collapse = find_collapsed(table)
    x_trials, x_problem = None, ""
    try:
        x_trials = per_trial(table, "selectivity")
    except ValueError as error:
        x_problem = str(error)
    test = _Test(confidence, n_resamples, seed, min_trials)
    rows = [_claim_row(spec, table, x_trials, x_problem, collapse, test) for spec in CLAIMS]
    _compare(rows, "pgd", "autoattack", "AutoAttack")
    return holm_verdicts(pd.DataFrame.from_records(rows), confidence)


def _compare(rows: list[dict], key: str, other: str, name: str) -> None:
    """Notes on claim `other` (a re-test of claim `key` with a stronger attack, `name`) saying
    whether its verdict agrees with `key`'s; on `key` too when they disagree."""
    by_key = {row["key"]: row for row in rows}
    first, second = by_key.get(key), by_key.get(other)
    if first is None or second is None or "not tested" in (first["verdict"], second["verdict"]):
        return
    if first["verdict"] == second["verdict"]:
        second["note"] += f"; agrees with the {key} claim ({first['verdict']})"
        return
    second["note"] += f"; DISAGREES with the {key} claim ({first['verdict']})"
    first["note"] += f"; DISAGREES with {name} ({second['verdict']}): see claim {other}"

"""The first paper's findings (arXiv:2003.01262, "Selectivity considered harmful") tested on a
sweep's alpha experiment, and the table of its accuracy story.

- off-axis: the rotated-basis bound on selectivity (`selectivity_rotated`) falls with alpha < 0
  too (Spearman rho between alpha and the bound over the trials at alpha <= 0), and the
  representation changes beyond a rotation: the similarity (PWCCA, linear CKA) of the most
  negative alpha's networks to the alpha = 0 network of the same seed falls below the alpha = 0
  seed-to-seed level (`<measure>_seed_baseline`);
- accuracy: per alpha < 0, "lowering selectivity costs no accuracy" as equivalence within a
  margin (two one-sided bootstrap tests, `selectivity.equivalence`), and "raising selectivity
  hurts accuracy even by small amounts" as a one-sided test at the smallest positive alpha;
- corruptions: how many corruptions the most negative alpha improved against alpha = 0 (accuracy
  normalised by clean accuracy, at severity 5 as the second paper's Fig. 1c), with a bootstrap CI.

`alpha_effects` is the table: per alpha, the factor by which mu_SI fell or rose against alpha = 0
and the accuracy change, with CIs. Arrays of one alpha and of alpha = 0 are paired by seed when
they hold the same seeds (seed fixes data split and initialisation), else resampled apart.
Rows have the columns of `engine.untested_row`, so they join the claims table as they are.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from selectivity import equivalence
from selectivity.report.checks import Collapse
from selectivity.report.claims.engine import (
    MIN_ALPHAS,
    MIN_SAMPLES,
    MIN_TRIALS,
    contrast_ci,
    fewest_samples,
    statistic_ci,
    untested_row,
    verdict_of,
)
from selectivity.report.stats import (
    CONFIDENCE,
    N_RESAMPLES,
    metric_rows,
    per_trial,
    percentile_bootstrap,
    range_text,
)

__all__ = [
    "EFFECT_COLUMNS",
    "EQUIVALENCE_MARGIN",
    "SIMILARITY_MEASURES",
    "TEST_LEVEL",
    "alpha_effects",
    "corruption_severity",
    "evaluate_first_paper_claims",
    "improved_corruptions",
]

# Issue 21's margin: 1 percentage point of accuracy (`selectivity report --margin`).
EQUIVALENCE_MARGIN = 0.01
# Level of each one-sided test (TOST's two, the "hurts" test): its interval is the 90% one.
TEST_LEVEL = 0.05
SIMILARITY_MEASURES = {"pwcca": "PWCCA", "linear_cka": "linear CKA"}
SOURCE = "arXiv:2003.01262"


def _values(trials: pd.DataFrame, alpha: float) -> pd.DataFrame:
    return trials[np.isclose(trials["alpha"], alpha)].sort_values("seed")


def _pair(treated: pd.DataFrame, control: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, bool]:
    """The two groups' values, aligned by seed when they hold the same seeds once each."""
    a, b = treated["seed"].tolist(), control["seed"].tolist()
    paired = len(a) > 1 and a == b and len(set(a)) == len(a)
    return treated["value"].to_numpy(float), control["value"].to_numpy(float), paired


EFFECT_COLUMNS = [
    "alpha",
    "n_seeds",
    "n_control",
    "paired",
    "selectivity_ratio",
    "selectivity_ratio_low",
    "selectivity_ratio_high",
    "selectivity_change",
    "accuracy_change",
    "accuracy_change_low",
    "accuracy_change_high",
]


def alpha_effects(
    table: pd.DataFrame, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> pd.DataFrame:
    """Per alpha != 0: mu_SI(alpha) / mu_SI(0) and accuracy(alpha) - accuracy(0), 95% CIs.

    Columns: alpha, n_seeds, n_control, paired, selectivity_ratio (+ _low, _high),
    selectivity_change (words: "fell by a factor of 2.5 (CI ...)"), accuracy_change (+ _low,
    _high). No rows (the columns only) when the table has no alpha = 0 trial or neither
    metric.
    """
    frames = {}
    for metric in ("selectivity", "test_accuracy"):
        try:
            frames[metric] = per_trial(table, metric)
        except ValueError:
            continue
    records = []
    alphas = sorted(set().union(*(set(f["alpha"]) for f in frames.values())) - {0.0})
    if not frames or not any((f["alpha"] == 0).any() for f in frames.values()):
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    for alpha in alphas:
        record: dict = {"alpha": alpha}
        if "selectivity" in frames:
            trials = frames["selectivity"]
            a, b, paired = _pair(_values(trials, alpha), _values(trials, 0.0))
            factor = equivalence.selectivity_factor(
                a, b, CONFIDENCE, paired, n_resamples=n_resamples, seed=seed
            )
            record.update(
                n_seeds=factor.n_treated,
                n_control=factor.n_control,
                paired=paired,
                selectivity_ratio=factor.ratio,
                selectivity_ratio_low=factor.low,
                selectivity_ratio_high=factor.high,
                selectivity_change=factor.describe(),
            )
        if "test_accuracy" in frames:
            trials = frames["test_accuracy"]
            a, b, paired = _pair(_values(trials, alpha), _values(trials, 0.0))
            change = equivalence.mean_difference(
                a, b, CONFIDENCE, paired, n_resamples=n_resamples, seed=seed
            )
            record.setdefault("n_seeds", change.n_treated)
            record.setdefault("n_control", change.n_control)
            record.setdefault("paired", paired)
            record.update(
                accuracy_change=change.difference,
                accuracy_change_low=change.low,
                accuracy_change_high=change.high,
            )
        records.append(record)
    out = pd.DataFrame.from_records(records).reindex(columns=EFFECT_COLUMNS)
    out["selectivity_change"] = out["selectivity_change"].astype(object).fillna("not measured")
    return out


def _counts(row: dict, trials: pd.DataFrame) -> None:
    counts = trials.groupby("alpha").size()
    row.update(n_trials=len(trials), n_alphas=int(counts.size), seeds_per_alpha=range_text(counts))


def _rotated_row(table: pd.DataFrame, collapse: Collapse, n_resamples: int, seed: int) -> dict:
    """The rotated-basis bound falls as alpha falls below 0 (rho(alpha, bound) > 0 on alpha <= 0)."""
    row = untested_row(
        claim="The regularizer lowers selectivity in an optimized basis too: the rotated-basis "
        "upper bound on μ_SI falls as α falls below 0 (selectivity is suppressed, not only "
        "rotated off the unit axes).",
        key="rotated_bound_falls",
        source=f"{SOURCE}: off-axis finding",
        x="α (per trial, ordinal), trials at α ≤ 0",
        statistic="Spearman ρ(α, rotated-basis bound) across trials",
        expected="> 0",
        verdict_rule="the 95% CI against 0",
    )
    try:
        y = per_trial(table, "selectivity_rotated")
    except ValueError as error:
        row["note"] = f"not measured: {error}"
        return row
    trials = y[y["alpha"] <= 0].rename(columns={"value": "y"}).assign(x=lambda f: f["alpha"])
    trials, n_left_out, notes = collapse.leave_out(trials.dropna(subset=["y"]))
    trials = trials.sort_values(["alpha", "seed"]).reset_index(drop=True)
    _counts(row, trials)
    row["n_collapsed_left_out"] = n_left_out
    if trials.empty:
        row["note"] = "; ".join([*notes, "no trials at α ≤ 0"])
        return row
    estimate, low, high = statistic_ci(trials, "correlation", CONFIDENCE, n_resamples, seed)
    contrast = contrast_ci(trials, CONFIDENCE, n_resamples, seed)
    row.update(estimate=estimate, ci_low=low, ci_high=high)
    row.update(contrast=contrast[0], contrast_low=contrast[1], contrast_high=contrast[2])
    if np.isfinite(estimate) and estimate != 0:
        row["direction"] = f"bound {'falls' if estimate > 0 else 'rises'} as α falls"
    verdict, reason = verdict_of(estimate, low, high, +1)
    if len(trials) < MIN_TRIALS or row["n_alphas"] < MIN_ALPHAS:
        verdict = "inconclusive"
        reason = f"too few trials (need ≥ {MIN_TRIALS} trials and ≥ {MIN_ALPHAS} α values ≤ 0)"
    row.update(verdict=verdict, note="; ".join([*notes, reason]))
    return row


def _mean_over_layers(table: pd.DataFrame, metric: str, layers: list) -> pd.DataFrame:
    return per_trial(table, metric, (), {"layer": layers})


def _similarity_row(table: pd.DataFrame, metric: str, n_resamples: int, seed: int) -> dict:
    """The most negative alpha's similarity to alpha = 0 lies below the seed-to-seed level."""
    name = SIMILARITY_MEASURES[metric]
    row = untested_row(
        claim=f"Lowering selectivity changes the representation beyond a rotation: {name} "
        "between the most negative α's networks and the α = 0 network of the same seed falls "
        "below the α = 0 seed-to-seed level (an off-axis rotation alone would keep it there).",
        key=f"{metric}_below_seed_baseline",
        source=f"{SOURCE}: off-axis finding (similarity check of issue 21)",
        x="lowest α against α = 0 networks of other seeds",
        statistic=f"mean {name} (lowest α, to same seed's α = 0) − mean {name} (α = 0, across "
        "seeds), mean over layers",
        expected="< 0",
        verdict_rule="the 95% CI against 0",
        trials_used="all trials",
    )
    baseline_metric = f"{metric}_seed_baseline"
    try:
        layers = sorted(
            set(metric_rows(table, metric)["layer"].dropna())
            & set(metric_rows(table, baseline_metric)["layer"].dropna())
        )
        if not layers:
            raise ValueError(f"{metric} and {baseline_metric} share no layer")
        similarity = _mean_over_layers(table, metric, layers)
        baseline = _mean_over_layers(table, baseline_metric, layers)
    except ValueError as error:
        row["note"] = f"not measured: {error}"
        return row
    lowest = similarity["alpha"].min()
    a = _values(similarity, lowest)["value"].dropna().to_numpy(float)
    b = baseline["value"].dropna().to_numpy(float)
    row.update(n_trials=len(a) + len(b), n_alphas=2, seeds_per_alpha=f"{len(a)}, {len(b)}")
    if lowest >= 0 or not len(a) or not len(b):
        row["note"] = "needs trials at α < 0 and seed-to-seed rows at α = 0"
        return row
    estimate = float(a.mean() - b.mean())
    low, high = percentile_bootstrap(
        (a, b), _difference_of_means, False, CONFIDENCE, n_resamples, seed
    )
    row.update(estimate=estimate, ci_low=low, ci_high=high, contrast=estimate)
    row.update(contrast_low=low, contrast_high=high)
    row["direction"] = (
        f"{name} at α = {lowest:g}: {a.mean():.3g}; seed-to-seed at α = 0: {b.mean():.3g}"
    )
    verdict, reason = verdict_of(estimate, low, high, -1)
    if min(len(a), len(b)) < 2:
        verdict, reason = "inconclusive", "needs ≥ 2 values on each side"
    row.update(verdict=verdict, note=f"{reason}; {len(layers)} layers")
    return row


def _difference_of_means(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def _accuracy_rows(table: pd.DataFrame, margin: float, n_resamples: int, seed: int) -> list[dict]:
    """Equivalence per alpha < 0, and the drop at the smallest positive alpha."""
    words = f"±{margin:g} accuracy ({margin * 100:g} percentage points)"
    missing = ""
    try:
        trials = per_trial(table, "test_accuracy")
    except ValueError as error:
        trials, missing = None, f"not measured: {error}"
    alphas = sorted(set(trials["alpha"])) if trials is not None else []
    has_zero = 0.0 in alphas
    few = fewest_samples(table, ("test_accuracy",))
    rows = []
    for alpha in [a for a in alphas if a < 0] or [None]:
        row = untested_row(
            claim=f"Lowering selectivity costs no accuracy (α = {alpha:g} against α = 0)."
            if alpha is not None
            else "Lowering selectivity costs no accuracy (each α < 0 against α = 0).",
            key=f"no_accuracy_cost_alpha={alpha:g}" if alpha is not None else "no_accuracy_cost",
            source=f"{SOURCE}: abstract (a factor of ~2.5 lower μ_SI at no cost, ~20 at ~2%)",
            x="α against α = 0",
            statistic="mean accuracy(α) − mean accuracy(0), 90% CI (TOST)",
            expected=f"within {words}",
            verdict_rule=f"two one-sided bootstrap tests at {TEST_LEVEL:g}: supported when the "
            "90% CI lies inside the margin, contradicted when it lies outside it",
            trials_used="all trials",
        )
        if alpha is None or not has_zero or trials is None:
            row["note"] = missing if trials is None else "needs trials at α < 0 and at α = 0"
            rows.append(row)
            continue
        treated, control = _values(trials, alpha), _values(trials, 0.0)
        a, b, paired = _pair(treated, control)
        test = equivalence.equivalence_test(
            a, b, margin, TEST_LEVEL, paired, n_resamples=n_resamples, seed=seed
        )
        _fill(row, treated, control, paired, test.difference, test.low, test.high)
        row["p_value"] = test.p_value
        if not (math.isfinite(test.low) and math.isfinite(test.high)):
            verdict, reason = "inconclusive", "needs ≥ 2 trials at α and at α = 0"
        elif test.equivalent:
            verdict, reason = "supported", f"TOST p = {test.p_value:.3g} < {TEST_LEVEL:g}"
        elif test.high <= -margin or test.low >= margin:
            verdict, reason = "contradicted", "the 90% CI lies outside the margin"
        else:
            verdict, reason = "inconclusive", f"TOST p = {test.p_value:.3g}; CI crosses a margin"
        rows.append(_gate(row, verdict, reason, few))
    rows.append(_hurts_row(trials, missing if trials is None else "", few, n_resamples, seed))
    return rows


def _fill(row, treated, control, paired, difference, low, high) -> None:
    row.update(estimate=difference, ci_low=low, ci_high=high, contrast=difference)
    row.update(n_trials=len(treated) + len(control), n_alphas=2)
    row["seeds_per_alpha"] = f"{len(treated)}, {len(control)}"
    row["trials_used"] = "all trials; " + ("paired by seed" if paired else "unpaired")
    if math.isfinite(difference):
        row["direction"] = (
            f"accuracy {'falls' if difference < 0 else 'rises'} by {abs(difference):.3g}"
        )


def _gate(row: dict, verdict: str, reason: str, fewest: float) -> dict:
    if fewest < MIN_SAMPLES:
        verdict = "inconclusive"
        reason = f"too few samples ({int(fewest)} images per trial; need ≥ {MIN_SAMPLES})"
    row.update(verdict=verdict, note=reason)
    return row


def _hurts_row(
    trials: pd.DataFrame | None, missing: str, fewest: float, n_resamples: int, seed: int
) -> dict:
    row = untested_row(
        claim="Raising selectivity hurts accuracy even by small amounts (the smallest α > 0 "
        "against α = 0).",
        key="raising_hurts_smallest_alpha",
        source=f"{SOURCE}: abstract, introduction",
        x="smallest α > 0 against α = 0",
        statistic="mean accuracy(α) − mean accuracy(0), 90% CI (one-sided test)",
        expected="< 0",
        verdict_rule=f"one-sided bootstrap test at {TEST_LEVEL:g}: supported when p < "
        f"{TEST_LEVEL:g}, contradicted when the 90% CI lies above 0",
        trials_used="all trials",
    )
    positive = sorted(a for a in set(trials["alpha"]) if a > 0) if trials is not None else []
    if not positive or trials is None or not (trials["alpha"] == 0).any():
        row["note"] = missing or "needs trials at α > 0 and at α = 0"
        return row
    alpha = positive[0]
    row["x"] = f"α = {alpha:g} against α = 0"
    treated, control = _values(trials, alpha), _values(trials, 0.0)
    a, b, paired = _pair(treated, control)
    test = equivalence.difference_test(
        a, b, "less", TEST_LEVEL, paired, n_resamples=n_resamples, seed=seed
    )
    _fill(row, treated, control, paired, test.difference, test.low, test.high)
    row["p_value"] = test.p_value
    if not math.isfinite(test.p_value):
        verdict, reason = "inconclusive", "needs ≥ 2 trials at α and at α = 0"
    elif test.p_value < TEST_LEVEL:
        verdict, reason = "supported", f"p = {test.p_value:.3g} < {TEST_LEVEL:g}"
    elif test.low > 0:
        verdict, reason = "contradicted", "the 90% CI lies above 0: accuracy rose"
    else:
        verdict, reason = "inconclusive", f"p = {test.p_value:.3g}"
    return _gate(row, verdict, reason, fewest)


def corruption_severity(table: pd.DataFrame, wanted: int = 5) -> int:
    """Severity 5 (the paper's Fig. 1c) where the table has it, else its highest severity."""
    severities = sorted(set(metric_rows(table, "corruption_accuracy")["severity"].dropna()))
    if not severities:
        raise ValueError("corruption_accuracy has no severity")
    return wanted if wanted in severities else int(severities[-1])


def improved_corruptions(
    table: pd.DataFrame, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> dict:
    """How many corruptions the most negative alpha improved against alpha = 0.

    Per trial and corruption: corruption accuracy at severity 5 (`corruption_severity`) divided
    by the trial's clean accuracy; a corruption improved when its mean over the lowest alpha's
    seeds exceeds the mean over alpha = 0's. CI: percentile bootstrap over seeds (each group's
    trials resampled with their whole row of corruptions). Returns count, low, high, n (the
    corruptions), severity, lowest (the alpha); ValueError when a metric or alpha is missing.
    """
    severity = corruption_severity(table)
    corrupted = per_trial(table, "corruption_accuracy", ("corruption",), {"severity": severity})
    clean = per_trial(table, "test_accuracy").rename(columns={"value": "clean"})
    merged = corrupted.merge(clean, on=[c for c in clean.columns if c != "clean"])
    merged["value"] = merged["value"] / merged["clean"]
    wide = merged.pivot_table(index=["alpha", "seed"], columns="corruption", values="value")
    lowest = float(wide.index.get_level_values("alpha").min())
    if lowest >= 0 or 0.0 not in set(wide.index.get_level_values("alpha")):
        raise ValueError("needs trials at α < 0 and at α = 0")
    a = wide.xs(lowest, level="alpha").to_numpy(float)
    b = wide.xs(0.0, level="alpha").to_numpy(float)
    count = int((np.nanmean(a, axis=0) > np.nanmean(b, axis=0)).sum())
    rng = np.random.default_rng(seed)
    ra = a[rng.integers(0, len(a), size=(n_resamples, len(a)))]
    rb = b[rng.integers(0, len(b), size=(n_resamples, len(b)))]
    with np.errstate(invalid="ignore"):
        counts = (np.nanmean(ra, axis=1) > np.nanmean(rb, axis=1)).sum(axis=1)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(counts, [tail, 1 - tail])
    return {
        "count": count,
        "low": float(low),
        "high": float(high),
        "n": int(a.shape[1]),
        "severity": severity,
        "lowest": lowest,
        "seeds": (len(a), len(b)),
    }


def _corruption_row(table: pd.DataFrame, n_resamples: int, seed: int) -> dict:
    row = untested_row(
        claim="Lowering selectivity improves normalised accuracy on most corruptions (the "
        "papers: 12 of 15 Tiny ImageNet-C, 15 of 19 CIFAR-10-C corruptions).",
        key="corruptions_improved",
        source="ICML-W 2020: footnote to §3.1, Fig. 1c, A4c",
        x="lowest α against α = 0, per corruption",
        statistic="number of corruptions whose corrupted / clean accuracy (severity 5) rose",
        expected="more than half",
        verdict_rule="95% CI of the count: supported above half the corruptions, contradicted "
        "below half",
        trials_used="all trials",
    )
    try:
        found = improved_corruptions(table, n_resamples, seed)
    except ValueError as error:
        row["note"] = f"not measured: {error}"
        return row
    half = found["n"] / 2
    row.update(estimate=found["count"], ci_low=found["low"], ci_high=found["high"])
    row.update(n_trials=sum(found["seeds"]), n_alphas=2)
    row["seeds_per_alpha"] = "{}, {}".format(*found["seeds"])
    row["direction"] = f"{found['count']} of {found['n']} improved at α = {found['lowest']:g}"
    if found["low"] > half:
        verdict = "supported"
    elif found["high"] < half:
        verdict = "contradicted"
    else:
        verdict = "inconclusive"
    row.update(verdict=verdict, note=f"severity {found['severity']}; half = {half:g}")
    return row


def evaluate_first_paper_claims(
    table: pd.DataFrame,
    collapse: Collapse,
    margin: float = EQUIVALENCE_MARGIN,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """The first paper's claims on the alpha experiment's table, one row each (claims columns).

    A claim whose metrics are absent stays "not tested", its note saying "not measured: ...".
    """
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be positive, got {margin}")
    rows = [
        _rotated_row(table, collapse, n_resamples, seed),
        *(_similarity_row(table, m, n_resamples, seed) for m in SIMILARITY_MEASURES),
        *_accuracy_rows(table, margin, n_resamples, seed),
        _corruption_row(table, n_resamples, seed),
    ]
    return pd.DataFrame.from_records(rows)

"""Which trials of a sweep belong to which experiment: the alpha experiment (the regularizer) and
one experiment per robustness-training method (Gaussian noise, corruption mix, adversarial).

A sweep may grid alpha and the methods' strengths (`METHOD_KEYS`: noise_std, mix_severity,
adv_eps; 0 = method off) in one table, for example the union of alpha x seed, noise_std x seed
and adv_eps x seed grids sharing the baseline trial. `experiments` splits it:

- alpha: the trials with every method off (all strengths 0, or no strength column), so the
  papers' figures and claims read exactly the trials they read in an alpha-only sweep;
- a method's experiment: the trials where the other methods are off and alpha is the base alpha
  (the alpha nearest 0 among the trials with that method on: 0 where the grid trained the method
  at alpha 0, the sweep's single alpha otherwise), at every strength of the method, 0 included
  (the baseline trials, shared with the alpha experiment). Trials of that method at other alphas
  belong to no experiment, and `unassigned` counts them.
- adversarial training with several attacks swept (`adv_method` a trial column) gives one
  experiment per attack, each with the shared eps-0 baseline.

Reads tables only: pandas, no torch or matplotlib.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from selectivity.report.catalog import METHOD_KEYS, METHODS, REGULARIZER, Method
from selectivity.report.stats import (
    alpha_text,
    eps_text,
    load_results,
    range_text,
    trial_columns,
)

__all__ = ["Experiment", "experiments", "unassigned"]


@dataclass(frozen=True)
class Experiment:
    """The rows of one experiment of a sweep.

    name: "alpha", a method's name, or "<method> (<variant>)". method: `REGULARIZER` for the
    alpha experiment. alpha: the base alpha of a method's experiment (NaN for the alpha
    experiment). table: the experiment's rows of the results table, every column kept.
    """

    name: str
    method: Method
    variant: str | None
    alpha: float
    table: pd.DataFrame

    @property
    def training(self) -> bool:
        """Whether this is a robustness-training method's experiment (not the alpha one)."""
        return self.method is not REGULARIZER

    @property
    def title(self) -> str:
        variant = f", {self.variant}" if self.variant else ""
        return f"{self.method.title}{variant}"

    def pooled(self) -> list[str]:
        """Swept keys besides alpha, seed and the methods' that vary within the experiment: its
        trials are pooled over them as over seeds (a learning-rate grid, say)."""
        # A method's variant is its own key; with the method off (alpha experiment) it is not.
        variant = self.method.variant_key if self.training else ""
        own = {"alpha", "seed", variant, *METHOD_KEYS}
        return [
            c
            for c in trial_columns(self.table)
            if c not in own and self.table[c].nunique(dropna=False) > 1
        ]

    def describe(self) -> str:
        """One line: strengths, seeds per strength, alpha (for a method's experiment), and the
        swept keys pooled over."""
        trials = self.table[trial_columns(self.table)].drop_duplicates()
        pooled = self.pooled()
        also = f"; pooled over {', '.join(pooled)} as over seeds" if pooled else ""
        if not self.training:
            return f"{len(trials)} trials{also}"
        levels = sorted(trials[self.method.key].unique())
        shown = [
            eps_text(v) if self.method.key == "adv_eps" and v > 0 else f"{v:g}" for v in levels
        ]
        seeds = trials.groupby(self.method.key).size()
        return (
            f"{len(trials)} trials: {self.method.key} = {', '.join(shown)} "
            f"× {range_text(seeds)} seeds at α = {alpha_text(self.alpha)}{also}"
        )


def _off(table: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Rows whose every method strength in `keys` is 0 (method off)."""
    off = pd.Series(True, index=table.index)
    for key in keys:
        off &= table[key] == 0
    return off


def _present(table: pd.DataFrame) -> list[Method]:
    return [m for m in METHODS if m.key in table.columns]


def _method_experiments(table: pd.DataFrame, method: Method, keys: list[str]) -> list[Experiment]:
    """The experiments of one method (one per variant where the variant is a trial column)."""
    alone = _off(table, [k for k in keys if k != method.key])
    on = alone & (table[method.key] > 0)
    if not on.any():
        return []
    alphas = sorted(set(table.loc[on, "alpha"]), key=lambda a: (abs(a), a))
    base = float(alphas[0])
    rows = alone & np.isclose(table["alpha"], base)
    variants: list[str | None] = [None]
    if method.variant_key and method.variant_key in table.columns:
        found = table.loc[on & rows, method.variant_key].dropna().astype(str).unique()
        if len(found) > 1:
            variants = sorted(found)
    out = []
    for variant in variants:
        picked = rows
        name = method.name
        if variant is not None:
            same = table[method.variant_key].astype(str) == variant
            # The strength-0 baseline: its own variant's trials where the grid crossed the
            # variant with strength 0 too (the same training, so not counted twice), else all.
            zero = rows & (table[method.key] == 0)
            baseline = zero & same if (zero & same).any() else zero
            picked = (rows & same) | baseline
            name = f"{method.name} ({variant})"
        out.append(Experiment(name, method, variant, base, table[picked]))
    return out


def experiments(results: pd.DataFrame | str | os.PathLike) -> list[Experiment]:
    """The experiments of a results table (or its file), alpha first, then each method.

    An experiment is listed only when it has trials; a method only when some trial has it on.
    """
    table = load_results(results)
    methods = _present(table)
    keys = [m.key for m in methods]
    out = []
    alpha = _off(table, keys)
    if alpha.any():
        out.append(Experiment("alpha", REGULARIZER, None, float("nan"), table[alpha]))
    for method in methods:
        out.extend(_method_experiments(table, method, keys))
    return out


def unassigned(table: pd.DataFrame, found: list[Experiment]) -> pd.DataFrame:
    """The trials (trial columns) that belong to no experiment: several methods on at once, or a
    method trained at an alpha other than its base alpha."""
    columns = trial_columns(table)
    trials = table[columns].drop_duplicates()
    if not found:
        return trials.reset_index(drop=True)
    members = pd.concat([e.table[columns] for e in found]).drop_duplicates()
    marked = trials.merge(members, on=columns, how="left", indicator=True)
    return marked.loc[marked["_merge"] == "left_only", columns].reset_index(drop=True)

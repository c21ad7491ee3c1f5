"""Several evaluated models side by side (`selectivity compare`): your own checkpoints, not a
sweep.

    gather(folders, labels)            -> Comparison: the tables of the folders, with a model column
    write_comparison(comparison, out)  -> OUT/report.html, beside comparison.parquet,
                                          comparison_units.parquet and figures/compare_*.png
    plot_accuracy_by_model(table)      clean, corrupted and attacked accuracy by model
    plot_fgsm_by_model(table)          FGSM accuracy against eps, a line per model
    plot_pgd_by_model(table)           PGD accuracy against steps, a line per model
    plot_selectivity_by_model(table)   mu_SI by model
    plot_layer_selectivity_by_model(units)  each layer's SI distribution, a box per model

A folder is anything holding `evaluation.parquet` (a run folder after `selectivity evaluate`, an
`evaluate --out` folder) and/or `selectivity.parquet` (`selectivity measure`). Each folder is one
model under the label given for it; folders given the same label are pooled as runs of that model
(a point per folder, the bar or line at their mean). Nothing else is read as a seed: a label is a
category, never a number on an axis, and no column of the tables is taken for a replicate.
Reads tables only (pandas, matplotlib on the first figure), never models.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from selectivity import schema
from selectivity.errors import UserError
from selectivity.files import read_table, remove_stale_temporaries, write_bytes, write_table
from selectivity.report.checks import pgd_binding_text, settings_text
from selectivity.report.figures.style import (
    SELECTIVITY_LABEL,
    STYLE,
    eps_axis,
    figure_of,
    load_matplotlib,
    new_axes,
    percent_axis,
)
from selectivity.report.stats import appearance_order, eps_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "EVALUATION_FILE",
    "FOLDER",
    "MODEL",
    "UNITS_FILE",
    "Comparison",
    "gather",
    "plot_accuracy_by_model",
    "plot_fgsm_by_model",
    "plot_layer_selectivity_by_model",
    "plot_pgd_by_model",
    "plot_selectivity_by_model",
    "write_comparison",
]

EVALUATION_FILE = "evaluation.parquet"
UNITS_FILE = "selectivity.parquet"
MODEL = "model"  # the label given for a folder
FOLDER = "folder"  # the folder a row was read from, as given


@dataclass(frozen=True)
class Comparison:
    """The folders' tables, each row with its model's label and its folder: `evaluation` (the
    schema of evaluation.parquet after MODEL and FOLDER) and `units` (selectivity.parquet's
    per-unit rows after MODEL and FOLDER); either may be empty."""

    evaluation: pd.DataFrame
    units: pd.DataFrame

    @property
    def models(self) -> list[str]:
        """The labels in the order given."""
        seen = [*self.evaluation.get(MODEL, []), *self.units.get(MODEL, [])]
        return list(dict.fromkeys(seen))


def gather(folders: Sequence[str | Path], labels: Sequence[str] | None = None) -> Comparison:
    """The tables of `folders`, one model per folder under `labels` (default: the folder names);
    UserError, one line, for a folder holding neither table, a label count that does not match,
    an empty label and two models given the same folder."""
    paths = [Path(folder) for folder in folders]
    if not paths:
        raise UserError("compare needs at least one folder")
    names = list(labels) if labels is not None else [path.name or str(path) for path in paths]
    if len(names) != len(paths):
        raise UserError(f"--labels gives {len(names)} label(s) for {len(paths)} folder(s)")
    if any(not name.strip() for name in names):
        raise UserError("--labels has an empty label")
    if len({path.resolve() for path in paths}) < len(paths):
        raise UserError("a folder is given twice; give each folder once")
    evaluations, units = [], []
    for path, name in zip(paths, names, strict=True):
        found = [path / EVALUATION_FILE, path / UNITS_FILE]
        if not any(file.is_file() for file in found) and (path / "results.parquet").is_file():
            raise UserError(
                f"{path} is a sweep folder: `selectivity report {path}` draws it; compare takes "
                "its trial folders (alpha=.../seed=...)"
            )
        if not any(file.is_file() for file in found):
            raise UserError(
                f"{path} holds neither {EVALUATION_FILE} (selectivity evaluate) nor {UNITS_FILE} "
                "(selectivity measure)"
            )
        advice = f"; run `selectivity evaluate` or `measure` for {path} again"
        if found[0].is_file():
            table = read_table(found[0], ["metric", "value"], advice)
            evaluations.append(_labelled(table, name.strip(), path))
        if found[1].is_file():
            table = read_table(found[1], ["layer", "unit", "si"], advice)
            units.append(_labelled(table, name.strip(), path))
    return Comparison(_joined(evaluations), _joined(units))


def _labelled(table: pd.DataFrame, model: str, folder: Path) -> pd.DataFrame:
    table = table.copy()
    table.insert(0, FOLDER, pd.Series([str(folder)] * len(table), dtype="string"))
    table.insert(0, MODEL, pd.Series([model] * len(table), dtype="string"))
    return table


def _joined(tables: list[pd.DataFrame]) -> pd.DataFrame:
    if not tables:
        return pd.DataFrame({MODEL: pd.Series(dtype="string"), FOLDER: pd.Series(dtype="string")})
    return pd.concat(tables, ignore_index=True)


def _rows(table: pd.DataFrame, metric: str, **keys: float | None) -> pd.DataFrame:
    """Rows of `metric`; a key given as None must be missing, one given a value must equal it."""
    if "metric" not in table.columns:  # no folder had an evaluation table
        return table.iloc[:0]
    rows = table[table["metric"] == metric]
    for key, value in keys.items():
        column = rows[key]
        if value is None:
            rows = rows[column.isna()]
        else:
            rows = rows[np.isclose(column.astype(float).to_numpy(), float(value))]
    return rows


def _per_folder(rows: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """One value per model, folder and `by` keys (the mean over other keys), in label order."""
    columns = [MODEL, FOLDER, *by]
    return rows.groupby(columns, sort=False, dropna=False)["value"].mean().reset_index()


def _require(rows: pd.DataFrame, what: str) -> None:
    if rows.empty:
        raise ValueError(f"no {what} in the compared tables")


def _colors(models: Sequence[str]) -> dict[str, tuple]:
    cmap = load_matplotlib().colormaps["tab10"]
    return {model: cmap(i % 10) for i, model in enumerate(models)}


def _headline(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) of the accuracies that sum a model up, those present: clean, corruptions,
    FGSM and AutoAttack at their largest eps, PGD at its longest run."""
    found = [
        ("clean", _rows(table, "test_accuracy", layer=None)),
        ("corruptions\n(mean)", _rows(table, "corruption_accuracy_mean")),
    ]
    for metric, label in (("fgsm_accuracy", "FGSM"), ("autoattack_accuracy", "AutoAttack")):
        rows = _rows(table, metric)
        if rows.empty or rows["eps"].isna().all():
            continue
        eps = float(rows["eps"].max())
        found.append((f"{label}\nε={eps_text(eps)}", _rows(table, metric, eps=eps)))
    pgd = _rows(table, "pgd_accuracy")
    if not pgd.empty:
        steps = int(pgd["steps"].max())
        eps = float(pgd["eps"].max())
        label = f"PGD ε={eps_text(eps)}\n{steps} steps"
        found.append((label, _rows(pgd, "pgd_accuracy", steps=steps)))
    return [(label, rows) for label, rows in found if not rows.empty]


def _styled(function: Callable) -> Callable:
    """Run a plot function under the house style (kept local to the call)."""

    def wrapper(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
        with load_matplotlib().rc_context(STYLE):
            return function(table, ax)

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


@_styled
def plot_accuracy_by_model(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Clean, corrupted and attacked accuracy (those the table has), a bar per model at the
    mean of its folders, a point per folder."""
    measures = _headline(table)
    _require(pd.concat([rows for _, rows in measures]) if measures else table.iloc[:0], "accuracy")
    models = appearance_order(table[MODEL])
    ax = new_axes(ax, (2.4 + len(measures) * (0.9 + 0.35 * len(models)), 3.4))
    colors, width = _colors(models), 0.8 / len(models)
    for i, model in enumerate(models):
        for j, (_, rows) in enumerate(measures):
            values = _per_folder(rows[rows[MODEL] == model])["value"]
            if values.empty:
                continue
            x = j - 0.4 + (i + 0.5) * width
            ax.bar(
                x, values.mean(), width * 0.9, color=colors[model], label=model if j == 0 else None
            )
            ax.scatter([x] * len(values), values, s=10, color="black", zorder=3)
    ax.set_xticks(range(len(measures)), [label for label, _ in measures])
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    percent_axis(ax.yaxis)
    ax.legend(title="model", frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax


def _lines(ax: Axes, rows: pd.DataFrame, key: str, models: list[str]) -> None:
    colors = _colors(models)
    for model in models:
        values = _per_folder(rows[rows[MODEL] == model], (key,))
        if values.empty:
            continue
        mean = values.groupby(key, sort=True)["value"].mean()
        ax.plot(
            mean.index.astype(float),
            mean.to_numpy(),
            marker="o",
            ms=4,
            color=colors[model],
            label=model,
        )
        if values[FOLDER].nunique() > 1:
            ax.scatter(
                values[key].astype(float), values["value"], s=8, color=colors[model], alpha=0.5
            )
    ax.set_ylabel("accuracy")
    percent_axis(ax.yaxis)
    ax.legend(title="model", frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))


@_styled
def plot_fgsm_by_model(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """FGSM accuracy against eps, a line per model (the mean of its folders)."""
    rows = _rows(table, "fgsm_accuracy")
    _require(rows, "fgsm_accuracy rows")
    ax = new_axes(ax, (5.6, 3.4))
    _lines(ax, rows, "eps", appearance_order(table[MODEL]))
    eps_axis(ax, sorted(set(rows["eps"].astype(float))))
    ax.set_xlabel("FGSM ε (L∞, pixels in [0, 1])")
    return ax


@_styled
def plot_pgd_by_model(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """PGD accuracy against its steps, a line per model (the mean of its folders)."""
    rows = _rows(table, "pgd_accuracy")
    _require(rows, "pgd_accuracy rows")
    ax = new_axes(ax, (5.6, 3.4))
    _lines(ax, rows, "steps", appearance_order(table[MODEL]))
    ax.set_xlabel("PGD steps")
    return ax


@_styled
def plot_selectivity_by_model(table: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """mu_SI (the evaluation's selectivity, layer null), a bar per model, a point per folder."""
    rows = _rows(table, "selectivity", layer=None)
    _require(rows, "selectivity rows (mu_SI)")
    models = appearance_order(rows[MODEL])
    ax = new_axes(ax, (1.5 + 0.8 * len(models), 3.4))
    colors = _colors(appearance_order(table[MODEL]))
    for i, model in enumerate(models):
        values = _per_folder(rows[rows[MODEL] == model])["value"]
        ax.bar(i, values.mean(), 0.7, color=colors[model])
        ax.scatter([i] * len(values), values, s=10, color="black", zorder=3)
    ax.set_xticks(range(len(models)), models)
    ax.set_ylabel(SELECTIVITY_LABEL.replace(" (", "\n("))
    return ax


@_styled
def plot_layer_selectivity_by_model(units: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Each layer's distribution of unit SI (selectivity.parquet), a box per model; layers in
    the order the models list them."""
    _require(units, "per-unit selectivity (selectivity.parquet)")
    models, layers = appearance_order(units[MODEL]), appearance_order(units["layer"])
    ax = new_axes(ax, (1.5 + 0.45 * len(layers) * len(models), 3.6))
    colors, width = _colors(models), 0.8 / len(models)
    for i, model in enumerate(models):
        mine = units[units[MODEL] == model]
        where = [j for j, layer in enumerate(layers) if (mine["layer"] == layer).any()]
        data = [mine.loc[mine["layer"] == layers[j], "si"].to_numpy(float) for j in where]
        boxes = ax.boxplot(
            data, positions=[j - 0.4 + (i + 0.5) * width for j in where], widths=width * 0.85,
            patch_artist=True, showfliers=False, manage_ticks=False,
        )  # fmt: skip
        for box in boxes["boxes"]:
            box.set(facecolor=colors[model], alpha=0.6)
        ax.plot([], [], color=colors[model], lw=6, alpha=0.6, label=model)
    ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right")
    ax.set_ylabel("unit class-selectivity index")
    ax.set_ylim(0, 1)
    ax.legend(title="model", frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax


@dataclass(frozen=True)
class _Figure:
    name: str
    title: str
    draw: Callable[[Comparison], Axes]
    caption: Callable[[Comparison], str]


def _pgd_caption(comparison: Comparison) -> str:
    table = comparison.evaluation
    rows = _rows(table, "pgd_accuracy")
    words = []
    for model in appearance_order(rows[MODEL]):
        mine = table[table[MODEL] == model]
        eps = float(rows.loc[rows[MODEL] == model, "eps"].max())
        words.append(f"{model}: {pgd_binding_text(mine, eps)}")
    return " ".join(words) + " " + settings_text(table, ["pgd_accuracy"])


FIGURES = (
    _Figure(
        "compare_accuracy", "Accuracy by model", lambda c: plot_accuracy_by_model(c.evaluation),
        lambda c: "Bars: the mean over a model's folders; points: each folder. "
        + settings_text(c.evaluation, ["test_accuracy", "fgsm_accuracy", "pgd_accuracy"]),
    ),
    _Figure(
        "compare_fgsm", "FGSM accuracy by model", lambda c: plot_fgsm_by_model(c.evaluation),
        lambda c: "One line per model (its folders' mean). " + settings_text(c.evaluation, ["fgsm_accuracy"]),
    ),
    _Figure("compare_pgd", "PGD accuracy by model", lambda c: plot_pgd_by_model(c.evaluation), _pgd_caption),
    _Figure(
        "compare_selectivity", "Selectivity (μ_SI) by model",
        lambda c: plot_selectivity_by_model(c.evaluation),
        lambda c: "μ_SI from each evaluation table (silent units count as 0). "
        + settings_text(c.evaluation, ["selectivity"]),
    ),
    _Figure(
        "compare_layer_selectivity", "Per-layer SI distributions by model",
        lambda c: plot_layer_selectivity_by_model(c.units),
        lambda c: "Boxes: quartiles of the units' SI in each layer (whiskers 1.5 IQR, outliers not "
        "drawn), from each folder's selectivity.parquet; a model's folders pooled.",
    ),
)  # fmt: skip


def write_comparison(comparison: Comparison, out: str | Path) -> Path:
    """Write OUT/comparison.parquet (the evaluation rows with MODEL and FOLDER first),
    OUT/comparison_units.parquet (the per-unit rows likewise, when any folder has them),
    OUT/figures/compare_<name>.png and OUT/report.html (one page, figures embedded); every file
    under a temporary name, renamed when whole. Returns report.html's path."""
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    write_table(comparison.evaluation, out / "comparison.parquet")
    if not comparison.units.empty:
        write_table(comparison.units, out / "comparison_units.parquet")
    parts = [_head_html(comparison), _summary_html(comparison.evaluation)]
    skipped = []
    for spec in FIGURES:
        try:
            drawn = spec.draw(comparison)
            caption = spec.caption(comparison)
        except ValueError as error:
            skipped.append(f"<li>{html.escape(spec.title)}: {html.escape(str(error))}</li>")
            continue
        buffer = io.BytesIO()
        figure_of(drawn).savefig(buffer, format="png", dpi=120)
        write_bytes(out / "figures" / f"{spec.name}.png", buffer.getvalue())
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        parts.append(
            f"<figure id='{spec.name}'><img alt='{html.escape(spec.title)}' "
            f"src='data:image/png;base64,{encoded}'><figcaption><b>{html.escape(spec.title)}</b>"
            f" ({spec.name}.png). {html.escape(caption)}</figcaption></figure>"
        )
    if skipped:
        parts.append("<h2>Figures not drawn</h2><ul>" + "".join(skipped) + "</ul>")
    parts.append(
        "<p class='src'>Files next to this report: comparison.parquet (every evaluation row, "
        "with model and folder first), comparison_units.parquet (every unit's SI), "
        "figures/compare_*.png.</p></body></html>"
    )
    report = out / "report.html"
    write_bytes(report, "\n".join(parts).encode("utf-8"))
    return report


_CSS = (
    "body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }"
    " table { border-collapse: collapse; font-size: 0.85em; }"
    " th, td { border: 1px solid #ddd; padding: 4px 6px; text-align: left; }"
    " th { background: #f4f4f4; } .src { color: #777; font-size: 0.9em; }"
    " figure img { max-width: 100%; } figcaption { font-size: 0.9em; color: #444; }"
)


def _head_html(comparison: Comparison) -> str:
    folders = pd.concat(
        [comparison.evaluation[[MODEL, FOLDER]], comparison.units[[MODEL, FOLDER]]]
    ).drop_duplicates()
    items = "".join(
        f"<li><b>{html.escape(model)}</b>: "
        + ", ".join(html.escape(f) for f in folders.loc[folders[MODEL] == model, FOLDER])
        + "</li>"
        for model in comparison.models
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Comparison</title>"
        f"<style>{_CSS}</style></head><body><h1>Comparison of {len(comparison.models)} models</h1>"
        f"<ul>{items}</ul><p>Each model is the label given for its folders; folders under one "
        "label are pooled as its runs (a point each, the bar or line at their mean). No other "
        "column is read as seeds or as a number on an axis.</p>"
    )


def _summary_html(table: pd.DataFrame) -> str:
    """Every metric with no keys (one value per evaluation), by model: the mean over its
    folders, and the folder count where it is more than one."""
    if table.empty:
        return "<p>No evaluation tables: only the per-unit selectivity is compared.</p>"
    plain = table[table[list(schema.KEYS)].isna().all(axis=1)]
    per_folder = _per_folder(plain, ("metric",))
    means = per_folder.pivot_table(index="metric", columns=MODEL, values="value", sort=False)
    models = [m for m in appearance_order(table[MODEL]) if m in means.columns]
    metrics = [m for m in schema.METRICS if m in means.index]
    metrics += [m for m in means.index if m not in metrics]
    rows = []
    for metric in metrics:
        cells = "".join(f"<td>{_number(means.at[metric, model])}</td>" for model in models)
        rows.append(f"<tr><th>{html.escape(metric)}</th>{cells}</tr>")
    head = "".join(f"<th>{html.escape(model)}</th>" for model in models)
    return (
        "<h2>Summary</h2><p>Metrics with one value per evaluation (no layer, corruption, eps or "
        "steps), the mean over each model's folders.</p>"
        f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"
    )


def _number(value: float) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.4g}"

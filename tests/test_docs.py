"""docs/results.md documents every table the tool writes: its columns are the code's columns.

The tables come from a real (tiny) run of each writer: a one-trial sweep (its run folder has
metrics.parquet, summary.json and evaluation.parquet; the sweep folder trials.parquet and
results.parquet), `selectivity measure` on the trial and `write_report` on the sweep.
"""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from configs import TINY_SWEEP
from selectivity import schema

DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"

# One trial, every evaluation part (one corruption at one severity among them).
TINY = {
    **TINY_SWEEP,
    "corruptions": ("brightness",),
    "severities": (1,),
    "generate_corruptions": True,
    "alphas": (-1.0,),
    "seeds": (0,),
}


def documented() -> dict[str, list[tuple[str, str]]]:
    """File name -> (column, type) of the first table under each heading that names a file."""
    tables = {}
    for section in re.split(r"^## ", DOC.read_text(), flags=re.MULTILINE)[1:]:
        name = re.match(r"`([^`]+)`", section)
        if name is None:
            continue
        table = section[section.index("| column | type |") :].split("\n\n")[0]
        rows = re.findall(r"^\| *([^|]+?) *\| *([^|]+?) *\|", table, flags=re.MULTILINE)
        # Past the header and the --- row; a *placeholder* row (one column per swept key) stands
        # for columns only a sweep over more than alpha and seed writes.
        tables[name.group(1)] = [row for row in rows[2:] if not row[0].startswith("*")]
    return tables


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """File name -> the table the code wrote, as read back."""
    from selectivity.cli import app
    from selectivity.report import write_report
    from selectivity.sweep import run_sweep

    root = tmp_path_factory.mktemp("tables")
    sweep = root / "sweep"
    run_sweep(sweep, [TINY], progress=False)
    run = sweep / "alpha=-1" / "seed=0"
    measured = CliRunner().invoke(app, ["measure", str(run)])
    assert measured.exit_code == 0, measured.output
    write_report(sweep / "results.parquet", root / "report", n_resamples=50)
    return {
        "metrics.parquet": pd.read_parquet(run / "metrics.parquet"),
        "summary.json": pd.DataFrame([json.loads((run / "summary.json").read_text())]),
        "selectivity.parquet": pd.read_parquet(run / "selectivity.parquet"),
        "evaluation.parquet": pd.read_parquet(run / "evaluation.parquet"),
        "trials.parquet": pd.read_parquet(sweep / "trials.parquet"),
        "results.parquet": pd.read_parquet(sweep / "results.parquet"),
        # As text: CSV has no types, so the check below parses each cell as documented.
        "summary.csv": pd.read_csv(
            root / "report" / "summary.csv", dtype=str, keep_default_na=False
        ),
        "claims.csv": pd.read_csv(root / "report" / "claims.csv", dtype=str, keep_default_na=False),
        "alpha_effects.csv": pd.read_csv(
            root / "report" / "alpha_effects.csv", dtype=str, keep_default_na=False
        ),
    }


def test_every_written_table_is_documented_column_for_column(written):
    docs = documented()
    # results.parquet documents its trial columns, then "every column of evaluation.parquet".
    docs["results.parquet"] = docs["results.parquet"] + docs["evaluation.parquet"]
    assert set(docs) == set(written)
    for name, table in written.items():
        assert [column for column, _ in docs[name]] == list(table.columns), name


CHECKS = {
    "str": pd.api.types.is_string_dtype,
    "int": pd.api.types.is_integer_dtype,
    "float": pd.api.types.is_float_dtype,
    "bool": pd.api.types.is_bool_dtype,
}
# A CSV cell of each type, as pandas writes it (NaN and null as an empty cell).
CELLS = {
    "str": r".*",
    "int": r"-?\d+",
    "float": r"-?\d+(\.\d*)?(e[-+]?\d+)?|-?inf",
    "bool": r"True|False",
}


def test_every_documented_type_is_the_written_one(written):
    docs = documented()
    docs["results.parquet"] = docs["results.parquet"] + docs["evaluation.parquet"]
    for name, table in written.items():
        for column, kind in docs[name]:
            words = set(kind.split(" or "))
            base = words - {"null", "empty"}
            assert len(base) == 1 and base <= set(CHECKS), (name, column, kind)
            (wanted,) = base
            values = table[column]
            # NaN is a float value (its meaning says when); elsewhere a gap must be documented.
            gaps = bool(words & {"null", "empty"}) or wanted == "float"
            if name.endswith(".csv"):
                cells = values[values != ""] if gaps else values
                assert cells.str.fullmatch(CELLS[wanted]).all(), (name, column, kind)
                continue
            if words & {"null"} and values.isna().all():
                continue  # a column of nulls only (JSON null) has no type to check
            assert CHECKS[wanted](values), (name, column, kind, values.dtype)
            if not gaps:
                assert values.notna().all(), (name, column, "has missing values")


def test_every_metric_of_the_schema_is_documented():
    text = DOC.read_text()
    table = text[text.index("| metric | keys set | value |") :].split("\n\n")[0]
    names = set(re.findall(r"^\| `([a-z_-]+)` \|", table, flags=re.MULTILINE))
    assert names == set(schema.METRICS)

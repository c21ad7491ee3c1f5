"""`selectivity compare`: evaluated models side by side, one table with a model column and a
report by model, end to end on a tiny trained digits run and an `evaluate --out` folder."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from selectivity import commands
from selectivity.report.compare import (
    FOLDER,
    MODEL,
    gather,
    plot_layer_selectivity_by_model,
    write_comparison,
)

TINY = [
    *("max_samples=40", "analysis_samples=20", "pgd_steps=0,1,2", "dimensionality_pgd_steps=1"),
    *("fgsm_eps=0,8/255", "autoattack_version=off", "gradient_max_units=2"),
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A trained run folder (evaluated and measured) and an `evaluate --out` folder of a model
    with its initial weights (evaluated and measured there too)."""
    root = tmp_path_factory.mktemp("compare")
    run = root / "run"
    commands.train(run, "digits", ["epochs=1", "milestones=1", "num_threads=1"], "cpu", False)
    commands.evaluate(commands.ModelSource(run), "quick", items=TINY, device="cpu", progress=False)
    commands.measure(commands.ModelSource(run), device="cpu")
    mine = root / "mine"
    source = commands.ModelSource(model="digitsnet", random_init=True)
    keys = [*TINY, "dataset=digits"]
    commands.evaluate(source, "quick", out=mine, items=keys, device="cpu", progress=False)
    commands.measure(source, out=mine, items=["dataset=digits"], device="cpu")
    return run, mine


def test_compare_writes_one_table_by_model_and_a_report(folders, tmp_path, run_cli):
    run, mine = folders
    out = tmp_path / "cmp"
    code, stdout, err = run_cli("compare", run, mine, "--labels", "trained, initial", "--out", out)
    assert code == 0, err
    assert f"report: {out / 'report.html'}" in stdout
    table = pd.read_parquet(out / "comparison.parquet")
    assert list(table.columns[:2]) == [MODEL, FOLDER]
    for folder, label in ((run, "trained"), (mine, "initial")):
        evaluation = pd.read_parquet(folder / "evaluation.parquet")
        rows = table[table[MODEL] == label].drop(columns=[MODEL, FOLDER]).reset_index(drop=True)
        pd.testing.assert_frame_equal(rows, evaluation, check_dtype=False)
        assert set(table.loc[table[MODEL] == label, FOLDER]) == {str(folder)}
    units = pd.read_parquet(out / "comparison_units.parquet")
    assert len(units) == sum(len(pd.read_parquet(f / "selectivity.parquet")) for f in folders)
    page = (out / "report.html").read_text()
    for name in ("accuracy", "fgsm", "pgd", "selectivity", "layer_selectivity"):
        assert (
            f"id='compare_{name}'" in page and (out / "figures" / f"compare_{name}.png").is_file()
        )
    # The paper's PGD step cannot reach 8/255 in 2 steps: said per model.
    assert page.count("The ε-ball never binds") == 2


def test_labels_are_categories_and_one_label_pools_its_folders(folders, tmp_path):
    run, mine = folders
    # Numbers as labels stay labels (never an alpha axis), in the order given.
    numbered = gather([run, mine], ["1", "0.5"])
    assert numbered.models == ["1", "0.5"]
    pooled = gather([run, mine], ["same", "same"])
    assert pooled.models == ["same"] and set(pooled.evaluation[FOLDER]) == {str(run), str(mine)}
    page = write_comparison(pooled, tmp_path / "pooled").read_text()
    accuracy = [
        float(
            pd.read_parquet(f / "evaluation.parquet")
            .query("metric == 'test_accuracy'")["value"]
            .iloc[0]
        )
        for f in folders
    ]
    row = re.search(r"<tr><th>test_accuracy</th><td>([^<]+)</td></tr>", page)
    assert row is not None and float(row.group(1)) == pytest.approx(sum(accuracy) / 2, abs=1e-4)
    assert gather([run]).models == ["run"]  # the folder's name by default


def test_a_units_only_folder_compares_its_layers(tmp_path):
    for name, values in (("a", [0.1, 0.2, 0.3]), ("b", [0.6, 0.7])):
        folder = tmp_path / name
        folder.mkdir()
        units = pd.DataFrame(
            {"layer": ["relu"] * len(values), "unit": range(len(values)), "si": values}
        )
        units.to_parquet(folder / "selectivity.parquet")
    comparison = gather([tmp_path / "a", tmp_path / "b"])
    assert comparison.evaluation.empty and comparison.models == ["a", "b"]
    ax = plot_layer_selectivity_by_model(comparison.units)
    levels = {round(float(line.get_ydata()[0]), 6) for line in ax.lines if len(line.get_ydata())}
    assert {0.2, 0.65} <= levels  # each model's median SI in its box
    assert len(ax.patches) == 2 and [t.get_text() for t in ax.get_legend().get_texts()] == [
        "a",
        "b",
    ]
    page = write_comparison(comparison, tmp_path / "out").read_text()
    assert "id='compare_layer_selectivity'" in page and "Figures not drawn" in page
    assert not (tmp_path / "out" / "figures" / "compare_accuracy.png").exists()


def _error(run_cli, *args):
    code, _, err = run_cli("compare", *args)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("selectivity: error:"), err
    return err


def test_bad_folders_and_labels_are_one_line(folders, tmp_path, run_cli):
    run, mine = folders
    out = ("--out", tmp_path / "out")
    assert "holds neither evaluation.parquet" in _error(run_cli, tmp_path, *out)
    assert "gives 1 label(s) for 2 folder(s)" in _error(run_cli, run, mine, "--labels", "a", *out)
    assert "empty label" in _error(run_cli, run, mine, "--labels", "a,", *out)
    assert "given twice" in _error(run_cli, run, run, *out)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    pd.DataFrame({"metric": ["test_accuracy"], "value": [0.5]}).to_parquet(
        sweep / "results.parquet"
    )
    assert "is a sweep folder" in _error(run_cli, sweep, *out)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "evaluation.parquet").write_bytes(b"not parquet")
    assert "is not a readable Parquet table" in _error(run_cli, broken, *out)

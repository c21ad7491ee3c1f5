"""The report's files and figure cosmetics: figures/ holds only the latest report's figures and no
stale temporaries, the FGSM figure's radius labels do not overlap, and the report's figures keep
one home for the training methods."""

import itertools

import numpy as np
import pandas as pd
import pytest

from selectivity import report
from selectivity.report import load_results, plot_fgsm_accuracy, write_report

EPS = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)


def _fgsm_table(eps=EPS) -> pd.DataFrame:
    """FGSM accuracy falling with eps, three alphas, two seeds."""
    rows = [
        {"alpha": alpha, "seed": seed, "metric": "fgsm_accuracy", "eps": e, "value": 0.9 - e}
        for alpha in (-1.0, 0.0, 1.0)
        for seed in (0, 1)
        for e in eps
    ]
    return pd.DataFrame(rows)


def _tick_boxes(ax):
    """The x tick labels drawn (with Agg, as savefig does) and their boxes on the canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(ax.figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    labels = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
    return [t.get_text() for t in labels], [t.get_window_extent(renderer) for t in labels]


@pytest.mark.parametrize(
    "eps",
    [
        EPS,
        (0.0, 0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255),
        tuple(k / 255 for k in range(13)),
    ],
    ids=["doubling", "doubling-from-half", "even"],
)
def test_fgsm_radius_labels_do_not_overlap(eps):
    texts, boxes = _tick_boxes(plot_fgsm_accuracy(_fgsm_table(eps)))
    assert texts[0] == "0" and texts[1] in ("0.5/255", "1/255", "2/255")
    assert 2 <= len(texts) <= 8
    for left, right in itertools.pairwise(boxes):
        assert left.x1 < right.x0, (texts, [(b.x0, b.x1) for b in boxes])


def test_fgsm_ticks_sit_on_the_grid_radii():
    ax = plot_fgsm_accuracy(_fgsm_table())
    assert np.allclose(ax.get_xticks(), EPS)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1/255", "2/255", "4/255", "8/255"]


def _small_sweep() -> pd.DataFrame:
    rows = []
    for alpha in (-1.0, 0.0, 1.0):
        for seed in (0, 1):
            rows.append(
                {"alpha": alpha, "seed": seed, "metric": "jacobian_norm", "value": 1 + alpha}
            )
    return pd.DataFrame(rows)


def test_a_new_report_leaves_only_its_own_figures_and_no_stale_temporaries(tmp_path):
    figures = tmp_path / "figures"
    first = write_report(_fgsm_table(), tmp_path, n_resamples=20)
    assert (figures / "fgsm_accuracy.png").exists()
    # An interrupted writer (a pid that no longer runs) left temporaries beside the report.
    dead = 2**22 + 12345
    stale = [
        tmp_path / f".report.html.{dead}-x1.tmp",
        figures / f".fgsm_accuracy.png.{dead}-x2.tmp",
    ]
    for path in stale:
        path.write_bytes(b"half")
    notes = figures / "notes.txt"  # not a figure: left alone
    notes.write_text("mine")

    write_report(_small_sweep(), tmp_path, n_resamples=20)
    assert sorted(p.name for p in figures.glob("*.png")) == ["jacobian_norm.png"]
    assert not any(path.exists() for path in stale)
    assert notes.read_text() == "mine"
    assert first.exists() and "jacobian_norm" in first.read_text()


def test_a_failed_report_keeps_the_earlier_figures(tmp_path):
    write_report(_fgsm_table(), tmp_path, n_resamples=20)
    with pytest.raises(ValueError, match="value"):
        write_report(pd.DataFrame({"alpha": [0.0], "seed": [0], "metric": ["x"]}), tmp_path)
    assert (tmp_path / "figures" / "fgsm_accuracy.png").exists()


@pytest.mark.parametrize("method", report.METHODS, ids=lambda m: m.name)
def test_every_training_method_strength_is_read_as_a_number_missing_meaning_off(method):
    table = _small_sweep().assign(**{method.key: [None, "0.5"] * 3})
    loaded = load_results(table)
    assert loaded[method.key].dtype == float
    assert list(loaded[method.key]) == [0.0, 0.5] * 3
    # And the method's trials form its experiment (the strength-0 ones are the baseline).
    names = [e.name for e in report.experiments(loaded)]
    assert names[0] == "alpha" and names[1].startswith(method.name)

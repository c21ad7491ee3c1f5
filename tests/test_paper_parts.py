"""The first paper's evaluation parts (offaxis, ablation, representations) and the comparison of
trials from stored responses, on hand-built cases with known answers."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from selectivity import schema
from selectivity.comparison import (
    REPRESENTATIONS,
    read_representations,
    similarity_table,
    write_representations,
)
from selectivity.config import ConfigError, EvalConfig, build, parse_assignments
from selectivity.evaluation import eval_config, evaluate_model
from selectivity.measure import ablation_table
from selectivity.similarity import linear_cka, pwcca

# --- comparison: trial folders holding hand-built responses ----------------------------------

N = 200
INDICES = np.arange(N) * 2
LABELS = torch.arange(N) % 4


def _rotation(size: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(size, size, generator=torch.Generator().manual_seed(seed)))
    return q


def _store(root: Path, values: dict, responses: dict, images: str = "same") -> tuple[dict, Path]:
    folder = root / f"alpha={values['alpha']}" / f"seed={values['seed']}"
    write_representations(
        folder / "evaluation" / REPRESENTATIONS, responses, LABELS, INDICES, images
    )
    return values, folder


def _gaussian(seed: int, width: int = 5) -> torch.Tensor:
    return torch.randn(N, width, generator=torch.Generator().manual_seed(seed))


def test_responses_read_back_as_written(tmp_path):
    responses = {"conv.1": _gaussian(0, 3), "layer1.0.relu#2": _gaussian(1, 4)}
    _, folder = _store(tmp_path, {"alpha": 0.0, "seed": 0}, responses, images="abc")
    stored = read_representations(folder / "evaluation" / REPRESENTATIONS)
    assert list(stored.responses) == ["conv.1", "layer1.0.relu#2"]
    for layer, values in responses.items():
        assert stored.responses[layer].dtype == np.float32
        np.testing.assert_array_equal(stored.responses[layer], values.numpy())
    np.testing.assert_array_equal(stored.indices, INDICES)
    np.testing.assert_array_equal(stored.labels, LABELS.numpy())
    assert stored.images == "abc"


def test_rotated_network_is_identical_to_its_reference_and_others_are_not(tmp_path):
    reference = {"a": _gaussian(0), "b": _gaussian(1, 3)}
    rotated = {k: v @ _rotation(v.shape[1], 7) for k, v in reference.items()}
    # Seed 1's alpha = 0 network: seed 0's, scaled and rotated (the seed baseline is 1);
    # its alpha = -1 network: unrelated.
    scaled = {k: 3.0 * v @ _rotation(v.shape[1], 8) for k, v in reference.items()}
    unrelated = {"a": _gaussian(5), "b": _gaussian(6, 3)}
    trials = [
        _store(tmp_path, {"alpha": -1.0, "seed": 0}, rotated),
        _store(tmp_path, {"alpha": -1.0, "seed": 1}, unrelated),
        _store(tmp_path, {"alpha": 0.0, "seed": 0}, reference),
        _store(tmp_path, {"alpha": 0.0, "seed": 1}, scaled),
    ]
    table = similarity_table(trials)
    assert table.attrs["notes"] == []
    assert list(table.columns) == [*schema.COLUMNS, "trial"]
    assert (table["split"] == "test").all() and (table["samples"] == N).all()

    def values(trial: int, metric: str) -> dict:
        rows = table[(table["trial"] == trial) & (table["metric"] == metric)]
        return dict(zip(rows["layer"], rows["value"], strict=True))

    for metric in ("pwcca", "linear_cka"):
        assert values(0, metric) == pytest.approx({"a": 1.0, "b": 1.0}, abs=1e-9)
        for trial in (2, 3):
            assert values(trial, metric) == {}
            assert values(trial, f"{metric}_seed_baseline") == pytest.approx(
                {"a": 1.0, "b": 1.0}, abs=1e-9
            )
    # The unrelated network is compared with seed 1's reference, as each measure computes it.
    for metric, measure in (("pwcca", pwcca), ("linear_cka", linear_cka)):
        expected = {k: measure(scaled[k].double(), unrelated[k].double()) for k in scaled}
        assert values(1, metric) == pytest.approx(expected, abs=1e-6)
        assert max(values(1, metric).values()) < 0.5
    # Rows come trial by trial, layers in network order, never for the alpha = 0 trials.
    assert list(table["trial"]) == sorted(table["trial"])
    assert list(table[table["trial"] == 0]["layer"]) == ["a", "a", "b", "b"]


def test_baseline_is_the_mean_over_the_other_seeds(tmp_path):
    nets = {seed: {"a": _gaussian(seed)} for seed in range(3)}
    trials = [_store(tmp_path, {"alpha": 0.0, "seed": s}, nets[s]) for s in nets]
    table = similarity_table(trials)
    for position, seed in enumerate(nets):
        row = table[(table["trial"] == position) & (table["metric"] == "pwcca_seed_baseline")]
        others = [pwcca(nets[seed]["a"].double(), nets[o]["a"].double()) for o in nets if o != seed]
        assert float(row["value"].iloc[0]) == pytest.approx(np.mean(others), abs=1e-6)


def test_pairs_keep_every_other_swept_key(tmp_path):
    """A trial is compared with the alpha = 0 trial of the same seed AND noise level."""
    base = {"a": _gaussian(0)}
    noisy = {"a": _gaussian(1)}
    trials = []
    for noise, responses in ((0.0, base), (0.1, noisy)):
        for alpha in (0.0, -1.0):
            values = {"noise_std": noise, "alpha": alpha, "seed": 0}
            folder = tmp_path / f"noise_std={noise}" / f"alpha={alpha}" / "seed=0"
            write_representations(
                folder / "evaluation" / REPRESENTATIONS, responses, LABELS, INDICES, "x"
            )
            trials.append((values, folder))
    table = similarity_table(trials)
    # Each alpha = -1 trial holds the same responses as its own reference: similarity 1.
    pairs = table[table["metric"] == "linear_cka"]
    assert sorted(pairs["trial"]) == [1, 3]
    assert pairs["value"].to_list() == pytest.approx([1.0, 1.0])


def test_a_sweep_without_alpha_zero_gets_no_rows_and_a_note(tmp_path):
    trials = [_store(tmp_path, {"alpha": -1.0, "seed": s}, {"a": _gaussian(s)}) for s in (0, 1)]
    table = similarity_table(trials)
    assert len(table) == 0 and list(table.columns) == [*schema.COLUMNS, "trial"]
    assert any("no alpha = 0 trial" in note for note in table.attrs["notes"])


def test_trials_without_reference_or_responses_are_named_in_notes(tmp_path):
    trials = [
        _store(tmp_path, {"alpha": 0.0, "seed": 0}, {"a": _gaussian(0)}),
        _store(tmp_path, {"alpha": -1.0, "seed": 0}, {"a": _gaussian(1)}, images="other"),
        _store(tmp_path, {"alpha": -1.0, "seed": 2}, {"a": _gaussian(2)}),
        ({"alpha": -1.0, "seed": 3}, tmp_path / "nothing-stored"),
    ]
    broken = tmp_path / "broken"
    (broken / "evaluation").mkdir(parents=True)
    (broken / "evaluation" / REPRESENTATIONS).write_bytes(b"not a zip file")
    trials.append(({"alpha": -1.0, "seed": 4}, broken))
    table = similarity_table(trials)
    assert len(table) == 0
    notes = " | ".join(table.attrs["notes"])
    assert "1 trial(s) have no alpha = 0 trial of the same seed" in notes
    assert "1 trial(s) stored no unit responses" in notes
    assert "1 trial(s) hold an unreadable" in notes
    assert "1 pair(s) of trials stored responses to different test images" in notes
    assert "need alpha = 0 trials of at least two seeds" in notes


QUICK = {
    "max_samples": 40,
    "analysis_samples": "all",
    "fgsm_eps": (0.0,),
    "pgd_steps": (0,),
    "dimensionality_pgd_steps": 0,
    "gradient_max_units": 2,
    "autoattack_version": "off",
    "offaxis_restarts": 2,
    "offaxis_steps": 5,
    "ablation_fractions": (0.0, 0.5, 1.0),
    "ablation_draws": 1,
}


# --- ablation on a hand-built network -----------------------------------------------------------


class ThreeUnits(nn.Module):
    """Units u0 = x0 (fires for class 0 only, SI 1), u1 = x1 (class 1 only, SI 1), u2 = x2 (1
    for every image, SI 0); logits (u0 - 0.1, u1 + 0.5 - 0.5 u2): right on every image, and
    wrong on class 0 once u0 is silent (with u2 silent too, class 1 wins everywhere)."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(3, 3, bias=False)
        self.relu = nn.ReLU()
        self.out = nn.Linear(3, 2)
        with torch.no_grad():
            self.hidden.weight.copy_(torch.eye(3))
            self.out.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, -0.5]]))
            self.out.bias.copy_(torch.tensor([-0.1, 0.5]))

    def forward(self, x):
        return self.out(self.relu(self.hidden(x.flatten(1))))


def _two_classes() -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.tensor([0, 1] * 10)
    images = torch.stack([torch.tensor([1.0 - y, float(y), 1.0]) for y in labels.tolist()])
    return images.view(-1, 1, 1, 3), labels


def test_ablation_table_silences_most_and_least_selective_units_first():
    table = ablation_table(ThreeUnits(), _two_classes(), fractions=(0.0, 1 / 3, 2 / 3, 1.0))
    assert list(table.columns) == list(schema.COLUMNS)
    assert (table["samples"] == 20).all() and (table["split"] == "test").all()

    def curve(metric: str, layer: str | None, draw: int = 0) -> list[float]:
        rows = schema.metric_rows(table, metric, layer=layer, draw=draw)
        return rows.sort_values("fraction")["value"].tolist()

    for layer in ("relu", None):  # one layer: the whole network is that layer
        # Most selective first: u0 (SI 1) goes first and class 0 is lost.
        assert curve("ablation_accuracy_most", layer) == [1.0, 0.5, 0.5, 0.5]
        # Least selective first: u2 (SI 0) costs nothing.
        assert curve("ablation_accuracy_least", layer) == [1.0, 1.0, 0.5, 0.5]
    random = schema.metric_rows(table, "ablation_accuracy_random")
    assert sorted(set(random["draw"])) == [0, 1, 2, 3, 4]
    assert set(random[random["fraction"] == 0.0]["value"]) == {1.0}
    assert set(random[random["fraction"] == 1.0]["value"]) == {0.5}


def test_ablation_table_without_random_draws_and_bad_fractions():
    table = ablation_table(ThreeUnits(), _two_classes(), fractions=(0.5,), draws=0)
    assert set(table["metric"]) == {"ablation_accuracy_most", "ablation_accuracy_least"}
    with pytest.raises(ValueError, match="fractions must be in"):
        ablation_table(ThreeUnits(), _two_classes(), fractions=(1.5,))


class TokenUnits(nn.Module):
    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()
        self.out = nn.Linear(3, 2)

    def forward(self, x):
        return self.out(self.relu(x.flatten(1).view(-1, 2, 3)).mean(dim=1))


def test_ablation_refuses_layers_it_cannot_silence():
    data = (torch.rand(40, 1, 1, 6), torch.tensor([0, 1] * 20))
    with pytest.raises(ValueError, match="no layer whose units ablation can silence"):
        ablation_table(TokenUnits(), data)
    # In an evaluation such a model gets no ablation rows; the other parts still run.
    table = evaluate_model(TokenUnits(), data, eval_config("full", QUICK))
    assert not table["metric"].str.startswith("ablation").any()
    assert len(schema.metric_rows(table, "selectivity_rotated")) == 2


# --- the parts in an evaluation -----------------------------------------------------------------


def _digits_model() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16, 6), nn.ReLU(),
        nn.Linear(6, 3),
    )  # fmt: skip
    images = torch.rand(60, 1, 4, 4)
    return model, (images, torch.arange(60) % 3)


def test_the_parts_rows_and_the_stored_responses(tmp_path):
    model, data = _digits_model()
    table = evaluate_model(model, data, eval_config("full", QUICK), out_dir=tmp_path)
    layers = ["1", "4"]
    rotated = schema.metric_rows(table, "selectivity_rotated")
    axis = schema.metric_rows(table, "selectivity_axis")
    assert list(rotated["layer"].fillna("-")) == [*layers, "-"]
    assert (rotated["value"].to_numpy() >= axis["value"].to_numpy() - 1e-12).all()
    # On all test images the axis value is the clean part's mean SI of the layer.
    clean = schema.metric_rows(table, "selectivity")
    assert axis["value"].to_list() == pytest.approx(
        [*clean[clean["layer"].notna()]["value"], clean[clean["layer"].isna()]["value"].iloc[0]]
    )
    ablated = table[table["metric"].str.startswith("ablation_accuracy")]
    # (2 layers + whole network) x (most, least, 1 draw) x 3 fractions
    assert len(ablated) == 3 * 3 * 3 and (ablated["samples"] == 60).all()
    assert set(ablated["layer"].fillna("-")) == {*layers, "-"}
    stored = read_representations(tmp_path / "evaluation" / REPRESENTATIONS)
    assert {k: v.shape for k, v in stored.responses.items()} == {"1": (60, 4), "4": (60, 6)}
    np.testing.assert_array_equal(stored.indices, np.arange(60))
    assert (tmp_path / "evaluation" / "offaxis.parquet").exists()
    # Resumed: the parts are read back, the responses not rewritten.
    written = (tmp_path / "evaluation" / REPRESENTATIONS).stat().st_mtime_ns
    again = evaluate_model(model, data, eval_config("full", QUICK), out_dir=tmp_path)
    pd.testing.assert_frame_equal(again, table)
    assert (tmp_path / "evaluation" / REPRESENTATIONS).stat().st_mtime_ns == written


def test_each_part_switches_off_and_responses_need_a_folder(tmp_path):
    model, data = _digits_model()
    off = {"offaxis": False, "ablation": False, "representations": False}
    table = evaluate_model(model, data, eval_config("full", QUICK, off), out_dir=tmp_path)
    assert not table["metric"].str.contains("rotated|axis|ablation").any()
    assert not (tmp_path / "evaluation" / REPRESENTATIONS).exists()
    # Without an out_dir nothing is stored, and the other parts still run.
    table = evaluate_model(model, data, eval_config("full", QUICK, {"ablation": False}))
    assert "selectivity_rotated" in set(table["metric"])


def test_representation_samples_picks_a_fixed_subset(tmp_path):
    model, data = _digits_model()
    keys = eval_config("full", QUICK, {"representation_samples": 20})
    evaluate_model(model, data, keys, out_dir=tmp_path)
    stored = read_representations(tmp_path / "evaluation" / REPRESENTATIONS)
    assert len(stored.indices) == 20 and len(set(stored.indices)) == 20
    assert (np.diff(stored.indices) > 0).all()


def test_keys_parse_and_bad_values_are_refused():
    parsed = parse_assignments(
        ["offaxis=false", "ablation_fractions=0,0.5,1", "representation_samples=all"]
    )
    config = build(EvalConfig, parsed)
    assert config.offaxis is False and config.ablation_fractions == (0.0, 0.5, 1.0)
    assert config.representation_samples == "all"
    for bad, message in (
        ({"offaxis_restarts": 0}, "offaxis_restarts"),
        ({"offaxis_steps": -1}, "offaxis_steps"),
        ({"ablation_fractions": (0.5, 1.5)}, "ablation_fractions"),
        ({"ablation_fractions": ()}, "ablation_fractions"),
        ({"ablation_draws": -1}, "ablation_draws"),
        ({"representation_samples": 1}, "representation_samples"),
        ({"representation_samples": "most"}, "representation_samples"),
    ):
        with pytest.raises(ConfigError, match=message):
            build(EvalConfig, bad)


def test_ablation_table_is_a_top_level_name():
    import selectivity

    assert "ablation_table" in selectivity.__all__
    assert selectivity.ablation_table is ablation_table

"""Corruption families are held out whole: the default mix never shares a family with what the
held-out mean averages, the mean covers the right corruptions, and a user's overlapping choice
is named in a note."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from selectivity.catalog import (
    BENCHMARK_CORRUPTIONS,
    CORRUPTION_FAMILIES,
    CORRUPTIONS,
    TRAINING_SUBSET,
    corruption_family,
    heldout_corruptions,
)
from selectivity.config import TrainConfig, build, train_preset
from selectivity.evaluation import eval_config, evaluate_model
from selectivity.evaluation.suite import derived_rows, heldout_note


def test_every_corruption_is_in_exactly_one_family():
    members = [name for family in CORRUPTION_FAMILIES.values() for name in family]
    assert sorted(members) == sorted(CORRUPTIONS)
    assert set(CORRUPTION_FAMILIES) == {"noise", "blur", "weather", "digital"}
    assert corruption_family("brightness") == "weather"  # the benchmark's grouping
    with pytest.raises(KeyError, match="unknown corruption"):
        corruption_family("rain")


def test_the_default_mix_never_shares_a_family_with_the_held_out_set():
    default = build(TrainConfig, train_preset("digits")).mix_subset()
    assert default == TRAINING_SUBSET
    held_out = heldout_corruptions(default)
    trained_families = {corruption_family(name) for name in default}
    assert held_out  # something is left to test
    assert not {corruption_family(name) for name in held_out} & trained_families
    # Weather and digital are held out whole: 8 of the 15.
    assert set(held_out) == {
        "snow", "frost", "fog", "brightness",
        "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    }  # fmt: skip


def test_extras_never_count_as_held_out():
    assert set(heldout_corruptions((), CORRUPTIONS)) == set(BENCHMARK_CORRUPTIONS)
    assert heldout_corruptions(("fog",), ("spatter", "saturate", "contrast")) == ("contrast",)


def _table(values: dict[str, float]) -> pd.DataFrame:
    rows = [{"metric": "test_accuracy", "value": 0.9}] + [
        {"metric": "corruption_accuracy", "corruption": name, "severity": s, "value": v}
        for name, v in values.items()
        for s in (1, 2)
    ]
    table = pd.DataFrame(rows, columns=["metric", "corruption", "severity", "samples", "value"])
    table["samples"] = 50
    for column in ("layer", "eps", "steps", "split", "step_size"):
        table[column] = None
    return table


def test_heldout_mean_is_over_the_benchmark_corruptions_of_untrained_families():
    table = _table(
        {"snow": 0.2, "contrast": 0.4, "gaussian_noise": 0.6, "defocus_blur": 0.8, "saturate": 0.1}
    )
    # A user's mix of spatter (weather): snow goes with it; saturate is an extra.
    derived = derived_rows(table, None, ("spatter",))
    values = {r["metric"]: r["value"] for r in derived}
    assert values["corruption_accuracy_heldout_mean"] == pytest.approx((0.4 + 0.6 + 0.8) / 3)
    assert values["corruption_accuracy_mean"] == pytest.approx((0.2 + 0.4 + 0.6 + 0.8 + 0.1) / 5)
    marks = {r["corruption"]: r["value"] for r in derived if r["metric"] == "corruption_heldout"}
    assert marks == {
        "snow": 0.0, "contrast": 1.0, "gaussian_noise": 1.0, "defocus_blur": 1.0, "saturate": 0.0
    }  # fmt: skip
    # The default holds out weather and digital only.
    default = {r["metric"]: r["value"] for r in derived_rows(table, None, TRAINING_SUBSET)}
    assert default["corruption_accuracy_heldout_mean"] == pytest.approx((0.2 + 0.4) / 2)


def test_every_family_trained_leaves_no_heldout_mean():
    table = _table({"snow": 0.2, "contrast": 0.4})
    derived = derived_rows(table, None, ("spatter", "saturate"))
    assert "corruption_accuracy_heldout_mean" not in {r["metric"] for r in derived}
    assert heldout_note(("spatter", "saturate"), ("snow", "contrast")).endswith("held out: none")


def test_a_users_overlapping_mix_gets_a_note_and_the_default_none():
    evaluated = ("snow", "fog", "contrast", "gaussian_noise")
    note = heldout_note(("spatter", "gaussian_blur"), evaluated)
    assert note is not None
    # Only weather loses evaluated corruptions (no blur one is evaluated).
    assert note.startswith("mix_corruptions shares the weather (spatter) family with evaluated")
    assert "leaves out snow, fog" in note and "held out: contrast, gaussian_noise" in note
    # No evaluated corruption in the mix's families: nothing is left out, no note.
    assert heldout_note(("spatter",), ("contrast", "gaussian_noise")) is None
    # The default's exclusion of noise and blur is documented, not noted on every table.
    assert heldout_note(TRAINING_SUBSET, evaluated) is None


def test_evaluate_model_notes_an_overlapping_mix_and_marks_the_rows():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )
    images, labels = torch.rand(24, 3, 16, 16), torch.arange(24) % 3
    config = eval_config(
        "quick",
        {
            "generate_corruptions": True,
            "corruptions": ("snow", "contrast"),
            "severities": (1,),
            "max_samples": 12,
            "analysis_samples": 12,
            "fgsm_eps": (0.0,),
            "pgd_steps": (0,),
            "dimensionality_pgd_steps": 1,
            "gradient_max_units": 2,
            "autoattack_version": "off",
        },
    )
    table = evaluate_model(model, (images, labels), config, trained_corruptions=("spatter",))
    notes = [note for note in table.attrs["notes"] if note.startswith("mix_corruptions")]
    assert notes == [
        "mix_corruptions shares the weather (spatter) family with evaluated corruptions: "
        "corruption_accuracy_heldout_mean leaves out snow; held out: contrast"
    ]
    marks = table[table["metric"] == "corruption_heldout"].set_index("corruption")["value"]
    assert marks.to_dict() == {"snow": 0.0, "contrast": 1.0}
    contrast = table[
        (table["metric"] == "corruption_accuracy") & (table["corruption"] == "contrast")
    ]
    heldout = table[table["metric"] == "corruption_accuracy_heldout_mean"]["value"]
    assert heldout.item() == pytest.approx(contrast["value"].mean())
    # The default mix shares no family with these two: no note.
    default = evaluate_model(model, (images, labels), config)
    assert not [note for note in default.attrs["notes"] if note.startswith("mix_corruptions")]

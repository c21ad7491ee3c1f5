"""evaluate_model on the shapes other libraries give: a ViT whose blocks are token-shaped and
whose forward returns an output object, fed by a DataLoader that drops its last batch."""

from __future__ import annotations

import warnings

import pytest
from torch.utils.data import DataLoader, TensorDataset

import selectivity
import standins
from selectivity import Units
from selectivity.data.adapt import DroppedImagesWarning
from selectivity.evaluation import eval_config, evaluate_model

pytest.importorskip("pyautoattack")

TINY = eval_config(
    "quick",
    {
        "max_samples": 24,
        "analysis_samples": 24,
        "autoattack_samples": 8,
        "autoattack_iterations": 2,
        "fgsm_eps": (0.0, 2 / 255),
        "pgd_steps": (0, 2),
        "pgd_step_size": "auto",
        "dimensionality_pgd_steps": 2,
        "gradient_max_units": 2,
        "jacobian_projections": 1,
    },
)


def test_a_vit_with_an_output_object_is_evaluated_by_its_features():
    x, y = selectivity.data.load_dataset("digits").test.batch(slice(0, 64))
    loader = DataLoader(TensorDataset(x, y), batch_size=10, drop_last=True)
    model = standins.tiny_vit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedImagesWarning)
        table = evaluate_model(model, loader, TINY, layers=Units(types=("gelu",)))
    parts = {"test_accuracy", "selectivity", "pgd_accuracy", "jacobian_norm", "dimensionality"}
    assert parts <= set(table["metric"])
    assert any(m.startswith("autoattack_accuracy_") for m in table["metric"])
    notes = " ".join(table.attrs["notes"])
    assert "4 of 64 images were left out" in notes
    assert "token" in notes  # which reading of (N, T, D) outputs was used
    dims = table[(table["metric"] == "dimensionality") & table["layer"].notna()]
    assert len(dims) > 0

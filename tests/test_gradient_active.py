"""Gradient variability over active samples: a unit's gradient norms counted only where the
unit fires, beside the across-samples form that counts the zeros of a silent ReLU."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from selectivity.stability import (
    active_gradient_variability,
    gradient_variability,
    input_unit_gradient_norms,
    layer_gradient_variability,
    layer_gradient_variability_measures,
)


def test_a_unit_off_on_half_the_samples_with_equal_gradients_where_on_scores_zero():
    norms = torch.tensor([[2.0], [2.0], [0.0], [0.0]])
    activations = torch.tensor([[0.5], [1.5], [0.0], [0.0]])
    assert active_gradient_variability(norms, activations) == 0.0
    assert gradient_variability(norms)[0] == pytest.approx(1.0)  # std 1 / mean 1


def test_active_variability_is_the_cv_over_firing_samples_and_skips_sparse_units():
    norms = torch.tensor([[1.0, 5.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    activations = torch.tensor([[1.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    # Unit 0 fires on 2 samples (norms 1 and 3: CV 1 / 2); unit 1 on one; unit 2 never.
    assert active_gradient_variability(norms, activations) == pytest.approx(0.5)
    assert math.isnan(active_gradient_variability(norms[:, 1:], activations[:, 1:]))
    # Scale-free.
    assert active_gradient_variability(7 * norms, activations) == pytest.approx(0.5)


def test_bad_shapes_and_values_are_refused():
    with pytest.raises(ValueError, match="both be"):
        active_gradient_variability(torch.ones(3, 2), torch.ones(3, 3))
    with pytest.raises(ValueError, match="non-negative"):
        active_gradient_variability(-torch.ones(2, 2), torch.ones(2, 2))


def test_layer_measures_agree_with_the_two_forms_on_a_network():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.randn(12, 4)
    measures = layer_gradient_variability_measures(model, x)
    assert set(measures) == {"1"}
    assert (measures["1"].samples, measures["1"].units) == pytest.approx(
        layer_gradient_variability(model, x)["1"]
    )
    # A ReLU neuron's input gradient is the same weight row wherever it fires: 0 over active
    # samples, while the zeros where it is off make the across-samples form > 0.
    assert measures["1"].active == pytest.approx(0.0, abs=1e-12)
    norms = input_unit_gradient_norms(model, x)["1"]
    assert ((norms == 0).any(dim=0) & (norms > 0).any(dim=0)).any()
    assert measures["1"].samples > 0

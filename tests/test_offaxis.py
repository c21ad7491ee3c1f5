"""Selectivity in an optimized basis: the bound over rotations of a layer's units."""

from __future__ import annotations

import pytest
import torch

from selectivity.metrics import NegativeActivationError, class_selectivity
from selectivity.offaxis import (
    random_rotation,
    rotated_selectivity_bound,
    rotated_selectivity_rows,
)

N, K = 200, 4
LABELS = torch.arange(N) % K
FAST = {"restarts": 2, "steps": 40}


def axis_selective_layer(offset: float = 2.0) -> torch.Tensor:
    """(N, K) units, unit k fires ~1 above `offset` for class k only: each unit selective."""
    g = torch.Generator().manual_seed(0)
    noise = 0.1 * torch.rand(N, K, generator=g, dtype=torch.float64)
    return torch.nn.functional.one_hot(LABELS, K).double() + noise + offset


def rotation_fixing_ones(seed: int) -> torch.Tensor:
    """A rotation R with R @ 1 = 1: it mixes the units but keeps their common offset."""
    g = torch.Generator().manual_seed(seed)
    skew = torch.randn(K, K, generator=g, dtype=torch.float64)
    skew = skew - skew.T
    ones = torch.ones(K, 1, dtype=torch.float64) / K**0.5
    project = torch.eye(K, dtype=torch.float64) - ones @ ones.T
    return torch.linalg.matrix_exp(project @ skew @ project)


def shifted_mean_si(units: torch.Tensor, rotation: torch.Tensor) -> float:
    rotated = units @ rotation.T
    rotated = rotated - rotated.amin(dim=0).clamp_max(0)
    return float(class_selectivity(rotated, LABELS, K).mean())


def test_selectivity_rotated_off_the_axes_is_found_again():
    units = axis_selective_layer()
    rotation = rotation_fixing_ones(seed=1)
    mixed = units @ rotation.T
    assert mixed.min() >= 0  # a valid layer of units: nothing negative
    unrotated = float(class_selectivity(units, LABELS, K).mean())
    result = rotated_selectivity_bound(mixed, LABELS, K, **FAST)
    assert result.axis < unrotated - 0.03  # the rotation hid part of the selectivity
    assert result.bound >= unrotated - 0.01


def test_no_class_information_gives_no_extra_selectivity():
    g = torch.Generator().manual_seed(5)
    noise = torch.rand(N, 6, generator=g, dtype=torch.float64)
    result = rotated_selectivity_bound(noise, LABELS, K, **FAST)
    assert result.bound < result.axis + 0.05


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_bound_is_never_below_the_axis_mean(seed):
    g = torch.Generator().manual_seed(seed)
    units = torch.rand(N, 5, generator=g, dtype=torch.float64) ** 3
    units[:, 0] += LABELS.double() / K
    result = rotated_selectivity_bound(units, LABELS, K, seed=seed, **FAST)
    axis = float(class_selectivity(units, LABELS, K).mean())
    assert result.axis == pytest.approx(axis, abs=1e-12)
    assert result.bound >= result.axis
    assert result.restarts[0] >= result.axis
    assert len(result.restarts) == FAST["restarts"]


def test_no_steps_and_one_restart_is_the_axis_mean():
    units = axis_selective_layer()
    result = rotated_selectivity_bound(units, LABELS, K, restarts=1, steps=0)
    assert result.bound == result.axis
    assert torch.equal(result.rotation, torch.eye(K, dtype=torch.float64))


def test_the_reported_rotation_is_orthogonal_and_attains_the_bound():
    units = axis_selective_layer() @ rotation_fixing_ones(seed=2).T
    result = rotated_selectivity_bound(units, LABELS, K, **FAST)
    r = result.rotation
    assert torch.allclose(r @ r.T, torch.eye(K, dtype=torch.float64), atol=1e-10)
    assert shifted_mean_si(units, r) == pytest.approx(result.bound, abs=1e-9)


def test_deterministic_under_a_seed():
    units = axis_selective_layer() @ rotation_fixing_ones(seed=3).T
    first = rotated_selectivity_bound(units, LABELS, K, seed=7, **FAST)
    again = rotated_selectivity_bound(units, LABELS, K, seed=7, **FAST)
    assert first.bound == again.bound
    assert first.restarts == again.restarts
    assert torch.equal(first.rotation, again.rotation)


def test_feature_maps_are_read_as_spatial_means():
    maps = axis_selective_layer()[:, :, None, None].expand(N, K, 3, 3).float().contiguous()
    from_maps = rotated_selectivity_bound(maps, LABELS, K, restarts=1, steps=5)
    from_means = rotated_selectivity_bound(maps.mean(dim=(2, 3)), LABELS, K, restarts=1, steps=5)
    assert from_maps.bound == pytest.approx(from_means.bound, abs=1e-12)


def test_random_rotation_is_orthogonal():
    r = random_rotation(6, torch.Generator().manual_seed(0))
    assert torch.allclose(r @ r.T, torch.eye(6, dtype=torch.float64), atol=1e-12)


def test_bad_input_is_refused():
    units = axis_selective_layer()
    with pytest.raises(NegativeActivationError):
        rotated_selectivity_bound(units - 3.0, LABELS, K, **FAST)
    with pytest.raises(ValueError, match="restarts"):
        rotated_selectivity_bound(units, LABELS, K, restarts=0)
    with pytest.raises(ValueError, match="steps"):
        rotated_selectivity_bound(units, LABELS, K, steps=-1)
    with pytest.raises(ValueError, match="two classes"):
        rotated_selectivity_bound(units, torch.zeros(N, dtype=torch.long), K, **FAST)


def test_rows_per_layer_and_their_mean():
    units = axis_selective_layer()
    mixed = units @ rotation_fixing_ones(seed=1).T
    rows = rotated_selectivity_rows({"a": units, "b": mixed}, LABELS, K, restarts=1, steps=0)
    by = {(r["metric"], r["layer"]): r["value"] for r in rows}
    axis_a = float(class_selectivity(units, LABELS, K).mean())
    axis_b = float(class_selectivity(mixed, LABELS, K).mean())
    assert by["selectivity_axis", "a"] == pytest.approx(axis_a)
    assert by["selectivity_rotated", "b"] == pytest.approx(axis_b)  # no steps: the identity
    assert by["selectivity_axis", None] == pytest.approx((axis_a + axis_b) / 2)
    assert {r["samples"] for r in rows} == {N}

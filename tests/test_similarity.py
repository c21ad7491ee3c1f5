"""PWCCA and linear CKA: agreement with google/svcca, invariances, random baselines, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from selectivity.similarity import (
    canonical_correlations,
    linear_cka,
    pwcca,
    representation,
    similarity_rows,
)


def hashed(n: int, p: int, a: float, b: float) -> torch.Tensor:
    """Pseudo-random uniform (n, p) values from a formula, the same on every platform."""
    i = np.arange(float(n))[:, None]
    j = np.arange(float(p))[None]
    v = np.sin(i * a + j * b + 1.0) * 43758.5453
    return torch.tensor(v - np.floor(v))


def smooth_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """X (40, 3) and Y (40, 5): Y a linear mix of X plus structured noise."""
    i = np.arange(40.0)[:, None]
    x = np.sin(0.9 * i * (np.arange(3)[None] + 1) + np.arange(3)[None])
    mix = np.array([[1.0, 0.5, 0, 0.2, 0], [0, 1, -0.5, 0, 0.3], [0.2, 0, 1, 0, 0]])
    y = x @ mix + 0.5 * np.cos(1.3 * i * (np.arange(5)[None] + 2))
    return torch.tensor(x), torch.tensor(y)


def random_orthogonal(p: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(p, p, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


# The expected values below were computed by google/svcca (commit 1f3fbf1, cca_core.py and
# pwcca.py, run unchanged outside this repository) on the column-centred matrices:
# pwcca.compute_pwcca(Xc.T, Yc.T)[0] and cca_core.get_cca_similarity(...)["cca_coef1"].
# Over 50 further random ReLU pairs (N 60-400, 2-30 units) the largest difference was 4.4e-13
# for PWCCA and 1.1e-12 for the canonical correlations.
def test_pwcca_matches_google_svcca_on_a_smooth_pair():
    x, y = smooth_pair()
    assert pwcca(x, y) == pytest.approx(0.8923309004471432, abs=1e-9)
    rho = canonical_correlations(x, y)
    expected = [0.9374101550158871, 0.9047695817469392, 0.837591154315844]
    assert rho.tolist() == pytest.approx(expected, abs=1e-9)


def test_pwcca_matches_google_svcca_on_independent_matrices():
    x = hashed(200, 10, 12.9898, 78.233)
    y = hashed(200, 14, 39.3468, 11.135)
    assert pwcca(x, y) == pytest.approx(0.22642771123482827, abs=1e-8)
    assert float(canonical_correlations(x, y).mean()) == pytest.approx(
        0.22667015439431176, abs=1e-8
    )
    assert float(canonical_correlations(x, y).max()) == pytest.approx(0.40550201959285176, abs=1e-8)


def test_pwcca_matches_google_svcca_on_a_rank_deficient_relu_side():
    x = hashed(200, 10, 12.9898, 78.233)
    z = torch.relu(x @ torch.linspace(-1, 1, 60, dtype=torch.float64).reshape(10, 6) + 0.3)
    assert pwcca(z, x) == pytest.approx(0.8671115219904004, abs=1e-9)


def test_orthogonal_rotation_leaves_both_at_one():
    x = hashed(300, 8, 12.9898, 78.233)
    rotated = x @ random_orthogonal(8, seed=3)
    assert linear_cka(x, rotated) == pytest.approx(1.0, abs=1e-12)
    assert pwcca(x, rotated) == pytest.approx(1.0, abs=1e-10)


def test_invertible_map_leaves_pwcca_at_one_but_not_cka():
    x = hashed(300, 6, 12.9898, 78.233)
    stretch = torch.diag(torch.tensor([10.0, 1.0, 0.1, 3.0, 0.5, 1.0], dtype=torch.float64))
    mapped = x @ random_orthogonal(6, seed=1) @ stretch @ random_orthogonal(6, seed=2) + 7.0
    assert pwcca(x, mapped) == pytest.approx(1.0, abs=1e-10)
    assert pwcca(mapped, x) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x, mapped) < 0.9


def test_cka_ignores_isotropic_scaling_and_shifts():
    x = hashed(150, 5, 12.9898, 78.233)
    y = hashed(150, 7, 39.3468, 11.135)
    base = linear_cka(x, y)
    assert linear_cka(x * 1e4 + 3.0, y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x, y * 1e-3) == pytest.approx(base, rel=1e-10)
    assert linear_cka(y, x) == pytest.approx(base, rel=1e-12)


def test_cka_of_independent_gaussians_is_near_its_expected_value():
    # E[CKA] of independent isotropic X (N, p1), Y (N, p2) is about
    # sqrt(p1 p2 / ((N + p1)(N + p2))): ||Y^T X||^2 ~ N p1 p2, ||X^T X||_F^2 ~ N^2 p1 + N p1^2.
    g = torch.Generator().manual_seed(0)
    for n, p1, p2 in [(200, 10, 10), (100, 30, 30)]:
        values = [
            linear_cka(
                torch.randn(n, p1, generator=g, dtype=torch.float64),
                torch.randn(n, p2, generator=g, dtype=torch.float64),
            )
            for _ in range(40)
        ]
        expected = math.sqrt(p1 * p2 / ((n + p1) * (n + p2)))
        assert np.mean(values) == pytest.approx(expected, rel=0.1)


def test_pwcca_is_symmetric_when_widths_differ():
    x = hashed(120, 4, 12.9898, 78.233)
    y = hashed(120, 9, 39.3468, 11.135)
    assert pwcca(x, y) == pytest.approx(pwcca(y, x), abs=1e-12)


def test_silent_units_are_left_out():
    x, y = smooth_pair()
    dead = torch.cat([x, torch.zeros(40, 2, dtype=torch.float64)], dim=1)
    assert pwcca(dead, y) == pytest.approx(pwcca(x, y), abs=1e-12)
    assert linear_cka(dead, y) == pytest.approx(linear_cka(x, y), abs=1e-12)


def test_a_side_without_variance_gives_nan():
    x, _ = smooth_pair()
    flat = torch.ones(40, 3, dtype=torch.float64)
    assert math.isnan(pwcca(x, flat))
    assert math.isnan(linear_cka(flat, x))


def test_representation_takes_the_spatial_mean_of_each_channel():
    maps = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    rows = representation(maps)
    assert rows.dtype == torch.float64
    assert rows.shape == (2, 3)
    assert torch.allclose(rows, maps.double().mean(dim=(2, 3)))
    assert torch.equal(representation(torch.ones(5, 2)), torch.ones(5, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="batch and a unit"):
        representation(torch.ones(5))


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (torch.ones(10, 2), torch.ones(9, 2), "same inputs"),
        (torch.ones(10), torch.ones(10, 2), r"\(N, p\) matrices"),
        (torch.ones(1, 2), torch.ones(1, 2), "at least two inputs"),
        (torch.full((10, 2), math.nan), torch.ones(10, 2), "NaN"),
    ],
)
def test_bad_shapes_and_values_are_refused(x, y, message):
    for measure in (pwcca, linear_cka):
        with pytest.raises(ValueError, match=message):
            measure(x, y)


def test_cca_refuses_fewer_inputs_than_dimensions():
    x = hashed(8, 8, 12.9898, 78.233)
    with pytest.raises(ValueError, match="more inputs than dimensions"):
        pwcca(x, x)
    with pytest.raises(ValueError, match="more inputs than dimensions"):
        canonical_correlations(x, x)


def test_similarity_rows_per_layer_shared_by_both():
    x, y = smooth_pair()
    wide = hashed(40, 50, 12.9898, 78.233)
    rows = similarity_rows({"a": x, "b": wide, "only_here": x}, {"a": y, "b": wide})
    by = {(r["metric"], r["layer"]): r for r in rows}
    assert set(by) == {("pwcca", "a"), ("linear_cka", "a"), ("pwcca", "b"), ("linear_cka", "b")}
    assert by["pwcca", "a"]["value"] == pytest.approx(pwcca(x, y))
    assert by["linear_cka", "a"]["samples"] == 40
    assert math.isnan(by["pwcca", "b"]["value"])  # 40 inputs for 50 units: CCA undefined
    assert by["linear_cka", "b"]["value"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same inputs"):
        similarity_rows({"a": x}, {"a": y[:30]})

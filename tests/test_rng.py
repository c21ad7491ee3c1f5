"""rng.draw: one seed, the same numbers, drawn on the generator's device."""

from __future__ import annotations

import torch

from selectivity.rng import draw


def test_uniform_and_normal_follow_the_generator():
    for distribution, sample in (("uniform", torch.rand), ("normal", torch.randn)):
        got = draw(distribution, (3, 4), torch.Generator().manual_seed(7), "cpu", torch.float64)
        want = sample((3, 4), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
        assert got.dtype == torch.float64 and got.shape == (3, 4)
        assert torch.equal(got, want)


def test_uniform_lies_in_unit_interval_and_differs_between_seeds():
    a = draw("uniform", (1000,), torch.Generator().manual_seed(0), "cpu")
    b = draw("uniform", (1000,), torch.Generator().manual_seed(1), "cpu")
    assert float(a.min()) >= 0 and float(a.max()) < 1
    assert not torch.equal(a, b)


def test_without_a_generator_the_global_rng_is_used():
    torch.manual_seed(3)
    a = draw("normal", (5,), None, "cpu")
    torch.manual_seed(3)
    assert torch.equal(a, torch.randn(5))

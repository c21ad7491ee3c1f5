import math

import pytest
import torch
from torch import nn

from selectivity import create_model
from selectivity.data import ImageSet
from selectivity.measure import dataset_jacobian_norm
from selectivity.metrics import unit_activations
from selectivity.probe import ActivationProbe
from selectivity.stability import (
    gradient_variability,
    input_unit_gradient_norms,
    jacobian_frobenius_norm,
    layer_gradient_variability,
)


def _linear_model(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 5)).to(dtype)


def _digits_net(seed=0):
    torch.manual_seed(seed)
    model = create_model("digitsnet", 10, 1)
    # Non-trivial running statistics, so that eval and train mode really differ.
    model.train()
    with torch.no_grad():
        model(torch.rand(64, 1, 16, 16))
    return model


def test_exact_jacobian_norm_of_a_linear_map_is_the_weight_norm():
    model = _linear_model()
    x = torch.rand(7, 3, 2, 2, dtype=torch.float64)
    norms = jacobian_frobenius_norm(model, x, projections=None)
    assert norms.shape == (7,) and not norms.requires_grad
    assert torch.allclose(norms, model[1].weight.norm().detach().expand(7), rtol=1e-12)


def test_projection_estimator_converges_to_the_exact_norm():
    model = _linear_model()
    x = torch.rand(4, 3, 2, 2, dtype=torch.float64)
    exact = model[1].weight.norm().item()
    estimate = jacobian_frobenius_norm(
        model,
        x,
        projections=4000,
        generator=torch.Generator().manual_seed(0),
        units_per_backward=500,
    )
    assert torch.allclose(estimate, torch.full_like(estimate, exact), rtol=0.03)
    # One projection is noisy but unbiased in the square: its mean over many samples converges too.
    x = torch.rand(4000, 3, 2, 2, dtype=torch.float64)
    single = jacobian_frobenius_norm(
        model, x, projections=1, generator=torch.Generator().manual_seed(1)
    )
    assert single.std() > 0.05 * exact
    assert abs(single.pow(2).mean().item() / exact**2 - 1) < 0.05


def test_exact_jacobian_matches_autograd_per_sample_and_ignores_batch_mates():
    model = _digits_net()
    x = torch.rand(6, 1, 16, 16)
    norms = jacobian_frobenius_norm(model, x, projections=None)
    model.eval()
    for n in (0, 5):
        jac = torch.autograd.functional.jacobian(model, x[n : n + 1])  # (1, C, 1, 1, H, W)
        assert torch.allclose(norms[n], jac.norm(), rtol=1e-4)
    # Eval mode: a sample's value does not depend on the rest of the batch.
    assert torch.allclose(
        jacobian_frobenius_norm(model, x[:2], projections=None), norms[:2], rtol=1e-5
    )
    # The vmapped path (several vectors per backward) gives the loop's answer.
    assert torch.allclose(
        jacobian_frobenius_norm(model, x, projections=None, units_per_backward=4), norms, rtol=1e-5
    )


def test_jacobian_restores_modes_and_validates():
    model = _digits_net()
    model.train()
    jacobian_frobenius_norm(model, torch.rand(3, 1, 16, 16), projections=2)
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            jacobian_frobenius_norm(model, torch.rand(3, 1, 16, 16), projections=bad)


def test_projection_estimate_is_seeded():
    model = _digits_net()
    x = torch.rand(5, 1, 16, 16)
    a = jacobian_frobenius_norm(model, x, projections=3, generator=torch.Generator().manual_seed(2))
    b = jacobian_frobenius_norm(model, x, projections=3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


def test_dataset_jacobian_norm_is_the_mean_over_samples():
    model = _linear_model(dtype=torch.float32)
    images = ImageSet(torch.rand(10, 3, 2, 2), torch.zeros(10, dtype=torch.int64))
    value = dataset_jacobian_norm(model, images, batch_size=4, projections=None)
    assert math.isclose(value, model[1].weight.norm().item(), rel_tol=1e-5)


class AlwaysOn(nn.Module):
    """Linear -> ReLU -> Linear with a bias large enough that the ReLU is always active.

    Hidden unit u has input gradient W[u], so g[n, u] = ||W[u]|| for every sample.
    """

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 2)
        self.relu = nn.ReLU()
        self.out = nn.Linear(2, 3)
        with torch.no_grad():
            # Row norms 1 and 3 (the second spread over two inputs: 1.8^2 + 2.4^2 = 9).
            self.hidden.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.8, 2.4, 0.0]]))
            self.hidden.bias.fill_(10.0)

    def forward(self, x):
        return self.out(self.relu(self.hidden(x)))


def test_known_gradient_norms_give_known_variability():
    model = AlwaysOn()
    norms = input_unit_gradient_norms(model, torch.rand(9, 4))
    assert list(norms) == ["relu"]
    assert torch.allclose(norms["relu"], torch.tensor([1.0, 3.0]).expand(9, 2), atol=1e-6)
    across_samples, across_units = gradient_variability(norms["relu"])
    assert across_samples == pytest.approx(0.0, abs=1e-6)
    # Values 1 and 3: population std 1 over mean 2.
    assert across_units == pytest.approx(0.5, abs=1e-6)


def test_gradient_variability_pure_cases():
    # Unit 0: values 1 and 3 over two samples (CV 0.5); unit 1 constant (CV 0); unit 2 dead.
    norms = torch.tensor([[1.0, 2.0, 0.0], [3.0, 2.0, 0.0]])
    across_samples, across_units = gradient_variability(norms)
    assert across_samples == pytest.approx(0.25)
    # Sample rows over live units: [1, 2] -> 0.5 / 1.5; [3, 2] -> 0.5 / 2.5.
    assert across_units == pytest.approx((1 / 3 + 1 / 5) / 2)
    # Scaling everything does not change either value.
    assert gradient_variability(norms * 7) == pytest.approx((across_samples, across_units))
    # A sample with no gradient on any live unit is left out of the across-units mean only.
    with_silent = torch.cat([norms, torch.zeros(1, 3)])
    assert gradient_variability(with_silent)[1] == pytest.approx(across_units)
    assert gradient_variability(with_silent)[0] > across_samples
    assert all(math.isnan(v) for v in gradient_variability(torch.zeros(4, 3)))
    with pytest.raises(ValueError):
        gradient_variability(torch.ones(3))
    with pytest.raises(ValueError):
        gradient_variability(-torch.ones(2, 2))


def _brute_force_unit_norms(model, x, layer):
    """Per sample and unit, one autograd call each: the definition, literally."""
    model.eval()
    rows = []
    for n in range(x.shape[0]):
        xn = x[n : n + 1].clone().requires_grad_(True)
        with ActivationProbe(model, [layer], reduce=unit_activations) as probe:
            model(xn)
        acts = probe.activations[layer][0]
        rows.append(
            torch.stack(
                [
                    torch.autograd.grad(acts[u], xn, retain_graph=True)[0].norm()
                    for u in range(acts.shape[0])
                ]
            )
        )
    return torch.stack(rows)


def test_unit_norms_match_the_definition_on_a_conv_net():
    model = _digits_net()
    model.train()
    x = torch.rand(5, 1, 16, 16)
    norms = input_unit_gradient_norms(model, x)
    assert list(norms) == ["relu1", "relu2", "relu3"]
    assert [tuple(v.shape) for v in norms.values()] == [(5, 16), (5, 32), (5, 64)]
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    for layer in ("relu1", "relu3"):
        assert torch.allclose(
            norms[layer], _brute_force_unit_norms(model, x, layer), rtol=1e-4, atol=1e-7
        )
    batched = input_unit_gradient_norms(model, x, units_per_backward=8)
    assert all(torch.allclose(batched[k], norms[k], rtol=1e-5, atol=1e-8) for k in norms)


def test_unit_subset_is_seeded_and_consistent_with_all_units():
    model = _digits_net()
    x = torch.rand(4, 1, 16, 16)
    full = input_unit_gradient_norms(model, x)
    sub = input_unit_gradient_norms(
        model, x, max_units_per_layer=5, generator=torch.Generator().manual_seed(3)
    )
    again = input_unit_gradient_norms(
        model, x, max_units_per_layer=5, generator=torch.Generator().manual_seed(3)
    )
    # In batches of 3 samples the same units are used for every batch.
    batched = input_unit_gradient_norms(
        model, x, max_units_per_layer=5, generator=torch.Generator().manual_seed(3), batch_size=3
    )
    generator = torch.Generator().manual_seed(3)
    for name, value in sub.items():
        assert value.shape == (4, 5) and torch.equal(value, again[name])
        assert torch.allclose(batched[name], value, rtol=1e-5, atol=1e-8)
        units = torch.randperm(full[name].shape[1], generator=generator)[:5].sort().values
        assert torch.allclose(value, full[name][:, units])
    with pytest.raises(ValueError):
        input_unit_gradient_norms(model, x, max_units_per_layer=0)


def test_relu_network_gradients_vary_across_samples():
    model = _digits_net()
    x = torch.rand(32, 1, 16, 16)
    per_layer = layer_gradient_variability(model, x)
    assert list(per_layer) == ["relu1", "relu2", "relu3"]
    for name, (across_samples, across_units) in per_layer.items():
        assert across_samples > 0.01 and across_units > 0.01, (name, across_samples, across_units)

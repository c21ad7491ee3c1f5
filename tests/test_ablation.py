"""Unit ablation: silencing units at their sites, in order of selectivity."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selectivity.ablation import ablation_curves, ablation_order, silenced
from selectivity.probe import UnknownLayerError

N = 64


class TwoLayers(nn.Module):
    """x (N, 2) -> 3 units -> 3 units (a copy) -> 2 logits. Unit 0 of each layer carries the
    class (x[:, 0] is 1 for class 1, 0 for class 0); units 1 and 2 are constant and unused."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 3)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(3, 3)
        self.act2 = nn.ReLU()
        self.out = nn.Linear(3, 2)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
            self.fc1.bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
            self.fc2.weight.copy_(torch.eye(3))
            self.fc2.bias.zero_()
            # logit 1 - logit 0 = 2 * unit0 - 1: class 1 iff unit 0 fires; silenced: class 0.
            self.out.weight.copy_(torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
            self.out.bias.copy_(torch.tensor([0.5, -0.5]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act2(self.fc2(self.act1(self.fc1(x)))))


def data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    y = torch.arange(N) % 2
    x = torch.stack([y.float(), torch.zeros(N)], dim=1)
    return [(x[:32], y[:32]), (x[32:], y[32:])]


SI = {"act1": torch.tensor([1.0, 0.0, 0.0]), "act2": torch.tensor([1.0, 0.0, 0.0])}


def value(rows, **where):
    hits = [r["value"] for r in rows if all(r[k] == v for k, v in where.items())]
    assert len(hits) == 1, (where, hits)
    return hits[0]


def test_silencing_the_selective_unit_drops_to_chance_and_an_unused_one_does_not():
    rows = ablation_curves(TwoLayers(), data(), SI, fractions=(0.0, 1 / 3, 1.0), draws=0)
    for layer in ("act1", "act2", None):
        assert value(rows, layer=layer, order="most", fraction=0.0) == 1.0
        assert value(rows, layer=layer, order="most", fraction=1 / 3) == 0.5
        assert value(rows, layer=layer, order="least", fraction=1 / 3) == 1.0
        assert value(rows, layer=layer, order="least", fraction=1.0) == 0.5
    whole = [r for r in rows if r["layer"] is None and r["fraction"] == 1 / 3]
    assert {r["units"] for r in whole} == {2}  # one unit in each of the two layers


def test_rows_are_tidy_and_random_orders_form_a_band_of_draws():
    rows = ablation_curves(TwoLayers(), data(), SI, fractions=(0.0, 0.5), draws=4, seed=3)
    assert {r["metric"] for r in rows} == {"ablation_accuracy"}
    assert {r["samples"] for r in rows} == {N}
    random_rows = [r for r in rows if r["order"] == "random"]
    assert sorted({r["draw"] for r in random_rows}) == [0, 1, 2, 3]
    # 3 scopes x (most + least + 4 draws) x 2 fractions
    assert len(rows) == 3 * 6 * 2
    # half of 3 units rounds to 2: a random pair contains unit 0 in 2 of 3 pairs
    assert {value(rows, layer="act1", order="random", fraction=0.5, draw=d) for d in range(4)} <= {
        0.5,
        1.0,
    }
    again = ablation_curves(TwoLayers(), data(), SI, fractions=(0.0, 0.5), draws=4, seed=3)
    assert again == rows


def test_hooks_are_removed_and_train_mode_restored_even_on_error():
    model = TwoLayers().train()
    ablation_curves(model, data(), SI, fractions=(0.5,), draws=1)
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    with (
        pytest.raises(ValueError, match="site has 3 units"),
        silenced(model, {"act1": torch.tensor([5])}),
    ):
        model(data()[0][0])
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


class Twice(nn.Module):
    """One ReLU module called twice: two unit sites, 'relu' and 'relu#2'."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.relu(x) + 1.0)


def test_a_module_called_twice_is_silenced_per_call():
    x = torch.ones(2, 3, 4, 4)
    model = Twice()
    with silenced(model, {"relu#2": torch.tensor([1])}):
        out = model(x)
    assert torch.equal(out[:, 1], torch.zeros(2, 4, 4))
    assert torch.equal(out[:, 0], torch.full((2, 4, 4), 2.0))
    with silenced(model, {"relu": torch.tensor([0])}):
        out = model(x)
    assert torch.equal(out[:, 0], torch.ones(2, 4, 4))  # relu(0 + 1)
    with (
        pytest.raises(ValueError, match="never ran"),
        silenced(model, {"relu#3": torch.tensor([0])}),
    ):
        model(x)


def test_orders():
    si = torch.tensor([0.2, 0.9, 0.2, 0.5])
    g = torch.Generator().manual_seed(0)
    assert ablation_order(si, "most", g).tolist() == [1, 3, 0, 2]
    assert ablation_order(si, "least", g).tolist() == [0, 2, 3, 1]
    assert sorted(ablation_order(si, "random", g).tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="unknown ablation order"):
        ablation_order(si, "largest", g)
    with pytest.raises(ValueError, match="NaN"):
        ablation_order(torch.tensor([0.1, float("nan")]), "most", g)


def test_bad_arguments_are_refused():
    model = TwoLayers()
    with pytest.raises(UnknownLayerError):
        ablation_curves(model, data(), {"nope": torch.zeros(3)})
    with pytest.raises(ValueError, match="fractions"):
        ablation_curves(model, data(), SI, fractions=(1.5,))
    with pytest.raises(ValueError, match="draws"):
        ablation_curves(model, data(), SI, draws=-1)
    with pytest.raises(ValueError, match="at least one layer"):
        ablation_curves(model, data(), {})
    with pytest.raises(ValueError, match="empty"):
        ablation_curves(model, [], SI)
    with pytest.raises(ValueError, match="name#k"):
        ablation_curves(model, data(), {"act1#1": torch.zeros(3)})

import math

import pytest
import torch

from messages import raises
from selectivity import (
    NegativeActivationError,
    SelectivityAccumulator,
    class_selectivity,
    network_selectivity,
    pca_dimensionality,
)
from selectivity.metrics import selectivity_from_class_sums


def test_unit_firing_for_one_class_scores_one():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    acts = torch.tensor([[3.0], [5.0], [0.0], [0.0], [0.0], [0.0]])
    assert class_selectivity(acts, labels, 3).item() == pytest.approx(1.0, abs=1e-12)


def test_flat_unit_scores_zero():
    labels = torch.tensor([0, 1, 2, 3])
    acts = torch.full((4, 2), 2.5)
    assert torch.equal(class_selectivity(acts, labels, 4), torch.zeros(2))


def test_worked_example_class_means_4_1_1_1():
    labels = torch.arange(4)
    acts = torch.tensor([[4.0], [1.0], [1.0], [1.0]])
    assert class_selectivity(acts, labels, 4).item() == pytest.approx(0.6, abs=1e-7)


def test_silent_unit_scores_zero_with_finite_gradient():
    labels = torch.tensor([0, 1, 2, 0])
    acts = torch.zeros(4, 3, requires_grad=True)
    si = class_selectivity(acts, labels, 3)
    assert torch.equal(si, torch.zeros(3))
    si.sum().backward()
    assert torch.isfinite(acts.grad).all()


def test_unbalanced_classes_use_means_not_sums():
    # Class 0 has three samples of 1, class 1 one sample of 1: equal means, so SI is 0.
    # Summing per class would give (3 - 1) / (3 + 1) = 0.5.
    labels = torch.tensor([0, 0, 0, 1])
    acts = torch.ones(4, 1)
    assert class_selectivity(acts, labels, 2).item() == pytest.approx(0.0, abs=1e-12)


def test_absent_classes_are_left_out_of_the_rest_mean():
    # 10 classes declared, only 0 and 1 present with means 3 and 1: SI = (3 - 1) / (3 + 1).
    labels = torch.tensor([0, 1])
    acts = torch.tensor([[3.0], [1.0]])
    assert class_selectivity(acts, labels, 10).item() == pytest.approx(0.5, abs=1e-7)


def test_fewer_than_two_classes_raises():
    with raises(ValueError, "two classes"):
        class_selectivity(torch.ones(3, 2), torch.tensor([4, 4, 4]), 10)


def test_feature_maps_are_averaged_over_space():
    labels = torch.tensor([0, 1])
    maps = torch.zeros(2, 1, 2, 2)
    maps[0, 0, 0, 0] = 8.0  # spatial mean 2 for class 0
    maps[1, 0] = 1.0  # spatial mean 1 for class 1
    assert class_selectivity(maps, labels, 2).item() == pytest.approx((2 - 1) / (2 + 1), abs=1e-7)


def test_range_on_random_relu_activations():
    gen = torch.Generator().manual_seed(0)
    acts = torch.relu(torch.randn(200, 50, generator=gen))
    labels = torch.randint(0, 10, (200,), generator=gen)
    si = class_selectivity(acts, labels, 10)
    assert ((si >= 0) & (si <= 1)).all()


def test_epsilon_free_value_is_exact_for_tiny_activations():
    labels = torch.arange(4)
    acts = torch.tensor([[4e-6], [1e-6], [1e-6], [1e-6]], dtype=torch.float64)
    assert class_selectivity(acts, labels, 4).item() == pytest.approx(0.6, abs=1e-9)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_gradient_step_moves_selectivity_in_its_direction(sign):
    gen = torch.Generator().manual_seed(1)
    acts = torch.rand(40, 8, generator=gen, dtype=torch.float64).requires_grad_(True)
    labels = torch.arange(40) % 5
    si = class_selectivity(acts, labels, 5).mean()
    (grad,) = torch.autograd.grad(si, acts)
    assert torch.isfinite(grad).all()
    stepped = (acts + sign * 1e-3 * grad).clamp_min(0)
    after = class_selectivity(stepped, labels, 5).mean()
    assert (after - si).item() * sign > 0


def test_network_selectivity_averages_layers_first():
    per_layer = {"small": torch.tensor([1.0]), "wide": torch.zeros(99)}
    assert network_selectivity(per_layer).item() == pytest.approx(0.5)


def test_accumulator_matches_the_minibatch_formula():
    gen = torch.Generator().manual_seed(2)
    acts = torch.relu(torch.randn(300, 6, 4, 4, generator=gen))
    labels = torch.randint(0, 7, (300,), generator=gen)
    acc = SelectivityAccumulator(7)
    for start in range(0, 300, 64):
        acc.update({"layer": acts[start : start + 64]}, labels[start : start + 64])
    whole = class_selectivity(acts.double(), labels, 7)
    assert torch.allclose(acc.selectivity()["layer"], whole, atol=1e-12)
    means = acts.mean(dim=(2, 3))
    expected_class = torch.stack([means[labels == k].mean(0) for k in range(7)]).argmax(0)
    assert torch.equal(acc.preferred_class()["layer"], expected_class)
    assert not acc.silent()["layer"].any()
    dead = SelectivityAccumulator(7)
    dead.update({"layer": torch.cat([acts[:, :1] * 0, acts[:, 1:]], dim=1)}, labels)
    assert dead.silent()["layer"].tolist() == [True] + [False] * 5


def test_selectivity_from_sums_returns_preferred_class_ids_of_present_classes():
    sums = torch.tensor([[0.0, 0.0], [2.0, 1.0], [0.0, 0.0], [1.0, 5.0]])
    counts = torch.tensor([0.0, 1.0, 0.0, 1.0])
    si, cls = selectivity_from_class_sums(sums, counts)
    assert cls.tolist() == [1, 3]
    assert si.tolist() == pytest.approx([1 / 3, 4 / 6])


def test_pca_dimensionality_of_known_rank():
    gen = torch.Generator().manual_seed(3)
    basis = torch.randn(4, 20, generator=gen)
    data = torch.randn(100, 4, generator=gen) @ basis  # rank 4 in 20 dims
    assert pca_dimensionality(data, variance=1.0) == pytest.approx(4 / 20)
    # More dims than samples: the Gram side is used and the count is the same.
    wide = torch.randn(30, 3, generator=gen) @ torch.randn(3, 500, generator=gen)
    assert pca_dimensionality(wide, variance=1.0) == pytest.approx(3 / 500)


def test_pca_dimensionality_counts_components_for_the_share():
    # Independent axes with variances 8, 1, 1 (after centring): 75% needs one, 85% two.
    data = torch.zeros(4, 3)
    data[:, 0] = torch.tensor([2.0, -2.0, 2.0, -2.0]) * math.sqrt(2)
    data[:, 1] = torch.tensor([1.0, 1.0, -1.0, -1.0])
    data[:, 2] = torch.tensor([1.0, -1.0, -1.0, 1.0])
    assert pca_dimensionality(data, 0.75) == pytest.approx(1 / 3)
    assert pca_dimensionality(data, 0.85) == pytest.approx(2 / 3)
    assert pca_dimensionality(data, 0.95) == pytest.approx(1.0)
    assert pca_dimensionality(torch.ones(5, 3)) == 0.0


def test_signed_activations_are_refused_naming_the_layer():
    labels = torch.tensor([0, 1, 0, 1])
    # Class means 1 and -0.9: the formula would give (1 + 0.9) / (1 - 0.9) = 19.
    signed = torch.tensor([[2.0], [-1.8], [0.0], [0.0]])
    with raises(NegativeActivationError, "'conv1'", "negative"):
        class_selectivity(signed, labels, 2, layer="conv1")
    with raises(NegativeActivationError, "non-negative"):
        class_selectivity(signed.view(4, 1, 1, 1).expand(4, 1, 2, 2), labels, 2)
    acc = SelectivityAccumulator(2)
    acc.update({"relu1": signed.abs()}, labels)
    with raises(NegativeActivationError, "'tanh'"):
        acc.update({"relu1": signed.abs(), "tanh": signed}, labels)


def test_measure_reads_a_gelu_site_as_its_positive_part_or_refuses_it_when_told():
    from selectivity.data import ImageSet
    from selectivity.measure import measure_selectivity
    from selectivity.probe import Units

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.GELU(), torch.nn.Linear(8, 3)
    )
    images = ImageSet(torch.rand(30, 3, 2, 2), torch.arange(30) % 3)
    result = measure_selectivity(model, images, 3, layers=["2"])
    x, y = images.batch(slice(0, 30))
    with torch.no_grad():
        positive = model[2](model[1](model[0](x))).clamp_min(0)
    torch.testing.assert_close(result.per_layer["2"], class_selectivity(positive, y, 3).double())
    # Signed outputs of a site that is not a ReLU-like activation (here: positive_part=False
    # turns the rule off) are refused, naming the layer.
    with raises(NegativeActivationError, "'2'"):
        measure_selectivity(model, images, 3, layers=Units(("2",), positive_part=False))


def test_every_pass_refuses_an_empty_data_set():
    from selectivity.data import ImageSet
    from selectivity.measure import accuracy, dataset_jacobian_norm, measure_selectivity

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3), torch.nn.ReLU())
    empty = ImageSet(torch.zeros(0, 3, 2, 2), torch.zeros(0, dtype=torch.int64))
    for measure in (
        lambda: accuracy(model, empty),
        lambda: measure_selectivity(model, empty, 3),
        lambda: dataset_jacobian_norm(model, empty),
    ):
        with raises(ValueError, "empty"):
            measure()


def test_the_batch_loop_runs_in_eval_mode_and_restores_flags_when_it_raises():
    from selectivity.data import ImageSet
    from selectivity.measure import in_batches

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(), torch.nn.Linear(12, 3))
    model.train()
    model[1].eval()  # a mixed state, which a plain model.train() afterwards would lose
    images = ImageSet(torch.rand(5, 3, 2, 2), torch.arange(5))
    seen = []
    with raises(RuntimeError, "stop"), in_batches(model, images, 2) as batches:
        for _, y in batches:
            seen.append(y.tolist())
            assert not any(m.training for m in model.modules())
            if len(seen) == 2:
                raise RuntimeError("stop")
    assert seen == [[0, 1], [2, 3]]
    assert [m.training for m in model.modules()] == [True, True, False, True]


def test_layer_activations_transform_gets_each_batch_with_its_labels():
    from selectivity.data import ImageSet
    from selectivity.measure import layer_activations

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)
    )
    images = ImageSet(torch.rand(7, 3, 2, 2), torch.arange(7))
    labels = []

    def zero_odd_labels(x, y):
        labels.append(y.tolist())
        return x * (y % 2 == 0).view(-1, 1, 1, 1)

    plain = layer_activations(model, images, ["2"], 3)
    changed = layer_activations(model, images, ["2"], 3, transform=zero_odd_labels)
    assert labels == [[0, 1, 2], [3, 4, 5], [6]]
    assert plain["2"].shape == (7, 4)
    expected = plain["2"].clone()
    expected[1::2] = model[:3](torch.zeros(1, 3, 2, 2)).detach()  # the images set to 0
    assert torch.allclose(changed["2"], expected)


def test_live_selectivity_and_silent_fraction_by_hand():
    from selectivity.measure import SelectivityResult

    acc = SelectivityAccumulator(2)
    labels = torch.tensor([0, 0, 1, 1])
    # Layer a: unit 0 fires for class 0 only (SI 1), unit 1 never fires. Layer b: one flat unit.
    a = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    b = torch.ones(4, 1)
    acc.update({"a": a, "b": b}, labels)
    result = SelectivityResult(
        acc.selectivity(), acc.preferred_class(), 1.0, acc.silent(), samples=4
    )
    assert result.layer_means() == pytest.approx({"a": 0.5, "b": 0.0})
    assert result.layer_live_means() == pytest.approx({"a": 1.0, "b": 0.0})
    assert result.layer_silent_fractions() == {"a": 0.5, "b": 0.0}
    assert result.network == pytest.approx(0.25)  # the papers' mu_SI: silent units count as 0
    assert result.network_live == pytest.approx(0.5)
    assert result.silent_fraction == pytest.approx(0.25)
    dead = SelectivityAccumulator(2)
    dead.update({"a": torch.zeros(4, 2), "b": b}, labels)
    everything_silent = SelectivityResult(
        dead.selectivity(), dead.preferred_class(), 1.0, dead.silent()
    )
    assert math.isnan(everything_silent.layer_live_means()["a"])
    assert everything_silent.network_live == pytest.approx(0.0)  # layer b only

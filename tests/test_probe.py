import pytest
import torch
from torch import nn

from messages import raises, warns
from selectivity import (
    ActivationProbe,
    EmptyCaptureError,
    SkippedActivationsWarning,
    create_model,
)
from selectivity.metrics import unit_activations


class SharedReLUNet(nn.Module):
    """Calls one ReLU module twice per forward, as torchvision's ResNet blocks do."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 5)
        self.fc2 = nn.Linear(5, 6)
        self.relu = nn.ReLU()
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        return self.out(self.relu(self.fc2(self.relu(self.fc1(x)))))


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_reused_relu_gives_one_entry_per_call_with_stable_names():
    model = SharedReLUNet()
    with ActivationProbe(model) as probe:
        model(torch.randn(2, 4))
        first = probe.activations
        model(torch.randn(7, 4))
        second = probe.activations
    assert list(first) == ["relu", "relu#2"] == list(second)
    assert second["relu"].shape == (7, 5) and second["relu#2"].shape == (7, 6)


def test_hooks_removed_on_exit_and_on_error():
    model = create_model("resnet20", 10)
    before = _hook_count(model)
    with ActivationProbe(model):
        assert _hook_count(model) > before
    assert _hook_count(model) == before
    with raises(RuntimeError, "boom"), ActivationProbe(model):
        raise RuntimeError("boom")
    assert _hook_count(model) == before


def test_default_sites_cover_every_relu_of_resnet20():
    model = create_model("resnet20", 10)
    with ActivationProbe(model, reduce=unit_activations, detach=True) as probe:
        model(torch.rand(3, 3, 32, 32))
    acts = probe.activations
    assert len(acts) == 19  # stem + 9 blocks x 2
    assert all(v.shape[0] == 3 and v.ndim == 2 and not v.requires_grad for v in acts.values())


def test_explicit_layers_and_unknown_names():
    model = create_model("digitsnet", 10, in_channels=1)
    with ActivationProbe(model, layers=["conv1"]) as probe:
        model(torch.rand(2, 1, 16, 16))
    assert list(probe.activations) == ["conv1"]
    with raises(ValueError, "unknown layer", "nope"):
        ActivationProbe(model, layers=["nope"])


def test_empty_capture_raises():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(EmptyCaptureError):
        ActivationProbe(model)
    probe = ActivationProbe(create_model("digitsnet", 10, in_channels=1))
    with pytest.raises(EmptyCaptureError):
        _ = probe.activations


def test_output_layer_is_not_a_site():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.ReLU())
    with ActivationProbe(model) as probe:
        model(torch.randn(5, 3))
    assert list(probe.activations) == ["1"]


def test_kept_graph_lets_gradients_flow():
    model = create_model("digitsnet", 10, in_channels=1)
    with ActivationProbe(model) as probe:
        model(torch.rand(4, 1, 16, 16))
        total = sum(v.sum() for v in probe.activations.values())
    total.backward()
    assert model.conv1.weight.grad is not None


def test_non_relu_activations_are_named_not_silently_skipped():
    gelu_net = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2))
    with raises(EmptyCaptureError, "1 (GELU)"):
        ActivationProbe(gelu_net)
    mixed = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2))
    with warns(SkippedActivationsWarning, "3 (Tanh)"):
        probe = ActivationProbe(mixed)
    assert probe.layers == ["1"] and probe.skipped == ["3 (Tanh)"]
    # Told which types are units, the probe takes them; explicit layers are taken as given.
    relu6 = nn.Sequential(nn.Linear(3, 4), nn.ReLU6(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with ActivationProbe(relu6, unit_types=(nn.ReLU, nn.ReLU6)) as probe:
        relu6(torch.randn(5, 3))
    assert list(probe.activations) == ["1", "3"] and probe.skipped == []
    assert ActivationProbe(mixed, layers=["3"]).skipped == []

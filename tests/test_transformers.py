"""Any model, truly (issue 19): token-shaped units, activations by what they compute, output
objects, and data as Hugging Face and torchvision pipelines give it. Stand-ins of the libraries'
shapes (standins.TinyViT); one optional test with transformers' real ViT, built from a config."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import selectivity
import standins
from selectivity import SelectivityRegularizer, Units, attacks
from selectivity.corruptions import generate_corruption_set
from selectivity.data import DataError, Keyed, as_images, labelled
from selectivity.data.adapt import DroppedImagesWarning
from selectivity.measure import accuracy_under_attack, dataset_jacobian_norm, units_note
from selectivity.metrics import SelectivityAccumulator, class_selectivity, unit_activations
from selectivity.models import LogitsOnly, ModelError, logits_of
from selectivity.probe import (
    EmptyCaptureError,
    FunctionalReluWarning,
    UnitShapeError,
    activation_kind,
    check_unit_types,
    named_units,
    register_activation,
    skipped_activations,
)
from selectivity.regularizer import CompiledModelWarning, batch_network_selectivity

ACTS = ("layer.0.intermediate.intermediate_act_fn", "layer.1.intermediate.intermediate_act_fn")


@pytest.fixture(scope="module")
def digits():
    data = selectivity.data.load_dataset("digits")
    return data.test.batch(slice(0, 64))


def raw_outputs(model: nn.Module, x: torch.Tensor, names: tuple[str, ...]) -> dict:
    """The modules' outputs as they are, by plain hooks (no probe)."""
    seen: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [
        modules[name].register_forward_hook(lambda m, i, o, name=name: seen.setdefault(name, o))
        for name in names
    ]
    with torch.no_grad():
        model.eval()(x)
    for handle in handles:
        handle.remove()
    return seen


# --- units of token-shaped outputs ---------------------------------------------------------------


@pytest.mark.parametrize("tokens", ["mean", "cls"])
def test_token_outputs_give_one_unit_per_feature(digits, tokens):
    x, y = digits
    model = standins.tiny_vit()
    table = selectivity.measure_model(model, digits, layers=Units(types=("gelu",), tokens=tokens))
    assert table.groupby("layer", sort=False).size().to_dict() == dict.fromkeys(ACTS, 32)
    raw = raw_outputs(model, x, ACTS)
    for name in ACTS:
        assert raw[name].shape == (64, 17, 32)  # a class token and 16 patches, 32 features
        positive = raw[name].clamp_min(0)
        value = positive.mean(dim=1) if tokens == "mean" else positive[:, 0]
        expected = class_selectivity(value, y, 10).double()
        measured = torch.tensor(table.loc[table["layer"] == name, "si"].to_numpy())
        torch.testing.assert_close(measured, expected, atol=1e-6, rtol=0)
    (note,) = table.attrs["notes"]
    assert "tokens x features" in note and f"tokens='{tokens}'" in note


def test_the_tensor_functions_read_three_axes_as_tokens_by_the_same_rule():
    acts = torch.rand(6, 5, 4)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    torch.testing.assert_close(unit_activations(acts), acts.mean(dim=1))
    torch.testing.assert_close(unit_activations(acts, tokens="cls"), acts[:, 0])
    expected = class_selectivity(acts.mean(dim=1), labels, 3)
    torch.testing.assert_close(class_selectivity(acts, labels, 3), expected)
    accumulator = SelectivityAccumulator(3)
    accumulator.update({"a": acts}, labels)
    torch.testing.assert_close(accumulator.selectivity()["a"].float(), expected)
    mu, _ = batch_network_selectivity({"a": acts}, labels, 3)
    assert float(mu) == pytest.approx(float(expected.mean()))
    with pytest.raises(ValueError, match=r"shape \(6, 5, 4, 3, 2\)"):
        unit_activations(torch.rand(6, 5, 4, 3, 2))
    with pytest.raises(ValueError, match="'mean' or 'cls'"):
        unit_activations(acts, tokens="first")


def test_the_regularizer_reads_token_units_as_features(digits):
    x, y = digits
    model = standins.tiny_vit()
    with SelectivityRegularizer(model, 10, layers=Units(types=("gelu",))) as reg:
        model.train()(x)
        mu_si = reg.network_selectivity(y)
        assert set(reg.probe.layouts.values()) == {"tokens"}
    mu_si.backward()
    assert model.layer[0].intermediate.dense.weight.grad.abs().sum() > 0
    raw = raw_outputs(model, x, ACTS)
    expected = torch.stack([class_selectivity(raw[n].clamp_min(0), y, 10).mean() for n in ACTS])
    assert float(mu_si.detach()) == pytest.approx(float(expected.mean()), abs=1e-5)


class ConvNeXtMlp(nn.Module):
    """timm's ConvNeXt block MLP: Linear layers on (N, H, W, C) (channels last)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, 2, 1)
        self.fc1 = nn.Linear(4, 6)
        self.act = nn.GELU()
        self.head = nn.Linear(6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc1(self.conv(x).permute(0, 2, 3, 1)))
        return self.head(h.mean(dim=(1, 2)))


class Conv3dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x.unsqueeze(1))).mean(dim=(2, 3, 4)))


def test_one_d_maps_are_channels_and_channels_last_maps_are_features(digits):
    x, y = digits
    model = standins.Conv1dNet()
    table = selectivity.measure_model(model, digits)
    assert table.groupby("layer").size().to_dict() == {"relu": 8}
    raw = raw_outputs(model, x, ("relu",))["relu"]  # (N, C=8, L=16)
    expected = class_selectivity(raw.mean(dim=2), y, 10).double()
    torch.testing.assert_close(torch.tensor(table["si"].to_numpy()), expected)
    assert "(N, C, L)" in table.attrs["notes"][0]
    torch.manual_seed(0)
    mlp = ConvNeXtMlp()
    table = selectivity.measure_model(mlp, digits, layers=Units(types=(nn.GELU,)))
    raw = raw_outputs(mlp, x, ("act",))["act"]  # (N, H, W, C=6)
    expected = class_selectivity(raw.clamp_min(0).mean(dim=(1, 2)), y, 10).double()
    torch.testing.assert_close(torch.tensor(table["si"].to_numpy()), expected)
    assert "(N, H, W, C)" in table.attrs["notes"][0]
    # An ordinary CNN's maps are read as before, with no note.
    assert units_note(standins.torchvision_resnet(), as_images(digits), None) is None


def test_other_shapes_are_refused_in_one_line_naming_the_shape(digits):
    with pytest.raises(UnitShapeError, match=r"'relu' gives outputs of shape \(64, 2, 1, 16, 16\)"):
        selectivity.measure_model(Conv3dNet(), digits)


# --- activations by what they compute ---------------------------------------------------------


def test_activation_kinds_by_class_whatever_library_defines_it():
    def named(name: str, base: type = nn.Module) -> nn.Module:
        return type(name, (base,), {"__module__": "transformers.activations"})()

    for name in ("GELUActivation", "NewGELUActivation", "QuickGELUActivation", "GELU"):
        assert activation_kind(named(name)) == "gelu", name
    assert activation_kind(named("SiLUActivation")) == "silu"
    assert activation_kind(named("Swish")) == "silu"
    assert activation_kind(nn.ReLU6()) == "relu6"  # a Hardtanh subclass, read as itself
    assert activation_kind(nn.Tanh()) == "tanh"
    assert activation_kind(nn.Linear(2, 2)) is None
    # A class of another library named ReLU is not a ReLU unit (F.relu calls are counted).
    assert activation_kind(named("ReLU")) is None
    assert activation_kind(named("MyActivation")) is None
    register_activation("MyActivation", "gelu")
    assert activation_kind(named("MyActivation")) == "gelu"


def test_unit_types_find_third_party_gelus_and_name_them_when_not_chosen():
    model = standins.tiny_vit()
    assert [s.split(" ")[0] for s in skipped_activations(model)] == list(ACTS)
    with pytest.raises(
        EmptyCaptureError,
        match=r"no nn\.ReLU modules in TinyViT; it has GELUActivation \(2\): "
        r"--set unit_types=gelu, or",
    ):
        check_unit_types(model, None)
    check_unit_types(model, named_units(None, ("gelu",)))
    # The config's form of the keys: the positive part of named layers, the token rule.
    assert named_units(("a",), ("relu",)) == ("a",)
    assert named_units(("a",), ("relu",), positive_part=True) == Units(("a",), (nn.ReLU,), True)
    assert named_units(None, ("gelu",), tokens="cls") == Units(None, (nn.GELU,), None, "cls")
    with pytest.raises(ValueError, match="'mean' or 'cls'"):
        Units(tokens="last")


# --- model outputs --------------------------------------------------------------------------------


def test_output_objects_and_dicts_are_read_for_logits(digits):
    x, y = digits
    logits = torch.rand(3, 10)
    assert logits_of(logits) is logits
    assert logits_of(standins.ImageClassifierOutput(logits)) is logits
    assert logits_of({"logits": logits}) is logits
    with pytest.raises(ModelError, match="returned a dict with keys scores: a model must return"):
        logits_of({"scores": logits})
    vit = standins.tiny_vit()
    fgsm = attacks.FGSM(2 / 255)
    assert 0 <= accuracy_under_attack(vit, (x, y), fgsm) <= 1
    assert dataset_jacobian_norm(vit, (x, y), projections=1) > 0
    wrapped = standins.DictOutputNet()
    wrapped.net = standins.torchvision_resnet()
    table = selectivity.measure_model(wrapped, digits)
    plain = selectivity.measure_model(standins.torchvision_resnet(), digits)
    assert table["layer"].str.startswith("net.").all()
    table["layer"] = table["layer"].str.removeprefix("net.")
    pd.testing.assert_frame_equal(table, plain)
    assert table.attrs["accuracy"] == plain.attrs["accuracy"]
    # The wrapper is looked through: layer names are the model's own.
    assert selectivity.measure_model(LogitsOnly(standins.torchvision_resnet()), digits).equals(
        plain
    )


# --- data as pipelines give it --------------------------------------------------------------------


class DictItems(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, image: str, label: str):
        self.x, self.y, self.keys = x, y, (image, label)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> dict:
        return {self.keys[0]: self.x[index], self.keys[1]: self.y[index], "id": index}


class PILItems(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, mode: str):
        from PIL import Image

        pixels = (x * 255).round().to(torch.uint8).numpy()
        self.images = [Image.fromarray(p[0], "L").convert(mode) for p in pixels]
        self.y = y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple:
        return self.images[index], int(self.y[index])


def test_dict_batches_and_items_under_default_or_given_keys(digits):
    x, y = digits
    plain = as_images((x, y))
    loader = DataLoader(DictItems(x, y, "pixel_values", "labels"), batch_size=10)
    for form in (loader, DictItems(x, y, "pixel_values", "labels")):
        read = as_images(form)
        assert torch.equal(read.images, plain.images) and torch.equal(read.labels, plain.labels)
    other = DataLoader(DictItems(x, y, "img", "label"), batch_size=10)
    with pytest.raises(DataError, match=r"keys img, label, id, not 'pixel_values'.*Keyed"):
        as_images(other)
    assert torch.equal(as_images(Keyed(other, image="img", label="label")).images, plain.images)
    assert labelled(Keyed(other, "img", "label")).num_classes == 10


def test_pil_images_and_lists_of_pairs_are_images(digits):
    pytest.importorskip("PIL")
    x, y = digits
    quantized = (x * 255).round() / 255
    read = as_images(PILItems(x, y, "L"))
    torch.testing.assert_close(read.images, quantized)
    rgba = as_images(PILItems(x, y, "RGBA"))
    assert rgba.image_shape == (4, 16, 16)
    pairs = [(image, int(label)) for image, label in zip(x, y, strict=True)]
    assert torch.equal(as_images(pairs).images, x)
    pil_pairs = list(zip(PILItems(x, y, "L").images, y.tolist(), strict=True))
    assert torch.equal(as_images(pil_pairs).images, read.images)

    class HubRows:
        """A Hugging Face `datasets.Dataset` as it iterates: dict rows with a PIL image."""

        def __init__(self, pairs: list) -> None:
            self.rows = [{"img": image, "label": label} for image, label in pairs]

        def __len__(self) -> int:
            return len(self.rows)

        def __iter__(self):
            return iter(self.rows)

    hub = as_images(Keyed(HubRows(pil_pairs), image="img", label="label"))
    assert torch.equal(hub.images, read.images) and torch.equal(hub.labels, y)


def test_any_channel_count_is_measured_but_corruptions_keep_grey_or_rgb(digits, tmp_path):
    x, y = digits
    four = torch.cat([x, x.flip(2), x.flip(3), 1 - x], dim=1)
    model = standins.TorchvisionResNet(in_channels=4)
    table = selectivity.measure_model(model, (four, y))
    assert table["si"].between(0, 1).all()
    assert dataset_jacobian_norm(model, (four, y)) > 0
    assert 0 <= accuracy_under_attack(model, (four, y), attacks.FGSM(1 / 255)) <= 1
    with pytest.raises(DataError, match=r"grey or RGB images .* got 4 channels"):
        generate_corruption_set((four, y), tmp_path / "c", corruptions=["gaussian_noise"])


def test_a_loader_that_drops_its_last_batch_says_how_many_were_left_out(digits):
    x, y = digits
    loader = DataLoader(TensorDataset(x, y), batch_size=10, drop_last=True)
    with pytest.warns(DroppedImagesWarning, match="4 of 64 images were left out"):
        table = selectivity.measure_model(standins.torchvision_resnet(), loader)
    assert (table["samples"] == 60).all()
    assert any("drop_last=True" in note for note in table.attrs["notes"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DroppedImagesWarning)
        as_images(DataLoader(TensorDataset(x, y), batch_size=16, drop_last=True))  # none left


# --- the regularizer warns as measure_model does ----------------------------------------------------


def test_the_regularizer_warns_of_functional_relus_and_compiled_models(digits):
    x, y = digits
    model = standins.wide_resnet()
    with (
        pytest.warns(FunctionalReluWarning, match=r"1 ReLU call\(s\).*not regularized"),
        SelectivityRegularizer(model, 10) as reg,
    ):
        model.train()(x)
        # The check's own forward leaves no trace: one entry per ReLU call of the loop's forward.
        relus = [name for name, module in model.named_modules() if isinstance(module, nn.ReLU)]
        assert list(reg.probe.activations) == relus
        assert 0 < float(reg.network_selectivity(y).detach()) < 1
    compiled = torch.compile(standins.torchvision_resnet(), backend="eager")
    compiled(x)  # already run: its compiled code skips the hooks added below
    with pytest.warns(CompiledModelWarning, match="torch.compile"):
        reg = SelectivityRegularizer(compiled, 10)
    with reg:
        compiled(x)
        with pytest.raises(EmptyCaptureError, match=r"torch\.compile'd model.*_orig_mod"):
            reg.network_selectivity(y)


# --- the real thing, where transformers installs ------------------------------------------------


def test_transformers_vit_from_a_config_is_measured_by_its_features(digits):
    transformers = pytest.importorskip("transformers")
    x, y = digits
    config = transformers.ViTConfig(
        image_size=16,
        patch_size=4,
        num_channels=1,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=10,
    )
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(config).eval()
    with pytest.raises(EmptyCaptureError, match=r"no ReLU modules; it has GELUActivation \(2\)"):
        selectivity.measure_model(model, digits)
    with pytest.raises(EmptyCaptureError, match=r"GELUActivation \(2\): --set unit_types=gelu"):
        check_unit_types(model, None)
    batches = DataLoader(
        [{"pixel_values": image, "labels": label} for image, label in zip(x, y, strict=True)],
        batch_size=16,
    )
    table = selectivity.measure_model(model, batches, layers=Units(types=("gelu",)))
    # Named as the installed version names them (4.x: vit.encoder.layer.0.intermediate...).
    names = [n for n, m in model.named_modules() if type(m).__name__ == "GELUActivation"]
    assert len(names) == 2
    assert table.groupby("layer", sort=False).size().to_dict() == dict.fromkeys(names, 32)
    raw = raw_outputs(model, x, tuple(names))
    expected = class_selectivity(raw[names[0]].clamp_min(0), y, 10).double()
    measured = torch.tensor(table.loc[table["layer"] == names[0], "si"].to_numpy())
    torch.testing.assert_close(measured, expected, atol=1e-6, rtol=0)
    assert "tokens x features" in table.attrs["notes"][0]
    with SelectivityRegularizer(model, 10, layers=Units(types=("gelu",))) as reg:
        loss = F.cross_entropy(model(pixel_values=x).logits, y) - reg.network_selectivity(y)
    loss.backward()
    assert np.isfinite(float(loss))

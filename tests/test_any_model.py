"""Any model, any data: measure_model and evaluate_model on stand-ins for torchvision, timm and
RobustBench networks, with Datasets, DataLoaders, tensors and batches (issue 10)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import selectivity
import standins
from messages import raises, warns
from selectivity import EmptyCaptureError, NegativeActivationError, Units
from selectivity.data import DataError, as_images, labelled, load_dataset
from selectivity.evaluation import eval_config
from selectivity.measure import FunctionalReluWarning
from selectivity.metrics import class_selectivity
from selectivity.schema import COLUMNS

COLUMNS_UNITS = ["layer", "unit", "si", "preferred_class", "silent", "split", "samples"]
# A few samples, a couple of steps: every part runs, in seconds (AutoAttack's three attacks on
# 16 images, a short off-axis search).
TINY = eval_config(
    "quick",
    {
        "max_samples": 24,
        "analysis_samples": 24,
        "fgsm_eps": (0.0, 2 / 255),
        "pgd_steps": (0, 2),
        "pgd_step_size": "auto",
        "dimensionality_pgd_steps": 2,
        "gradient_max_units": 2,
        "jacobian_projections": 1,
        "autoattack_samples": 16,
        "autoattack_iterations": 5,
        "autoattack_target_classes": 1,
        "autoattack_square_queries": 50,
        "offaxis_restarts": 1,
        "offaxis_steps": 10,
    },
)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    x, y = data.test.batch(slice(0, 64))
    return x, y


def test_any_data_form_gives_the_same_table(digits):
    x, y = digits
    model = standins.torchvision_resnet()
    dataset = TensorDataset(x, y)
    tables = [
        selectivity.measure_model(model, form)
        for form in (
            dataset,
            DataLoader(dataset, batch_size=10),
            (x, y),
            [(x[:30], y[:30]), (x[30:], y[30:])],
        )
    ]
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0])
    assert list(tables[0].columns) == COLUMNS_UNITS
    assert (tables[0]["samples"] == 64).all() and tables[0]["si"].between(0, 1).all()


def test_a_reused_relu_module_is_one_layer_per_call_site(digits):
    table = selectivity.measure_model(standins.torchvision_resnet(), digits)
    layers = table["layer"].unique().tolist()
    # The stem's relu, then each block's one module called twice.
    assert layers == [
        "relu",
        "layer1.0.relu",
        "layer1.0.relu#2",
        "layer1.1.relu",
        "layer1.1.relu#2",
    ]


def test_gelu_units_on_request_read_as_their_positive_part(digits):
    x, y = digits
    model = standins.timm_style().eval()
    with raises(EmptyCaptureError, "GELU", "unit_types"):
        selectivity.measure_model(model, digits)
    table = selectivity.measure_model(model, digits, layers=Units(types=(nn.GELU,)))
    assert table["layer"].unique().tolist() == ["stem.1", "stage.2", "mlp.act"]
    assert table["si"].between(0, 1).all()
    # The rule by hand: SI of max(GELU(z), 0), z the pre-activation of the MLP's hidden layer.
    with torch.no_grad():
        hidden = model.stage(model.stem(x))
        pooled = torch.flatten(F.adaptive_avg_pool2d(hidden, 1), 1)
        expected = class_selectivity(F.gelu(model.mlp.fc1(pooled)).clamp_min(0), y, 10)
    measured = torch.tensor(table.loc[table["layer"] == "mlp.act", "si"].to_numpy())
    torch.testing.assert_close(measured, expected.double(), atol=1e-6, rtol=0)


def test_wide_resnet_functional_relu_is_named_and_blocks_can_be_measured(digits):
    model = standins.wide_resnet()
    with warns(FunctionalReluWarning, "1 ReLU call", "F.relu"):
        table = selectivity.measure_model(model, digits)
    assert table.attrs["notes"] and "not measured" in table.attrs["notes"][0]
    assert "bn1" not in table["layer"].tolist()
    # A block's output is signed: an error, unless its positive part is asked for.
    with raises(NegativeActivationError, "block1"):
        selectivity.measure_model(model, digits, layers=["block1", "block2"])
    blocks = selectivity.measure_model(
        model, digits, layers=Units(layers=("block1", "block2"), positive_part=True)
    )
    assert blocks["layer"].unique().tolist() == ["block1", "block2"]
    # The F.relu site: the positive part of the BN before it is exactly F.relu's output.
    final = selectivity.measure_model(model, digits, layers=Units(("bn1",), positive_part=True))
    x, y = digits
    with torch.no_grad():
        model.eval()
        out = F.relu(model.bn1(model.block2(model.block1(model.conv1(x)))))
    torch.testing.assert_close(
        torch.tensor(final["si"].to_numpy()), class_selectivity(out, y, 10).double()
    )


def test_no_relu_modules_fails_loudly_with_what_to_do(digits):
    with raises(EmptyCaptureError, "layers=[...]", "F.relu"):
        selectivity.measure_model(standins.NoModules(), digits)


def test_compiled_model_measures_as_its_original(digits):
    model = standins.torchvision_resnet()
    compiled = torch.compile(model, backend="eager")
    pd.testing.assert_frame_equal(
        selectivity.measure_model(compiled, digits), selectivity.measure_model(model, digits)
    )


@pytest.mark.parametrize(
    ("factory", "layers"),
    [
        (standins.torchvision_resnet, None),
        (standins.timm_style, Units(types=(nn.GELU,))),
        (standins.wide_resnet, None),
    ],
)
def test_evaluate_model_on_each_stand_in(digits, factory, layers):
    x, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunctionalReluWarning)
        table = selectivity.evaluate_model(
            factory(), TensorDataset(x, y), TINY, layers=layers, batch_size=32
        )
    assert list(table.columns) == list(COLUMNS)
    metrics = set(table["metric"])
    assert {"test_accuracy", "selectivity", "fgsm_accuracy", "pgd_accuracy"} <= metrics
    assert {"jacobian_norm", "gradient_variability_samples", "dimensionality"} <= metrics
    assert "val_accuracy" not in metrics  # no checkpoint: no validation row
    clean = table[(table["metric"] == "test_accuracy")]
    assert clean["samples"].iloc[0] == 64
    assert any("corruptions skipped" in note for note in table.attrs["notes"])


def test_evaluate_model_writes_only_with_out_dir_and_resumes(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = standins.torchvision_resnet()
    config = eval_config(
        "quick",
        TINY.__dict__,
        {"generate_corruptions": True, "corruptions": ("gaussian_noise",), "severities": (1,)},
    )
    first = selectivity.evaluate_model(model, digits, config)
    assert list(tmp_path.iterdir()) == []  # nothing written, the generated set removed
    assert "corruption_accuracy_mean" in set(first["metric"])
    out = tmp_path / "out"
    second = selectivity.evaluate_model(model, digits, config, out_dir=out)
    assert (out / "evaluation.parquet").is_file() and (out / "corruptions").is_dir()
    pd.testing.assert_frame_equal(first, second)
    # A resumed evaluation reads its parts; other weights are another evaluation.
    stamp = (out / "evaluation" / "clean.parquet").stat().st_mtime_ns
    selectivity.evaluate_model(model, digits, config, out_dir=out)
    assert (out / "evaluation" / "clean.parquet").stat().st_mtime_ns == stamp
    with pytest.warns(FunctionalReluWarning):
        other = selectivity.evaluate_model(standins.wide_resnet(), digits, config, out_dir=out)
    assert any("replaced the evaluation" in note for note in other.attrs["notes"])


# --- the data adapter -------------------------------------------------------------------------


def test_class_count_from_labels_classes_attribute_or_given(digits):
    x, y = digits
    assert labelled((x, y)).num_classes == int(y.max()) + 1
    assert labelled((x, y), num_classes=12).num_classes == 12

    class Named(TensorDataset):
        classes = tuple(f"c{i}" for i in range(11))

    named = labelled(Named(x, y))
    assert named.num_classes == 11 and named.class_names[0] == "c0"
    with raises(DataError, "label 9", "5 classes", "num_classes"):
        labelled((x, y), num_classes=5)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)),
            ("float", "[0, 1]", "uint8"),
        ),
        ((torch.full((4, 1, 8, 8), 2.0), torch.zeros(4, dtype=torch.long)), ("[0, 1]", "[2")),
        ((torch.zeros(4, 8, 8), torch.zeros(4, dtype=torch.long)), ("(N, C, H, W)",)),
        ((torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)), ("empty",)),
        (TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0)), ("empty",)),
        (TensorDataset(torch.zeros(3, 8, 8), torch.zeros(3)), ("image", "(C, H, W)")),
        ((torch.zeros(4, 1, 8, 8), torch.zeros(4)), ("labels", "integer")),
        ([], ("empty",)),
        (42, ("images", "int")),
    ],
)
def test_bad_data_is_one_line(data, words):
    with raises(DataError, *words):
        as_images(data)


def test_a_shuffling_loader_is_refused(digits):
    loader = DataLoader(TensorDataset(*digits), batch_size=8, shuffle=True)
    with raises(DataError, "shuffles"):
        as_images(loader)


def test_set_level_passes_and_corruption_generation_take_any_data(digits, tmp_path):
    from selectivity import attacks
    from selectivity.corruptions import generate_corruption_set
    from selectivity.data import ImageSet
    from selectivity.measure import accuracy, accuracy_under_attack, dataset_jacobian_norm

    x, y = digits
    model = standins.torchvision_resnet()
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    images = ImageSet(x, y)
    assert accuracy(model, loader) == accuracy(model, images)
    fgsm = attacks.FGSM(2 / 255)
    assert accuracy_under_attack(model, loader, fgsm) == accuracy_under_attack(model, images, fgsm)
    assert dataset_jacobian_norm(model, (x, y), projections=None) == dataset_jacobian_norm(
        model, images, projections=None
    )
    kwargs = {"corruptions": ["gaussian_noise"], "severities": [1], "progress": False}
    generate_corruption_set(TensorDataset(x, y), tmp_path / "a", **kwargs)
    generate_corruption_set(images, tmp_path / "b", **kwargs)
    name = "gaussian_noise.npy"
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()

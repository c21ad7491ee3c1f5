"""Every evaluation part on data read through each published-layout loader.

The loaders keep images as uint8 NHWC arrays, so their batches are channels-last views, not
contiguous NCHW tensors as the digits' are. A part that hands such a tensor to a third-party
package that calls `.view` on it (pyautoattack's zero-gradient check did) crashes on the papers'
own data while every digits test passes: each part runs here on 3-channel data of each layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from layouts import write_cifar, write_folder, write_svhn, write_tiny, write_tiny_c
from selectivity import masking
from selectivity.corruptions.store import save_npy
from selectivity.data import DataSplits, load_dataset, load_tinyimagenet
from selectivity.evaluation import eval_config, evaluate_model
from selectivity.evaluation.autoattack import robust_flags

pytest.importorskip("pyautoattack")

# The full suite (every part, standard AutoAttack included), cut to a few images and steps.
FULL_TINY = {
    "max_samples": 10,
    "analysis_samples": 10,
    "autoattack_samples": 6,
    "autoattack_iterations": 2,
    "autoattack_target_classes": 2,
    "autoattack_square_queries": 4,
    "corruptions": ("brightness", "fog"),
    "severities": (1, 2),
    "fgsm_eps": (0.0, 2 / 255),
    "pgd_steps": (0, 2),
    "pgd_step_size": "auto",
    "dimensionality_pgd_steps": 2,
    "gradient_max_units": 2,
    "jacobian_projections": 1,
}
# A metric of each part: the clean part, corruptions, FGSM, PGD, Jacobian, gradient
# variability, dimensionality, AutoAttack and its masking checks.
PART_METRICS = {
    "test_accuracy",
    "selectivity",
    "corruption_accuracy",
    "fgsm_accuracy",
    "pgd_accuracy",
    "jacobian_norm",
    "gradient_variability_samples",
    "dimensionality",
    "dimensionality_corruption",
    "dimensionality_adversarial",
    "autoattack_accuracy_apgd-ce",
    "autoattack_accuracy_fab-t",
    "autoattack_accuracy_square",
    "masking_pgd_accuracy",
}


def _load(name: str, data_dir: Path) -> DataSplits:
    if name == "tinyimagenet":  # the tiny copy has 6 training images a class, not 500
        return load_tinyimagenet(data_dir, val_per_class=2)
    return load_dataset(name, str(data_dir))


def _cifar(root: Path) -> tuple[str, Path, Path | None]:
    """CIFAR-10 and, beside it, CIFAR-10-C made of its own test images (rows follow the test
    order, severity-major, as published)."""
    write_cifar(root)
    test = load_dataset("cifar10", str(root)).test
    images = np.asarray(test.images)
    corrupted = root / "CIFAR-10-C"
    corrupted.mkdir()
    for name in ("brightness", "fog"):
        save_npy(corrupted / f"{name}.npy", np.concatenate([images] * 5))
    save_npy(corrupted / "labels.npy", np.tile(test.labels.numpy(), 5))
    return "cifar10", root, corrupted


def _tiny(root: Path) -> tuple[str, Path, Path | None]:
    return "tinyimagenet", write_tiny(root), write_tiny_c(root / "Tiny-ImageNet-C")


def _svhn(root: Path) -> tuple[str, Path, Path | None]:
    write_svhn(root, n_train=40, n_test=10)
    return "svhn", root, None


def _folder(root: Path) -> tuple[str, Path, Path | None]:
    write_folder(root / "images", per_class=8, size=(16, 16))
    return "folder", root / "images", None


def _small_net(classes: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, 8),
        nn.ReLU(),
        nn.Linear(8, classes),
    )


@pytest.mark.parametrize("layout", [_cifar, _tiny, _svhn, _folder], ids=lambda f: f.__name__[1:])
def test_every_part_runs_on_each_published_layout(tmp_path, layout):
    name, data_dir, corruptions_dir = layout(tmp_path)
    splits = _load(name, data_dir)
    x, _ = splits.test.batch(slice(0, 2))
    assert x.shape[1] == 3
    overrides = (
        {"corruptions_dir": str(corruptions_dir)}
        if corruptions_dir is not None
        else {"generate_corruptions": True}
    )
    if name == "tinyimagenet":  # the tiny Tiny-ImageNet-C holds fog at severities 1 and 2
        overrides["corruptions"] = ("fog",)
    config = eval_config("full", FULL_TINY, overrides)
    table = evaluate_model(_small_net(splits.num_classes), splits, config, dataset=name)
    missing = PART_METRICS - set(table["metric"])
    assert not missing, f"parts that gave no rows on {name}: {sorted(missing)}"
    measured = table[~table["metric"].str.startswith("masking_")]
    assert np.isfinite(measured["value"].astype(float)).all()
    assert set(masking.FLAGS) <= {m.removeprefix("masking_") for m in table["metric"]}
    if splits.num_classes < 4:  # the folder set's 3 classes: the targeted DLR loss needs 4
        assert "autoattack_accuracy_apgd-t" not in set(table["metric"])
        assert any("without apgd-t" in note for note in table.attrs["notes"])
    else:
        assert "autoattack_accuracy_apgd-t" in set(table["metric"])


def test_autoattack_takes_a_channels_last_view(tmp_path):
    """The reported crash itself: the package's zero-gradient check on a permuted view."""
    _cifar(tmp_path)
    x, _ = load_dataset("cifar10", str(tmp_path)).test.batch(slice(0, 4))
    assert not x.is_contiguous()  # the layout this test is about
    model = _small_net(10).eval()
    with torch.no_grad():
        y = model(x).argmax(1)  # every image correct, so the attack runs on all of them
    config = eval_config("quick", FULL_TINY)
    state = tmp_path / "state.json"
    # The check that failed runs under the DLR losses only: the targeted one, as in `standard`.
    robust = robust_flags(model, x, y, 8 / 255, "apgd-t", config, state, seed=0, batch=4)
    assert robust.shape == (4,) and state.is_file()


def test_cli_trains_on_the_cifar_layout_and_runs_the_full_suite(tmp_path, run_cli):
    """The reported command: a run trained from the published CIFAR-10 layout, then
    `evaluate RUN --corruptions-dir CIFAR-10-C --suite full`."""
    _, data_dir, corruptions_dir = _cifar(tmp_path)
    run = tmp_path / "run"
    code, _, err = run_cli(
        "train", "--quiet", "--out", run, "--set", "dataset=cifar10", "--set",
        f"data_dir={data_dir}", "--set", "model=digitsnet", "--set", "epochs=1", "--set",
        "milestones=", "--set", "num_threads=1", "--set", "batch_size=32",
    )  # fmt: skip
    assert code == 0, err
    sets = [f"{key}={_cli_value(value)}" for key, value in FULL_TINY.items()]
    code, _, err = run_cli(
        "evaluate", run, "--suite", "full", "--corruptions-dir", corruptions_dir, "--quiet",
        *(arg for value in sets for arg in ("--set", value)),
    )  # fmt: skip
    assert code == 0, err
    table = pd.read_parquet(run / "evaluation.parquet")
    assert set(table["metric"]) >= PART_METRICS


def _cli_value(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)

"""Measure and evaluate your own model on your own data: copy this file and swap in yours.

The model: any nn.Module taking float images in [0, 1] (put normalisation inside it). The data:
a torch Dataset (here scikit-learn's 8x8 digits as a TensorDataset), a DataLoader that does not
shuffle, or a pair of tensors. Runs in seconds on a CPU:

    python examples/own_model.py
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import selectivity


def my_model() -> nn.Module:
    """A small convolutional net; every nn.ReLU module call is a layer of units."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def my_data() -> tuple[TensorDataset, TensorDataset]:
    """(train, test) digits as float (N, 1, 8, 8) images in [0, 1] and int64 labels."""
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    train, test = order[:1400], order[1400:]
    return TensorDataset(images[train], labels[train]), TensorDataset(images[test], labels[test])


def main() -> None:
    torch.manual_seed(0)
    train, test = my_data()
    model = my_model()
    # Your own training loop; three epochs are enough for digits.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        for x, y in DataLoader(train, batch_size=64, shuffle=True):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

    # Per-unit selectivity: one row per unit (layer, unit, si, preferred_class, silent, ...).
    units = selectivity.measure_model(model, test)
    print(f"{len(units)} units in layers {', '.join(units['layer'].unique())}")
    for layer, rows in units.groupby("layer", sort=False):
        print(f"  layer {layer}: mean SI {rows['si'].mean():.3f}, {rows['silent'].sum()} silent")
    print(f"mu_SI {units.attrs['selectivity']:.3f}, accuracy {units.attrs['accuracy']:.3f}")

    # The evaluation table (the schema of evaluation.parquet): a quick suite on a DataLoader.
    config = selectivity.eval_config(
        "quick",
        {
            "max_samples": 100,
            "analysis_samples": 50,
            "pgd_steps": (0, 5, 10),
            "pgd_step_size": "auto",
        },
    )
    table = selectivity.evaluate_model(model, DataLoader(test, batch_size=100), config)
    for metric in ("test_accuracy", "selectivity", "jacobian_norm"):
        value = table.loc[(table["metric"] == metric) & table["layer"].isna(), "value"].iloc[0]
        print(f"{metric}: {value:.3f}")
    pgd = table[table["metric"] == "pgd_accuracy"]
    steps = "  ".join(f"{int(s)}:{v:.3f}" for s, v in zip(pgd["steps"], pgd["value"], strict=True))
    print(f"PGD accuracy by steps (eps 8/255): {steps}")


if __name__ == "__main__":
    main()

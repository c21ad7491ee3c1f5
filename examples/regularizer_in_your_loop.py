"""The selectivity regularizer in a training loop of your own.

A small CNN of our own on scikit-learn's 8x8 digits, trained by a plain PyTorch loop: the only
additions are the `with SelectivityRegularizer(...)` block and the `- alpha * mu_si` term.
alpha > 0 rewards class-selective units, alpha < 0 penalises them; alpha = 0 is plain training
(mu_SI is still measured, for comparison). The mu_SI printed is the mean over an epoch's
minibatches, as the loss sees it. A large alpha (3 here) can silence units, which count as 0,
so that mu_SI falls again: look at the whole range before choosing one. Runs in seconds on a CPU:

    python examples/regularizer_in_your_loop.py            # alpha -1, 0, then 1
    python examples/regularizer_in_your_loop.py --alphas 0 3 --epochs 8
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from selectivity import SelectivityRegularizer


def digits(seed: int) -> tuple[TensorDataset, TensorDataset]:
    """Train and test sets: images (N, 1, 8, 8) in [0, 1], labels (N,) in 0..9."""
    x, y = load_digits(return_X_y=True)
    images = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    labels = torch.tensor(y, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    train, test = order[:1400], order[1400:]
    return TensorDataset(images[train], labels[train]), TensorDataset(images[test], labels[test])


def small_cnn() -> nn.Module:
    # Each nn.ReLU is a unit site the regularizer finds by itself (its default: every ReLU).
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def accuracy(model: nn.Module, data: TensorDataset) -> float:
    model.eval()
    with torch.no_grad():
        images, labels = data.tensors
        return (model(images).argmax(1) == labels).float().mean().item()


def train(alpha: float, epochs: int, seed: int = 0) -> float:
    """Train one network with loss = cross_entropy - alpha * mu_SI; returns the last epoch's
    mean minibatch mu_SI."""
    torch.manual_seed(seed)
    train_set, test_set = digits(seed)
    model = small_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    # A batch needs two classes for selectivity; at 64 of 10 classes there always are.
    loader = DataLoader(train_set, batch_size=64, shuffle=True, drop_last=True)
    mean_mu_si = float("nan")
    with SelectivityRegularizer(model, num_classes=10) as regularizer:
        for epoch in range(epochs):
            model.train()
            losses, cross_entropies, mu_sis = [], [], []
            for images, labels in loader:
                logits = model(images)
                mu_si = regularizer.network_selectivity(labels)  # of the forward just run
                cross_entropy = F.cross_entropy(logits, labels)
                loss = cross_entropy - alpha * mu_si
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                cross_entropies.append(cross_entropy.item())
                mu_sis.append(mu_si.item())
            mean_mu_si = sum(mu_sis) / len(mu_sis)
            print(
                f"alpha {alpha:g}  epoch {epoch}  loss {sum(losses) / len(losses):.4f}  "
                f"cross-entropy {sum(cross_entropies) / len(cross_entropies):.4f}  "
                f"test accuracy {accuracy(model, test_set):.3f}  minibatch mu_SI {mean_mu_si:.3f}"
            )
    return mean_mu_si


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", type=float, nargs="+", default=[-1.0, 0.0, 1.0])
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and polite on shared CPUs
    final = {alpha: train(alpha, args.epochs) for alpha in args.alphas}
    for alpha, mu_si in final.items():
        print(f"final minibatch mu_SI at alpha {alpha:g}: {mu_si:.3f}")


if __name__ == "__main__":
    main()

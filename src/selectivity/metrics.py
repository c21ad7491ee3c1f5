"""Pure tensor functions: the class selectivity index and the statistics built on it.

Nothing here knows about models or hooks. The same formula (`selectivity_from_class_sums`) serves
the minibatch index used by the regularizer and the streaming accumulator used for analysis.

Shapes use N samples, U units, K classes, L layers.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from selectivity.errors import SelectivityError

__all__ = [
    "NegativeActivationError",
    "SelectivityAccumulator",
    "class_selectivity",
    "class_sums",
    "network_selectivity",
    "pca_dimensionality",
    "require_non_negative",
    "selectivity_from_class_sums",
    "unit_activations",
]


class NegativeActivationError(SelectivityError, ValueError):
    """Activations with negative values were given to the selectivity index.

    The index is defined for non-negative responses (read after a ReLU): with signed values the
    class means can cancel and SI leaves [0, 1] (values of 13 or -6 mean nothing).
    """


def require_non_negative(activations: Tensor, layer: str | None = None) -> None:
    """Raise `NegativeActivationError`, naming `layer`, when any value of `activations` is < 0.

    One reduction and one host sync: callers on a hot path check once, not every step.
    """
    if activations.numel() == 0:
        return
    smallest = activations.detach().min()
    if smallest < 0:
        where = f"layer {layer!r}" if layer is not None else "the activations"
        raise NegativeActivationError(
            f"{where} has negative values (min {smallest.item():.3g}): class selectivity is "
            "defined for non-negative responses (read units after a ReLU; GELU, Tanh, "
            "LeakyReLU or raw conv outputs are signed; probe.Units(positive_part=True) reads "
            "them as max(a, 0))"
        )


def unit_activations(activations: Tensor, tokens: str = "mean") -> Tensor:
    """One value per sample and unit, by the rank of `activations`.

    (N, U): the U units as they are. (N, T, D) tokens x features (a transformer's outputs): each
    of the D features is a unit, its value the mean over the T tokens (tokens="mean") or its
    value at the first, class, token (tokens="cls"). (N, C, H, W) feature maps: each of the C
    channels is a unit, its value the mean over the H x W positions. Any other rank raises
    ValueError naming the shape. (`probe.ActivationProbe` hands (N, C, L) 1-D maps on as (N, L, C)
    and channels-last maps as (N, C, H, W), so this rule reads every output it records.)
    Returns (N, U).
    """
    shape = tuple(activations.shape)
    if activations.ndim < 2 or activations.ndim > 4:
        raise ValueError(
            f"activations of shape {shape}: units are read from (N, U) features, (N, T, D) "
            "tokens or (N, C, H, W) maps"
        )
    if tokens not in ("mean", "cls"):
        raise ValueError(f"tokens must be 'mean' or 'cls', got {tokens!r}")
    if activations.ndim == 2:
        return activations
    if activations.ndim == 3:
        if tokens == "cls":
            return activations[:, 0]
        return activations.sum(dim=1) / activations.shape[1]
    # sum / size rather than mean: sum's backward is a broadcast view, mean's materialises a
    # full-size tensor, which costs a pass over every map in each regularized training step.
    return activations.sum(dim=(2, 3)) / activations[0, 0].numel()


def class_sums(units: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Per-class sums and counts of unit values.

    units: (N, U); labels: (N,) integers in [0, num_classes).
    Returns sums (K, U) in the dtype of `units` and counts (K,) in the same dtype.
    """
    if labels.ndim != 1 or labels.shape[0] != units.shape[0]:
        raise ValueError(f"labels must have shape ({units.shape[0]},), got {tuple(labels.shape)}")
    one_hot = torch.nn.functional.one_hot(labels.long(), num_classes).to(units.dtype)
    return one_hot.T @ units, one_hot.sum(dim=0)


def selectivity_from_class_sums(sums: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
    """The class selectivity index from per-class sums and counts.

    SI = (mu_max - mu_rest) / (mu_max + mu_rest), where mu_max is the largest class-conditional
    MEAN and mu_rest the mean of the other present classes' means. Classes with no samples are
    left out of mu_rest. A unit whose means are all 0 scores exactly 0 (no epsilon: the guard is a
    `where`, so real values are not moved and gradients stay finite).

    sums: (K, U); counts: (K,). Returns (si (U,), preferred class (U,) as int64 class ids).
    Raises ValueError when fewer than two classes are present.
    """
    present = counts > 0
    num_present = int(present.sum())
    if num_present < 2:
        raise ValueError(f"class selectivity needs at least two classes present, got {num_present}")
    class_ids = torch.nonzero(present).squeeze(1)
    means = sums[class_ids] / counts[class_ids].unsqueeze(1)  # (P, U)
    mu_max, argmax = means.max(dim=0)
    mu_rest = (means.sum(dim=0) - mu_max) / (num_present - 1)
    denominator = mu_max + mu_rest
    positive = denominator > 0
    # Dividing by 1 where the denominator vanishes keeps the backward pass free of NaN.
    si = torch.where(
        positive,
        (mu_max - mu_rest) / torch.where(positive, denominator, torch.ones_like(denominator)),
        torch.zeros_like(denominator),
    )
    return si, class_ids[argmax]


def class_selectivity(
    activations: Tensor,
    labels: Tensor,
    num_classes: int,
    layer: str | None = None,
    tokens: str = "mean",
) -> Tensor:
    """Class selectivity index of every unit, differentiable.

    activations: (N, U), (N, T, D) or (N, C, H, W), reduced to units by `unit_activations`
    (with `tokens`), non-negative (post-ReLU); labels: (N,). layer: a name for the error message.
    Returns (U,) values in [0, 1].
    Raises NegativeActivationError for any negative activation, ValueError when fewer than two
    classes are present.
    """
    require_non_negative(activations, layer)
    units = unit_activations(activations, tokens)
    sums, counts = class_sums(units, labels, num_classes)
    return selectivity_from_class_sums(sums, counts)[0]


def network_selectivity(per_layer: Mapping[str, Tensor]) -> Tensor:
    """mu_SI: mean over units within each layer, then mean over layers.

    per_layer: layer name -> (U_layer,) selectivity indices. Returns a scalar tensor.
    Averaging within layers first keeps wide layers from dominating.
    """
    if not per_layer:
        raise ValueError("network_selectivity needs at least one layer")
    return torch.stack([si.mean() for si in per_layer.values()]).mean()


class SelectivityAccumulator:
    """Streaming per-class sums and counts for whole data sets.

    Memory is O(units x classes) per layer: activations are reduced to per-class sums batch by
    batch and never kept. Sums are float64 so that 10k-image sums do not drift. tokens: how
    (N, T, D) activations give unit values (`unit_activations`).
    """

    def __init__(self, num_classes: int, tokens: str = "mean"):
        self.num_classes = num_classes
        self.tokens = tokens
        self._sums: dict[str, Tensor] = {}
        self._counts: Tensor | None = None

    def update(self, activations: Mapping[str, Tensor], labels: Tensor) -> None:
        """activations: layer -> (N, U), (N, T, D) or (N, C, H, W), non-negative; labels: (N,).

        Raises NegativeActivationError naming the first layer with a negative value.
        """
        if not activations:
            raise ValueError("SelectivityAccumulator.update got no activations")
        values = [value.detach() for value in activations.values()]
        # One host sync per batch over all layers, on the values as given (raw maps or the
        # probe's spatial means); the layer is looked up only when the check fails.
        smallest = torch.stack(
            [v.amin().float() if v.numel() else v.new_zeros(()).float() for v in values]
        )
        if smallest.min() < 0:
            for name, value in zip(activations, values, strict=True):
                require_non_negative(value, name)
        units = [unit_activations(value, self.tokens) for value in values]
        joined = torch.cat(units, dim=1).float()
        # One matmul for all layers; a batch's sums are exact enough in float32, the running
        # totals are float64.
        sums, counts = class_sums(joined, labels, self.num_classes)
        for name, part in zip(
            activations, sums.double().split([u.shape[1] for u in units], dim=1), strict=True
        ):
            if name in self._sums:
                self._sums[name] += part
            else:
                self._sums[name] = part
        counts = counts.double()
        self._counts = counts if self._counts is None else self._counts + counts

    def _results(self) -> dict[str, tuple[Tensor, Tensor]]:
        if self._counts is None:
            raise ValueError("SelectivityAccumulator has seen no activations")
        return {
            name: selectivity_from_class_sums(sums, self._counts)
            for name, sums in self._sums.items()
        }

    def selectivity(self) -> dict[str, Tensor]:
        """Layer -> (U,) selectivity indices (float64, on the device of the activations)."""
        return {name: si for name, (si, _) in self._results().items()}

    def preferred_class(self) -> dict[str, Tensor]:
        """Layer -> (U,) class with the largest class-conditional mean."""
        return {name: cls for name, (_, cls) in self._results().items()}

    def silent(self) -> dict[str, Tensor]:
        """Layer -> (U,) bool: units that never fired on any sample (their SI is 0 by definition)."""
        return {name: (sums == 0).all(dim=0) for name, sums in self._sums.items()}


def pca_dimensionality(matrix: Tensor, variance: float = 0.9) -> float:
    """Fraction of dimensions whose principal components explain `variance` of the total.

    matrix: (N samples, D dimensions); rows are centred here. Returns k / D where k is the
    smallest number of components reaching the share. The SVD runs on the smaller Gram side, so
    D >> N costs O(N^2 D). A matrix with no variance has dimensionality 0.
    """
    if matrix.ndim != 2:
        raise ValueError(
            f"pca_dimensionality expects (samples, dims), got shape {tuple(matrix.shape)}"
        )
    if not 0.0 < variance <= 1.0:
        raise ValueError(f"variance must be in (0, 1], got {variance}")
    n, d = matrix.shape
    centred = (matrix - matrix.mean(dim=0, keepdim=True)).double()
    gram = centred @ centred.T if d > n else centred.T @ centred
    eigenvalues = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0)
    total = eigenvalues.sum()
    if total <= 0:
        return 0.0
    cumulative = torch.cumsum(eigenvalues, 0) / total
    # A tolerance absorbs round-off so that a rank-r matrix needs exactly r components at 100%.
    k = (
        int(
            torch.searchsorted(
                cumulative, torch.tensor(variance - 1e-9, dtype=cumulative.dtype)
            ).item()
        )
        + 1
    )
    return min(k, d) / d

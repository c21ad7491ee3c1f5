"""What every part of one evaluation reads: the model, the config and the test images, built once.

Context.of(model, data, test, config, ...)   the whole test set and its fixed subsets
fixed_subset(images, limit)                  the same draw of `limit` images for every trial
pgd_attack(config, steps)                    the evaluation's PGD and its step size
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from selectivity import attacks
from selectivity.config import EvalConfig
from selectivity.data import DataSplits, ImageSet, Labelled
from selectivity.probe import Sites

__all__ = ["Context", "fixed_subset", "pgd_attack", "sample_indices"]


def sample_indices(count: int, limit: int | str | None) -> np.ndarray:
    """A fixed subset of range(count), sorted: the same for every run, so that trials are
    compared on the same images.

    limit: a count, or None / "all" for every index."""
    if limit is None or isinstance(limit, str) or limit >= count:  # str: "all" (validated)
        return np.arange(count)
    return np.sort(np.random.default_rng(0).permutation(count)[:limit])


def fixed_subset(images: ImageSet, limit: int | str | None) -> ImageSet:
    """The `sample_indices` draw of `images` (all of them for None or "all")."""
    return images.subset(sample_indices(len(images), limit))


def pgd_attack(config: EvalConfig, steps: int) -> tuple[attacks.PGD, float]:
    """(the evaluation's PGD for a run of `steps` steps, its step size in [0, 1] pixel units)."""
    step = config.pgd_step(steps)
    # A step of 0 (auto with eps or steps 0) leaves the attack the identity; PGD needs a
    # positive step to be built, and with eps = 0 or no steps it never takes one.
    return attacks.PGD(config.pgd_eps, step if step > 0 else 1.0, steps), step


@dataclass(frozen=True)
class Context:
    """What the parts of one evaluation read, built once.

    whole: the test set; test: its `max_samples` subset (attacks and corruptions run on it);
    analysis: its `analysis_samples` subset (Jacobian, gradients, dimensionality).
    """

    model: nn.Module
    config: EvalConfig
    device: torch.device
    progress: bool
    layers: Sites  # None: every ReLU call site
    batch: int
    seed: int
    dataset: str | None
    val_accuracy: float | None
    val_samples: int | None
    num_classes: int
    class_names: list[str]
    whole: ImageSet
    test: ImageSet
    analysis: ImageSet
    folder: Path  # OUT_DIR/evaluation (or a temporary one): where a part keeps its state

    @classmethod
    def of(
        cls,
        model: nn.Module,
        data: Any,
        test: Labelled,
        config: EvalConfig,
        *,
        layers: Sites,
        batch: int,
        seed: int,
        dataset: str | None,
        val_accuracy: float | None,
        device: torch.device,
        progress: bool,
        work: Path,
    ) -> Context:
        """The context of evaluating `model` on `test` (`data` labelled), the rest as named."""
        whole = test.images
        return cls(
            model=model,
            config=config,
            device=device,
            progress=progress,
            layers=layers,
            batch=batch,
            seed=seed,
            dataset=dataset if dataset is not None else getattr(data, "name", None),
            val_accuracy=val_accuracy,
            val_samples=len(data.val) if isinstance(data, DataSplits) else None,
            num_classes=test.num_classes,
            class_names=test.class_names,
            whole=whole,
            test=fixed_subset(whole, config.max_samples),
            analysis=fixed_subset(whole, config.analysis_samples),
            folder=work / "evaluation",
        )

    def generator(self) -> torch.Generator:
        """A fresh random stream, equal for every part that draws."""
        return torch.Generator().manual_seed(self.seed)

    @property
    def on_test(self) -> dict[str, Any]:
        """The keys of a row measured on `test`."""
        return {"split": "test", "samples": len(self.test)}

    @property
    def on_analysis(self) -> dict[str, Any]:
        """The keys of a row measured on `analysis`."""
        return {"split": "test", "samples": len(self.analysis)}

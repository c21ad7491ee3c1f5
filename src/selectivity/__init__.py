"""selectivity: measure and control the class selectivity of units in neural networks.

The top-level names are imported on first use, so `import selectivity.report` (tables and
figures only) does not load torch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import version
from typing import Any

_EXPORTS = {
    "class_selectivity": "selectivity.metrics",
    "network_selectivity": "selectivity.metrics",
    "SelectivityAccumulator": "selectivity.metrics",
    "NegativeActivationError": "selectivity.metrics",
    "pca_dimensionality": "selectivity.metrics",
    "create_model": "selectivity.models",
    "list_models": "selectivity.models",
    "evaluate_model": "selectivity.evaluation",
    "measure_model": "selectivity.measure",
    "ablation_table": "selectivity.measure",
    "as_images": "selectivity.data",
    "EvalConfig": "selectivity.config",
    "eval_config": "selectivity.evaluation",
    "Units": "selectivity.probe",
    "ActivationProbe": "selectivity.probe",
    "EmptyCaptureError": "selectivity.probe",
    "SkippedActivationsWarning": "selectivity.probe",
    "SelectivityRegularizer": "selectivity.regularizer",
    "batch_network_selectivity": "selectivity.regularizer",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - the lazy exports are the public names
__version__ = version("selectivity")  # one source: pyproject.toml


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'selectivity' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

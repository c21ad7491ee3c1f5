"""selectivity: measure and control the class selectivity of units in neural networks."""

from selectivity.metrics import (
    SelectivityAccumulator,
    class_selectivity,
    network_selectivity,
    pca_dimensionality,
)
from selectivity.models import create_model, list_models
from selectivity.probe import ActivationProbe, EmptyCaptureError

__all__ = [
    "ActivationProbe",
    "EmptyCaptureError",
    "SelectivityAccumulator",
    "class_selectivity",
    "create_model",
    "list_models",
    "network_selectivity",
    "pca_dimensionality",
]
__version__ = "0.1.0"

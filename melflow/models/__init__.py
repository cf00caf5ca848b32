"""CNN model zoo and the model bundle (weights + feature config) used for prediction."""

from melflow.models.bundle import (
    ModelMeta,
    load_bundle,
    predict_features,
    predict_waveforms,
    save_bundle,
)
from melflow.models.cnn import build_model, count_parameters

__all__ = [
    "ModelMeta",
    "build_model",
    "count_parameters",
    "load_bundle",
    "predict_features",
    "predict_waveforms",
    "save_bundle",
]

"""The registered model: an MLflow *pyfunc* that takes raw audio (see :mod:`melflow.predict`).

It carries its bundle plus a copy of the ``melflow`` package (``code_paths``), so it loads
in any environment with the listed pip requirements.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array

from melflow.models.bundle import load_bundle
from melflow.predict import ERROR, LABEL, PATH, SR, WAVEFORM, predict_frame, prob_columns
from melflow.registry.names import BUNDLE_ARTIFACT

# The registered model's runtime needs; pinned to this environment so a version loads
# the same way wherever it is served (melflow itself travels as code_paths).
RUNTIME_PACKAGES = (
    "mlflow",
    "torch",
    "numpy",
    "pandas",
    "scipy",
    "librosa",
    "soundfile",
    "soxr",
    "pydantic",
    "pyyaml",
    "fsspec",
)


class AudioClassifierModel(PythonModel):
    """Raw audio -> labels and probabilities; the bundle is the ``bundle`` artifact.

    Input: a DataFrame with column ``path``, or ``waveform`` (samples) and ``sr`` (integer
    Hz); one kind per call (MLflow's schema check rejects ``sr`` with gaps, i.e. floats).
    Output: ``label``, ``prob_<class>`` per class, ``error`` (empty when classified).
    """

    def load_context(self, context: PythonModelContext) -> None:
        self.model, self.meta = load_bundle(context.artifacts[BUNDLE_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return predict_frame(self.model, self.meta, model_input)


def signature(classes: list[str]) -> ModelSignature:
    inputs = Schema(
        [
            ColSpec(DataType.string, PATH, required=False),
            ColSpec(Array(DataType.double), WAVEFORM, required=False),
            ColSpec(DataType.long, SR, required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec(DataType.string, LABEL, required=False),
            *(ColSpec(DataType.double, c) for c in prob_columns(classes)),
            ColSpec(DataType.string, ERROR),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(sr: int) -> pd.DataFrame:
    """A 0.1 s, 440 Hz tone: small enough to keep in the model's metadata."""
    t = np.arange(sr // 10) / sr
    return pd.DataFrame(
        {WAVEFORM: [np.round(0.1 * np.sin(2 * np.pi * 440 * t), 4).tolist()], SR: [sr]}
    )


def pip_requirements() -> list[str]:
    pins = []
    for package in RUNTIME_PACKAGES:
        try:
            # Without the local tag (torch's "+cpu"): package indexes do not serve it.
            pins.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            pins.append(package)
    return pins

"""Batch inference with a registered model over audio files or folders."""

from __future__ import annotations

from typing import Any

from melflow.config import PipelineConfig
from melflow.flows.deferred_flow import melflow_flow
from melflow.predict import DEFAULT_BATCH_SIZE
from melflow.registry import CHAMPION
from melflow.tasks.registry import predict_task


@melflow_flow(name="predict", flow_run_name="predict/{cfg.name}")
def predict_flow(
    cfg: PipelineConfig,
    inputs: list[str],
    model_ref: str = CHAMPION,
    out: str = "predictions.csv",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, Any]:
    """Classify every audio file in ``inputs`` with ``model_ref`` and write a CSV to ``out``.

    Folders are walked for ``corpus.extensions``; unreadable files become rows with an
    ``error`` instead of failing the run. Returns counts (files, classified, errors,
    labels), the output path and the model version used.
    """
    return predict_task(cfg, inputs, model_ref, out, batch_size)

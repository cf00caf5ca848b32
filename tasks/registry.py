"""Registry and batch-prediction steps as Prefect tasks.

None of them is cached by Prefect: their outcome depends on the registry's current
state (which champion exists, which versions are there), which no input digest captures.
Registration is idempotent in the domain instead: an identical bundle evaluated on the
same set returns its existing version.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pandas as pd

from melflow import storage
from melflow.config import PipelineConfig
from melflow.layout import StageRef
from melflow.manifest import read_manifest
from melflow.predict import find_audio_files, predict_files, summarize, write_predictions
from melflow.registry import (
    DatasetInput,
    PromotionDecision,
    RegisteredModel,
    load_champion,
    log_and_register,
    promote_if_better,
    show,
)
from melflow.runs import rescore_champion
from melflow.tasks.deferred import deferred_task
from melflow.tasks.progress import reporter


def read_table(path: str, *, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """A CSV or Parquet table (by extension) from a local path or URL."""
    data = io.BytesIO(storage.read_bytes(path, storage_options))
    return pd.read_parquet(data) if path.endswith(".parquet") else pd.read_csv(data)


@deferred_task(name="register-model", tags=["stage:register"], uncached=True)
def register_task(
    cfg: PipelineConfig,
    bundle_dir: str,
    history: list[dict[str, Any]],
    report: dict[str, Any],
    artifacts: list[str],
    tags: dict[str, str],
    predictions_path: str,
    lineage: dict[str, str] | None = None,
    inputs: list[DatasetInput] | None = None,
) -> RegisteredModel:
    """Log the evaluated bundle to MLflow and register it as ``challenger`` (``lineage``
    tagged ``melflow.lineage.*``, ``inputs`` logged as the run's datasets)."""
    predictions = read_table(predictions_path, storage_options=cfg.paths.storage_options)
    return log_and_register(
        cfg=cfg,
        bundle_dir=bundle_dir,
        history=history,
        report=report,
        artifacts=artifacts,
        tags=tags,
        predictions=predictions,
        lineage=lineage,
        inputs=inputs or (),
    )


@deferred_task(name="promote-if-better", tags=["stage:register"], uncached=True)
def promote_task(cfg: PipelineConfig, version: str, manifest: StageRef) -> PromotionDecision:
    """Run the promotion gate for ``version`` against the current champion, on one set.

    When the champion was scored on another test split (the corpus grew), its registered
    bundle is first re-scored on ``manifest``'s test split, the challenger's.
    """
    challenger = show(cfg=cfg, ref=version)
    rows = read_manifest(manifest.location, storage_options=cfg.paths.storage_options)
    rescore = rescore_champion(
        cfg, manifest=manifest, manifest_rows=rows, eval_digest_of_challenger=challenger.eval_digest
    )
    return promote_if_better(cfg=cfg, version=challenger.version, champion_rescore=rescore)


@deferred_task(name="predict-files", uncached=True)
def predict_task(
    cfg: PipelineConfig, inputs: list[str], model_ref: str, out: str, batch_size: int
) -> dict[str, Any]:
    """Classify the audio files in ``inputs`` with a registered model, write ``out`` (format
    by extension: csv, json, parquet).

    Returns the :func:`~melflow.predict.summarize` counts plus ``out``, ``version`` and
    ``predict_s`` (seconds spent decoding and classifying, model loading excluded).
    """
    files = find_audio_files(inputs, extensions=cfg.corpus.extensions)
    version = show(cfg=cfg, ref=model_ref).version  # pin the alias once for the whole run
    model = load_champion(cfg=cfg, ref=version)
    start = time.perf_counter()
    predictions = predict_files(
        model.predict, files, batch_size=batch_size, on_progress=reporter("predict")
    )
    write_predictions(predictions, out, storage_options=cfg.paths.storage_options)
    predict_s = time.perf_counter() - start
    return {**summarize(predictions), "out": out, "version": version, "predict_s": predict_s}

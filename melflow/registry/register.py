"""Log a trained, evaluated model as an MLflow run and register it as ``challenger``."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import mlflow
import pandas as pd
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Metric
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import melflow
from melflow import storage
from melflow.config import PipelineConfig
from melflow.errors import ParameterError
from melflow.lineage import bundle_digest, eval_set_digest, flatten, git_commit, report_metrics
from melflow.models.bundle import read_meta
from melflow.registry.names import (
    BUNDLE_ARTIFACT,
    BUNDLE_DIGEST_TAG,
    CHALLENGER,
    EVAL_DIGEST_TAG,
    GIT_COMMIT_TAG,
    LINEAGE_TAG_PREFIX,
    MODEL_ARTIFACT,
    PREDICTIONS_ARTIFACT,
    RUN_STAGE,
)
from melflow.registry.pyfunc import (
    AudioClassifierModel,
    input_example,
    pip_requirements,
    signature,
)
from melflow.registry.session import experiment_id, session
from melflow.registry.versions import is_registered, run_id


@dataclass(frozen=True)
class RegisteredModel:
    """A model version created by :func:`log_and_register`, or found (``existing``) because
    the same bundle was already registered with the same evaluation set."""

    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    existing: bool = False
    experiment_id: str = ""


@dataclass(frozen=True)
class DatasetInput:
    """A dataset a model's run used, recorded with ``mlflow.log_input``.

    ``digest`` is melflow's own (manifest, feature store, evaluation set digests), so the
    MLflow UI shows the identity that the cache keys and ``melflow status`` use; ``source``
    is where the data lives (local path or URL); ``context`` says what it was used for.
    """

    name: str
    digest: str
    source: str
    context: Literal["training", "test"]


def run_name(cfg: PipelineConfig, bundle: str) -> str:
    """``<profile>/train/<first 8 characters of the bundle digest>``."""
    return f"{cfg.name}/{RUN_STAGE}/{bundle[:8]}"


def _log_inputs(inputs: Sequence[DatasetInput]) -> None:
    for dataset in inputs:
        # A dataset known by its digest alone: MLflow reads none of its data. (The class
        # declares ``profile`` abstract in its stubs but implements it.)
        meta = MetaDataset(  # type: ignore[abstract]
            source=resolve_dataset_source(dataset.source),
            name=dataset.name,
            digest=dataset.digest,
        )
        mlflow.log_input(meta, context=dataset.context)


def _history_metrics(history: list[dict[str, Any]]) -> list[Metric]:
    now = int(datetime.now(UTC).timestamp() * 1000)
    return [
        Metric(key, float(value), now, int(entry["epoch"]))
        for entry in history
        for key, value in entry.items()
        if key != "epoch" and value is not None
    ]


def log_artifacts(client: MlflowClient, run_id: str, paths: list[str], cfg: PipelineConfig) -> None:
    """Log report files (local or on object storage) under ``figures/`` or ``reports/``."""
    with tempfile.TemporaryDirectory(prefix="melflow-artifacts-") as tmp:
        for path in paths:
            if not storage.exists(path, cfg.paths.storage_options):
                raise ParameterError(f"artifact {path} does not exist")
            local = path
            if storage.is_url(path):  # MLflow logs local files only
                local = str(Path(tmp, path.rsplit("/", 1)[-1]))
                Path(local).write_bytes(storage.read_bytes(path, cfg.paths.storage_options))
            suffix = Path(local).suffix.lower()
            folder = "figures" if suffix in {".png", ".svg", ".jpg"} else "reports"
            client.log_artifact(run_id, local, artifact_path=folder)


def _existing_version(client: MlflowClient, name: str, tags: dict[str, str]) -> ModelVersion | None:
    """A version of ``name`` with the same bundle and evaluation set, if already registered."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for mv in versions:
        if all(mv.tags.get(k) == v for k, v in tags.items()):
            return mv
    return None


def log_and_register(
    *,
    cfg: PipelineConfig,
    bundle_dir: str,
    history: list[dict[str, Any]],
    report: dict[str, Any],
    artifacts: list[str],
    tags: dict[str, str],
    predictions: pd.DataFrame,
    lineage: Mapping[str, str] | None = None,
    inputs: Sequence[DatasetInput] = (),
) -> RegisteredModel:
    """Log a trained, evaluated model as an MLflow run and register it as ``challenger``.

    Idempotent: a bundle already registered with the same evaluation set returns that
    version instead of a duplicate.

    Parameters
    ----------
    cfg : PipelineConfig
        Logged in full as flattened params; ``registry`` names the experiment and model.
    bundle_dir : str
        A local bundle (:func:`melflow.models.bundle.save_bundle`).
    history : list of dict
        One dict per epoch with ``epoch`` and metrics (``train_loss``, ``val_loss``,
        ``val_accuracy``, ``val_macro_f1``, ``lr``), logged as steps.
    report : dict
        A test-set :func:`~melflow.evaluation.metrics.classification_report`.
    artifacts : list of str
        Local files: images go under ``figures/``, everything else under ``reports/``.
    tags : dict
        Run tags under their full names (e.g. ``melflow.prefect.flow_run_id``).
    predictions : DataFrame
        One row per test clip with ``clip_id``, ``label`` (truth) and ``pred``; stored as
        an artifact for paired significance tests.
    lineage : mapping, optional
        Where the data came from (``profile``, ``manifest_digest``, ``feature_store``...),
        tagged ``melflow.lineage.<key>``.
    inputs : sequence of DatasetInput
        The datasets used, logged as the run's dataset inputs.

    The run is named :func:`run_name` and tagged with the melflow commit
    (``mlflow.source.git.commit``) when melflow runs from a git checkout.

    Returns
    -------
    RegisteredModel
    """
    meta = read_meta(bundle_dir)
    bundle = bundle_digest(bundle_dir)
    identity = {
        BUNDLE_DIGEST_TAG: bundle,
        EVAL_DIGEST_TAG: eval_set_digest(predictions),
    }
    metrics = report_metrics(report)
    name = cfg.registry.model_name
    with session(cfg) as client:
        found = _existing_version(client, name, identity)
        if found is not None:
            old_run = run_id(found)
            experiment = client.get_run(old_run).info.experiment_id
            return RegisteredModel(
                name, str(found.version), old_run, metrics, existing=True, experiment_id=experiment
            )
        commit = git_commit()
        run_tags = {
            **{f"{LINEAGE_TAG_PREFIX}{k}": v for k, v in (lineage or {}).items()},
            **tags,
            **identity,
            **({GIT_COMMIT_TAG: commit} if commit else {}),
        }
        experiment = experiment_id(client, cfg)
        with mlflow.start_run(
            experiment_id=experiment, run_name=run_name(cfg, bundle), tags=run_tags
        ) as run:
            new_run = run.info.run_id
            mlflow.log_params(flatten(cfg.model_dump(mode="json")))
            _log_inputs(inputs)
            client.log_batch(new_run, metrics=_history_metrics(history))
            mlflow.log_metrics(metrics)
            mlflow.log_dict(report, "reports/report.json")
            log_artifacts(client, new_run, artifacts, cfg)
            mlflow.log_text(predictions.to_csv(index=False), PREDICTIONS_ARTIFACT)
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=AudioClassifierModel(),
                artifacts={BUNDLE_ARTIFACT: bundle_dir},
                code_paths=[str(Path(melflow.__file__).parent)],
                signature=signature(meta.classes),
                input_example=input_example(int(meta.audio["sr"])),
                pip_requirements=pip_requirements(),
            )
        if not is_registered(client, name):
            client.create_registered_model(
                name, description="melflow sound classifier (raw audio in)"
            )
        mv = client.create_model_version(
            name,
            source=info.model_uri,
            run_id=new_run,
            model_id=info.model_id,
            tags=identity,
        )
        client.set_registered_model_alias(name, CHALLENGER, mv.version)
        return RegisteredModel(name, str(mv.version), new_run, metrics, experiment_id=experiment)

"""A client session on the MLflow store (where it is: :mod:`melflow.registry.location`)."""

from __future__ import annotations

import logging
import os
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow.exceptions import MlflowException
from mlflow.telemetry.client import set_telemetry_client
from mlflow.tracking import MlflowClient

from melflow import storage
from melflow.config import PipelineConfig
from melflow.errors import MelflowError
from melflow.layout import Layout
from melflow.registry.location import (
    ROOT_MARKER,
    SQLITE,
    artifact_root,
    is_default_store,
    tracking_uri,
)

_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def _quiet_env(cfg: PipelineConfig) -> Iterator[None]:
    """MLflow's URI, S3 and telemetry environment for the session, restored afterwards."""
    # Artifacts on S3 are written by MLflow's own boto3 client, which reads only the
    # environment: the endpoint and credentials of paths.storage_options go there.
    s3_env = storage.s3_environment(cfg.paths.storage_options)
    keys = (*_URI_ENV, "MLFLOW_DISABLE_TELEMETRY", *s3_env)
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update(s3_env)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # melflow never phones home
    set_telemetry_client()  # re-reads the variable: drops a client made at import
    logger = logging.getLogger("mlflow")
    saved_level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for category in (UserWarning, FutureWarning, DeprecationWarning):
                warnings.simplefilter("ignore", category)
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        logger.setLevel(saved_level)


# Where MLflow's SQLite schema keeps absolute artifact locations.
_LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)


def _follow_moved_artifacts(db: Path, artifacts: Path) -> None:
    """Point the store's artifact locations at ``artifacts`` when the data folder moved.

    MLflow records absolute artifact paths; ``mlartifacts/.location`` remembers where they
    were written, and a copied or moved data folder rewrites them to its own on first use.
    """
    marker = artifacts / ROOT_MARKER
    new = str(artifacts)
    old = marker.read_text() if marker.exists() else new
    if old != new:
        with sqlite3.connect(db) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
            for table, column in _LOCATION_COLUMNS:
                if table in tables:
                    connection.execute(
                        f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                        f"WHERE substr({column}, 1, ?) = ?",
                        (new, len(old) + 1, len(old), old),
                    )
    artifacts.mkdir(parents=True, exist_ok=True)
    if old != new or not marker.exists():
        marker.write_text(new)


def _prepare_sqlite_store(cfg: PipelineConfig, uri: str) -> None:
    """Create the SQLite store once, under a lock (two processes creating its tables at once
    fail with ``table ... already exists``), and follow a moved data folder."""
    db = Path(uri.removeprefix(SQLITE))
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{db}.lock"):
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        if is_default_store(cfg, db):
            _follow_moved_artifacts(db, Path(Layout.of(cfg).mlartifacts()))


@contextmanager
def session(cfg: PipelineConfig) -> Iterator[MlflowClient]:
    """A client on ``cfg``'s store, quietly; MLflow errors become ``MelflowError``.

    MLflow's fluent API (used to log a model) keeps the URI in process globals; they are
    set for the session and reset afterwards so one process can serve several stores.
    """
    uri = tracking_uri(cfg)
    try:
        with _quiet_env(cfg):
            if uri.startswith(SQLITE):
                _prepare_sqlite_store(cfg, uri)
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            try:
                yield MlflowClient(tracking_uri=uri, registry_uri=uri)
            finally:
                mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
                mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    except MlflowException as exc:
        raise MelflowError(f"MLflow ({uri}): {exc.message}") from None


def experiment_id(client: MlflowClient, cfg: PipelineConfig) -> str:
    """The configured experiment's id, created on first use."""
    experiment = client.get_experiment_by_name(cfg.registry.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(
        client.create_experiment(cfg.registry.experiment, artifact_location=artifact_root(cfg))
    )


def logged_run(client: MlflowClient, experiment: str, tag: str, digest: str) -> str | None:
    """The id of a run already logged with ``tag = digest`` (parents are logged once)."""
    found = client.search_runs(
        [experiment], filter_string=f"tags.`{tag}` = '{digest}'", max_results=1
    )
    return str(found[0].info.run_id) if found else None

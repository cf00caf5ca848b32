"""Where the MLflow store is (no MLflow import: read-only commands need only this).

Tracking defaults to a local SQLite database ``<data_dir>/mlflow.db`` with artifacts in
``<data_dir>/mlartifacts``; ``registry.tracking_uri`` or ``$MLFLOW_TRACKING_URI`` (which
wins) points elsewhere, e.g. at an MLflow server.
"""

from __future__ import annotations

import os
from pathlib import Path

from melflow import storage
from melflow.config import PipelineConfig
from melflow.errors import ConfigError
from melflow.layout import Layout

SQLITE = "sqlite:///"
# Beside the artifacts: the folder they were written in (see session._follow_moved_artifacts).
ROOT_MARKER = ".location"


def tracking_uri(cfg: PipelineConfig) -> str:
    """Where runs and the registry live: ``$MLFLOW_TRACKING_URI``, else the config, else SQLite.

    Raises
    ------
    ConfigError
        ``paths.data_dir`` is a URL and no tracking URI is configured (SQLite needs a
        local file).
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.registry.tracking_uri
    if uri:
        return uri
    if storage.is_url(cfg.paths.data_dir):
        raise ConfigError(
            f"paths.data_dir={cfg.paths.data_dir!r} is a URL; set registry.tracking_uri "
            "(e.g. sqlite:////abs/path/mlflow.db or http://127.0.0.1:5000)"
        )
    return f"{SQLITE}{Layout.of(cfg).mlflow_db()}"


def artifact_root(cfg: PipelineConfig) -> str | None:
    """Artifact location of new experiments; ``None`` lets a tracking server decide."""
    if tracking_uri(cfg).startswith(("http://", "https://")):
        return None
    layout = Layout.of(cfg)
    return layout.mlartifacts() if not layout.is_url else layout.path("mlartifacts")


def store_exists(cfg: PipelineConfig) -> bool:
    """False when the default SQLite store was never created (read-only commands stop there)."""
    uri = tracking_uri(cfg)
    return not uri.startswith(SQLITE) or Path(uri.removeprefix(SQLITE)).exists()


def is_default_store(cfg: PipelineConfig, db: Path) -> bool:
    """``db`` is the data folder's own SQLite store (whose artifact paths follow a move)."""
    layout = Layout.of(cfg)
    return not layout.is_url and db == Path(layout.mlflow_db())


def readable_sqlite(cfg: PipelineConfig) -> Path | None:
    """The SQLite file a reader may query directly, or ``None`` when MLflow must open it.

    ``None`` for a tracking server, a URI with options, a store not created yet, and the
    data folder's own store after a move (MLflow's session rewrites its artifact paths
    first, so every reader sees the same ``source``).
    """
    uri = tracking_uri(cfg)
    if not uri.startswith(SQLITE) or "?" in uri:
        return None
    db = Path(uri.removeprefix(SQLITE))
    if not db.is_file():
        return None
    if is_default_store(cfg, db):
        artifacts = Path(Layout.of(cfg).mlartifacts())
        marker = artifacts / ROOT_MARKER
        if not marker.is_file() or marker.read_text() != str(artifacts):
            return None
    return db

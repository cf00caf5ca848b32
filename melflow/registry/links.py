"""Where a person looks at the tracking store: the UI command, a run's URL.

A local store (SQLite, a folder, a database) has no UI of its own: ``mlflow ui`` serves
one. A tracking server *is* the UI, so ``mlflow ui --backend-store-uri http://…`` would
be wrong: its URL is the hint. Credentials in a URL are never repeated.
"""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit, urlunsplit

from melflow.config import PipelineConfig
from melflow.registry.session import tracking_uri

LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc)).rstrip("/")


def ui_url(cfg: PipelineConfig) -> str:
    """The MLflow UI's base URL: the tracking server, else what :func:`ui_command` serves."""
    uri = tracking_uri(cfg)
    return _without_credentials(uri) if _is_server(uri) else LOCAL_UI


def ui_command(cfg: PipelineConfig) -> str | None:
    """The shell command that serves a UI on the local store; ``None`` for a server."""
    uri = tracking_uri(cfg)
    if _is_server(uri):
        return None
    return f"mlflow ui --backend-store-uri {shlex.quote(uri)} --host 127.0.0.1"


def run_url(cfg: PipelineConfig, *, experiment_id: str, run_id: str) -> str:
    """A run's page in the MLflow UI (for a local store, once :func:`ui_command` runs)."""
    return f"{ui_url(cfg)}/#/experiments/{experiment_id}/runs/{run_id}"

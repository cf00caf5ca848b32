"""Where a person looks at an MLflow tracking store: the UI command, a run's URL.

A local store (SQLite, a folder, a database) has no UI of its own: ``mlflow ui`` serves
one. A tracking server *is* the UI, so ``mlflow ui --backend-store-uri http://…`` would
be wrong: its URL is the hint. Credentials in a URL are never repeated. Plain strings
only (no MLflow import), so the command line's fast path can print them.
"""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit, urlunsplit

LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc)).rstrip("/")


def ui_url(tracking_uri: str) -> str:
    """The MLflow UI's base URL: the tracking server, else what :func:`ui_command` serves."""
    return _without_credentials(tracking_uri) if _is_server(tracking_uri) else LOCAL_UI


def ui_command(tracking_uri: str) -> str | None:
    """The shell command that serves a UI on a local store; ``None`` for a server."""
    if _is_server(tracking_uri):
        return None
    return f"mlflow ui --backend-store-uri {shlex.quote(tracking_uri)} --host 127.0.0.1"


def run_url(tracking_uri: str, *, experiment_id: str, run_id: str) -> str:
    """A run's page in the MLflow UI (for a local store, once :func:`ui_command` runs)."""
    return f"{ui_url(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}"

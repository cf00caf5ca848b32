"""Checks a command runs before any work: each failure is one clear error, in seconds.

Without them a bad data folder surfaced as a traceback after the corpus was probed (or
was retried as if transient), a missing corpus root only after the Prefect server had
started, and an unreachable Dask scheduler or MLflow server after a minute of retries.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from melflow import storage
from melflow.config import PipelineConfig
from melflow.errors import ConfigError

CONNECT_TIMEOUT_S = 5.0
# File systems that hold no user data: writes there fail or vanish.
VIRTUAL_FILE_SYSTEMS = frozenset({"proc", "sysfs", "devtmpfs", "cgroup", "cgroup2", "debugfs"})


def _mount_type(path: Path) -> str | None:
    """The file system type of the mount holding ``path`` (Linux ``/proc/mounts``)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    best, fs_type = "", None
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fs_type = point, parts[2]
    return fs_type


def check_data_dir(cfg: PipelineConfig) -> None:
    """``paths.data_dir`` is (or can be made) a writable local folder; URLs pass unchecked.

    Creates the folder, then writes and removes a probe file in it: permission bits say
    nothing to root, nor about read-only mounts or immutable folders.

    Raises
    ------
    ConfigError
        A file sits in the path, the folder is on a virtual file system (``/proc``), or
        it cannot be created or written.
    """
    data_dir = cfg.paths.data_dir
    if storage.is_url(data_dir):
        return
    path = Path(data_dir).absolute()
    field = f"paths.data_dir={data_dir!r}"
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"{field}: {existing} is a file, not a folder; choose another folder")
    fs_type = _mount_type(path)
    if fs_type in VIRTUAL_FILE_SYSTEMS:
        raise ConfigError(f"{field} is on the virtual {fs_type} file system; use a real folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".melflow-write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{field}: cannot write there ({exc.strerror or exc}); "
            "fix its permissions or choose another folder"
        ) from exc


def check_corpus_root(cfg: PipelineConfig) -> None:
    """A local ``corpus.root`` exists as a folder (unless the demo corpus will fill it)."""
    root = cfg.corpus.root
    if storage.is_url(root):
        return
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"corpus.root={root!r} is a file; give the corpus folder")
    if not path.exists() and cfg.corpus.demo is None:
        raise ConfigError(
            f"corpus.root={root!r} does not exist; set corpus.root to your corpus folder "
            "(or corpus.demo to generate the demo corpus there)"
        )


def check_reachable(url: str, *, what: str, fix: str) -> None:
    """A TCP connection to ``url``'s host and port opens within :data:`CONNECT_TIMEOUT_S`.

    Raises
    ------
    ConfigError
        Naming ``what``, the address, the reason and ``fix``.
    """
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ConfigError(f"{what} address {url!r} is invalid ({exc}); {fix}") from None
    if not parts.hostname or port is None:
        raise ConfigError(f"{what} address {url!r} needs a host and a port; {fix}")
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConfigError(f"no {what} answers at {url} ({reason}); {fix}") from None


def check_dask(cfg: PipelineConfig) -> None:
    """The configured Dask scheduler (``dask.address``), if any, accepts connections."""
    if cfg.dask.address:
        check_reachable(
            cfg.dask.address,
            what="Dask scheduler",
            fix="start it (dask scheduler) or drop --dask-address to use a local cluster",
        )


def check_tracking(uri: str) -> None:
    """An HTTP MLflow tracking server at ``uri`` accepts connections (other URIs pass)."""
    if urlsplit(uri).scheme in ("http", "https"):
        check_reachable(
            uri,
            what="MLflow server",
            fix="start it (mlflow server) or unset registry.tracking_uri / MLFLOW_TRACKING_URI",
        )


def configured_tracking_uri(cfg: PipelineConfig) -> str:
    """The tracking URI set by ``$MLFLOW_TRACKING_URI`` or ``registry.tracking_uri`` ('' when
    neither is: the local SQLite default, nothing to reach)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or cfg.registry.tracking_uri or ""


def check_for_work(cfg: PipelineConfig, *, registry: bool) -> None:
    """Everything a stage command needs before it starts Prefect, Dask or MLflow."""
    from melflow.flows.orchestration import mode

    mode()
    check_corpus_root(cfg)
    check_data_dir(cfg)
    check_dask(cfg)
    if registry:
        check_tracking(configured_tracking_uri(cfg))

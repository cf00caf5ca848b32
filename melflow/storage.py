"""Uniform file access for local paths and fsspec URLs (``s3://``, ``memory://``...).

Every write that a later run relies on (manifests, plans, markers) goes through
:func:`write_bytes_atomic`, so a killed run never leaves a half-written file behind.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import fsspec

from melflow.digest import digest_of


def is_url(path: str) -> bool:
    """True for ``scheme://`` URLs other than ``file://``."""
    return "://" in path and not path.startswith("file://")


def filesystem(path: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem for ``path`` and the path as that filesystem spells it."""
    fs, _, paths = fsspec.get_fs_token_paths(path, storage_options=storage_options or {})
    return fs, paths[0]


def source_fs(path: str, storage_options: dict[str, Any] | None = None) -> Any | None:
    """The fsspec filesystem to read ``path`` with, or ``None`` for a local path."""
    return filesystem(path, storage_options)[0] if is_url(path) else None


# s3fs option -> the variable boto3-based tools (MLflow's S3 artifact store) read instead.
_S3_VARIABLES = {
    "key": "AWS_ACCESS_KEY_ID",
    "secret": "AWS_SECRET_ACCESS_KEY",
    "token": "AWS_SESSION_TOKEN",
}


def s3_environment(storage_options: dict[str, Any]) -> dict[str, str]:
    """Environment variables that give boto3 the endpoint and credentials of ``storage_options``.

    For libraries that take no options, only the environment: MLflow's S3 artifact store
    reads ``MLFLOW_S3_ENDPOINT_URL`` and the ``AWS_*`` credentials.
    """
    env = {
        var: str(storage_options[k]) for k, var in _S3_VARIABLES.items() if storage_options.get(k)
    }
    client_kwargs = storage_options.get("client_kwargs") or {}
    endpoint = storage_options.get("endpoint_url") or client_kwargs.get("endpoint_url")
    if endpoint:
        env["MLFLOW_S3_ENDPOINT_URL"] = str(endpoint)
    return env


def absolute(path: str) -> str:
    """``path`` resolved against the working directory; URLs are returned unchanged.

    What a process hands to Dask workers must be absolute: a worker of an existing
    cluster runs in another working directory.
    """
    return path if is_url(path) else os.path.abspath(path)


def _local(path: str) -> str:
    """A local path without its optional ``file://`` prefix."""
    return path.removeprefix("file://")


def join(base: str, *parts: str) -> str:
    """Join path segments with ``/`` for URLs and the OS separator for local paths."""
    if is_url(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base, *parts))


def _fresh(path: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    """Like :func:`filesystem`, with cached listings of ``path`` and its parents dropped.

    Object-store filesystems are shared per process and cache directory listings, so
    markers and plans written by workers or other runs would otherwise stay invisible.
    """
    fs, p = filesystem(path, storage_options)
    fs.invalidate_cache(p)
    return fs, p


def exists(path: str, storage_options: dict[str, Any] | None = None) -> bool:
    if not is_url(path):  # markers are checked per batch: skip fsspec's dispatch locally
        return os.path.exists(_local(path))
    fs, p = _fresh(path, storage_options)
    return bool(fs.exists(p))


def read_bytes(path: str, storage_options: dict[str, Any] | None = None) -> bytes:
    if not is_url(path):
        return Path(_local(path)).read_bytes()
    fs, p = filesystem(path, storage_options)
    return bytes(fs.cat_file(p))


def write_bytes_atomic(
    path: str, data: bytes, storage_options: dict[str, Any] | None = None
) -> None:
    """Write ``data`` so readers see either the old file or the whole new one.

    Local files are written to a temporary sibling and renamed; object stores make a
    single PUT atomic already.
    """
    if is_url(path):
        fs, p = filesystem(path, storage_options)
        fs.pipe_file(p, data)
        return
    path = _local(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.partial"
    with open(tmp, "wb") as f:
        f.write(data)
    # The rename gives atomicity; no fsync: Zarr's chunk writes are not synced either, so a
    # synced marker could not vouch for more than the data it marks.
    os.replace(tmp, path)


def create_exclusive(path: str, data: bytes, storage_options: dict[str, Any] | None = None) -> None:
    """Write ``data`` to ``path`` only if nothing is there yet; else :class:`FileExistsError`.

    The building block of planning across machines. Object stores get a conditional PUT
    (``If-None-Match: *``, honoured by S3 and S3-compatible stores); a local file is a hard
    link to a complete temporary file, so a reader never sees it half-written.
    """
    if is_url(path):
        fs, p = filesystem(path, storage_options)
        fs.pipe_file(p, data, mode="create")
        return
    path = _local(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.partial"
    Path(tmp).write_bytes(data)
    try:
        os.link(tmp, path)
    finally:
        os.unlink(tmp)


def remove(path: str, storage_options: dict[str, Any] | None = None) -> None:
    """Delete the file at ``path`` if it exists."""
    if not is_url(path):
        Path(_local(path)).unlink(missing_ok=True)
        return
    fs, p = filesystem(path, storage_options)
    if fs.exists(p):
        fs.rm_file(p)


def listdir_names(path: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Sorted base names of the entries under ``path`` (empty when it does not exist)."""
    fs, p = _fresh(path, storage_options)
    if not fs.exists(p):
        return []
    return sorted(str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(p, detail=False))


def user_state_dir() -> Path:
    """A per-user folder for the local state of URL data folders: ``$XDG_CACHE_HOME/melflow``.

    Not a fixed name in the shared temp directory, which another user could create first.
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base, "melflow")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def lock_path(path: str) -> str:
    """A local lock file for ``path``: beside it when local, in :func:`user_state_dir` for URLs.

    Object stores have no file locks; the local lock still serialises writers on one machine.
    """
    if is_url(path):
        folder = user_state_dir() / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / f"{digest_of(path)}.lock")
    Path(path).mkdir(parents=True, exist_ok=True)
    return str(Path(path, ".lock"))

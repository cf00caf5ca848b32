"""The manifest: one row per clip, the single source of truth for every later stage.

Columns (in order): ``clip_id`` (stable, the corpus-relative POSIX path), ``path``
(absolute path or URL), ``label``, ``split`` (``train``/``val``/``test``), ``fold``
(int, -1 when unknown), ``group`` (speaker / source recording; never in two splits),
``sha256`` (of the file bytes), ``offset_s`` (NaN for a whole file; for a window of a long
file, its start in seconds: see :mod:`melflow.ingest.segments`), ``duration_s`` (of the file,
or of the window), ``sr``, ``channels`` (of the source file),
and ``status`` (``ok`` or a quarantine reason from :data:`melflow.audio.io.REASONS`),
``detail`` (human-readable cause for quarantined rows).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from melflow import storage
from melflow.digest import digest_of
from melflow.errors import MelflowError

COLUMNS: tuple[str, ...] = (
    "clip_id",
    "path",
    "label",
    "split",
    "fold",
    "group",
    "sha256",
    "offset_s",
    "duration_s",
    "sr",
    "channels",
    "status",
    "detail",
)
SPLITS: tuple[str, ...] = ("train", "val", "test")
OK = "ok"
# Only these columns define a clip's identity for downstream stages: a moved corpus
# (new absolute ``path``) or a reworded ``detail`` must not invalidate features.
IDENTITY_COLUMNS: tuple[str, ...] = (
    "clip_id",
    "label",
    "split",
    "fold",
    "group",
    "sha256",
    "status",
)


def _dtype(column: str) -> str:
    return {
        "fold": "int64",
        "sr": "int64",
        "channels": "int64",
        "offset_s": "float64",
        "duration_s": "float64",
    }.get(column, "object")


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Canonical column order and dtypes, rows sorted by ``clip_id``, fresh index.

    A manifest without ``offset_s`` (written before windows existed, or by hand) holds
    whole files only.
    """
    if "offset_s" not in df.columns:
        df = df.assign(offset_s=math.nan)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise MelflowError(f"manifest lacks columns {missing}")
    out = df.loc[:, list(COLUMNS)].copy()
    for column in COLUMNS:
        out[column] = out[column].astype(_dtype(column))
    return out.sort_values("clip_id", kind="stable").reset_index(drop=True)


def manifest_digest(df: pd.DataFrame) -> str:
    """Digest of the identity columns of every row, independent of row order."""
    rows = normalize(df).loc[:, list(IDENTITY_COLUMNS)]
    return digest_of(rows.astype(str).to_numpy().tolist())


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows usable for features (``status == 'ok'``), sorted by ``clip_id``."""
    return normalize(df[df["status"] == OK])


def write_manifest(
    df: pd.DataFrame, path: str, *, storage_options: dict[str, Any] | None = None
) -> None:
    """Write a normalized manifest as Parquet (local path or fsspec URL), atomically."""
    storage.write_bytes_atomic(path, manifest_bytes(df), storage_options)


def manifest_bytes(df: pd.DataFrame) -> bytes:
    """The Parquet bytes of a normalized manifest."""
    buffer = io.BytesIO()
    normalize(df).to_parquet(buffer, index=False)
    return buffer.getvalue()


def manifest_batches(
    path: str,
    *,
    rows: int = 16_384,
    columns: list[str] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Iterator[pa.RecordBatch]:
    """A manifest file as consecutive Arrow record batches of up to ``rows`` rows, in order.

    The file is read as it is consumed, so memory stays bounded by ``rows`` whatever the
    corpus size (planning at scale); ``columns`` limits what is decoded. Planning filters
    these in Arrow and turns only new clips into Python objects (:func:`batch_frame`).
    """
    import pyarrow.parquet as pq  # pandas' Parquet engine; imported where it is used

    fs, local = storage.filesystem(path, storage_options) if storage.is_url(path) else (None, path)
    with fs.open(local, "rb") if fs is not None else open(local, "rb") as f:
        # Neither read-ahead nor threads: both hold several row groups at once, and their
        # allocations grow the process by ~60 MB at a million rows (as much as all the
        # rest of planning), for no gain in time on a scan this simple.
        reader = pq.ParquetFile(f, pre_buffer=False)
        yield from reader.iter_batches(batch_size=rows, columns=columns, use_threads=False)


def batch_frame(batch: pa.RecordBatch) -> pd.DataFrame:
    """Rows of a manifest record batch as a frame with the manifest's dtypes."""
    frame = batch.to_pandas(use_threads=False)
    # Parquet nulls (a whole file's NaN offset_s) come back as NaN, as normalize() has them.
    numeric = {c: _dtype(c) for c in frame.columns if _dtype(c) != "object"}
    return frame.astype(numeric)


def manifest_chunks(
    path: str,
    *,
    rows: int = 65_536,
    columns: list[str] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Iterator[pd.DataFrame]:
    """:func:`manifest_batches` as frames (:func:`batch_frame`)."""
    for batch in manifest_batches(
        path, rows=rows, columns=columns, storage_options=storage_options
    ):
        yield batch_frame(batch)


def read_manifest(path: str, *, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Read and normalize a manifest written by :func:`write_manifest`.

    ``storage_options`` apply to URLs only; a local path ignores them.
    """
    return normalize(pd.read_parquet(io.BytesIO(storage.read_bytes(path, storage_options))))


def spans(df: pd.DataFrame) -> list[list[float] | None]:
    """Per row, ``[offset_s, duration_s]`` of a window, or ``None`` for a whole file.

    JSON-able, for store plans; :func:`melflow.audio.io.load_clips` takes them as ``spans``.
    """
    offsets = df["offset_s"].tolist()
    durations = df["duration_s"].tolist()
    return [
        None if math.isnan(o) else [float(o), float(d)]
        for o, d in zip(offsets, durations, strict=True)
    ]


@dataclass(frozen=True)
class CorpusChanges:
    """How a manifest differs from the previous one, by ``clip_id``."""

    added: int
    changed: int
    removed: int

    @property
    def any(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def __str__(self) -> str:
        return f"{self.added} new, {self.changed} changed, {self.removed} removed clips"


def corpus_changes(before: pd.DataFrame | None, after: pd.DataFrame) -> CorpusChanges:
    """Compare two manifests (``None`` = no previous manifest: everything is new).

    A clip is changed when its bytes (``sha256``) differ.
    """
    if before is None:
        return CorpusChanges(added=len(after), changed=0, removed=0)
    old = before.set_index("clip_id")["sha256"]
    new = after.set_index("clip_id")["sha256"]
    common = old.index.intersection(new.index)
    return CorpusChanges(
        added=int((~new.index.isin(old.index)).sum()),
        changed=int((old[common] != new[common]).sum()),
        removed=int((~old.index.isin(new.index)).sum()),
    )

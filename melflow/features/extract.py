"""Feature extraction of a manifest into a :class:`~melflow.features.store.RowStore`.

The store's location depends only on the audio and feature configuration and the code
version, so new clips are *appended* to it; each row is keyed by ``clip_id`` and the
file's SHA-256, so a changed file gets a new row and a removed one is simply no longer
selected. Completion for a given manifest is recorded under the manifest's digest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from melflow.config import AudioConfig, FeaturesConfig, PipelineConfig
from melflow.digest import digest_of
from melflow.features.batch import STORED_COLUMNS, extract_batch
from melflow.features.shapes import feature_shapes
from melflow.features.stage import StoreStage
from melflow.features.store import KEY, ArraySpec, FillResult, RowStore, StoreLayout
from melflow.manifest import OK, batch_frame, spans

# 3: stores keep a key index and name plans by their batch range (new store URLs; the
# augmented store follows, its digest includes this one).
EXTRACT_CODE_VERSION = "3"
FEATURE_COLUMNS: tuple[str, ...] = ("clip_id", "label", "split", "group", "sha256")
# What planning reads of a manifest.
ITEM_COLUMNS: tuple[str, ...] = ("path", *FEATURE_COLUMNS, "offset_s", "duration_s", "status")


ExtractResult = FillResult


def clip_key(clip_id: str, sha256: str) -> str:
    """Row identity in a feature store: the clip and the exact bytes it had."""
    return f"{clip_id}#{sha256[:16]}"


def n_samples(audio: AudioConfig) -> int:
    """Samples per clip after pad/crop."""
    return round(audio.sr * audio.duration_s)


def feature_layout(
    *,
    audio: AudioConfig,
    features: FeaturesConfig,
    kind: str = "features",
    columns: tuple[str, ...] = STORED_COLUMNS,
) -> StoreLayout:
    """Arrays and columns of a feature store for this configuration.

    ``columns`` are the per-row string columns; derived stores (the augmented store)
    pass the clean columns plus their own.
    """
    shapes = feature_shapes(n_samples=n_samples(audio), cfg=features)
    return StoreLayout(
        arrays=tuple(ArraySpec(k, shape, features.dtype) for k, shape in shapes.items()),
        columns=columns,
        chunk_rows=features.batch_size,
        shard_chunks=features.shard_chunks,
        compression_level=features.compression_level,
        attrs={
            "kind": kind,
            "audio": audio.model_dump(mode="json"),
            "features": features.identity(),
            "code_version": EXTRACT_CODE_VERSION,
        },
    )


def feature_store_digest(cfg: PipelineConfig) -> str:
    """Identity of the clean feature store: audio + features config + code version.

    The storage settings (``features.batch_size``, ``shard_chunks``, ``compression_level``)
    are left out: they apply when a store is created and change no feature value.
    """
    return digest_of("features", EXTRACT_CODE_VERSION, cfg.audio, cfg.features.identity())


def clip_keys(rows: pd.DataFrame) -> np.ndarray:
    """:func:`clip_key` of every row (``clip_id`` and ``sha256`` columns), shape ``(n,)``.

    Joined by Arrow: one Python string per row, built once (planning a million clips).
    """
    keys = arrow_clip_keys(rows["clip_id"].astype(str), rows["sha256"].astype(str))
    return np.asarray(keys.to_numpy(zero_copy_only=False), dtype=object)


def arrow_clip_keys(clip_id: Any, sha256: Any) -> pa.Array:
    """:func:`clip_key` of each pair of ``clip_id`` and ``sha256`` strings, as Arrow strings.

    The columns may be Arrow arrays or anything :func:`pyarrow.array` takes.
    """
    ids = pa.array(clip_id, type=pa.large_string())
    shas = pc.utf8_slice_codeunits(pa.array(sha256, type=pa.large_string()), 0, 16)
    return pc.binary_join_element_wise(ids, shas, pa.scalar("#", type=pa.large_string()))


def manifest_items(
    rows: pd.DataFrame, keys: Sequence[str] | np.ndarray | None = None
) -> list[dict[str, Any]]:
    """One store item per row of ``rows`` (usable clips, in order): key, columns, path and span.

    ``span`` is ``[offset_s, duration_s]`` for a window of a long file, else ``None``.
    """
    fields = (KEY, "path", *FEATURE_COLUMNS, "span")
    keys = clip_keys(rows) if keys is None else keys
    columns = [list(keys), *(rows[name].tolist() for name in fields[1:-1]), spans(rows)]
    # One dict per row from zipped column lists: several times faster than itertuples.
    return [dict(zip(fields, values, strict=True)) for values in zip(*columns, strict=True)]


def unplanned_items(
    store: RowStore, frames: Iterable[pd.DataFrame | pa.RecordBatch]
) -> tuple[list[dict[str, Any]], int]:
    """Items of the usable rows whose key ``store`` has not planned, and the usable row count.

    ``frames`` are a manifest, whole or in consecutive chunks: frames, or Arrow record
    batches (:func:`~melflow.manifest.manifest_batches`; the columns of
    :data:`ITEM_COLUMNS` suffice). The key index is read once and only new clips become
    items (sorted by ``clip_id`` within a frame); a record batch is tested in Arrow and only
    its new rows are converted. Planning holds one chunk plus 16 bytes per planned clip,
    whatever the corpus size.
    """
    known = store.key_index()
    items: list[dict[str, Any]] = []
    n_rows = 0
    for frame in frames:
        if isinstance(frame, pa.RecordBatch):
            ok = pc.equal(frame.column("status"), OK)
            # Filtering copies every column: not when every clip is usable (the rule).
            usable = frame if pc.all(ok).as_py() else frame.filter(ok)
            ids, shas = usable.column("clip_id"), usable.column("sha256")
        else:
            usable = frame[frame["status"] == OK]
            ids, shas = usable["clip_id"].astype(str), usable["sha256"].astype(str)
        ids = pa.array(ids, type=pa.large_string())
        keys = arrow_clip_keys(ids, shas)
        new = np.flatnonzero(store.unplanned(keys, known))
        n_rows += len(keys)
        if not len(new):  # the common case at scale: converting nothing still costs ~3 ms
            continue
        # In clip_id order (stable; Arrow compares UTF-8 bytes: the order of code points).
        new = new[np.asarray(pc.sort_indices(ids.take(new)))]
        if isinstance(usable, pa.RecordBatch):
            rows = batch_frame(usable.take(pa.array(new, type=pa.int64())))
        else:
            rows = usable.iloc[new]
        items += manifest_items(rows, keys.take(new).to_numpy(zero_copy_only=False))
    return items, n_rows


def _items(
    manifest: pd.DataFrame, cfg: PipelineConfig, store: RowStore
) -> tuple[list[dict[str, Any]], int]:
    return unplanned_items(store, [manifest])


def _batch_kwargs(cfg: PipelineConfig) -> dict[str, Any]:
    return {
        "audio": cfg.audio,
        "features": cfg.features,
        "source_options": cfg.paths.storage_options,
    }


EXTRACT = StoreStage(
    name="extract",
    folder="features",
    store_digest=feature_store_digest,
    layout=lambda cfg: feature_layout(audio=cfg.audio, features=cfg.features),
    items=_items,
    plan_columns=FEATURE_COLUMNS,
    batch=extract_batch,
    batch_kwargs=_batch_kwargs,
)
feature_store_url = EXTRACT.url
open_feature_store = EXTRACT.open
cached_extraction = EXTRACT.cached
extract_features = EXTRACT.fill

"""One planned batch of a feature store, decoded, featurized and written: a worker's job.

Workers import this module as they join (``tasks.cluster.BATCH_MODULES``); it imports
neither pandas nor pyarrow, which only planning needs (~0.3 s a worker).
"""

from __future__ import annotations

from typing import Any

from melflow import storage
from melflow.audio.io import Span, load_clips
from melflow.config import AudioConfig, FeaturesConfig
from melflow.features.store import RowStore

# Zarr holds the columns a reader of the arrays needs; the plan index holds all of them
# (string arrays cost as much to encode as the features themselves).
STORED_COLUMNS: tuple[str, ...] = ("clip_id", "label")


def item_span(item: dict[str, Any]) -> Span | None:
    """The window a store item reads, as
    :func:`~melflow.features.extract.manifest_items` planned it."""
    span = item.get("span")
    return None if span is None else (float(span[0]), float(span[1]))


def extract_batch(
    index: int,
    *,
    store: RowStore,
    audio: AudioConfig,
    features: FeaturesConfig,
    source_options: dict[str, Any] | None = None,
) -> int:
    """Decode and featurize one planned batch and write it (runs on a Dask worker).

    Returns the number of clips written.
    """
    from melflow.features.spectral import compute_features  # scipy: not for planning

    batch = store.batch(index)
    fs = None
    if batch.items and storage.is_url(batch.items[0]["path"]):
        fs, _ = storage.filesystem(batch.items[0]["path"], source_options)
    y = load_clips(
        [item["path"] for item in batch.items],
        sr=audio.sr,
        duration_s=audio.duration_s,
        crop=audio.crop,
        fs=fs,
        spans=[item_span(item) for item in batch.items],
    )
    arrays = compute_features(y, sr=audio.sr, cfg=features)
    store.write_batch(batch, {str(k): v for k, v in arrays.items()}, columns=STORED_COLUMNS)
    return len(batch.items)

"""Feature extraction of a manifest into a :class:`~melflow.features.store.RowStore`.

The store's location depends only on the audio and feature configuration and the code
version, so new clips are *appended* to it; each row is keyed by ``clip_id`` and the
file's SHA-256, so a changed file gets a new row and a removed one is simply no longer
selected. Completion for a given manifest is recorded under the manifest's digest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client

from melflow import storage
from melflow.audio.io import load_clip
from melflow.config import AudioConfig, FeaturesConfig, PipelineConfig
from melflow.digest import digest_of
from melflow.features.spectral import compute_features, feature_shapes
from melflow.features.store import KEY, ArraySpec, RowStore, StoreLayout
from melflow.manifest import manifest_digest, ok_rows
from melflow.parallel import run_batches

EXTRACT_CODE_VERSION = "1"
FEATURE_COLUMNS: tuple[str, ...] = ("clip_id", "label", "split", "group", "sha256")


@dataclass(frozen=True)
class ExtractResult:
    """What an extraction did: where, for which manifest, and how much work it took."""

    store_url: str
    manifest_digest: str
    rows: int
    batches_total: int
    batches_computed: int
    cached: bool


def clip_key(clip_id: str, sha256: str) -> str:
    """Row identity in a feature store: the clip and the exact bytes it had."""
    return f"{clip_id}#{sha256[:16]}"


def n_samples(audio: AudioConfig) -> int:
    """Samples per clip after pad/crop."""
    return round(audio.sr * audio.duration_s)


def feature_layout(
    *, audio: AudioConfig, features: FeaturesConfig, kind: str = "features"
) -> StoreLayout:
    """Arrays and columns of a feature store for this configuration."""
    shapes = feature_shapes(n_samples=n_samples(audio), cfg=features)
    return StoreLayout(
        arrays=tuple(ArraySpec(k, shape, features.dtype) for k, shape in shapes.items()),
        columns=FEATURE_COLUMNS,
        chunk_rows=features.batch_size,
        compression_level=features.compression_level,
        attrs={
            "kind": kind,
            "audio": audio.model_dump(mode="json"),
            "features": features.model_dump(mode="json"),
            "code_version": EXTRACT_CODE_VERSION,
        },
    )


def feature_store_digest(cfg: PipelineConfig) -> str:
    """Identity of the clean feature store: audio + features config + code version."""
    return digest_of("features", EXTRACT_CODE_VERSION, cfg.audio, cfg.features)


def feature_store_url(cfg: PipelineConfig) -> str:
    return storage.join(cfg.paths.data_dir, "features", feature_store_digest(cfg))


def manifest_items(manifest: pd.DataFrame) -> list[dict[str, Any]]:
    """One store item per usable clip (sorted by ``clip_id``): key, columns and path."""
    rows = ok_rows(manifest)
    return [
        {
            KEY: clip_key(r.clip_id, r.sha256),
            "path": r.path,
            **{c: getattr(r, c) for c in FEATURE_COLUMNS},
        }
        for r in rows.itertuples(index=False)
    ]


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
    batch = store.batch(index)
    fs = None
    if batch.items and storage.is_url(batch.items[0]["path"]):
        fs, _ = storage.filesystem(batch.items[0]["path"], source_options)
    y = np.stack(
        [
            load_clip(
                item["path"], sr=audio.sr, duration_s=audio.duration_s, crop=audio.crop, fs=fs
            )
            for item in batch.items
        ]
    )
    arrays = compute_features(y, sr=audio.sr, cfg=features)
    store.write_batch(batch, {str(k): v for k, v in arrays.items()}, columns=FEATURE_COLUMNS)
    return len(batch.items)


def open_feature_store(cfg: PipelineConfig) -> RowStore:
    """The clean feature store of ``cfg`` (created empty if absent)."""
    store = RowStore(feature_store_url(cfg), storage_options=cfg.paths.storage_options)
    store.ensure(feature_layout(audio=cfg.audio, features=cfg.features))
    return store


def cached_extraction(*, cfg: PipelineConfig, manifest_digest: str) -> ExtractResult | None:
    """The result of a finished extraction of this manifest, or ``None`` if work remains."""
    store = RowStore(feature_store_url(cfg), storage_options=cfg.paths.storage_options)
    info = store.complete_info(manifest_digest) if store.exists() else None
    if info is None:
        return None
    return ExtractResult(
        store.url, manifest_digest, int(info["rows"]), int(info["batches"]), 0, cached=True
    )


def extract_features(
    *,
    manifest: pd.DataFrame,
    cfg: PipelineConfig,
    client: Client,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExtractResult:
    """Extract every usable clip of ``manifest`` that the store lacks; resume unfinished batches.

    Parameters
    ----------
    manifest : DataFrame
        As written by ingest; only ``status == 'ok'`` rows are extracted.
    cfg : PipelineConfig
        ``audio``, ``features`` and ``paths`` are used.
    client : distributed.Client
        Where batches run; workers receive the store URL and a batch index only.
    on_progress : callable, optional
        ``on_progress(done_clips, total_clips)`` after each batch, for a progress bar.
    """
    digest = manifest_digest(manifest)
    done = cached_extraction(cfg=cfg, manifest_digest=digest)
    if done is not None:
        return done
    store = open_feature_store(cfg)

    items = manifest_items(manifest)
    store.append(items, columns=FEATURE_COLUMNS)
    index = store.index()
    pending = store.pending_batches()
    total = int(index["batch"].isin(pending).sum())
    finished = 0

    def progress(n: int) -> None:
        nonlocal finished
        finished += n
        if on_progress is not None:
            on_progress(finished, total)

    run_batches(
        client,
        extract_batch,
        pending,
        kwargs={
            "store": store,
            "audio": cfg.audio,
            "features": cfg.features,
            "source_options": cfg.paths.storage_options,
        },
        on_done=progress,
    )
    wanted = {item[KEY] for item in items}
    batches = int(index.loc[index[KEY].isin(wanted), "batch"].nunique())
    store.mark_complete(digest, {"rows": len(items), "batches": batches})
    return ExtractResult(store.url, digest, len(items), batches, len(pending), cached=False)

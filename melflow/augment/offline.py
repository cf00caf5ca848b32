"""Offline augmentation: seeded waveform variants of the train split, featurized into a store.

The augmented store is another :class:`~melflow.features.store.RowStore` with the clean
store's arrays (same audio and feature config, so rows align) and extra columns. Its
location ``<data_dir>/augmented/<digest>`` depends on the clean store's digest, the
``augment`` config (and the background-noise files, if any) and the code version, so any
change to them starts a new store while new train clips are *appended* to the current one.

Row ``<clip key>~<v>`` is variant ``v`` of a train clip; its generator is seeded from
``(augment.seed, clip key, v)`` only, so a variant never depends on which batch, worker
or run computed it. Only usable ``train`` clips are augmented, and none whose ``group``
occurs in ``val`` or ``test``, so held-out audio never leaks into training data.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from melflow import storage
from melflow.audio.io import load_clip, read_audio, resample, to_mono
from melflow.config import AudioConfig, AugmentConfig, FeaturesConfig, PipelineConfig
from melflow.digest import digest_file, digest_of
from melflow.errors import ConfigError
from melflow.features.batch import item_span
from melflow.features.extract import (
    FEATURE_COLUMNS,
    clip_keys,
    feature_layout,
    feature_store_digest,
)
from melflow.features.stage import StoreStage
from melflow.features.store import KEY, FillResult, RowStore, StoreLayout
from melflow.manifest import ok_rows, spans

AUGMENT_CODE_VERSION = "1"
# Known when a row is planned (and kept in the store's index) ...
PLAN_COLUMNS: tuple[str, ...] = (*FEATURE_COLUMNS, "source_clip_id", "seed")
# ... plus what the worker draws: the ops applied (comma list) and their parameters (JSON).
AUGMENT_COLUMNS: tuple[str, ...] = (*FEATURE_COLUMNS, "source_clip_id", "ops", "params", "seed")
HELD_OUT: tuple[str, ...] = ("val", "test")


AugmentResult = FillResult


def background_files(cfg: PipelineConfig) -> list[str]:
    """Sorted audio files under ``augment.noise.folder`` (empty unless ``kind == 'folder'``).

    Raises
    ------
    ConfigError
        The folder is missing or holds no file with one of ``corpus.extensions``.
    """
    noise = cfg.augment.noise
    if noise.kind != "folder" or noise.folder is None:
        return []
    fs, root = storage.filesystem(noise.folder, cfg.paths.storage_options)
    if not fs.isdir(root):
        raise ConfigError(f"augment.noise.folder: {noise.folder!r} is not a folder")
    extensions = tuple(e.lower() for e in cfg.corpus.extensions)
    found = sorted(p for p in fs.find(root) if str(p).lower().endswith(extensions))
    if not found:
        raise ConfigError(
            f"augment.noise.folder: no audio files ({', '.join(extensions)}) under {noise.folder!r}"
        )
    return [fs.unstrip_protocol(p) if storage.is_url(noise.folder) else str(p) for p in found]


def augment_store_digest(cfg: PipelineConfig) -> str:
    """Identity of the augmented store: clean store, ``augment`` config, noise files, code."""
    files = background_files(cfg) if cfg.augment.enabled else []
    fs = storage.filesystem(files[0], cfg.paths.storage_options)[0] if files else None
    noise = [digest_file(p, fs=fs) for p in files]
    return digest_of("augment", AUGMENT_CODE_VERSION, feature_store_digest(cfg), cfg.augment, noise)


def augment_layout(cfg: PipelineConfig) -> StoreLayout:
    """The clean store's arrays with :data:`AUGMENT_COLUMNS` and the augment config in attrs."""
    layout = feature_layout(
        audio=cfg.audio, features=cfg.features, kind="augmented", columns=AUGMENT_COLUMNS
    )
    attrs = {
        **layout.attrs,
        "augment": cfg.augment.model_dump(mode="json"),
        "augment_code_version": AUGMENT_CODE_VERSION,
        "background_files": background_files(cfg),
    }
    return replace(layout, attrs=attrs)


def _grouped(groups: pd.Series) -> pd.Series:
    """True where a row has a real group (not empty or missing)."""
    return groups.notna() & (groups.astype(str).str.strip() != "")


def augmentable_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    """Usable ``train`` rows, minus any clip or group that also occurs in ``val`` or ``test``.

    Held-out rows count whatever their status, so a quarantined test clip still keeps its
    group out of the augmented store.
    """
    held_out = manifest[manifest["split"].isin(HELD_OUT)]
    groups = set(held_out.loc[_grouped(held_out["group"]), "group"].astype(str))
    train = ok_rows(manifest)
    train = train[train["split"] == "train"]
    leaks = train["clip_id"].isin(set(held_out["clip_id"])) | (
        _grouped(train["group"]) & train["group"].astype(str).isin(groups)
    )
    return train[~leaks]


def variant_seed(*, seed: int, key: str, variant: int) -> int:
    """The 64-bit seed of variant ``variant`` of the clip with store key ``key``."""
    return int(digest_of("augment-variant", seed, key, variant), 16)


def augment_items(
    *, manifest: pd.DataFrame, cfg: PipelineConfig, store: RowStore | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Store items per (train clip, variant), clip-major, with :data:`PLAN_COLUMNS`.

    Returns the items that ``store`` has not planned (all of them without a store) and
    the number of items of the whole manifest.
    """
    n_variants = cfg.augment.variants_per_clip
    rows = augmentable_rows(manifest)
    sources = clip_keys(rows)
    keys = [f"{source}~{v}" for source in sources for v in range(n_variants)]
    wanted = np.flatnonzero(store.unplanned(keys)) if store is not None else range(len(keys))
    clips = rows.to_dict("records")
    items = []
    windows = spans(rows)
    for position in wanted:
        r, v = clips[position // n_variants], int(position % n_variants)
        source = sources[position // n_variants]
        items.append(
            {
                KEY: keys[position],
                "path": r["path"],
                "clip_id": f"{r['clip_id']}~{v}",
                "label": r["label"],
                "split": "train",
                "group": r["group"],
                "sha256": r["sha256"],
                "source_clip_id": r["clip_id"],
                "seed": variant_seed(seed=cfg.augment.seed, key=source, variant=v),
                "span": windows[position // n_variants],
            }
        )
    return items, len(keys)


@lru_cache(maxsize=2)
def _background_clips(paths: tuple[str, ...], sr: int, options: str) -> tuple[np.ndarray, ...]:
    """Every background clip, mono at ``sr``; loaded once per worker process."""
    fs = storage.filesystem(paths[0], json.loads(options))[0] if storage.is_url(paths[0]) else None
    clips = []
    for path in paths:
        y, orig_sr = read_audio(path, fs=fs)
        clips.append(resample(to_mono(y), orig_sr=orig_sr, target_sr=sr))
    return tuple(clips)


def augment_store_batch(
    index: int,
    *,
    store: RowStore,
    audio: AudioConfig,
    features: FeaturesConfig,
    augment: AugmentConfig,
    background: tuple[str, ...] = (),
    source_options: dict[str, Any] | None = None,
) -> int:
    """Decode, augment and featurize one planned batch and write it (runs on a Dask worker).

    Each source clip is decoded once for all of its variants in the batch. Returns the
    number of variants written.
    """
    # Here, not at the top: a run or status that finds the store complete needs no scipy.
    from melflow.augment.ops import augment_waveform
    from melflow.features.spectral import compute_features

    batch = store.batch(index)
    fs = None
    if batch.items and storage.is_url(batch.items[0]["path"]):
        fs, _ = storage.filesystem(batch.items[0]["path"], source_options)
    clips = (
        _background_clips(background, audio.sr, json.dumps(source_options or {}))
        if background
        else ()
    )
    clean: dict[str, np.ndarray] = {}
    waves, items = [], []
    for item in batch.items:
        source = item["source_clip_id"]
        if source not in clean:
            clean = {
                source: load_clip(
                    item["path"],
                    sr=audio.sr,
                    duration_s=audio.duration_s,
                    crop=audio.crop,
                    fs=fs,
                    span=item_span(item),
                )
            }
        y, applied = augment_waveform(
            clean[source],
            sr=audio.sr,
            cfg=augment,
            rng=np.random.default_rng(int(item["seed"])),
            crop=audio.crop,
            background=clips,
        )
        waves.append(y)
        items.append({**item, "ops": ",".join(applied), "params": json.dumps(applied)})
    arrays = compute_features(np.stack(waves), sr=audio.sr, cfg=features)
    store.write_batch(
        replace(batch, items=items), {str(k): v for k, v in arrays.items()}, columns=AUGMENT_COLUMNS
    )
    return len(items)


def _batch_kwargs(cfg: PipelineConfig) -> dict[str, Any]:
    return {
        "audio": cfg.audio,
        "features": cfg.features,
        "augment": cfg.augment,
        "background": tuple(background_files(cfg)),
        "source_options": cfg.paths.storage_options,
    }


AUGMENT = StoreStage(
    name="augment",
    folder="augmented",
    store_digest=augment_store_digest,
    layout=augment_layout,
    items=lambda manifest, cfg, store: augment_items(manifest=manifest, cfg=cfg, store=store),
    plan_columns=PLAN_COLUMNS,
    batch=augment_store_batch,
    batch_kwargs=_batch_kwargs,
    enabled=lambda cfg: cfg.augment.enabled,
)
augmented_store_url = AUGMENT.url
open_augmented_store = AUGMENT.open
cached_augmentation = AUGMENT.cached
augment_features = AUGMENT.fill

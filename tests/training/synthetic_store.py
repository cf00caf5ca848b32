"""Test helper: synthetic feature stores; class ``c`` is a +20 dB band at bins ``6c .. 6c+3``."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from melflow.config import PipelineConfig, apply_overrides, validate_config
from melflow.features.extract import (
    FEATURE_COLUMNS,
    feature_layout,
    feature_store_url,
    manifest_items,
)
from melflow.features.store import KEY, RowStore, StoreLayout
from melflow.manifest import COLUMNS, manifest_digest, normalize, ok_rows

SPLITS = ("train", "train", "train", "val", "test")


def synthetic_manifest(*, classes: list[str], per_class: int) -> pd.DataFrame:
    """Clips ``<label>/<i>.wav``; every fifth is ``test``, every fifth+3 ``val``."""
    rows = [
        {
            "clip_id": f"{label}/{i:04d}.wav",
            "path": f"/nowhere/{label}/{i:04d}.wav",
            "label": label,
            "split": SPLITS[i % len(SPLITS)],
            "fold": -1,
            "group": f"{label}-{i}",
            "sha256": hashlib.sha256(f"{label}/{i}".encode()).hexdigest(),
            "duration_s": 0.5,
            "sr": 16000,
            "channels": 1,
            "status": "ok",
            "detail": "",
        }
        for label in classes
        for i in range(per_class)
    ]
    return normalize(pd.DataFrame(rows, columns=list(COLUMNS)))


def synthetic_feature(clip_id: str, label_index: int, shape: tuple[int, ...]) -> np.ndarray:
    """A seeded noisy spectrogram in dB with the class band raised."""
    seed = int(hashlib.sha256(clip_id.encode()).hexdigest()[:8], 16)
    x = np.random.default_rng(seed).normal(-50.0, 6.0, size=shape).astype(np.float32)
    x[6 * label_index : 6 * label_index + 4] += 20.0
    return x


def write_synthetic_store(
    cfg: PipelineConfig, manifest: pd.DataFrame, *, url: str | None = None, variants: int = 0
) -> RowStore:
    """Fill a store with :func:`synthetic_feature` rows of ``manifest``.

    By default the clean store of ``cfg``; with ``variants > 0``, an augmented-style store
    at ``url`` holding that many variants (``<clip_id>~<v>``) of every train clip.
    """
    store = RowStore(url or feature_store_url(cfg))
    items = manifest_items(ok_rows(manifest))
    columns = FEATURE_COLUMNS
    if variants:
        columns = (*FEATURE_COLUMNS, "source_clip_id")
        items = [
            {
                **item,
                KEY: f"{item['clip_id']}~{v}",
                "clip_id": f"{item['clip_id']}~{v}",
                "source_clip_id": item["clip_id"],
            }
            for item in items
            if item["split"] == "train"
            for v in range(variants)
        ]
    layout = feature_layout(audio=cfg.audio, features=cfg.features)
    store.ensure(StoreLayout(layout.arrays, columns, layout.chunk_rows, attrs=layout.attrs))
    store.append(items, columns=columns)
    classes = sorted(manifest["label"].unique())
    (spec,) = [a for a in layout.arrays if a.name == cfg.train.feature]
    for index in store.pending_batches():
        batch = store.batch(index)
        x = np.stack(
            [
                synthetic_feature(item["clip_id"], classes.index(item["label"]), spec.row_shape)
                for item in batch.items
            ]
        )
        store.write_batch(batch, {spec.name: x}, columns=columns)
    store.mark_complete(manifest_digest(manifest), {"rows": len(items), "batches": 0})
    return store


def with_overrides(cfg: PipelineConfig, *overrides: str) -> PipelineConfig:
    return validate_config(apply_overrides(cfg.model_dump(mode="json"), list(overrides)))


def synthetic(
    base: PipelineConfig, *overrides: str, per_class: int = 20, n_classes: int = 4
) -> tuple[PipelineConfig, pd.DataFrame]:
    """``base`` + ``overrides`` and a manifest of ``n_classes`` x ``per_class`` clips (stored)."""
    cfg = with_overrides(base, *overrides)
    manifest = synthetic_manifest(classes=[f"c{i}" for i in range(n_classes)], per_class=per_class)
    write_synthetic_store(cfg, manifest)
    return cfg, manifest

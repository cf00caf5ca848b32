"""Offline augmentation as a cached Prefect task; the Dask cluster starts only if work remains."""

from __future__ import annotations

from prefect import task

from melflow.augment.offline import (
    AUGMENT_CODE_VERSION,
    AugmentResult,
    augment_features,
    augmented_store_url,
    cached_augmentation,
)
from melflow.config import PipelineConfig
from tasks.caching import keyed_by, transient_only
from tasks.stores import fill_stage, store_key

augment_key = store_key(AUGMENT_CODE_VERSION, augmented_store_url, cached_augmentation)


@task(
    name="augment-features",
    cache_key_fn=keyed_by("augment", augment_key),
    persist_result=True,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
)
def augment_task(cfg: PipelineConfig, manifest_path: str, manifest_digest: str) -> AugmentResult:
    """Augment the manifest's train clips into the augmented store (resumes unfinished batches)."""
    return fill_stage(
        "augment",
        cfg,
        manifest_path,
        manifest_digest,
        cached=cached_augmentation,
        fill=augment_features,
    )

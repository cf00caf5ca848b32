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
from melflow.digest import digest_of
from melflow.manifest import read_manifest
from tasks.caching import keyed_by, transient_only
from tasks.cluster import cluster_client
from tasks.progress import reporter


def augment_key(*, cfg: PipelineConfig, manifest_path: str, manifest_digest: str) -> str | None:
    """Clean store + augment config (+ noise files) + code version + manifest, once done."""
    if cached_augmentation(cfg=cfg, manifest_digest=manifest_digest) is None:
        return None
    return digest_of(AUGMENT_CODE_VERSION, augmented_store_url(cfg), manifest_digest)


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
    done = cached_augmentation(cfg=cfg, manifest_digest=manifest_digest)
    if done is not None:
        return done
    manifest = read_manifest(manifest_path, storage_options=cfg.paths.storage_options)
    with cluster_client(cfg.dask) as client:
        return augment_features(
            manifest=manifest, cfg=cfg, client=client, on_progress=reporter("augment")
        )

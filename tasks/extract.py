"""Feature extraction as a cached Prefect task; the Dask cluster starts only if work remains."""

from __future__ import annotations

from prefect import task

from melflow.config import PipelineConfig
from melflow.digest import digest_of
from melflow.features.extract import (
    EXTRACT_CODE_VERSION,
    ExtractResult,
    cached_extraction,
    extract_features,
    feature_store_url,
)
from melflow.manifest import read_manifest
from tasks.caching import keyed_by, transient_only
from tasks.cluster import cluster_client
from tasks.progress import reporter


def extract_key(*, cfg: PipelineConfig, manifest_path: str, manifest_digest: str) -> str | None:
    if cached_extraction(cfg=cfg, manifest_digest=manifest_digest) is None:
        return None
    return digest_of(EXTRACT_CODE_VERSION, feature_store_url(cfg), manifest_digest)


@task(
    name="extract-features",
    cache_key_fn=keyed_by("extract", extract_key),
    persist_result=True,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
)
def extract_task(cfg: PipelineConfig, manifest_path: str, manifest_digest: str) -> ExtractResult:
    """Extract the manifest's clips into the clean feature store (resumes unfinished batches)."""
    done = cached_extraction(cfg=cfg, manifest_digest=manifest_digest)
    if done is not None:
        return done
    manifest = read_manifest(manifest_path, storage_options=cfg.paths.storage_options)
    with cluster_client(cfg.dask) as client:
        return extract_features(
            manifest=manifest, cfg=cfg, client=client, on_progress=reporter("extract")
        )

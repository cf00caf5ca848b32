"""Feature extraction as a cached Prefect task; the Dask cluster starts only if work remains."""

from __future__ import annotations

from prefect import task

from melflow.config import PipelineConfig
from melflow.features.extract import (
    EXTRACT_CODE_VERSION,
    ExtractResult,
    cached_extraction,
    extract_features,
    feature_store_url,
)
from tasks.caching import keyed_by, transient_only
from tasks.stores import fill_stage, store_key

extract_key = store_key(EXTRACT_CODE_VERSION, feature_store_url, cached_extraction)


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
    return fill_stage(
        "extract",
        cfg,
        manifest_path,
        manifest_digest,
        cached=cached_extraction,
        fill=extract_features,
    )

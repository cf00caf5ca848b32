"""The extract flow: manifest -> clean feature store."""

from __future__ import annotations

from prefect import flow

from melflow.config import PipelineConfig
from melflow.features.extract import ExtractResult
from tasks.extract import extract_task


@flow(name="extract", log_prints=False)
def extract_flow(cfg: PipelineConfig, manifest_path: str, manifest_digest: str) -> ExtractResult:
    """Extract features for every usable clip of the manifest (incremental, resumable)."""
    return extract_task(cfg, manifest_path, manifest_digest)

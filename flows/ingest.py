"""The ingest flow: corpus -> manifest + quarantine report + ``latest`` pointer."""

from __future__ import annotations

from prefect import flow

from melflow.config import PipelineConfig
from melflow.ingest import IngestResult
from melflow.tasks.ingest import ingest_task


@flow(name="ingest", log_prints=False)
def ingest_flow(cfg: PipelineConfig) -> IngestResult:
    """Scan ``cfg.corpus`` into a manifest; bad files are kept as quarantined rows."""
    return ingest_task(cfg)

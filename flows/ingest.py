"""The ingest flow: corpus -> manifest + quarantine report + ``latest`` pointer."""

from __future__ import annotations

from melflow.config import PipelineConfig
from melflow.flows.deferred_flow import melflow_flow
from melflow.ingest import IngestResult
from melflow.tasks.ingest import ingest_task


@melflow_flow(name="ingest", flow_run_name="ingest/{cfg.name}", log_prints=False)
def ingest_flow(cfg: PipelineConfig) -> IngestResult:
    """Scan ``cfg.corpus`` into a manifest; bad files are kept as quarantined rows."""
    return ingest_task(cfg)

"""Ingest as a Prefect task: never cached (it must look at the corpus each time).

The domain function is itself incremental: unchanged files are not read again, so a rerun
over an unchanged corpus costs about one directory listing.
"""

from __future__ import annotations

from melflow.config import PipelineConfig
from melflow.ingest import IngestResult, ingest_corpus
from melflow.tasks.caching import transient_only
from melflow.tasks.deferred import deferred_task
from melflow.tasks.progress import reporter


@deferred_task(
    name="ingest",
    tags=["stage:ingest"],
    uncached=True,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
)
def ingest_task(cfg: PipelineConfig) -> IngestResult:
    """Scan the corpus into a manifest and quarantine report; returns their paths and counts."""
    return ingest_corpus(cfg=cfg, on_progress=reporter("ingest"))

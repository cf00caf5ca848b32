"""The store-filling stages (extract, augment) as cached Prefect tasks of one shape.

The Dask cluster starts only if work remains; the cache key exists only once the store is
complete for the manifest, and names the stage's content digest, never a path.
"""

from __future__ import annotations

from typing import Any

from melflow.config import PipelineConfig
from melflow.features.stage import StoreStage
from melflow.features.store import FillResult
from melflow.layout import StageRef
from melflow.manifest import read_manifest
from melflow.tasks.caching import keyed_task, transient_only
from melflow.tasks.cluster import cluster_client
from melflow.tasks.deferred import Deferred
from melflow.tasks.progress import reporter


def store_key(stage: StoreStage) -> Any:
    """Cache key of a store stage: its output digest, once the store is complete."""

    def key(*, cfg: PipelineConfig, manifest: StageRef) -> str | None:
        if stage.cached(cfg=cfg, manifest_digest=manifest.digest) is None:
            return None
        return stage.ref(cfg, manifest.digest).digest

    return key


def store_task(stage: StoreStage) -> Deferred[..., FillResult]:
    """The Prefect task of ``stage``: ``task(cfg, manifest)`` fills the store for a manifest."""

    @keyed_task(
        stage.name,
        store_key(stage),
        as_cached=FillResult.as_cached,
        name=f"{stage.name}-features",
        tags=[f"stage:{stage.name}"],
        retries=2,
        retry_delay_seconds=[2, 10],
        retry_condition_fn=transient_only,
    )
    def fill(cfg: PipelineConfig, manifest: StageRef) -> FillResult:
        """Fill the stage's store for the manifest (resumes unfinished batches)."""
        done = stage.cached(cfg=cfg, manifest_digest=manifest.digest)
        if done is not None:
            return done
        rows = read_manifest(manifest.location, storage_options=cfg.paths.storage_options)
        with cluster_client(cfg.dask) as client:
            return stage.fill(
                manifest=rows,
                cfg=cfg,
                client=client,
                digest=manifest.digest,
                on_progress=reporter(stage.name),
            )

    return fill

"""The shared shape of the store-filling stages (extract, augment): key, cache check, Dask run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from distributed import Client

from melflow.config import PipelineConfig
from melflow.digest import digest_of
from melflow.features.store import FillResult
from melflow.manifest import read_manifest
from tasks.cluster import cluster_client
from tasks.progress import reporter


class Cached(Protocol):
    def __call__(self, *, cfg: PipelineConfig, manifest_digest: str) -> FillResult | None: ...


class Fill(Protocol):
    def __call__(
        self,
        *,
        manifest: Any,
        cfg: PipelineConfig,
        client: Client,
        digest: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> FillResult: ...


def store_key(
    code_version: str, url_of: Callable[[PipelineConfig], str], cached: Cached
) -> Callable[..., str | None]:
    """Cache key of a store stage: its store URL, code version and manifest, once complete."""

    def key(*, cfg: PipelineConfig, manifest_path: str, manifest_digest: str) -> str | None:
        if cached(cfg=cfg, manifest_digest=manifest_digest) is None:
            return None
        return digest_of(code_version, url_of(cfg), manifest_digest)

    return key


def fill_stage(
    stage: str,
    cfg: PipelineConfig,
    manifest_path: str,
    manifest_digest: str,
    *,
    cached: Cached,
    fill: Fill,
) -> FillResult:
    """Return the finished result, or read the manifest and fill the store on the flow's cluster."""
    done = cached(cfg=cfg, manifest_digest=manifest_digest)
    if done is not None:
        return done
    manifest = read_manifest(manifest_path, storage_options=cfg.paths.storage_options)
    with cluster_client(cfg.dask) as client:
        return fill(
            manifest=manifest,
            cfg=cfg,
            client=client,
            digest=manifest_digest,
            on_progress=reporter(stage),
        )

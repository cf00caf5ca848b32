"""The shape shared by the stages that fill a row store from a manifest (extract, augment).

A :class:`StoreStage` says what its store is (digest, layout), which items a manifest
gives it and which function computes one batch on a worker; everything else (where the
store lives, "is it done?", resuming, marking completion) is the same for every store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from melflow.config import PipelineConfig
from melflow.digest import digest_of
from melflow.features.store import FillResult, RowStore, StoreLayout, completed_fill, fill_store
from melflow.layout import Layout, StageRef
from melflow.manifest import manifest_digest

if TYPE_CHECKING:  # distributed is heavy: a fully cached run never loads it
    from distributed import Client


def _always(cfg: PipelineConfig) -> bool:
    return True


@dataclass(frozen=True)
class StoreStage:
    """A store-filling stage.

    Attributes
    ----------
    name : str
        Stage name (``extract``, ``augment``), used in cache keys and progress.
    folder : str
        The stores' folder under the data folder; a store is ``<folder>/<store digest>``.
    store_digest : callable
        ``cfg -> str``: identity of the store (config it reads, code version); never a path.
    layout : callable
        ``cfg -> StoreLayout``: arrays and columns of a new store.
    items : callable
        ``(manifest, cfg, store) -> (items, n_items)``: the items of the rows the manifest
        needs that ``store`` has not planned yet, and the number of rows it needs.
    plan_columns : tuple of str
        Columns known when an item is planned (kept in the store's index).
    batch : callable
        ``batch(index, *, store, **batch_kwargs(cfg)) -> int`` computes and writes one
        batch on a Dask worker and returns its row count.
    batch_kwargs : callable
        ``cfg -> dict``: the extra keyword arguments of ``batch`` (small, picklable).
    enabled : callable
        ``cfg -> bool``; a disabled stage is done without writing anything.
    """

    name: str
    folder: str
    store_digest: Callable[[PipelineConfig], str]
    layout: Callable[[PipelineConfig], StoreLayout]
    items: Callable[[pd.DataFrame, PipelineConfig, RowStore], tuple[list[dict[str, Any]], int]]
    plan_columns: tuple[str, ...]
    batch: Callable[..., int]
    batch_kwargs: Callable[[PipelineConfig], dict[str, Any]]
    enabled: Callable[[PipelineConfig], bool] = _always

    def url(self, cfg: PipelineConfig) -> str:
        """``<data_dir>/<folder>/<store digest>``."""
        return Layout.of(cfg).store(self.folder, self.store_digest(cfg))

    def ref(self, cfg: PipelineConfig, manifest_digest: str) -> StageRef:
        """The store filled for one manifest: content digest and location."""
        store_digest = self.store_digest(cfg)
        return StageRef(
            digest_of(self.name, store_digest, manifest_digest),
            Layout.of(cfg).store(self.folder, store_digest),
        )

    def open(self, cfg: PipelineConfig) -> RowStore:
        """The store of ``cfg``, created empty if absent."""
        store = RowStore(self.url(cfg), storage_options=cfg.paths.storage_options)
        store.ensure(self.layout(cfg))
        return store

    def cached(self, *, cfg: PipelineConfig, manifest_digest: str) -> FillResult | None:
        """The result when no work remains for this manifest (done or disabled), else ``None``.

        The one answer to "is this stage done?" for the flow, its cache key and ``status``.
        """
        if not self.enabled(cfg):
            return FillResult("", manifest_digest, 0, 0, 0, cached=False, skipped=True)
        return completed_fill(
            self.url(cfg), digest=manifest_digest, storage_options=cfg.paths.storage_options
        )

    def fill(
        self,
        *,
        manifest: pd.DataFrame,
        cfg: PipelineConfig,
        client: Client,
        digest: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> FillResult:
        """Compute every row of ``manifest`` that the store lacks; resume unfinished batches.

        Parameters
        ----------
        manifest : DataFrame
            As written by ingest.
        cfg : PipelineConfig
            The configuration the stage reads.
        client : distributed.Client
            Where batches run; workers receive the store handle and a batch index only.
        digest : str, optional
            The manifest's digest as ingest returned it; computed from ``manifest`` if omitted.
        on_progress : callable, optional
            ``on_progress(done_rows, total_rows)`` after each batch, for a progress bar.
        """
        digest = digest or manifest_digest(manifest)
        done = self.cached(cfg=cfg, manifest_digest=digest)
        if done is not None:
            return done
        store = self.open(cfg)
        items, n_items = self.items(manifest, cfg, store)
        return fill_store(
            store,
            items=items,
            n_items=n_items,
            columns=self.plan_columns,
            client=client,
            fn=self.batch,
            kwargs=self.batch_kwargs(cfg),
            digest=digest,
            on_progress=on_progress,
        )

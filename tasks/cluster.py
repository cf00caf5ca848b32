"""One Dask cluster per flow run, started only when a stage actually has batches to run.

Starting a ``LocalCluster`` costs seconds (process spawn + imports), so the extract and
augment stages of one pipeline run share it, and a fully cached run never starts one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from distributed import Client

from melflow.config import DaskConfig
from melflow.parallel import dask_client

_shared: _LazyCluster | None = None


class _LazyCluster:
    def __init__(self, cfg: DaskConfig) -> None:
        self.cfg = cfg
        self.stack = ExitStack()
        self.client: Client | None = None

    def get(self) -> Client:
        if self.client is None:
            self.client = self.stack.enter_context(dask_client(self.cfg))
        return self.client


@contextmanager
def shared_cluster(cfg: DaskConfig) -> Iterator[None]:
    """Within the block, :func:`cluster_client` reuses one lazily started cluster."""
    global _shared
    outer, _shared = _shared, _LazyCluster(cfg)
    try:
        with _shared.stack:
            yield
    finally:
        _shared = outer


@contextmanager
def cluster_client(cfg: DaskConfig) -> Iterator[Client]:
    """The flow's shared client if there is one, else a cluster for this block alone."""
    if _shared is not None and _shared.cfg == cfg:
        yield _shared.get()
        return
    with dask_client(cfg) as client:
        yield client

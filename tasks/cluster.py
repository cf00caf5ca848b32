"""One Dask cluster per flow run, started only when a stage actually has batches to run.

Starting a ``LocalCluster`` costs seconds (process spawn + imports), so the extract and
augment stages of one pipeline run share it, and a fully cached run never starts one.
A command whose last stage is a Dask stage starts it in the background at once
(:func:`prestarted_cluster`), while the main process imports and plans.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress

from distributed import Client

from melflow.config import DaskConfig
from melflow.parallel import dask_client, open_client

# What every store batch imports: a worker imports them as it joins, not in its first batch.
BATCH_MODULES = ("melflow.features.extract", "melflow.features.spectral", "zarr.codecs")

_shared: _LazyCluster | None = None
_prestarted: _LazyCluster | None = None


class _LazyCluster:
    def __init__(self, cfg: DaskConfig) -> None:
        self.cfg = cfg
        self.stack = ExitStack()
        self.client: Client | None = None
        self.starting: Future[Client] | None = None

    def _start(self) -> Client:
        return open_client(self.cfg, stack=self.stack, worker_imports=BATCH_MODULES)

    def start_soon(self) -> None:
        """Start the cluster in a background thread; :meth:`get` waits for it."""
        pool = ThreadPoolExecutor(1, thread_name_prefix="melflow-cluster")
        self.starting = pool.submit(self._start)
        pool.shutdown(wait=False)

    def get(self) -> Client:
        if self.client is None:
            self.client = self.starting.result() if self.starting else self._start()
        return self.client

    def close(self) -> None:
        if self.starting is not None:
            # A start that failed matters only to a stage that needed the cluster (get()).
            with suppress(Exception):
                self.starting.result()
        self.stack.close()


@contextmanager
def prestarted_cluster(cfg: DaskConfig) -> Iterator[None]:
    """Start the cluster now, in the background; the flow's :func:`shared_cluster` adopts
    it. Whoever ends first closes it (a cached stage never waits on it for work)."""
    global _prestarted
    cluster = _LazyCluster(cfg)
    cluster.start_soon()
    outer, _prestarted = _prestarted, cluster
    try:
        yield
    finally:
        cluster.close()
        _prestarted = outer


@contextmanager
def shared_cluster(cfg: DaskConfig) -> Iterator[None]:
    """Within the block, :func:`cluster_client` reuses one lazily started cluster."""
    global _shared
    adopted = _prestarted is not None and _prestarted.cfg == cfg
    cluster = _prestarted if adopted and _prestarted else _LazyCluster(cfg)
    outer, _shared = _shared, cluster
    try:
        yield
    finally:
        cluster.close()
        _shared = outer


@contextmanager
def cluster_client(cfg: DaskConfig) -> Iterator[Client]:
    """The flow's shared client if there is one, else a cluster for this block alone."""
    if _shared is not None and _shared.cfg == cfg:
        yield _shared.get()
        return
    with dask_client(cfg, worker_imports=BATCH_MODULES) as client:
        yield client

"""One Dask cluster per flow run, started only when a stage actually has batches to run.

Starting a ``LocalCluster`` costs seconds (process spawn + imports), so the extract and
augment stages of one pipeline run share it, and a fully cached run never starts one.
A command whose last stage is a Dask stage may start it in the background at once
(:func:`prestarted_cluster`), while the main process imports and plans, when the stores
of the last ingested manifest are not complete yet.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from typing import TYPE_CHECKING

from melflow.config import DaskConfig

if TYPE_CHECKING:  # a cached command never imports Dask
    from distributed import Client

log = logging.getLogger(__name__)

# What every store batch imports: a worker imports them as it joins, not in its first batch.
BATCH_MODULES = ("melflow.features.batch", "melflow.features.spectral", "zarr.codecs")

# Two clusters starting at once in one process (an early start with other settings) race
# in distributed's lazy imports: "module 'distributed.dashboard' has no attribute 'scheduler'".
_STARTING = threading.Lock()
_shared: _LazyCluster | None = None
_prestarted: _LazyCluster | None = None


class _LazyCluster:
    def __init__(self, cfg: DaskConfig) -> None:
        self.cfg = cfg
        self.stack = ExitStack()
        self.client: Client | None = None
        self.starting: Future[Client | None] | None = None
        self.closed = False

    def _start(self) -> Client:
        from melflow.parallel import open_client

        with _STARTING:
            return open_client(self.cfg, stack=self.stack, worker_imports=BATCH_MODULES)

    def start_soon(self, needed: Callable[[], bool]) -> None:
        """In a background thread, start the cluster if ``needed()``; :meth:`get` waits."""
        pool = ThreadPoolExecutor(1, thread_name_prefix="melflow-cluster")
        self.starting = pool.submit(lambda: self._start() if needed() else None)
        pool.shutdown(wait=False)

    def get(self) -> Client:
        if self.client is None:
            self.client = self._early_client() or self._start()
        return self.client

    def _early_client(self) -> Client | None:
        starting, self.starting = self.starting, None
        if starting is None:
            return None
        try:
            return starting.result()
        except Exception as exc:  # started again by get(), where its error reaches the stage
            log.debug("the early Dask start failed: %s", exc)
            return None

    def close(self, *, wait: bool = True) -> None:
        """Close the cluster once; with ``wait=False`` (the process is stopping) a start
        still in progress is left to the stop watchdog, which ends every child."""
        if self.closed:
            return
        if self.starting is not None and not self.starting.done():
            if not wait:
                return
            with suppress(Exception):  # it matters only to a stage that needs it (get())
                self.starting.result()
        self.closed = True
        self.stack.close()


@contextmanager
def _closing(cluster: _LazyCluster) -> Iterator[None]:
    stopping = False
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        stopping = True
        raise
    finally:
        cluster.close(wait=not stopping)


@contextmanager
def prestarted_cluster(cfg: DaskConfig, *, needed: Callable[[], bool]) -> Iterator[None]:
    """Start the cluster now, in the background, if ``needed()`` (evaluated in that
    thread); the flow's :func:`shared_cluster` adopts it. It is closed by whichever ends
    first (a cached stage never waits on it for work)."""
    global _prestarted
    cluster = _LazyCluster(cfg)
    cluster.start_soon(needed)
    outer, _prestarted = _prestarted, cluster
    try:
        with _closing(cluster):
            yield
    finally:
        _prestarted = outer


@contextmanager
def shared_cluster(cfg: DaskConfig) -> Iterator[None]:
    """Within the block, :func:`cluster_client` reuses one lazily started cluster (the
    prestarted one, adopted once, when its settings are the same)."""
    global _shared, _prestarted
    cluster = _LazyCluster(cfg)
    if _prestarted is not None and not _prestarted.closed and _prestarted.cfg == cfg:
        cluster, _prestarted = _prestarted, None
    outer, _shared = _shared, cluster
    try:
        with _closing(cluster):
            yield
    finally:
        _shared = outer


@contextmanager
def cluster_client(cfg: DaskConfig) -> Iterator[Client]:
    """The flow's shared client if there is one, else a cluster for this block alone."""
    if _shared is not None and _shared.cfg == cfg:
        yield _shared.get()
        return
    cluster = _LazyCluster(cfg)
    with _closing(cluster):
        yield cluster.get()

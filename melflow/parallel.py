"""Dask execution: a client for the configured cluster and a resumable batch runner.

The executor is passed in (never created inside domain functions), so the same code
runs on a ``LocalCluster``, an existing ``dask scheduler`` or a test's in-process cluster.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from distributed import Client, LocalCluster, Worker, WorkerPlugin, as_completed

from melflow.config import DaskConfig
from melflow.errors import ConfigError, MelflowError

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 30
# glibc mallopt parameters and the values a worker runs with (see WorkerSetup).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES = 32 * 2**20, 64 * 2**20
MAX_BATCHES_PER_TASK, TASKS_PER_WORKER = 4, 8


def tune_allocator() -> bool:
    """Let glibc reuse freed batch buffers instead of unmapping them; ``False`` where it can't.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes
    glibc's mmap threshold at 128 KiB: every ~1 MB temporary of a batch (frames, spectra,
    encoded chunks) is then a fresh ``mmap`` whose pages fault in one by one, and
    extraction runs ~1.7x slower. Fixed thresholds keep up to 64 MiB of freed memory per
    arena for reuse, so memory stays bounded by the batch size.
    """
    if sys.platform != "linux":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


class WorkerSetup(WorkerPlugin):
    """On every worker, including ones that join later: :func:`tune_allocator`, then
    import ``modules``, so that a fresh worker's first batch does not pay for them."""

    name = "melflow-worker-setup"

    def __init__(self, modules: Sequence[str] = ()) -> None:
        self.modules = tuple(modules)

    def setup(self, worker: Worker) -> None:
        tune_allocator()
        for module in self.modules:
            importlib.import_module(module)


@contextmanager
def dask_client(cfg: DaskConfig, *, worker_imports: Sequence[str] = ()) -> Iterator[Client]:
    """:func:`open_client` for the block."""
    with ExitStack() as stack:
        yield open_client(cfg, stack=stack, worker_imports=worker_imports)


def open_client(cfg: DaskConfig, *, stack: ExitStack, worker_imports: Sequence[str] = ()) -> Client:
    """Connect to ``cfg.address`` or start a ``LocalCluster`` on 127.0.0.1; closing the
    client (and the cluster it started) is pushed onto ``stack``.

    Every worker runs :class:`WorkerSetup` with ``worker_imports`` (module names) before
    the client is returned. Unlike ``with Client(...)``, which binds the client to the
    calling thread's context, the client may be opened in one thread and closed in another.

    Raises
    ------
    ConfigError
        No scheduler answered at ``cfg.address`` within :data:`CONNECT_TIMEOUT_S`.
    """
    if cfg.address:
        client = _connect(cfg.address)
    else:
        cluster = LocalCluster(
            n_workers=cfg.n_workers,
            threads_per_worker=cfg.threads_per_worker,
            processes=True,
            host="127.0.0.1",
            # A free loopback port: concurrent clusters never fight over 8787.
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
            memory_limit=cfg.memory_limit,
        )
        stack.callback(cluster.close)
        client = Client(cluster)
    stack.callback(client.close)
    client.register_plugin(WorkerSetup(worker_imports))
    return client


def _connect(address: str) -> Client:
    try:
        return Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as exc:
        # A wrong address is not transient: fail once, clearly, instead of retrying the stage.
        raise ConfigError(
            f"dask.address={address!r}: no Dask scheduler answered within "
            f"{CONNECT_TIMEOUT_S} s; start one with `dask scheduler` or fix the address"
        ) from exc


class BatchFailuresError(MelflowError):
    """Some batches failed after retries; every other batch was still completed."""


def run_batches(
    client: Client,
    fn: Callable[..., int],
    indices: Sequence[int],
    *,
    kwargs: dict[str, Any],
    on_done: Callable[[int], None] | None = None,
    retries: int = 2,
) -> int:
    """Run ``fn(index, **kwargs)`` for every batch index on the cluster.

    Each call must be idempotent (it writes its own region and marker). Batches travel
    in groups of :func:`batches_per_task`, so scheduling costs stay small next to the
    work. Returns the number of rows the calls reported. Failures do not stop other
    groups; they are collected and raised together as :class:`BatchFailuresError` at the end.
    """
    if not indices:
        return 0
    size = batches_per_task(len(indices), workers=max(1, sum(client.nthreads().values())))
    groups = [list(indices[i : i + size]) for i in range(0, len(indices), size)]
    # The futures resolve in this client's event loop: make it the current client here,
    # as `with Client(...)` would, since it may have been opened in another thread.
    rows = 0
    failures: list[str] = []
    with client.as_current():
        futures = client.map(_run_group, groups, fn=fn, pure=False, retries=retries, kwargs=kwargs)
        for future in as_completed(futures):
            if future.status == "error":
                exc = future.exception()
                failures.append(f"{type(exc).__name__}: {exc}")
                log.error("batch failed: %s", exc)
            else:
                n = int(future.result())
                rows += n
                if on_done is not None:
                    on_done(n)
            future.release()
    if failures:
        head = "\n  ".join(failures[:5])
        raise BatchFailuresError(f"{len(failures)} of {len(groups)} tasks failed:\n  {head}")
    return rows


def batches_per_task(n_batches: int, *, workers: int) -> int:
    """Batches per Dask task: up to 4, while every worker still gets 8 or more tasks.

    One task costs the client and scheduler a few milliseconds; grouping keeps that
    below the batch work, and many tasks per worker keep the last ones short.
    """
    return max(1, min(MAX_BATCHES_PER_TASK, n_batches // (workers * TASKS_PER_WORKER)))


def _run_group(indices: list[int], *, fn: Callable[..., int], kwargs: dict[str, Any]) -> int:
    """Run a task's batches in order; one failing batch does not stop the others.

    Each batch that succeeds writes its marker, so only the failed ones stay pending;
    the first failure is raised once all were tried.
    """
    rows, failures = 0, []
    for index in indices:
        try:
            rows += fn(index, **kwargs)
        except Exception as exc:  # any batch error: reported by run_batches with the rest
            failures.append(exc)
    if failures:
        raise failures[0]
    return rows

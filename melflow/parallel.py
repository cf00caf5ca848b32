"""Dask execution: a client for the configured cluster and a resumable batch runner.

The executor is passed in (never created inside domain functions), so the same code
runs on a ``LocalCluster``, an existing ``dask scheduler`` or a test's in-process cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from distributed import Client, LocalCluster, as_completed

from melflow.config import DaskConfig
from melflow.errors import ConfigError, MelflowError

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 30


@contextmanager
def dask_client(cfg: DaskConfig) -> Iterator[Client]:
    """Connect to ``cfg.address`` or start a ``LocalCluster`` on 127.0.0.1 for the block.

    Raises
    ------
    ConfigError
        No scheduler answered at ``cfg.address`` within :data:`CONNECT_TIMEOUT_S`.
    """
    if cfg.address:
        with _connect(cfg.address) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=cfg.n_workers,
            threads_per_worker=cfg.threads_per_worker,
            processes=True,
            host="127.0.0.1",
            # A free loopback port: concurrent clusters never fight over 8787.
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
            memory_limit=cfg.memory_limit,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


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

    Each call must be idempotent (it writes its own region and marker). Returns the
    number of rows the calls reported. Failures do not stop other batches; they are
    collected and raised together as :class:`BatchFailuresError` at the end.
    """
    if not indices:
        return 0
    futures = client.map(fn, list(indices), pure=False, retries=retries, **kwargs)
    rows = 0
    failures: list[str] = []
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
        raise BatchFailuresError(f"{len(failures)} of {len(indices)} batches failed:\n  {head}")
    return rows

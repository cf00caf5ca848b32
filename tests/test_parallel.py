"""Batch runner and cluster set-up: grouped tasks, progress, failures, worker allocator."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from distributed import Client

from melflow.config import DaskConfig
from melflow.parallel import (
    BatchFailuresError,
    WorkerSetup,
    batches_per_task,
    dask_client,
    run_batches,
    tune_allocator,
)

RAN: list[int] = []


def rows_of(index: int, *, scale: int) -> int:
    RAN.append(index)
    if index == 13:
        raise ValueError("batch 13 is broken")
    return index * scale


@pytest.mark.parametrize(
    ("n_batches", "workers", "expected"),
    [(1, 2, 1), (31, 2, 1), (32, 2, 2), (160, 2, 4), (10_000, 2, 4), (160, 16, 1)],
)
def test_batches_per_task_keeps_eight_tasks_per_worker_up_to_four_batches(
    n_batches: int, workers: int, expected: int
) -> None:
    assert batches_per_task(n_batches, workers=workers) == expected


def test_run_batches_groups_batches_and_reports_rows_per_task(dask_client_inproc: Any) -> None:
    done: list[int] = []
    indices = list(range(40))  # 2 worker threads -> 2 batches per task, 20 tasks
    rows = run_batches(
        dask_client_inproc, rows_of, indices[:13], kwargs={"scale": 3}, on_done=done.append
    )
    assert rows == 3 * sum(range(13))
    assert sorted(done) == sorted([3 * i for i in range(13)])  # 13 batches: one per task
    done.clear()
    with pytest.raises(BatchFailuresError, match="1 of 20 tasks failed") as info:
        run_batches(
            dask_client_inproc,
            rows_of,
            indices,
            kwargs={"scale": 1},
            on_done=done.append,
            retries=0,
        )
    assert "batch 13 is broken" in str(info.value)
    assert len(done) == 19 and sum(done) == sum(range(40)) - 12 - 13


def test_a_failing_batch_does_not_stop_the_rest_of_its_task(dask_client_inproc: Any) -> None:
    RAN.clear()
    indices = list(range(64))  # 2 worker threads -> 4 batches per task: 13 shares with 12-15
    with pytest.raises(BatchFailuresError, match="1 of 16 tasks failed"):
        run_batches(dask_client_inproc, rows_of, indices, kwargs={"scale": 1}, retries=0)
    assert sorted(RAN) == indices  # 14 and 15 still ran (and wrote their markers)


@pytest.mark.skipif(sys.platform != "linux", reason="mallopt tuning is glibc-only")
def test_local_cluster_workers_run_the_worker_setup() -> None:
    assert tune_allocator() is True
    with dask_client(DaskConfig(n_workers=1), worker_imports=["tabnanny"]) as client:
        assert isinstance(client, Client)
        plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
        imported = client.run(lambda: "tabnanny" in sys.modules)  # nothing else loads it
    assert [WorkerSetup.name in names for names in plugins.values()] == [True]
    assert list(imported.values()) == [True]

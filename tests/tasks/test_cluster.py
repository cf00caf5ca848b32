"""The flow's shared Dask cluster: started in the background by the command when work is
likely, adopted by the flow, closed once."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from melflow.config import DaskConfig
from melflow.tasks.cluster import (
    BATCH_MODULES,
    cluster_client,
    prestarted_cluster,
    shared_cluster,
)

ONE_WORKER = DaskConfig(n_workers=1, memory_limit="1GiB")


def test_the_flow_adopts_the_prestarted_cluster_and_it_closes_once() -> None:
    with prestarted_cluster(ONE_WORKER, needed=lambda: True):
        with shared_cluster(ONE_WORKER):
            with cluster_client(ONE_WORKER) as first:
                assert first.submit(sum, [1, 2]).result() == 3
                # The worker imported the batch modules as it joined, before any batch.
                imported = first.run(
                    lambda: __import__("sys").modules.keys() >= {"melflow.features.spectral"}
                )
                assert list(imported.values()) == [True]
            with cluster_client(ONE_WORKER) as second:
                assert second is first
        assert first.status == "closed"
        # Adopted once: a second flow in the same command starts its own cluster.
        with shared_cluster(ONE_WORKER), cluster_client(ONE_WORKER) as third:
            assert third is not first and third.submit(sum, [3]).result() == 3
    assert third.status == "closed"


def test_a_flow_with_other_dask_settings_starts_its_own_cluster() -> None:
    other = DaskConfig(n_workers=1, memory_limit="1500MiB")
    early = prestarted_cluster(ONE_WORKER, needed=lambda: True)
    with early, shared_cluster(other), cluster_client(other) as client:
        assert client.submit(sum, [2, 2]).result() == 4
        limits = {w["memory_limit"] for w in client.scheduler_info()["workers"].values()}
        assert limits == {1500 * 2**20}
    assert client.status == "closed"


def test_nothing_starts_early_when_no_work_is_expected_but_a_stage_still_gets_a_cluster() -> None:
    asked: list[bool] = []
    early = prestarted_cluster(ONE_WORKER, needed=lambda: asked.append(True) or False)
    with early, shared_cluster(ONE_WORKER), cluster_client(ONE_WORKER) as client:
        assert asked == [True]
        assert client.submit(sum, [5]).result() == 5
    assert client.status == "closed"


def test_a_stopped_command_does_not_wait_for_a_start_in_progress() -> None:
    def slow_check() -> bool:
        time.sleep(1.5)
        return False

    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt), prestarted_cluster(ONE_WORKER, needed=slow_check):
        raise KeyboardInterrupt
    assert time.perf_counter() - start < 1.0


def test_what_a_joining_worker_imports_loads_neither_pandas_nor_pyarrow() -> None:
    # Only planning needs them: ~0.3 s a worker, while the command ingests and plans.
    code = (
        f"import importlib, sys\nfor m in {BATCH_MODULES!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in ('pandas', 'pyarrow', 'melflow.features.batch') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["['melflow.features.batch']"]

"""The flow's shared Dask cluster: started in the background by the command, adopted by
the flow, closed once."""

from __future__ import annotations

from melflow.config import DaskConfig
from melflow.tasks.cluster import cluster_client, prestarted_cluster, shared_cluster

ONE_WORKER = DaskConfig(n_workers=1, memory_limit="1GiB")


def test_the_flow_adopts_the_prestarted_cluster_and_it_closes_once() -> None:
    with prestarted_cluster(ONE_WORKER):
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


def test_a_flow_with_other_dask_settings_starts_its_own_cluster() -> None:
    other = DaskConfig(n_workers=1, memory_limit="1500MiB")
    with prestarted_cluster(ONE_WORKER), shared_cluster(other), cluster_client(other) as client:
        assert client.submit(sum, [2, 2]).result() == 4
        limits = {w["memory_limit"] for w in client.scheduler_info()["workers"].values()}
        assert limits == {1500 * 2**20}
    assert client.status == "closed"

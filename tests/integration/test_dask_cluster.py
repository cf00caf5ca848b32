"""Extraction and augmentation on a running ``dask scheduler`` with two ``dask worker``s.

The workers run in another working directory than the client, as on a real cluster, so a
store path the client did not resolve would land somewhere else (or not be found).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import manifest_for, small_config
from distributed import Client
from live_servers import HOST, Processes, free_port, running
from stores import assert_same_store

from melflow.augment.offline import augment_features
from melflow.demo_corpus import generate_demo_corpus
from melflow.features.extract import extract_features, feature_store_url
from melflow.features.store import RowStore
from melflow.parallel import dask_client

pytestmark = pytest.mark.integration


@dataclass
class Cluster:
    address: str
    cwd: Path
    procs: Processes


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """``dask scheduler`` + 2 ``dask worker --nthreads 1`` (with nannies) on 127.0.0.1."""
    cwd = tmp_path_factory.mktemp("dask-cluster")
    address = f"tcp://{HOST}:{free_port()}"
    scheduler = [
        sys.executable, "-m", "distributed.cli.dask_scheduler",
        "--host", HOST, "--port", address.rsplit(":", 1)[1], "--no-dashboard",
    ]  # fmt: skip
    with running(cwd / "logs") as procs:
        procs.start("scheduler", scheduler, cwd=cwd)
        for i in range(2):
            worker = [
                sys.executable, "-m", "distributed.cli.dask_worker", address,
                "--nthreads", "1", "--host", HOST, "--no-dashboard", "--name", f"w{i}",
                "--local-directory", str(cwd / f"w{i}"),
            ]  # fmt: skip
            procs.start(f"worker{i}", worker, cwd=cwd)
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield Cluster(address, cwd, procs)


def test_extract_and_augment_on_the_cluster_equal_a_local_run(
    tmp_path: Path,
    small_corpus: Path,
    cluster: Cluster,
    dask_client_inproc: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest = manifest_for(small_corpus)
    local_cfg = small_config(tmp_path)
    local = extract_features(manifest=manifest, cfg=local_cfg, client=dask_client_inproc)
    local_aug = augment_features(manifest=manifest, cfg=local_cfg, client=dask_client_inproc)

    # A relative data_dir, as in a profile: it means the client's working directory.
    monkeypatch.chdir(tmp_path)
    cfg = small_config(tmp_path, "paths.data_dir=on-cluster", f"dask.address={cluster.address}")
    with dask_client(cfg.dask) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        remote = extract_features(manifest=manifest, cfg=cfg, client=client)
        remote_aug = augment_features(manifest=manifest, cfg=cfg, client=client)

    assert (remote.rows, remote.batches_computed) == (72, 5)
    assert (remote_aug.rows, remote_aug.batches_computed) == (72, 5)
    # The client resolved the relative folder before sending it: workers wrote under its cwd.
    assert Path(remote.store_url).is_relative_to(tmp_path / "on-cluster")
    assert not (cluster.cwd / "on-cluster").exists()
    assert_same_store(RowStore(remote.store_url), RowStore(local.store_url))
    assert_same_store(RowStore(remote_aug.store_url), RowStore(local_aug.store_url))


def test_killing_a_worker_mid_extraction_still_gives_the_uninterrupted_store(
    tmp_path: Path, cluster: Cluster, dask_client_inproc: Client
) -> None:
    corpus = tmp_path / "corpus"
    generate_demo_corpus(root=corpus, per_class=40, seed=0, sr=16000)
    manifest = manifest_for(corpus)  # 240 clips: 15 batches of 16
    local = extract_features(
        manifest=manifest, cfg=small_config(tmp_path / "local"), client=dask_client_inproc
    )

    cfg = small_config(tmp_path, f"dask.address={cluster.address}")
    killed: dict[str, int] = {}
    with dask_client(cfg.dask) as client:
        store = RowStore(feature_store_url(cfg))

        def kill_a_busy_worker(done: int, total: int) -> None:
            if killed:
                return
            busy = [addr for addr, keys in client.processing().items() if keys]
            if not busy:  # between two tasks: kill at the next progress call
                return
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
            killed.update(pid=pid, markers=len(store.done_batches()))
            os.kill(pid, signal.SIGKILL)

        result = extract_features(
            manifest=manifest, cfg=cfg, client=client, on_progress=kill_a_busy_worker
        )

    assert 1 <= killed["markers"] < 15, killed
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)
    assert (result.rows, result.batches_total, result.batches_computed) == (240, 15, 15)
    assert_same_store(store, RowStore(local.store_url))

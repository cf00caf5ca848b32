"""Corpus, manifests and Zarr stores on S3 (a ``moto`` server on 127.0.0.1).

Credentials are dummies from the environment; the endpoint comes from
``paths.storage_options`` or from ``AWS_ENDPOINT_URL``, so no request can leave the machine.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from conftest import small_config, small_corpus_in_bucket
from distributed import Client
from live_servers import HOST, answers, free_port, running, wait_for
from stores import assert_same_store

from melflow import storage
from melflow.augment.offline import augment_features
from melflow.config import PipelineConfig
from melflow.features import store as store_module
from melflow.features.extract import cached_extraction, extract_features
from melflow.features.store import KEY, RowStore, StoreLayout
from melflow.ingest import ingest_corpus, load_manifest
from melflow.parallel import dask_client

pytestmark = pytest.mark.integration
BUCKET = "melflow-it"


@dataclass
class Runs:
    """The same corpus ingested, extracted and augmented locally and on S3."""

    endpoint: str
    s3: Any  # a boto3 S3 client on the moto server, independent of melflow's fsspec one
    cfg: PipelineConfig
    local_cfg: PipelineConfig
    results: dict[str, Any]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, dask_client_inproc: Client) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("s3")
    endpoint = f"http://{HOST}:{free_port()}"
    with pytest.MonkeyPatch.context() as env, running(root / "logs") as procs:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
        }.items():
            env.setenv(key, value)
        for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            env.delenv(key, raising=False)
        port = endpoint.rsplit(":", 1)[1]
        procs.start("moto", [sys.executable, "-m", "moto.server", "-H", HOST, "-p", port])
        wait_for(lambda: answers(endpoint), timeout=30, what="the moto server")
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket=BUCKET)

        local_cfg = small_corpus_in_bucket(s3, BUCKET, root)
        cfg = small_config(
            root,
            f"paths.data_dir=s3://{BUCKET}/data",
            f"corpus.root=s3://{BUCKET}/corpus",
            f"paths.storage_options={{client_kwargs: {{endpoint_url: '{endpoint}'}}}}",
        )

        results: dict[str, Any] = {}
        for name, c in (("local", local_cfg), ("s3", cfg)):
            ingested = ingest_corpus(cfg=c)
            manifest = load_manifest(ingested, storage_options=c.paths.storage_options)
            # S3 runs on worker processes, which must find credentials and endpoint alone.
            with dask_client(c.dask) if name == "s3" else nullcontext(dask_client_inproc) as client:
                extracted = extract_features(manifest=manifest, cfg=c, client=client)
                augmented = augment_features(manifest=manifest, cfg=c, client=client)
            results[name] = (ingested, manifest, extracted, augmented)
        yield Runs(endpoint, s3, cfg, local_cfg, results)


def _keys(s3: Any, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_ingest_extract_augment_on_s3_equal_the_local_run(runs: Runs) -> None:
    ingested, manifest, extracted, augmented = runs.results["s3"]
    local_ingested, local_manifest, local_extracted, local_augmented = runs.results["local"]
    assert ingested.manifest_digest == local_ingested.manifest_digest
    assert (ingested.n_clips, ingested.n_ok) == (72, 72)
    assert ingested.manifest_path.startswith(f"s3://{BUCKET}/data/manifests/")
    assert manifest["path"].str.startswith(f"s3://{BUCKET}/corpus/").all()
    assert manifest.drop(columns="path").equals(local_manifest.drop(columns="path"))

    assert (extracted.rows, extracted.batches_computed) == (72, 5)
    assert extracted.store_url.startswith(f"s3://{BUCKET}/data/features/")
    options = runs.cfg.paths.storage_options
    assert_same_store(
        RowStore(extracted.store_url, storage_options=options), RowStore(local_extracted.store_url)
    )
    assert augmented.rows == local_augmented.rows > 0
    assert_same_store(
        RowStore(augmented.store_url, storage_options=options),
        RowStore(local_augmented.store_url),
    )
    # Seen by a plain S3 client: one marker per batch, one chunk object per batch.
    prefix = extracted.store_url.removeprefix(f"s3://{BUCKET}/")
    assert len(_keys(runs.s3, f"{prefix}/_melflow/done/")) == 5
    assert len(_keys(runs.s3, f"{prefix}/data.zarr/logmel/c/")) == 5


def test_markers_on_s3_resume_one_lost_batch_with_the_endpoint_from_env(
    runs: Runs, dask_client_inproc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", runs.endpoint)
    cfg = runs.cfg.model_copy(
        update={"paths": runs.cfg.paths.model_copy(update={"storage_options": {}})}
    )
    again = ingest_corpus(cfg=cfg)
    ingested, _, extracted, _ = runs.results["s3"]
    assert again.manifest_digest == ingested.manifest_digest
    assert again.n_probed == 0  # the probe cache on S3 knew every file
    assert cached_extraction(cfg=cfg, manifest_digest=again.manifest_digest) is not None

    store = RowStore(extracted.store_url)
    assert store.done_batches() == set(range(5))
    # Another writer (not melflow's filesystem object) loses batch 2 and the completion.
    prefix = extracted.store_url.removeprefix(f"s3://{BUCKET}/")
    lost = [
        f"{prefix}/_melflow/complete/{again.manifest_digest}.json",
        f"{prefix}/_melflow/done/00000002",
        *_keys(runs.s3, f"{prefix}/data.zarr/logmel/c/2/"),
    ]
    runs.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in lost]})
    assert cached_extraction(cfg=cfg, manifest_digest=again.manifest_digest) is None
    assert store.pending_batches() == [2]

    manifest = load_manifest(again)
    resumed = extract_features(manifest=manifest, cfg=cfg, client=dask_client_inproc)
    assert (resumed.batches_total, resumed.batches_computed) == (5, 1)
    assert_same_store(store, RowStore(runs.results["local"][2].store_url))


def test_plan_claims_on_s3_are_create_only(runs: Runs) -> None:
    # Two machines planning one store: S3's conditional PUT lets exactly one claim a batch.
    options = runs.cfg.paths.storage_options
    path = f"s3://{BUCKET}/data/claims-probe/00000000.0"
    storage.create_exclusive(path, b"first", options)
    with pytest.raises(FileExistsError):
        storage.create_exclusive(path, b"second", options)
    assert storage.read_bytes(path, options) == b"first"
    storage.remove(path, options)
    assert not storage.exists(path, options)


def test_key_parts_on_s3_are_consolidated_and_the_superseded_part_removed(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "MAX_KEY_PARTS", 1)
    url = f"s3://{BUCKET}/data/keys-probe"
    store = RowStore(url, storage_options=runs.cfg.paths.storage_options)
    store.ensure(StoreLayout(arrays=(), columns=(), chunk_rows=2))
    for n in (2, 4, 6):  # three appends of one batch: consolidated after the 2nd and 3rd
        store.append([{KEY: f"k{i}"} for i in range(n)], columns=())
    keys = [k.rsplit("/", 1)[1] for k in _keys(runs.s3, "data/keys-probe/_melflow/keys/")]
    assert keys == ["00000000-00000003.npy", "00000000.npy", "00000001.npy", "00000002.npy"]
    fresh = RowStore(url, storage_options=runs.cfg.paths.storage_options)
    assert list(fresh.unplanned(["k0", "k5", "k6"])) == [False, False, True]

"""`melflow run` with corpus, data folder and MLflow artifacts on S3 (moto), secrets kept.

A moto server stands in for S3 and an ``mlflow server`` keeps its artifact root there; the
CLI gets credentials and the endpoint only from ``paths.storage_options`` (no AWS
variables in its environment). The secret is a sentinel that must appear nowhere: not in
the MLflow backend store, the Prefect database, any object under the data folder, nor in
anything the commands print.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import small_corpus_in_bucket
from live_servers import HOST, answers, free_port, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BUCKET = "melflow-e2e"
SENTINEL = "SENTINEL-s3cr3t-9f1c"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class World:
    root: Path
    s3: Any
    env: dict[str, str]
    sets: list[str]
    printed: list[str]

    def melflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "melflow.flows.cli", *args]
        done = subprocess.run(
            argv, env=self.env, cwd=REPO, capture_output=True, text=True, timeout=600
        )
        self.printed += [done.stdout, done.stderr]
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done


def _aws_free_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    # No credentials from files or instance metadata either: only storage_options count.
    env |= {
        "AWS_CONFIG_FILE": str(root / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PREFECT_HOME": str(root / "prefect"),
        "MELFLOW_PREFECT": "always",  # record to a Prefect database, to search it too
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",  # a busy 2-core machine
        "PYTHONPATH": str(REPO),
        "COLUMNS": "200",
    }
    return env


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("s3-e2e")
    endpoint = f"http://{HOST}:{free_port()}"
    mlflow_uri = f"http://{HOST}:{free_port()}"
    env = _aws_free_env(root)
    with running(root / "logs") as procs:
        moto = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", endpoint.rsplit(":")[-1]]
        procs.start("moto", moto, env=env)
        wait_for(lambda: answers(endpoint), timeout=30, what="the moto server")
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x",
            region_name="us-east-1",
        )  # fmt: skip
        s3.create_bucket(Bucket=BUCKET)
        argv = [
            sys.executable, "-m", "mlflow", "server", "--host", HOST,
            "--port", mlflow_uri.rsplit(":")[-1], "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--no-serve-artifacts", "--default-artifact-root", f"s3://{BUCKET}/mlartifacts",
        ]  # fmt: skip
        server_env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        procs.start("mlflow", argv, env=server_env, cwd=root)
        wait_for(lambda: answers(f"{mlflow_uri}/health"), timeout=60, what="the mlflow server")

        small_corpus_in_bucket(s3, BUCKET, root)
        sets = [
            f"paths.data_dir=s3://{BUCKET}/data",
            f"corpus.root=s3://{BUCKET}/corpus",
            "paths.storage_options.key=testing-key-id",
            f"paths.storage_options.secret={SENTINEL}",
            f"paths.storage_options.client_kwargs.endpoint_url={endpoint}",
            f"registry.tracking_uri={mlflow_uri}",
            "features.shard_chunks=2",  # 2 chunks of 16 rows per object
        ]
        yield World(root, s3, env, [a for s in sets for a in ("-s", s)], [])


def _objects(s3: Any) -> dict[str, bytes]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}


def test_run_on_s3_registers_a_champion_that_loads_elsewhere_and_keeps_the_secret(
    world: World,
) -> None:
    run = world.melflow("run", "-p", "small", *world.sets)
    assert "register" in run.stdout

    objects = _objects(world.s3)
    # 72 clips in batches of one 32-row shard: 3 objects per array, not 5 chunks.
    clean = [k for k in objects if k.startswith("data/features/") and "/logmel/c/" in k]
    assert sorted(k.split("/logmel/c/")[1] for k in clean) == ["0/0/0", "1/0/0", "2/0/0"]
    artifacts = [k for k in objects if k.startswith("mlartifacts/")]
    assert any(k.endswith("predictions/predictions.csv") for k in artifacts)
    assert any("/reports/quarantine-" in k for k in artifacts)
    assert any(k.endswith("MLmodel") for k in artifacts)

    # Another process, the same config: the champion by alias, straight from S3.
    code = (
        "import sys, numpy as np, pandas as pd\n"
        "from melflow.config import load_config\n"
        "from melflow.registry import load_champion\n"
        "cfg = load_config('small', overrides=sys.argv[1:])\n"
        "m = load_champion(cfg=cfg)\n"
        "y = np.random.default_rng(0).normal(size=(2, 8000)).astype('float32') * 0.1\n"
        "out = m.predict(pd.DataFrame({'waveform': [r.tolist() for r in y], 'sr': [16000] * 2}))\n"
        "print('labels', list(out['label']))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code, *world.sets[1::2]],
        env=world.env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    world.printed += [loaded.stdout, loaded.stderr]
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.count("'") == 4  # two labels

    status = world.melflow("status", "-p", "small", *world.sets)
    assert "champion" in status.stdout and "complete" in status.stdout
    retrain = world.melflow("retrain", "-p", "small", *world.sets)
    assert "nothing to do" in retrain.stdout

    # The sentinel secret: nowhere in MLflow, Prefect, the bucket, or what was printed.
    haystacks = {"mlflow.db": (world.root / "mlflow.db").read_bytes()}
    for db in (world.root / "prefect").rglob("*.db*"):
        haystacks[str(db)] = db.read_bytes()
    assert any("prefect" in name for name in haystacks)
    haystacks |= {f"s3://{BUCKET}/{k}": v for k, v in _objects(world.s3).items()}
    haystacks |= {f"printed[{i}]": t.encode() for i, t in enumerate(world.printed)}
    leaks = {
        name: data[max(0, i - 300) : i + 100].decode(errors="replace")
        for name, data in haystacks.items()
        if (i := data.find(SENTINEL.encode())) >= 0
    }
    assert leaks == {}

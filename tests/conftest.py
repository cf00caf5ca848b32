"""Shared fixtures: seeded synthetic audio, temporary corpora and configs, a Dask client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from melflow.config import PipelineConfig, load_config
from melflow.demo_corpus import generate_demo_corpus
from melflow.digest import digest_file
from melflow.manifest import normalize

FSDD_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fsdd"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def tone(freq_hz: float, *, sr: int, duration_s: float, amplitude: float = 0.5) -> np.ndarray:
    """A pure sine, float32, shape ``(round(sr * duration_s),)``."""
    t = np.arange(round(sr * duration_s)) / sr
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def small_config(tmp_path: Path, *overrides: str) -> PipelineConfig:
    """The ``small`` profile with data and corpus under ``tmp_path``."""
    return load_config(
        "small",
        overrides=[
            f"paths.data_dir={tmp_path / 'data'}",
            f"corpus.root={tmp_path / 'corpus'}",
            *overrides,
        ],
    )


def small_corpus_in_bucket(s3: Any, bucket: str, root: Path) -> PipelineConfig:
    """Generate the small demo corpus under ``root`` and upload it to ``s3://<bucket>/corpus``.

    ``s3`` is a boto3 S3 client; returns the local config (corpus and data under ``root``).
    """
    local = small_config(root)
    demo = local.corpus.demo
    assert demo is not None
    corpus = Path(local.corpus.root)
    generate_demo_corpus(root=corpus, per_class=demo.per_class, seed=demo.seed, sr=demo.sr)
    for path in sorted(corpus.rglob("*.wav")):
        s3.upload_file(str(path), bucket, f"corpus/{path.relative_to(corpus).as_posix()}")
    return local


@pytest.fixture
def small_cfg(tmp_path: Path) -> PipelineConfig:
    return small_config(tmp_path)


@pytest.fixture
def small_corpus(small_cfg: PipelineConfig) -> Path:
    """The small demo corpus (6 classes x 12 clips, 16 kHz) written under tmp_path/corpus."""
    demo = small_cfg.corpus.demo
    assert demo is not None
    generate_demo_corpus(
        root=small_cfg.corpus.root, per_class=demo.per_class, seed=demo.seed, sr=demo.sr
    )
    return Path(small_cfg.corpus.root)


@pytest.fixture(scope="session")
def dask_client_inproc() -> Iterator[object]:
    """A one-process threaded cluster: real Dask scheduling without process start-up cost."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def fsdd_or_skip() -> Path:
    if not (FSDD_ROOT / "metadata.csv").exists():
        pytest.skip(f"FSDD not found at {FSDD_ROOT} (needs ../shared beside the repo)")
    return FSDD_ROOT


def manifest_for(root: Path, *, split: str = "train") -> pd.DataFrame:
    """A hand-made manifest of every WAV under ``root`` (folder = label), all ``ok``.

    For tests of later stages that should not depend on ingest's policies.
    """
    rows = [
        {
            "clip_id": path.relative_to(root).as_posix(),
            "path": str(path),
            "label": path.parent.name,
            "split": split,
            "fold": -1,
            "group": path.stem,
            "sha256": digest_file(path),
            "duration_s": 1.0,
            "sr": 16000,
            "channels": 1,
            "status": "ok",
            "detail": "",
        }
        for path in sorted(root.rglob("*.wav"))
    ]
    return normalize(pd.DataFrame(rows))


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A throwaway Prefect API + database for the whole session (no user state touched)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield

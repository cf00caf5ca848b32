"""FSDD with its official test split: train the ``fsdd`` profile and reach 97 % accuracy.

Slow (minutes on 2 cores). Prints the measured accuracy, macro-F1 and training wall time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import fsdd_or_skip

from melflow.config import load_config
from melflow.evaluation.evaluate import evaluate_bundle
from melflow.features.extract import extract_features
from melflow.ingest import ingest_corpus, load_manifest
from melflow.training.loop import train_model


@pytest.mark.slow
def test_fsdd_official_split_accuracy(tmp_path: Path, dask_client_inproc: object) -> None:
    root = fsdd_or_skip()
    cfg = load_config(
        "fsdd", overrides=[f"paths.data_dir={tmp_path / 'data'}", f"corpus.root={root}"]
    )
    manifest = load_manifest(ingest_corpus(cfg=cfg))
    extract_features(manifest=manifest, cfg=cfg, client=dask_client_inproc)  # type: ignore[arg-type]
    start = time.perf_counter()
    trained = train_model(cfg=cfg, manifest=manifest, run_dir=str(tmp_path / "run"))
    wall_s = time.perf_counter() - start
    result = evaluate_bundle(
        cfg=cfg,
        manifest=manifest,
        bundle_dir=trained.bundle_dir,
        out_dir=str(tmp_path / "eval"),
        spectrograms=False,
    )
    report = result.report
    print(
        json.dumps(
            {
                "test_accuracy": report["accuracy"],
                "macro_f1": report["macro_f1"],
                "train_wall_s": round(wall_s, 1),
                "epochs_run": trained.epochs_run,
                "best_epoch": trained.best_epoch,
            }
        )
    )
    assert report["support"] == 300
    assert report["accuracy"] >= 0.97

"""FSDD: accuracy and wall time of the ``fsdd`` profile on this machine (skipped without data)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from melflow.config import load_config
from melflow.flows.pipeline import pipeline_flow

ROOT = Path(__file__).resolve().parent.parent
FSDD = ROOT.parent / "shared" / "datasets" / "fsdd"


def bench_fsdd() -> dict[str, float]:
    """Cold ingest -> evaluate of the ``fsdd`` profile; test accuracy, macro-F1 and seconds."""
    if not (FSDD / "metadata.csv").exists():
        raise ImportError(f"FSDD not found at {FSDD}")
    data_dir = ROOT / "data" / "bench" / "fsdd"
    shutil.rmtree(data_dir, ignore_errors=True)
    cfg = load_config("fsdd", overrides=[f"paths.data_dir={data_dir}", f"corpus.root={FSDD}"])
    start = time.perf_counter()
    summary = pipeline_flow(cfg, until="evaluate")
    wall = time.perf_counter() - start
    evaluate = next(s for s in summary.stages if s.stage == "evaluate")
    return {
        "test_accuracy": float(evaluate.numbers["accuracy"]),
        "macro_f1": float(evaluate.numbers["macro-F1"]),
        "wall_s": wall,
    }

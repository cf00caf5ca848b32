"""``kill -9`` of ``melflow run`` during training, then a rerun: the same champion metrics."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from cli_processes import melflow_argv, start, wait_until
from conftest import small_config

from melflow.flows.pipeline import pipeline_flow
from melflow.registry import show

pytestmark = pytest.mark.integration


def test_sigkill_during_training_resumes_to_the_same_champion(
    tmp_path: Path, prefect_harness: None
) -> None:
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    cfg = small_config(killed)
    sets = [f"paths.data_dir={cfg.paths.data_dir}", f"corpus.root={cfg.corpus.root}"]
    proc = start(melflow_argv("run", sets))
    runs = Path(cfg.paths.data_dir, "runs")
    wait_until(proc, lambda: any(runs.glob("*/checkpoints/*.pt")), timeout=300, what="a checkpoint")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not any(runs.glob("*/train-result.json")), "training finished before the kill"

    resumed = pipeline_flow(cfg)
    train = next(s for s in resumed.stages if s.stage == "train")
    assert not train.cached
    uninterrupted = pipeline_flow(small_config(clean))
    a, b = show(cfg=cfg, ref="champion"), show(cfg=small_config(clean), ref="champion")
    assert a.metrics == b.metrics
    assert [s.numbers for s in resumed.stages if s.stage in ("train", "evaluate")] == [
        s.numbers for s in uninterrupted.stages if s.stage in ("train", "evaluate")
    ]

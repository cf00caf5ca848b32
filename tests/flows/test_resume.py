"""``kill -9`` of ``melflow run`` during training, then a rerun: the same champion metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import small_config

from melflow.flows.pipeline import pipeline_flow
from melflow.registry import show

pytestmark = pytest.mark.integration


def test_sigkill_during_training_resumes_to_the_same_champion(
    tmp_path: Path, prefect_harness: None
) -> None:
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    cfg = small_config(killed)
    cmd = [
        sys.executable,
        "-m",
        "melflow.flows.cli",
        "run",
        "-p",
        "small",
        "-s",
        f"paths.data_dir={cfg.paths.data_dir}",
        "-s",
        f"corpus.root={cfg.corpus.root}",
    ]
    proc = subprocess.Popen(
        cmd,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"},
    )
    runs = Path(cfg.paths.data_dir, "runs")
    deadline = time.monotonic() + 300
    while not any(runs.glob("*/checkpoints/*.pt")):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
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

"""Two ``melflow run`` processes started together on an empty data folder: one writer at a
time, the whole corpus, one registered version, no traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cli_processes import melflow_argv, start
from conftest import small_config

from melflow.ingest import latest_manifest
from melflow.registry import list_versions

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPETITIONS = 5
FAST = ("train.epochs=1", "augment.enabled=false")


def _run(root: Path, home: Path) -> subprocess.Popen[str]:
    sets = [f"paths.data_dir={root / 'data'}", f"corpus.root={root / 'corpus'}", *FAST]
    env = {"PREFECT_HOME": str(home), "COLUMNS": "200"}
    return start(
        melflow_argv("run", sets),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("repetition", range(REPETITIONS))
def test_two_runs_at_once_on_an_empty_data_folder(tmp_path: Path, repetition: int) -> None:
    runs = [_run(tmp_path, tmp_path / f"prefect-{i}") for i in range(2)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
    assert sum("waiting for it to finish" in output for output in outputs) == 1, outputs
    cfg = small_config(tmp_path, *FAST)
    ingested = latest_manifest(cfg=cfg)
    assert ingested is not None and (ingested.n_clips, ingested.n_ok) == (72, 72)
    versions = list_versions(cfg=cfg)
    assert list(versions["version"]) == ["1"] and versions["aliases"][0] == "champion"

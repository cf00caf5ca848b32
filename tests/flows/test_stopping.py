"""Ctrl-C and SIGTERM stop ``melflow run`` and all its children; a rerun resumes."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
from cli_processes import melflow_argv, start, wait_until
from conftest import small_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _sets(root: Path) -> list[str]:
    cfg = small_config(root)
    return [f"paths.data_dir={cfg.paths.data_dir}", f"corpus.root={cfg.corpus.root}"]


def _start_until_training(
    root: Path, *, prefect: str
) -> tuple[subprocess.Popen[bytes], list[psutil.Process]]:
    """``melflow run`` on the small profile, returned once a checkpoint exists."""
    proc = start(melflow_argv("run", _sets(root)), env={"MELFLOW_PREFECT": prefect})
    runs = Path(small_config(root).paths.data_dir, "runs")
    wait_until(proc, lambda: any(runs.glob("*/checkpoints/*.pt")), timeout=300, what="a checkpoint")
    return proc, psutil.Process(proc.pid).children(recursive=True)


def _alive(processes: list[psutil.Process]) -> list[int]:
    return [p.pid for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize(
    ("signum", "prefect"), [(signal.SIGTERM, "always"), (signal.SIGINT, "never")]
)
def test_a_stop_signal_ends_every_child_and_the_rerun_resumes(
    tmp_path: Path, signum: signal.Signals, prefect: str
) -> None:
    proc, children = _start_until_training(tmp_path, prefect=prefect)
    if prefect == "never":
        # No Prefect server, and the Dask cluster closed when the Dask stages ended (what
        # may remain is multiprocessing's resource tracker, which lives as long as we do).
        assert [c for c in children if "resource_tracker" not in " ".join(c.cmdline())] == []
    else:
        assert children, "the temporary Prefect server runs beside training"
    os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum, err.decode()[-2000:]
    assert f"{signum.name} received, stopping" in err.decode()
    psutil.wait_procs(children, timeout=5)
    assert _alive(children) == []
    runs = Path(tmp_path, "data", "runs")
    assert not any(runs.glob("*/train-result.json")), "training finished before the signal"
    if signum != signal.SIGTERM:
        return
    rerun = subprocess.run(
        melflow_argv("train", _sets(tmp_path)), capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "epoch 1/" not in rerun.stderr  # resumed after the saved epoch(s)
    assert any(runs.glob("*/train-result.json"))

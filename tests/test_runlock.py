"""The run lock: one writer per data folder, locally (file lock) and on object storage (lease)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest
from conftest import small_config

from melflow.errors import RunLockedError
from melflow.runlock import _held, run_lock

HOLDER = """
import sys, time
from pathlib import Path
from conftest import small_config
from melflow.runlock import run_lock
with run_lock(small_config(Path(sys.argv[1]))):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    print("releasing", flush=True)
"""


def _hold(tmp_path: Path, seconds: float) -> subprocess.Popen[str]:
    tests = str(Path(__file__).parent)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{tests}:{Path(tests).parent}"},
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_fails_at_once_without_wait_and_waits_otherwise(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    holder = _hold(tmp_path, 3.0)
    try:
        with pytest.raises(RunLockedError, match="another melflow run"), run_lock(cfg, wait=False):
            pass
        said: list[str] = []
        with run_lock(cfg, on_wait=said.append, poll_s=0.05):
            assert holder.stdout is not None  # acquired only once the holder let go:
            assert holder.stdout.readline().strip() == "releasing"
        assert len(said) == 1 and "waiting for it to finish" in said[0]
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_releases_the_local_lock(tmp_path: Path) -> None:
    holder = _hold(tmp_path, 60.0)
    holder.kill()
    holder.wait()
    with run_lock(small_config(tmp_path), wait=False):
        pass


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    with run_lock(cfg, wait=False), run_lock(cfg, wait=False):
        pass
    with run_lock(cfg, wait=False):  # released after the outer block
        pass


def test_object_storage_lease_is_exclusive_renewed_and_taken_over_once_expired(
    tmp_path: Path,
) -> None:
    root = f"memory://lease-{time.monotonic_ns()}/data"
    cfg = small_config(tmp_path, f"paths.data_dir={root}", "registry.tracking_uri=sqlite:///x")
    fs = fsspec.filesystem("memory")
    lease_path = f"{root}/locks/run.lease"
    with run_lock(cfg, wait=False, ttl_s=0.3):
        first = json.loads(fs.cat_file(lease_path))
        _held.clear()  # look like another process
        with pytest.raises(RunLockedError), run_lock(cfg, wait=False, ttl_s=0.3):
            pass
        time.sleep(0.5)  # longer than the lifetime: only renewal keeps it
        assert json.loads(fs.cat_file(lease_path))["expires"] > first["expires"]
    assert not fs.exists(lease_path)  # released
    dead = {"token": "dead", "holder": "gone:1", "expires": time.time() - 1}
    fs.pipe_file(lease_path, json.dumps(dead).encode())
    said: list[str] = []
    with run_lock(cfg, on_wait=said.append, poll_s=0.01):
        assert json.loads(fs.cat_file(lease_path))["token"] != "dead"
    assert said and "expired" in said[0]

"""Schedules against a real ``prefect server`` on 127.0.0.1, served by ``melflow schedule``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import small_config

from melflow.registry import show

pytestmark = pytest.mark.integration
MELFLOW = [sys.executable, "-m", "flows.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, *, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real Prefect server on a free loopback port with its own SQLite database."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "COLUMNS": "200",  # rich wraps tables at the terminal width; keep names on one line
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: healthy(url), timeout=90, what="prefect server")
        yield {**env, "PREFECT_API_URL": url}
    finally:
        stop(server)


def melflow(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*MELFLOW, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_scheduled_deployment_runs_through_the_api(tmp_path: Path, prefect_server: dict[str, str]) -> None:
    sets = [f"paths.data_dir={tmp_path / 'data'}", f"corpus.root={tmp_path / 'corpus'}", "train.epochs=2"]
    set_args = [arg for s in sets for arg in ("-s", s)]
    env = prefect_server
    serve = subprocess.Popen(
        [*MELFLOW, "schedule", "--flow", "pipeline", "--cron", "0 3 * * *", "-p", "small", *set_args],
        env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: "pipeline-small" in melflow(env, "schedule", "--list"), timeout=90,
                 what="the deployment to be registered")
        listing = melflow(env, "schedule", "--list")
        assert "scheduled-pipeline/pipeline-small" in listing and "0 3 * * *" in listing

        trigger = subprocess.run(
            [sys.executable, "-c",
             "from prefect.deployments import run_deployment;"
             "r = run_deployment('scheduled-pipeline/pipeline-small', timeout=600);"
             "print(r.state.type.value)"],
            env=env, capture_output=True, text=True, timeout=660,
        )
        assert trigger.stdout.strip().endswith("COMPLETED"), trigger.stdout + trigger.stderr[-3000:]
        champion = show(cfg=small_config(tmp_path, "train.epochs=2"), ref="champion")
        assert champion["version"] == "1"

        melflow(env, "schedule", "--remove", "scheduled-pipeline/pipeline-small")
        assert "pipeline-small" not in melflow(env, "schedule", "--list")
    finally:
        stop(serve)

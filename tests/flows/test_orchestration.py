"""Prefect runs the stages when there is a server to record to; otherwise they run directly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cli_processes import melflow_argv
from conftest import small_config

from melflow.errors import ConfigError
from melflow.flows.orchestration import MODE_ENV, orchestrated


@pytest.fixture
def no_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "prefect-home"
    home.mkdir()
    monkeypatch.setenv("PREFECT_HOME", str(home))
    for name in ("PREFECT_API_URL", "PREFECT_PROFILE", MODE_ENV):
        monkeypatch.delenv(name, raising=False)
    return home


def test_a_configured_server_means_orchestration(
    no_server: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not orchestrated()
    (no_server / "profiles.toml").write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n'
        "[profiles.local]\n"
    )
    assert orchestrated()
    monkeypatch.setenv("PREFECT_PROFILE", "local")
    assert not orchestrated()
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert orchestrated()
    monkeypatch.setenv(MODE_ENV, "never")
    assert not orchestrated()
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv(MODE_ENV, "always")
    assert orchestrated()
    monkeypatch.setenv(MODE_ENV, "sometimes")
    with pytest.raises(ConfigError, match="MELFLOW_PREFECT='sometimes': use one of auto"):
        orchestrated()


CV_ONE_FOLD = ("cv.folds_from=kfold", "cv.k=2", "cv.only=['1']", "train.epochs=1")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("command", "sets", "said"),
    [("ingest", (), "72"), ("cv", CV_ONE_FOLD, "mean +- std")],
)
def test_without_a_server_a_command_starts_none(
    tmp_path: Path, no_server: Path, command: str, sets: tuple[str, ...], said: str
) -> None:
    cfg = small_config(tmp_path)
    env = {**os.environ, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "0"}
    data = [f"paths.data_dir={cfg.paths.data_dir}", f"corpus.root={cfg.corpus.root}", *sets]
    done = subprocess.run(
        melflow_argv(command, data), capture_output=True, text=True, env=env, timeout=300
    )
    # A temporary server could not have started in 0 s: the stages ran without one.
    assert done.returncode == 0, done.stderr[-3000:]
    assert said in done.stdout

"""The commands printed after a run work as printed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import small_config
from typer.testing import CliRunner

from melflow.flows.cli import _print_next_steps, app
from melflow.flows.summary import PipelineSummary
from melflow.registry import tracking_uri


def _printed(capsys: pytest.CaptureFixture[str], tmp_path: Path, sets: list[str]) -> str:
    summary = PipelineSummary()
    summary.add("register", True, 0.0, {}, tracking_uri(small_config(tmp_path, *sets)))
    _print_next_steps(summary, "small", sets)
    return capsys.readouterr().out


def _hints(capsys: pytest.CaptureFixture[str], tmp_path: Path, sets: list[str]) -> dict[str, str]:
    out = _printed(capsys, tmp_path, sets)
    return {m[1]: m[2].strip() for m in re.finditer(r"^(\w[\w ]*?):\s+(.*)$", out, re.M)}


def test_hints_keep_the_overrides_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    sets = [f"paths.data_dir={tmp_path / 'my data'}", f"corpus.root={tmp_path / 'corpus'}"]
    hints = _hints(capsys, tmp_path, sets)
    db = (tmp_path / "my data" / "mlflow.db").resolve()
    assert shlex.split(hints["MLflow UI"]) == [
        "mlflow", "ui", "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1"
    ]  # fmt: skip
    listing = shlex.split(hints["Registry"].split("  |  ")[0])
    assert listing == ["melflow", "models", "list", "-p", "small", "-s", sets[0], "-s", sets[1]]
    done = CliRunner().invoke(app, listing[1:])
    assert done.exit_code == 0, done.output
    assert not (tmp_path / "data").exists()  # it looked where -s said, not at the default

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert _hints(capsys, tmp_path, [])["MLflow UI"] == "http://127.0.0.1:5999"


def test_hints_never_print_a_secret_given_with_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    secret = "SENTINEL-hint-4d2e"
    sets = [f"paths.data_dir={tmp_path / 'data'}", f"paths.storage_options.secret={secret}"]
    out = _printed(capsys, tmp_path, sets)  # loading the config remembers its secrets
    assert secret not in out
    assert "paths.storage_options.secret=***" in out
    assert "*** stands for a secret you gave with -s" in out

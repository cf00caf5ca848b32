"""A fully cached ``melflow run`` is answered from markers, without Prefect, Dask or MLflow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_processes import probe
from conftest import small_config

from melflow.flows.fastpath import save_registration, saved_registration


def test_the_registration_record_names_its_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = small_config(tmp_path)
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    numbers = {"version": "3", "champion": "this version", "decision": "better"}
    links = {"report": "/r/report.html"}
    save_registration(str(eval_dir), cfg=cfg, numbers=numbers, output="sqlite:///x.db", links=links)
    assert saved_registration(str(eval_dir), cfg) is None  # the local store does not exist
    Path(cfg.paths.data_dir).mkdir()
    Path(cfg.paths.data_dir, "mlflow.db").write_bytes(b"")
    assert saved_registration(str(eval_dir), cfg) == {
        "registry": {"tracking_uri": "", "model_name": cfg.registry.model_name},
        "numbers": numbers,
        "output": "sqlite:///x.db",
        "links": links,
    }
    other = small_config(tmp_path, "registry.model_name=other")
    assert saved_registration(str(eval_dir), other) is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert saved_registration(str(eval_dir), cfg) is None


@pytest.mark.integration
@pytest.mark.slow
def test_a_cached_run_loads_no_heavy_library(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    args = ["run", "-p", "small", "-s", f"paths.data_dir={cfg.paths.data_dir}"]
    args += ["-s", f"corpus.root={cfg.corpus.root}"]
    first = subprocess.run([sys.executable, "-m", "melflow", *args], capture_output=True)
    assert first.returncode == 0, first.stderr.decode()[-3000:]
    out, last = probe(*args)
    assert last == "exit=0 loaded=", last
    # Count table cells, not words: the test's own folder name contains "cached".
    statuses = re.findall(r"│ (cached|computed)\s+│", out)
    assert statuses == ["cached"] * 6
    assert "mlflow ui --backend-store-uri sqlite:///" in out


@pytest.mark.integration
@pytest.mark.slow
def test_a_direct_extract_loads_neither_prefect_torch_nor_mlflow_and_a_cached_one_no_dask(
    tmp_path: Path,
) -> None:
    cfg = small_config(tmp_path)
    args = ["extract", "-p", "small", "-s", f"paths.data_dir={cfg.paths.data_dir}"]
    args += ["-s", f"corpus.root={cfg.corpus.root}"]

    def loaded_after_run() -> tuple[list[str], set[str]]:
        out, last = probe(*args)
        code, loaded = last.split()
        assert code == "exit=0", out
        return re.findall(r"│ (cached|computed)\s+│", out), set(loaded[len("loaded=") :].split(","))

    statuses, loaded = loaded_after_run()
    assert statuses == ["computed"] * 2
    assert "distributed" in loaded  # it did extract, on a cluster
    assert not {"prefect", "torch", "mlflow"} & loaded  # no Prefect server: a direct run
    statuses, loaded = loaded_after_run()
    assert statuses == ["cached"] * 2
    assert not {"dask", "distributed", "torch", "mlflow"} & loaded  # no cluster started

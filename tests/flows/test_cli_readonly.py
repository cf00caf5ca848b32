"""Read-only commands never load Prefect (so never start a server); on a local registry
``status`` and ``models list`` load no MLflow, torch, Dask or scipy either; JSON parses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_processes import probe
from conftest import small_config, tone
from registries import fake_registry

from melflow.ingest import ingest_corpus


@pytest.mark.integration
def test_status_models_profiles_and_predict_never_load_prefect(tmp_path: Path) -> None:
    import soundfile as sf

    cfg = small_config(tmp_path)
    data = ["-p", "small", "-s", f"paths.data_dir={cfg.paths.data_dir}"]
    data += ["-s", f"corpus.root={cfg.corpus.root}"]
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone(440.0, sr=16000, duration_s=0.5), 16000)
    out, last = probe("status", "--json", *data)
    assert last == "exit=0 loaded="
    assert [row["stage"] for row in json.loads(out)["stages"]] == ["ingest"]
    out, last = probe("models", "list", "--json", *data)
    assert last == "exit=0 loaded=" and json.loads(out)["versions"] == []
    assert probe("profiles")[1] == "exit=0 loaded="
    # No registered model: one error line, and Prefect still not loaded.
    code, loaded = probe("predict", str(clip), *data)[1].split()
    assert code == "exit=2" and "prefect" not in loaded


@pytest.mark.integration
def test_status_and_models_list_read_a_local_registry_without_mlflow(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    ingest_corpus(cfg=cfg)  # status then reads the manifest, the stores and the champion
    fake_registry(cfg)
    data = ["-p", "small", "-s", f"paths.data_dir={cfg.paths.data_dir}"]
    data += ["-s", f"corpus.root={cfg.corpus.root}"]
    out, last = probe("status", "--json", *data)
    assert last == "exit=0 loaded="
    rows = {row["stage"]: row for row in json.loads(out)["stages"]}
    assert rows["extract"]["state"] == "missing"
    assert rows["champion"]["detail"] == "version 1, macro_f1 0.800"
    out, last = probe("models", "list", "--json", *data)
    assert last == "exit=0 loaded="
    versions = json.loads(out)["versions"]
    assert [(v["version"], v["aliases"], v["macro_f1"]) for v in versions] == [
        ("2", "challenger", None),  # NaN in the registry: null in JSON
        ("1", "champion", 0.8),
    ]

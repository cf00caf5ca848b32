"""What a registered model's MLflow run records: its name, tags, dataset inputs, links."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from bundles import tiny_bundle
from conftest import small_config
from mlflow.tracking import MlflowClient

from melflow.evaluation.metrics import classification_report
from melflow.lineage import bundle_digest, git_commit
from melflow.registry import DatasetInput, log_and_register, show, tracking_uri
from melflow.tracking_ui import run_url, ui_command, ui_url

CLASSES = ["a", "b"]


def test_run_name_tags_and_dataset_inputs(tmp_path: Path) -> None:
    cfg = small_config(tmp_path, "registry.model_name=records")
    bundle = str(tmp_path / "bundle")
    tiny_bundle(cfg, bundle, classes=CLASSES)
    predictions = pd.DataFrame(
        {"clip_id": ["c1", "c2", "c3"], "label": ["a", "b", "b"], "pred": ["a", "b", "a"]}
    )
    report = classification_report(
        y_true=predictions["label"], y_pred=predictions["pred"], classes=CLASSES
    )
    inputs = [
        DatasetInput("manifest", "m" * 16, str(tmp_path / "manifest.parquet"), "training"),
        DatasetInput("features", "f" * 16, str(tmp_path / "features"), "training"),
        DatasetInput("test-set", "e" * 16, str(tmp_path / "eval"), "test"),
    ]
    registered = log_and_register(
        cfg=cfg,
        bundle_dir=bundle,
        history=[],
        report=report,
        artifacts=[],
        tags={"melflow.prefect.flow_run_id": "run-123"},
        predictions=predictions,
        lineage={"profile": "small", "manifest_digest": "m" * 16},
        inputs=inputs,
    )
    client = MlflowClient(tracking_uri(cfg), tracking_uri(cfg))
    run = client.get_run(registered.run_id)

    assert run.info.run_name == f"small/train/{bundle_digest(bundle)[:8]}"
    assert registered.experiment_id == run.info.experiment_id
    tags = run.data.tags
    assert tags["melflow.lineage.profile"] == "small"
    assert tags["melflow.lineage.manifest_digest"] == "m" * 16
    assert tags["melflow.prefect.flow_run_id"] == "run-123"
    assert "melflow.git_commit" not in tags and "manifest_digest" not in tags
    commit = git_commit()
    if commit is None:
        pytest.skip("melflow does not run from a git checkout here: no commit to tag")
    assert tags["mlflow.source.git.commit"] == commit
    recorded = {
        (d.dataset.name, d.dataset.digest, d.dataset.source_type, d.tags[0].value)
        for d in run.inputs.dataset_inputs
    }
    assert recorded == {
        ("manifest", "m" * 16, "local", "training"),
        ("features", "f" * 16, "local", "training"),
        ("test-set", "e" * 16, "local", "test"),
    }
    assert show(cfg=cfg, ref="1").run_tags["mlflow.source.git.commit"] == commit

    again = log_and_register(
        cfg=cfg,
        bundle_dir=bundle,
        history=[],
        report=report,
        artifacts=[],
        tags={},
        predictions=predictions,
    )
    assert again.existing and again.experiment_id == registered.experiment_id


def test_ui_hints_for_a_local_store_and_a_server() -> None:
    local = "sqlite:////srv/my data/mlflow.db"
    assert ui_command(local) == (
        "mlflow ui --backend-store-uri 'sqlite:////srv/my data/mlflow.db' --host 127.0.0.1"
    )
    assert ui_url(local) == "http://127.0.0.1:5000"
    assert run_url(local, experiment_id="3", run_id="abc") == (
        "http://127.0.0.1:5000/#/experiments/3/runs/abc"
    )
    server = "https://user:pw@mlflow.example.org:8443/"
    assert ui_command(server) is None  # the server is the UI
    assert ui_url(server) == "https://mlflow.example.org:8443"
    assert "pw" not in run_url(server, experiment_id="1", run_id="r")

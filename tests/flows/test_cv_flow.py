"""`melflow cv` on the small demo corpus: 2 stratified k-folds, nested MLflow runs, no version."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from conftest import small_config
from typer.testing import CliRunner

from melflow.flows.cli import app
from melflow.flows.cv import cv_flow
from melflow.registry import CV_FOLD_TAG, list_versions, tracking_uri

pytestmark = pytest.mark.integration

CV = ("cv.folds_from=kfold", "cv.k=2", "train.epochs=4", "train.num_threads=1")


def test_cv_trains_each_fold_once_logs_nested_runs_and_registers_nothing(
    tmp_path: Path, prefect_harness: None
) -> None:
    cfg = small_config(tmp_path, *CV)
    summary = cv_flow(cfg)
    result = summary.result
    assert [f.score.fold for f in result.folds] == ["1", "2"]
    assert sum(f.n_test for f in result.folds) == 72  # 6 classes x 12 clips, each tested once
    assert sum(sum(row) for row in result.confusion) == 72
    assert result.summary()["accuracy_mean"] > 0.4  # 6 classes: chance is 0.17
    assert list_versions(cfg=cfg).empty

    client = mlflow.MlflowClient(tracking_uri(cfg))
    parent = client.get_run(summary.run_id)
    assert parent.data.metrics["accuracy_mean"] == pytest.approx(result.summary()["accuracy_mean"])
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{summary.run_id}'"
    )
    assert sorted(r.data.tags[CV_FOLD_TAG] for r in children) == ["1", "2"]

    # the CLI reuses the finished folds and the logged parent run
    args = ["cv", "-p", "small", "--json"]
    for item in (f"paths.data_dir={tmp_path / 'data'}", f"corpus.root={tmp_path / 'corpus'}", *CV):
        args += ["--set", item]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    printed = json.loads(out.stdout)
    assert printed["mlflow_run_id"] == summary.run_id
    assert printed["accuracy_mean"] == pytest.approx(result.summary()["accuracy_mean"])

"""What two pipeline runs leave in Prefect and MLflow: names, tags, logs, Cached task runs,
the summary artifact, and the model's run with its lineage, inputs and report."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from conftest import small_config
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

from melflow.digest import digest_of
from melflow.flows.pipeline import pipeline_flow
from melflow.registry import show, tracking_uri

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KEYED_TASKS = {"extract-features", "augment-features", "train-model", "evaluate-model"}


async def _prefect_records(run_id: UUID) -> dict[str, Any]:
    only = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
        tasks = await client.read_task_runs(flow_run_filter=only)
        logs = await client.read_logs()
        artifacts = await client.read_artifacts()
    return {
        "run": run,
        "states": {t.name.rsplit("-", 1)[0]: t.state_name for t in tasks},
        "task_tags": {t.name.rsplit("-", 1)[0]: set(t.tags) for t in tasks},
        "logs": [m.message for m in logs if m.flow_run_id == run_id],
        "artifacts": [a for a in artifacts if a.flow_run_id == run_id],
    }


def test_two_runs_in_prefect_and_mlflow(tmp_path: Path, prefect_harness: None) -> None:
    cfg = small_config(tmp_path)
    with temporary_settings(updates={PREFECT_LOGGING_TO_API_ENABLED: True}):
        states = [pipeline_flow(cfg, return_state=True) for _ in range(2)]
    first, second = (asyncio.run(_prefect_records(s.state_details.flow_run_id)) for s in states)

    for records in (first, second):
        run = records["run"]
        assert run.name == "run/small"
        assert {"melflow", "profile:small", "stage:register"} <= set(run.tags)
        assert run.parameters["cfg"] == {"profile": "small", "digest": digest_of(cfg)}
    assert {first["states"][name] for name in KEYED_TASKS} == {"Completed"}
    assert {second["states"][name] for name in KEYED_TASKS} == {"Cached"}
    assert "stage:train" in second["task_tags"]["train-model"]
    assert any(m.startswith("ingest: ") for m in first["logs"])  # melflow's INFO line

    (artifact,) = second["artifacts"]
    assert artifact.key == "run-small" and artifact.type == "markdown"
    summary = states[1].result()
    html = summary.links["report"]
    assert Path(html).name == "report.html" and html in artifact.data
    assert summary.links["MLflow run"] in artifact.data
    assert "| train | cached |" in artifact.data

    version = show(cfg=cfg, ref="champion")
    client = MlflowClient(tracking_uri(cfg), tracking_uri(cfg))
    mlflow_run = client.get_run(version.run_id)
    assert mlflow_run.info.run_name == f"small/train/{version.bundle_digest[:8]}"
    assert summary.links["MLflow run"].endswith(
        f"/#/experiments/{mlflow_run.info.experiment_id}/runs/{version.run_id}"
    )
    tags = mlflow_run.data.tags
    assert tags["melflow.prefect.flow_run_id"] == str(first["run"].id)
    assert tags["melflow.lineage.profile"] == "small"
    assert len(tags["melflow.lineage.manifest_digest"]) == 16
    inputs = {d.dataset.name: d for d in mlflow_run.inputs.dataset_inputs}
    assert set(inputs) == {"manifest", "features", "augmented", "test-split"}
    assert inputs["test-split"].dataset.digest == version.tags["melflow.eval_digest"]
    reports = {a.path for a in client.list_artifacts(version.run_id, "reports")}
    assert "reports/report.html" in reports

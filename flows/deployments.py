"""Scheduled runs: Prefect deployments of the pipeline and retrain flows, served by a process.

Deployment parameters are plain JSON (a profile name and ``key=value`` overrides), so a
schedule stored in the Prefect server stays valid while the code evolves; the config is
loaded and validated when each run starts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from prefect import flow, serve
from prefect.client.orchestration import get_client
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectNotFound

from melflow.config import load_config
from melflow.flows.pipeline import pipeline_flow
from melflow.flows.retrain import retrain_flow

FlowName = Literal["pipeline", "retrain"]


@flow(name="scheduled-pipeline", flow_run_name="scheduled/{profile}", log_prints=False)
def scheduled_pipeline(
    profile: str = "default", overrides: list[str] | None = None
) -> dict[str, Any]:
    """The end-to-end pipeline for a profile; returns the stage summary as plain data."""
    summary = pipeline_flow(load_config(profile, overrides=overrides or []))
    return {"stages": [s.__dict__ for s in summary.stages]}


@flow(name="scheduled-retrain", flow_run_name="scheduled-retrain/{profile}", log_prints=False)
def scheduled_retrain(
    profile: str = "default", overrides: list[str] | None = None
) -> dict[str, Any]:
    """Retrain on new data for a profile; returns what changed and, if it ran, the stages."""
    result = retrain_flow(load_config(profile, overrides=overrides or []))
    stages = [s.__dict__ for s in result.pipeline.stages] if result.pipeline else []
    return {"changes": str(result.changes), "stages": stages}


FLOWS = {"pipeline": scheduled_pipeline, "retrain": scheduled_retrain}


@dataclass(frozen=True)
class ScheduleSpec:
    """One deployment to serve: which flow, when, and with which profile."""

    flow: FlowName
    profile: str
    overrides: tuple[str, ...] = ()
    cron: str | None = None
    interval_s: int | None = None

    @property
    def name(self) -> str:
        return f"{self.flow}-{self.profile}"


def serve_schedules(specs: list[ScheduleSpec]) -> None:
    """Register the deployments with the Prefect API and run them when due (blocks)."""
    deployments: list[RunnerDeployment] = [
        FLOWS[spec.flow].to_deployment(  # type: ignore[misc]
            name=spec.name,
            cron=spec.cron,
            interval=spec.interval_s,
            parameters={"profile": spec.profile, "overrides": list(spec.overrides)},
            tags=["melflow"],
        )
        for spec in specs
    ]
    serve(*deployments, print_starting_message=False)


async def _list() -> list[dict[str, Any]]:
    async with get_client() as client:
        deployments = await client.read_deployments()
        flows = {f.id: f.name for f in await client.read_flows()}
    rows = []
    for d in deployments:
        schedules = [
            str(getattr(s.schedule, "cron", None) or getattr(s.schedule, "interval", ""))
            for s in d.schedules
        ]
        rows.append(
            {
                "name": f"{flows.get(d.flow_id, '?')}/{d.name}",
                "schedules": schedules,
                "parameters": d.parameters,
                "paused": d.paused,
            }
        )
    return rows


def list_schedules() -> list[dict[str, Any]]:
    """Every deployment known to the Prefect API, with its schedules and parameters."""
    return asyncio.run(_list())


async def _remove(full_name: str) -> bool:
    async with get_client() as client:
        try:
            deployment = await client.read_deployment_by_name(full_name)
        except ObjectNotFound:
            return False
        await client.delete_deployment(deployment.id)
    return True


def remove_schedule(full_name: str) -> bool:
    """Delete a deployment by ``flow-name/deployment-name``; False when it does not exist."""
    return asyncio.run(_remove(full_name))

"""Flow runs in Prefect: names, recorded parameters, tags, melflow's log lines."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from conftest import small_config
from prefect import task
from prefect.client.orchestration import get_client
from prefect.logging.handlers import APILogHandler
from prefect.runtime import flow_run
from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

from melflow.config import PipelineConfig
from melflow.digest import digest_of
from melflow.flows.deferred_flow import melflow_flow
from melflow.flows.observe import (
    artifact_key,
    config_parameter,
    melflow_logs_to_prefect,
    observed_run,
)

log = logging.getLogger("melflow.tests.observe")


@task(tags=["stage:toy"])
def _toy_task(n: int) -> int:
    log.info("toy task saw %d", n)
    return n + 1


@melflow_flow(name="toy", flow_run_name="toy/{cfg.name}")
def _toy_flow(cfg: PipelineConfig, until: str = "train") -> str:
    with observed_run(cfg, until):
        log.info("toy flow for %s", cfg.name)
        log.debug("not for the API")
        _toy_task(1)
    return str(flow_run.get_id())


async def _read(run_id: str) -> tuple[Any, list[Any], list[str]]:
    async with get_client() as client:
        run = await client.read_flow_run(run_id)  # type: ignore[arg-type]
        tasks = await client.read_task_runs()
        logs = await client.read_logs()
    mine = [t for t in tasks if str(t.flow_run_id) == run_id]
    return run, mine, [m.message for m in logs if str(m.flow_run_id) == run_id]


def test_flow_run_name_parameters_tags_and_logs(
    tmp_path: Path, prefect_harness: None, caplog: Any
) -> None:
    cfg = small_config(tmp_path, "paths.storage_options={key: SECRET-ID, secret: S3CR3T}")
    logger = logging.getLogger("melflow")
    before = (logger.level, logger.propagate, list(logger.handlers))
    with (
        caplog.at_level(logging.WARNING),
        temporary_settings(updates={PREFECT_LOGGING_TO_API_ENABLED: True}),
    ):
        run_id = _toy_flow(cfg)
    run, task_runs, messages = asyncio.run(_read(run_id))

    assert run.name == "toy/small"
    assert run.parameters == {
        "cfg": {"profile": "small", "digest": digest_of(cfg)},
        "until": "train",
    }
    assert "S3CR3T" not in str(run.parameters)
    assert {"melflow", "profile:small", "stage:train"} <= set(run.tags)
    assert [set(t.tags) for t in task_runs] == [
        {"melflow", "profile:small", "stage:train", "stage:toy"}
    ]
    assert "toy flow for small" in messages and "toy task saw 1" in messages
    assert "not for the API" not in messages
    # the terminal (root handlers) got no INFO line, and the logger is as it was
    assert not [r for r in caplog.records if r.name.startswith("melflow")]
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_logs_to_prefect_keep_warnings_on_the_terminal(caplog: Any) -> None:
    with caplog.at_level(logging.WARNING), melflow_logs_to_prefect():
        log.info("quiet")
        log.warning("loud")
        with melflow_logs_to_prefect():  # nested: still one API handler
            handlers = logging.getLogger("melflow").handlers
            assert sum(isinstance(h, APILogHandler) for h in handlers) == 1
    assert [r.getMessage() for r in caplog.records] == ["loud"]


def test_config_parameter_and_artifact_key(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    other = small_config(tmp_path, "features.n_mels=16")
    assert config_parameter(cfg)["profile"] == "small"
    assert config_parameter(cfg)["digest"] != config_parameter(other)["digest"]
    assert artifact_key("run", "My_Profile.v2") == "run-my-profile-v2"

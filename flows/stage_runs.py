"""One stage of a pipeline run: its task called (under Prefect or directly), and timed.

Prefect is imported here only inside a flow run: a direct run never loads it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

from melflow.config import PipelineConfig
from melflow.flows.orchestration import in_flow_run
from melflow.tasks.deferred import Deferred

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

    from melflow.flows.summary import PipelineSummary

T = TypeVar("T")


def run_task(
    cfg: PipelineConfig, task: Deferred[..., T], *args: Any, done: T | None = None
) -> tuple[T, bool, float]:
    """Call a task unless the stage is ``done``; return its result, whether it was cached,
    and the seconds it took.

    ``done`` is the domain's answer (the stage's completion marker, read before the call):
    a finished stage is never taken from Prefect, whose cached results would carry the
    locations of the run that computed them. Under Prefect it still gets its task run,
    which shows Cached (the body only reads the marker if the cache was cleared).
    """
    start = time.perf_counter()
    if not in_flow_run():  # the flow's function called directly: no Prefect
        result = done if done is not None else task.fn(*args)
        return result, done is not None, time.perf_counter() - start
    from melflow.tasks.caching import with_results

    state = cast("State[T]", with_results(task.built, cfg)(*args, return_state=True))
    if done is not None:
        return done, True, time.perf_counter() - start
    result = state.result()
    return result, state.name == "Cached", time.perf_counter() - start


@contextmanager
def flow_run_scope(cfg: PipelineConfig, stage: str) -> Iterator[None]:
    """In a Prefect flow run: its tags and logs (:func:`~melflow.flows.observe.observed_run`)
    and result storage under the data folder. Called directly: nothing."""
    if not in_flow_run():
        yield
        return
    from melflow.flows.observe import observed_run
    from melflow.tasks.caching import persisted_results

    with observed_run(cfg, stage), persisted_results(cfg):
        yield


def publish(summary: PipelineSummary, *, cfg: PipelineConfig) -> None:
    """The run summary as the flow run's artifact (a direct run records nowhere)."""
    if in_flow_run():
        from melflow.flows.observe import publish_summary

        publish_summary(summary, cfg=cfg)

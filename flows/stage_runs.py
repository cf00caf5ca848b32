"""One stage of a pipeline run: its task called (under Prefect or directly), and timed."""

from __future__ import annotations

import time
from typing import Any, TypeVar, cast

from prefect import Task
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext

from melflow.config import PipelineConfig
from melflow.tasks.caching import with_results

T = TypeVar("T")


def run_task(
    cfg: PipelineConfig, task: Task[..., T], *args: Any, done: T | None = None
) -> tuple[T, bool, float]:
    """Call a task unless the stage is ``done``; return its result, whether it was cached,
    and the seconds it took.

    ``done`` is the domain's answer (the stage's completion marker, read before the call):
    a finished stage is never taken from Prefect, whose cached results would carry the
    locations of the run that computed them. Under Prefect it still gets its task run,
    which shows Cached (the body only reads the marker if the cache was cleared).
    """
    start = time.perf_counter()
    if done is not None:
        if FlowRunContext.get() is not None:
            with_results(task, cfg)(*args, return_state=True)
        return done, True, time.perf_counter() - start
    if FlowRunContext.get() is None:  # the flow's function called directly: no Prefect
        direct: T = task.fn(*args)
        return direct, False, time.perf_counter() - start
    state = cast("State[T]", with_results(task, cfg)(*args, return_state=True))
    result: T = state.result()
    return result, state.name == "Cached", time.perf_counter() - start

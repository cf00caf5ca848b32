"""``@melflow_flow``: melflow's flows, as Prefect flows built on first use.

A command that runs directly (no Prefect server) calls a flow's plain function and never
imports Prefect (see :mod:`melflow.tasks.deferred`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from melflow.tasks.deferred import Deferred

P = ParamSpec("P")
R = TypeVar("R")


def melflow_flow(
    *, name: str, flow_run_name: str, **options: Any
) -> Callable[[Callable[P, R]], Deferred[P, R]]:
    """``@flow`` for melflow's flows, recording configs by their digest
    (:class:`~melflow.flows.observe.MelflowFlow`); ``flow_run_name`` may use parameters,
    ``run/{cfg.name}``."""

    def decorate(fn: Callable[P, R]) -> Deferred[P, R]:
        def build() -> Any:
            from melflow.flows.observe import MelflowFlow

            return MelflowFlow(fn, name=name, flow_run_name=flow_run_name, **options)

        return Deferred(fn, build)

    return decorate

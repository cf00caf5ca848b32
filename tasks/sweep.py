"""One sweep point as a Prefect task over its content-addressed folder.

Not cached by Prefect: the point's ``point.json`` is the one answer to "done?", read by
the flow before it calls the task (see :func:`melflow.sweep.run.finished_point`).
"""

from __future__ import annotations

from functools import partial

from melflow.sweep.grid import Point
from melflow.sweep.run import Fold, PointResult, run_point, train_test_fold
from melflow.tasks.caching import transient_only
from melflow.tasks.deferred import deferred_task


@deferred_task(
    name="sweep-point",
    uncached=True,
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=transient_only,
)
def sweep_point_task(
    point: Point,
    digest: str,
    point_dir: str,
    folds: list[Fold],
    augmented_url: str | None,
    latency_repeats: int,
) -> PointResult:
    """Train, score and cost one point on every fold (resuming an interrupted training)."""
    return run_point(
        point=point,
        digest=digest,
        point_dir=point_dir,
        folds=folds,
        run_fold=partial(train_test_fold, augmented_store_url=augmented_url),
        latency_repeats=latency_repeats,
    )

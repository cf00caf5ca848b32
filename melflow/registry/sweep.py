"""Log an architecture sweep: a parent run with one nested run per point; nothing registered."""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from melflow.config import PipelineConfig
from melflow.lineage import flatten
from melflow.registry.parent import log_parent_run

SWEEP_DIGEST_TAG = "melflow.sweep_digest"
SWEEP_POINT_TAG = "melflow.sweep_point"


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in row.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
    }


def log_sweep(
    *,
    cfg: PipelineConfig,
    digest: str,
    rows: list[dict[str, Any]],
    fields: list[str],
    artifacts: list[str],
    tags: dict[str, str],
) -> str:
    """Log an architecture sweep as a parent run with one nested run per point.

    Nothing is registered: a point becomes a version only through ``melflow models
    register-sweep``, which trains it as ``melflow run`` does and passes the same gate. The
    parent holds the profile's config (params), the number of points and ``artifacts``
    (the table and the plot, under ``sweep/``); each point's run its grid values (params),
    every figure of its row (metrics) and a ``pareto`` tag. Idempotent: a sweep already
    logged with the same ``digest`` returns that run's id.

    Parameters
    ----------
    digest : str
        Identity of the sweep (its points, which include their data).
    rows : list of dict
        The sweep table's rows: ``point``, each of ``fields``, the figures, ``pareto``.
    fields : list of str
        The grid's dotted fields.
    artifacts : list of str
        Local files for the parent run.
    tags : dict
        Parent run tags, e.g. the profile and the manifest digest.

    Returns
    -------
    str
        The parent run's id.
    """

    def body(client: MlflowClient, experiment: str, run_id: str) -> None:
        mlflow.log_metric("points", float(len(rows)))
        for path in artifacts:
            client.log_artifact(run_id, path, artifact_path="sweep")
        for row in rows:
            with mlflow.start_run(
                experiment_id=experiment,
                run_name=f"point {row['point']}",
                nested=True,
                tags={SWEEP_POINT_TAG: str(row["point"]), "pareto": str(bool(row["pareto"]))},
            ):
                mlflow.log_params(flatten({f: row[f] for f in fields}))
                mlflow.log_metrics(_numbers({k: v for k, v in row.items() if k not in fields}))

    return log_parent_run(
        cfg=cfg,
        name=f"sweep {cfg.name}",
        digest_tag=SWEEP_DIGEST_TAG,
        digest=digest,
        tags=tags,
        body=body,
    )

"""A parent MLflow run logged once per digest, with nested runs inside (CV, sweeps)."""

from __future__ import annotations

from collections.abc import Callable

import mlflow
from mlflow.tracking import MlflowClient

from melflow.config import PipelineConfig
from melflow.lineage import flatten, git_commit
from melflow.registry.names import GIT_COMMIT_TAG
from melflow.registry.session import experiment_id, logged_run, session

# Called inside the open parent run with the client, the experiment id and the run id.
RunBody = Callable[[MlflowClient, str, str], None]


def log_parent_run(
    *,
    cfg: PipelineConfig,
    name: str,
    digest_tag: str,
    digest: str,
    tags: dict[str, str],
    body: RunBody,
) -> str:
    """Log a parent run ``name`` holding ``cfg`` as params, then ``body`` inside it.

    ``body`` logs metrics, artifacts and the nested runs (``mlflow.start_run(...,
    nested=True)``). Idempotent: a run already logged with ``digest_tag = digest`` is
    returned instead of a duplicate.

    Returns
    -------
    str
        The parent run's id.
    """
    with session(cfg) as client:
        experiment = experiment_id(client, cfg)
        found = logged_run(client, experiment, digest_tag, digest)
        if found is not None:
            return found
        commit = git_commit()
        run_tags = {**tags, digest_tag: digest, **({GIT_COMMIT_TAG: commit} if commit else {})}
        with mlflow.start_run(experiment_id=experiment, run_name=name, tags=run_tags) as parent:
            mlflow.log_params(flatten(cfg.model_dump(mode="json")))
            body(client, experiment, parent.info.run_id)
        return str(parent.info.run_id)

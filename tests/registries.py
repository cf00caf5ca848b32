"""A registry with a champion and a challenger, written with a bare ``MlflowClient`` (fast: no
model is logged), for tests of what reads the registry."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from melflow.config import PipelineConfig
from melflow.lineage import METRIC_PREFIX
from melflow.registry.names import CHALLENGER, CHAMPION, EVAL_DIGEST_TAG, GIT_COMMIT_TAG
from melflow.registry.session import experiment_id, session


@dataclass(frozen=True)
class FakeRegistry:
    """What :func:`fake_registry` wrote: run ids by version, and the deleted version."""

    runs: dict[str, str]
    deleted: str


def _run(client: MlflowClient, experiment: str, metrics: dict[str, float], commit: str) -> str:
    tags = {GIT_COMMIT_TAG: commit, "melflow.profile": "small"}
    run = client.create_run(experiment, tags=tags)
    run_id = str(run.info.run_id)
    for key, value in metrics.items():
        client.log_metric(run_id, f"{METRIC_PREFIX}{key}", value)
    client.log_metric(run_id, "val_loss", 0.5)
    client.log_param(run_id, "train.feature", "logmel")
    client.log_param(run_id, "features.n_mels", "32")
    client.set_terminated(run_id)
    return run_id


def fake_registry(cfg: PipelineConfig) -> FakeRegistry:
    """``cfg``'s model with v1 champion, v2 challenger (a NaN metric, other eval set), v3
    deleted; and another model beside it."""
    name = cfg.registry.model_name
    scores = [
        {"accuracy": 0.9, "macro_f1": 0.8, "weighted_f1": 0.85, "f1_high": 0.7, "f1_low": 0.9},
        {"accuracy": 0.95, "macro_f1": float("nan"), "f1_high": 0.8, "f1_low": 0.95},
        {"accuracy": 0.5, "macro_f1": 0.5},
    ]
    runs: dict[str, str] = {}
    with session(cfg) as client:
        experiment = experiment_id(client, cfg)
        client.create_registered_model(name)
        client.create_registered_model(f"{name}-other")
        for i, metrics in enumerate(scores, start=1):
            run_id = _run(client, experiment, metrics, commit=f"{i:040d}")
            mv = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
            client.set_model_version_tag(name, mv.version, EVAL_DIGEST_TAG, f"eval{min(i, 2)}")
            runs[str(mv.version)] = run_id
        other_run = _run(client, experiment, {"accuracy": 0.1}, commit="f" * 40)
        client.create_model_version(f"{name}-other", f"runs:/{other_run}/m", run_id=other_run)
        client.set_registered_model_alias(f"{name}-other", CHAMPION, "1")
        client.set_registered_model_alias(name, CHAMPION, "1")
        client.set_registered_model_alias(name, CHALLENGER, "2")
        client.delete_model_version(name, "3")
    return FakeRegistry(runs=runs, deleted="3")

"""Evaluation of a trained bundle on the test split as a cached Prefect task."""

from __future__ import annotations

from melflow.config import PipelineConfig
from melflow.layout import StageRef
from melflow.manifest import read_manifest
from melflow.runs import Evaluation, evaluate_into, finished_evaluation
from melflow.tasks.caching import keyed_task


def _eval_key(
    *, cfg: PipelineConfig, manifest: StageRef, bundle_dir: str, out: StageRef, split: str
) -> str | None:
    return out.digest if finished_evaluation(out.location) is not None else None


@keyed_task("evaluate", _eval_key, name="evaluate-model", tags=["stage:evaluate"])
def evaluate_task(
    cfg: PipelineConfig, manifest: StageRef, bundle_dir: str, out: StageRef, split: str = "test"
) -> Evaluation:
    """Score the bundle on ``split`` into ``out.location``: report JSON and HTML, predictions,
    figures."""
    done = finished_evaluation(out.location)
    if done is not None:
        return done
    rows = read_manifest(manifest.location, storage_options=cfg.paths.storage_options)
    return evaluate_into(
        cfg=cfg, manifest=rows, bundle_dir=bundle_dir, out_dir=out.location, split=split
    )

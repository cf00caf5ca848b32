"""The augment flow: manifest -> augmented feature store of the train split."""

from __future__ import annotations

from prefect import flow

from melflow.augment.offline import AugmentResult
from melflow.config import PipelineConfig
from melflow.layout import StageRef
from melflow.tasks.augment import augment_task


@flow(name="augment", log_prints=False)
def augment_flow(cfg: PipelineConfig, manifest: StageRef) -> AugmentResult:
    """Augment every usable train clip of the manifest (incremental, resumable).

    Returns at once, with ``skipped=True``, when ``cfg.augment.enabled`` is false.
    """
    return augment_task(cfg, manifest)

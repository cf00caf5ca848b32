"""The augment flow: manifest -> augmented feature store of the train split."""

from __future__ import annotations

from melflow.augment.offline import AugmentResult
from melflow.config import PipelineConfig
from melflow.flows.deferred_flow import melflow_flow
from melflow.layout import StageRef
from melflow.tasks.augment import augment_task


@melflow_flow(name="augment", flow_run_name="augment/{cfg.name}", log_prints=False)
def augment_flow(cfg: PipelineConfig, manifest: StageRef) -> AugmentResult:
    """Augment every usable train clip of the manifest (incremental, resumable).

    Returns at once, with ``skipped=True``, when ``cfg.augment.enabled`` is false.
    """
    return augment_task(cfg, manifest)

"""The end-to-end flow: ingest -> extract -> augment -> train -> evaluate -> register.

It reads like a table of contents: each stage is a cached task (or subflow) fed the
references (paths, digests) produced by the one before, and every stage reports whether
it was cached or computed, how long it took, and where its output is.
"""

from __future__ import annotations

from typing import Literal

from melflow.augment.offline import AUGMENT
from melflow.config import PipelineConfig
from melflow.features.extract import EXTRACT
from melflow.features.stage import StoreStage
from melflow.features.store import FillResult
from melflow.flows.deferred_flow import melflow_flow
from melflow.flows.stage_runs import flow_run_scope, publish, run_task
from melflow.flows.summary import PipelineSummary
from melflow.ingest import IngestResult
from melflow.registry import champion_info
from melflow.runlock import run_lock
from melflow.runs import StagePlan, plan_stages
from melflow.tasks.augment import augment_task
from melflow.tasks.cluster import shared_cluster
from melflow.tasks.deferred import Deferred
from melflow.tasks.extract import extract_task
from melflow.tasks.ingest import ingest_task
from melflow.tasks.progress import note

Stage = Literal["ingest", "extract", "augment", "train", "evaluate", "register"]
STAGES: tuple[Stage, ...] = ("ingest", "extract", "augment", "train", "evaluate", "register")


def _ingest(cfg: PipelineConfig, summary: PipelineSummary) -> IngestResult:
    result, _, seconds = run_task(cfg, ingest_task, cfg)
    numbers = {"clips": result.n_clips, "ok": result.n_ok, "quarantined": result.n_quarantined}
    summary.add("ingest", result.cached, seconds, numbers, result.report_path)
    return result


def _fill(
    cfg: PipelineConfig,
    summary: PipelineSummary,
    stage: StoreStage,
    task: Deferred[..., FillResult],
    plan: StagePlan,
    unit: str,
) -> FillResult:
    done = stage.cached(cfg=cfg, manifest_digest=plan.manifest.digest)
    result, cached, seconds = run_task(cfg, task, cfg, plan.manifest, done=done)
    numbers = {unit: result.rows, "batches computed": 0 if cached else result.batches_computed}
    summary.add(stage.name, cached or result.cached, seconds, numbers, result.store_url)
    return result


def plan_run(cfg: PipelineConfig, ingested: IngestResult) -> StagePlan:
    """The run's lineage, computed once: every stage's digest and location.

    With ``train.init_from_champion`` the champion's bundle digest is part of the training
    identity (as in ``melflow status``).
    """
    champion = champion_info(cfg=cfg) if cfg.train.init_from_champion else None
    init = champion.bundle_digest if champion is not None else None
    return plan_stages(cfg, ingested.manifest, init_bundle_digest=init)


def _model_stages(
    cfg: PipelineConfig,
    summary: PipelineSummary,
    ingested: IngestResult,
    plan: StagePlan,
    wanted: tuple[Stage, ...],
) -> None:
    # Imported here: torch and MLflow cost ~3.5 s that a Dask-stage command never needs.
    from melflow.flows.model_stages import evaluate_stage, register_stage, train_stage

    trained = train_stage(cfg, summary, plan)
    if "evaluate" in wanted:
        evaluated = evaluate_stage(cfg, summary, plan, trained)
        if "register" in wanted:
            summary.decision = register_stage(cfg, summary, ingested, plan, trained, evaluated)


def _waiting(message: str) -> None:
    note("run", message)


@melflow_flow(name="pipeline", flow_run_name="run/{cfg.name}", log_prints=False)
def pipeline_flow(
    cfg: PipelineConfig, until: Stage = "register", wait: bool = True
) -> PipelineSummary:
    """Run every stage up to and including ``until``; finished stages are cache hits.

    The data folder's run lock is held throughout: a second run waits for this one (or,
    with ``wait=False``, fails at once).
    """
    summary = PipelineSummary()
    wanted = STAGES[: STAGES.index(until) + 1]
    with flow_run_scope(cfg, until), run_lock(cfg, wait=wait, on_wait=_waiting):
        ingested = _ingest(cfg, summary)
        if len(wanted) == 1:
            publish(summary, cfg=cfg)
            return summary
        plan = plan_run(cfg, ingested)
        # The Dask stages share one cluster, closed before training needs the memory.
        with shared_cluster(cfg.dask):
            if "extract" in wanted:
                _fill(cfg, summary, EXTRACT, extract_task, plan, "rows")
            if "augment" in wanted:
                if plan.augmented is None:
                    summary.add("augment", True, 0.0, {"disabled": "augment.enabled=false"}, "")
                else:
                    _fill(cfg, summary, AUGMENT, augment_task, plan, "variants")
        if "train" in wanted:
            _model_stages(cfg, summary, ingested, plan, wanted)
    publish(summary, cfg=cfg)
    return summary

"""The end-to-end flow: ingest -> extract -> augment -> train -> evaluate -> register.

It reads like a table of contents: each stage is a cached task (or subflow) fed the
references (paths, digests) produced by the one before, and every stage reports whether
it was cached or computed, how long it took, and where its output is.
"""

from __future__ import annotations

import time
from typing import Any, Literal, TypeVar, cast

from prefect import Task
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.runtime import flow_run

from melflow.augment.offline import AUGMENT
from melflow.config import PipelineConfig
from melflow.errors import MelflowError
from melflow.features.extract import EXTRACT
from melflow.features.stage import StoreStage
from melflow.features.store import FillResult
from melflow.flows.fastpath import save_registration
from melflow.flows.observe import PREFECT_RUN_TAG, melflow_flow, observed_run, publish_summary
from melflow.flows.orchestration import call
from melflow.flows.summary import PipelineSummary, fmt
from melflow.ingest import IngestResult
from melflow.layout import Layout
from melflow.lineage import eval_set_digest
from melflow.registry import (
    DatasetInput,
    PromotionDecision,
    champion_info,
    tracking_uri,
)
from melflow.runlock import run_lock
from melflow.runs import (
    Evaluation,
    StagePlan,
    champion_bundle_dir,
    finished_evaluation,
    finished_training,
    plan_stages,
)
from melflow.tasks.augment import augment_task
from melflow.tasks.caching import persisted_results, with_results
from melflow.tasks.cluster import shared_cluster
from melflow.tasks.evaluate import evaluate_task
from melflow.tasks.extract import extract_task
from melflow.tasks.ingest import ingest_task
from melflow.tasks.progress import note
from melflow.tasks.registry import promote_task, register_task
from melflow.tasks.train import train_task
from melflow.tracking_ui import run_url, ui_command
from melflow.training.loop import TrainResult

Stage = Literal["ingest", "extract", "augment", "train", "evaluate", "register"]
STAGES: tuple[Stage, ...] = ("ingest", "extract", "augment", "train", "evaluate", "register")
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


def _ingest(cfg: PipelineConfig, summary: PipelineSummary) -> IngestResult:
    result, _, seconds = run_task(cfg, ingest_task, cfg)
    numbers = {"clips": result.n_clips, "ok": result.n_ok, "quarantined": result.n_quarantined}
    summary.add("ingest", result.cached, seconds, numbers, result.report_path)
    return result


def _fill(
    cfg: PipelineConfig,
    summary: PipelineSummary,
    stage: StoreStage,
    task: Task[..., FillResult],
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


def _train(cfg: PipelineConfig, summary: PipelineSummary, plan: StagePlan) -> TrainResult:
    done = finished_training(plan.train.location)
    init = None
    if done is None and plan.init_bundle_digest is not None:
        champion = champion_info(cfg=cfg)
        if champion is None or champion.bundle_digest != plan.init_bundle_digest:
            raise MelflowError("the champion changed during the run; run again")
        init = champion_bundle_dir(cfg, champion)
    result, cached, seconds = run_task(
        cfg, train_task, cfg, plan.manifest, plan.train, plan.augmented, init, done=done
    )
    best = result.history[result.best_epoch - 1] if result.history else {}
    numbers = {"epochs": result.epochs_run, "best val macro-F1": fmt(best.get("val_macro_f1"))}
    summary.add("train", cached, seconds, numbers, result.bundle_dir)
    return result


def _evaluate(
    cfg: PipelineConfig, summary: PipelineSummary, plan: StagePlan, trained: TrainResult
) -> Evaluation:
    result, cached, seconds = run_task(
        cfg,
        evaluate_task,
        cfg,
        plan.manifest,
        trained.bundle_dir,
        plan.evaluate,
        done=finished_evaluation(plan.evaluate.location),
    )
    numbers = {
        "accuracy": fmt(result.report.get("accuracy")),
        "macro-F1": fmt(result.report.get("macro_f1")),
    }
    summary.add("evaluate", cached, seconds, numbers, result.html_path or result.report_path)
    if result.html_path:
        summary.links["report"] = result.html_path
    return result


def _register(
    cfg: PipelineConfig,
    summary: PipelineSummary,
    ingested: IngestResult,
    plan: StagePlan,
    trained: TrainResult,
    evaluated: Evaluation,
) -> PromotionDecision:
    start = time.perf_counter()
    lineage = {
        "profile": cfg.name,
        "manifest_digest": ingested.manifest_digest,
        "feature_store": Layout.of(cfg).relative(plan.features.location),
        "feature_digest": plan.features.digest,
        "train_digest": plan.train.digest,
    }
    inputs = [
        DatasetInput("manifest", plan.manifest.digest, plan.manifest.location, "training"),
        DatasetInput("features", plan.features.digest, plan.features.location, "training"),
        DatasetInput(
            "test-split",
            eval_set_digest(evaluated.predictions()),
            plan.manifest.location,
            "test",
        ),
    ]
    if plan.augmented is not None:
        lineage["augmented_store"] = Layout.of(cfg).relative(plan.augmented.location)
        augmented = plan.augmented
        inputs.append(DatasetInput("augmented", augmented.digest, augmented.location, "training"))
    run_id = flow_run.get_id()
    artifacts = [
        *evaluated.figures.values(),
        evaluated.report_path,
        *([evaluated.html_path] if evaluated.html_path else []),
        ingested.report_path,
    ]
    registered = call(
        register_task,
        cfg,
        trained.bundle_dir,
        trained.history,
        evaluated.report,
        artifacts,
        {PREFECT_RUN_TAG: run_id} if run_id else {},
        evaluated.predictions_path,
        lineage,
        inputs,
    )
    uri = tracking_uri(cfg)
    summary.links["MLflow run"] = run_url(
        uri, experiment_id=registered.experiment_id, run_id=registered.run_id
    )
    command = ui_command(uri)
    if command:
        summary.links["MLflow UI"] = command
    decision = call(promote_task, cfg, registered.version, plan.manifest)
    numbers = {
        "version": registered.version,
        "champion": "this version" if decision.promoted else decision.champion_version,
        "decision": decision.reason,
    }
    output = uri
    summary.add("register", registered.existing, time.perf_counter() - start, numbers, output)
    save_registration(
        plan.evaluate.location, cfg=cfg, numbers=numbers, output=output, links=summary.links
    )
    return decision


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
    with (
        observed_run(cfg, until),
        run_lock(cfg, wait=wait, on_wait=_waiting),
        persisted_results(cfg),
    ):
        ingested = _ingest(cfg, summary)
        if len(wanted) == 1:
            publish_summary(summary, cfg=cfg)
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
            trained = _train(cfg, summary, plan)
        if "evaluate" in wanted:
            evaluated = _evaluate(cfg, summary, plan, trained)
        if "register" in wanted:
            summary.decision = _register(cfg, summary, ingested, plan, trained, evaluated)
    publish_summary(summary, cfg=cfg)
    return summary

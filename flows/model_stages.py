"""The pipeline's model stages: train, evaluate, register + gated promotion.

A module of their own because they import torch and MLflow (~3.5 s): a command that
stops at a Dask stage (``melflow extract``) imports this only when it goes this far.
"""

from __future__ import annotations

import time

from prefect.runtime import flow_run

from melflow.config import PipelineConfig
from melflow.errors import MelflowError
from melflow.flows.fastpath import save_registration
from melflow.flows.observe import PREFECT_RUN_TAG
from melflow.flows.orchestration import call
from melflow.flows.stage_runs import run_task
from melflow.flows.summary import PipelineSummary, fmt
from melflow.ingest import IngestResult
from melflow.layout import Layout
from melflow.lineage import eval_set_digest
from melflow.registry import DatasetInput, PromotionDecision, champion_info, tracking_uri
from melflow.runs import (
    Evaluation,
    StagePlan,
    champion_bundle_dir,
    finished_evaluation,
    finished_training,
)
from melflow.tasks.evaluate import evaluate_task
from melflow.tasks.registry import promote_task, register_task
from melflow.tasks.train import train_task
from melflow.tracking_ui import run_url, ui_command
from melflow.training.loop import TrainResult


def train_stage(cfg: PipelineConfig, summary: PipelineSummary, plan: StagePlan) -> TrainResult:
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


def evaluate_stage(
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


def register_stage(
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

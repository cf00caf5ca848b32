"""The end-to-end flow: ingest -> extract -> augment -> train -> evaluate -> register.

It reads like a table of contents: each stage is a cached task (or subflow) fed the
references (paths, digests) produced by the one before, and every stage reports whether
it was cached or computed, how long it took, and where its output is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

from prefect import Task, flow
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext

from flows.orchestration import call
from melflow.augment.offline import cached_augmentation
from melflow.config import PipelineConfig
from melflow.features.extract import ExtractResult, cached_extraction
from melflow.ingest import IngestResult
from melflow.registry import PromotionDecision, champion_bundle, tracking_uri
from melflow.training.loop import TrainResult
from tasks.augment import augment_task
from tasks.caching import persisted_results
from tasks.cluster import shared_cluster
from tasks.evaluate import Evaluation, evaluate_task, finished_evaluation
from tasks.extract import extract_task
from tasks.ingest import ingest_task
from tasks.registry import promote_task, register_task
from tasks.train import finished_training, run_dir, train_digest, train_task

Stage = Literal["ingest", "extract", "augment", "train", "evaluate", "register"]
STAGES: tuple[Stage, ...] = ("ingest", "extract", "augment", "train", "evaluate", "register")
T = TypeVar("T")


@dataclass
class StageSummary:
    """One row of the run summary."""

    stage: str
    cached: bool
    seconds: float
    numbers: dict[str, Any] = field(default_factory=dict)
    output: str = ""


@dataclass
class PipelineSummary:
    """What a pipeline run did, stage by stage."""

    stages: list[StageSummary] = field(default_factory=list)
    decision: PromotionDecision | None = None

    def add(
        self, stage: str, cached: bool, seconds: float, numbers: dict[str, Any], output: str
    ) -> None:
        self.stages.append(StageSummary(stage, cached, seconds, numbers, output))

    @property
    def all_cached(self) -> bool:
        return all(s.cached for s in self.stages)


def run_task(task: Task[..., T], *args: Any, done: bool = False) -> tuple[T, bool, float]:
    """Call a task; return its result, whether it was cached, and the seconds it took.

    ``done`` says the stage's output was already complete before the call (a task's cache
    key only exists once its output does, so the first rerun finds it by marker).
    """
    start = time.perf_counter()
    if FlowRunContext.get() is None:  # the flow's function called directly: no Prefect
        direct: T = task.fn(*args)
        return direct, done, time.perf_counter() - start
    state = cast("State[T]", task(*args, return_state=True))
    result: T = state.result()
    return result, done or state.name == "Cached", time.perf_counter() - start


def _ingest(cfg: PipelineConfig, summary: PipelineSummary) -> IngestResult:
    result, _, seconds = run_task(ingest_task, cfg)
    numbers = {"clips": result.n_clips, "ok": result.n_ok, "quarantined": result.n_quarantined}
    summary.add("ingest", result.cached, seconds, numbers, result.report_path)
    return result


def _extract(
    cfg: PipelineConfig, summary: PipelineSummary, ingested: IngestResult
) -> ExtractResult:
    done = cached_extraction(cfg=cfg, manifest_digest=ingested.manifest_digest) is not None
    result, cached, seconds = run_task(
        extract_task, cfg, ingested.manifest_path, ingested.manifest_digest, done=done
    )
    numbers = {"rows": result.rows, "batches computed": 0 if cached else result.batches_computed}
    summary.add("extract", cached or result.cached, seconds, numbers, result.store_url)
    return result


def _augment(cfg: PipelineConfig, summary: PipelineSummary, ingested: IngestResult) -> str | None:
    if not (cfg.augment.enabled and cfg.train.use_augmented):
        summary.add("augment", True, 0.0, {"disabled": "augment.enabled=false"}, "")
        return None
    done = cached_augmentation(cfg=cfg, manifest_digest=ingested.manifest_digest) is not None
    result, cached, seconds = run_task(
        augment_task, cfg, ingested.manifest_path, ingested.manifest_digest, done=done
    )
    numbers = {
        "variants": result.rows,
        "batches computed": 0 if cached else result.batches_computed,
    }
    summary.add("augment", cached or result.cached, seconds, numbers, result.store_url)
    return result.store_url


def _champion_init(cfg: PipelineConfig) -> str | None:
    """The champion's bundle, downloaded beside the runs, to fine-tune from (if any)."""
    return champion_bundle(cfg=cfg, dest=run_dir(cfg, "_champion"))


def _train(
    cfg: PipelineConfig, summary: PipelineSummary, ingested: IngestResult, augmented: str | None
) -> TrainResult:
    init = _champion_init(cfg) if cfg.train.init_from_champion else None
    run = run_dir(cfg, train_digest(cfg, ingested.manifest_digest, augmented, init))
    result, cached, seconds = run_task(
        train_task,
        cfg,
        ingested.manifest_path,
        ingested.manifest_digest,
        augmented,
        init,
        done=finished_training(run) is not None,
    )
    best = result.history[result.best_epoch - 1] if result.history else {}
    numbers = {"epochs": result.epochs_run, "best val macro-F1": _fmt(best.get("val_macro_f1"))}
    summary.add("train", cached, seconds, numbers, result.bundle_dir)
    return result


def _evaluate(
    cfg: PipelineConfig, summary: PipelineSummary, ingested: IngestResult, trained: TrainResult
) -> Evaluation:
    result, cached, seconds = run_task(
        evaluate_task,
        cfg,
        ingested.manifest_path,
        ingested.manifest_digest,
        trained.bundle_dir,
        done=finished_evaluation(trained.bundle_dir, "test") is not None,
    )
    numbers = {
        "accuracy": _fmt(result.report.get("accuracy")),
        "macro-F1": _fmt(result.report.get("macro_f1")),
    }
    summary.add("evaluate", cached, seconds, numbers, result.report_path)
    return result


def _register(
    cfg: PipelineConfig,
    summary: PipelineSummary,
    ingested: IngestResult,
    extracted: ExtractResult,
    trained: TrainResult,
    evaluated: Evaluation,
) -> PromotionDecision:
    start = time.perf_counter()
    tags = {
        "manifest_digest": ingested.manifest_digest,
        "feature_store": extracted.store_url,
        "profile": cfg.name,
    }
    artifacts = [*evaluated.figures.values(), evaluated.report_path, ingested.report_path]
    registered = call(
        register_task,
        cfg,
        trained.bundle_dir,
        trained.history,
        evaluated.report,
        artifacts,
        tags,
        evaluated.predictions_path,
    )
    decision = call(promote_task, cfg, registered.version)
    numbers = {
        "version": registered.version,
        "champion": "this version" if decision.promoted else decision.champion_version,
        "decision": decision.reason,
    }
    summary.add(
        "register", registered.existing, time.perf_counter() - start, numbers, tracking_uri(cfg)
    )
    return decision


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


@flow(name="pipeline", log_prints=False)
def pipeline_flow(cfg: PipelineConfig, until: Stage = "register") -> PipelineSummary:
    """Run every stage up to and including ``until``; finished stages are cache hits."""
    summary = PipelineSummary()
    wanted = STAGES[: STAGES.index(until) + 1]
    with persisted_results(cfg):
        ingested = _ingest(cfg, summary)
        # The Dask stages share one cluster, closed before training needs the memory.
        with shared_cluster(cfg.dask):
            if "extract" in wanted:
                extracted = _extract(cfg, summary, ingested)
            if "augment" in wanted:
                augmented = _augment(cfg, summary, ingested)
        if "train" in wanted:
            trained = _train(cfg, summary, ingested, augmented)
        if "evaluate" in wanted:
            evaluated = _evaluate(cfg, summary, ingested, trained)
        if "register" in wanted:
            summary.decision = _register(cfg, summary, ingested, extracted, trained, evaluated)
    return summary

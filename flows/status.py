"""``melflow status``: for a profile, each stage complete / partial / stale / missing.

Read-only: it looks at the same markers the stages write and never starts work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from melflow import storage
from melflow.augment.offline import AUGMENT
from melflow.config import PipelineConfig
from melflow.features.extract import EXTRACT
from melflow.features.stage import StoreStage
from melflow.features.store import RowStore
from melflow.ingest import IngestResult, latest_manifest
from melflow.registry import VersionInfo, champion_info
from melflow.runs import StagePlan, finished_evaluation, finished_training, plan_stages


@dataclass(frozen=True)
class StageStatus:
    """One row of ``melflow status``."""

    stage: str
    state: str  # complete | partial | stale | missing | disabled
    detail: str
    output: str
    size_mb: float | None = None


def _has_siblings(path: str) -> bool:
    """True when other outputs of the same stage exist beside ``path`` (an older config)."""
    parent = Path(path).parent
    return not storage.is_url(path) and parent.exists() and any(parent.iterdir())


def _size_mb(path: str) -> float | None:
    if storage.is_url(path) or not Path(path).exists():
        return None
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def store_status(stage: StoreStage, cfg: PipelineConfig, manifest_digest: str) -> StageStatus:
    """State of a row store for the current manifest: complete, partial k/n, stale or missing."""
    url = stage.url(cfg)
    store = RowStore(url, storage_options=cfg.paths.storage_options)
    if not store.exists():
        if _has_siblings(url):
            return StageStatus(
                stage.name, "stale", "config or code version changed: a new store", url
            )
        return StageStatus(stage.name, "missing", "not computed yet", url)
    size = _size_mb(url)
    info = store.complete_info(manifest_digest)
    if info is not None:
        return StageStatus(stage.name, "complete", f"{info['rows']} rows", url, size)
    planned, pending = store.planned_batches(), store.pending_batches()
    if pending:
        done = len(planned) - len(pending)
        return StageStatus(stage.name, "partial", f"{done} of {len(planned)} batches", url, size)
    return StageStatus(stage.name, "stale", "the manifest changed since the last run", url, size)


def _ingest_status(ingested: IngestResult | None) -> StageStatus:
    if ingested is None:
        return StageStatus("ingest", "missing", "no manifest yet", "")
    detail = f"{ingested.n_ok} ok, {ingested.n_quarantined} quarantined"
    return StageStatus("ingest", "complete", detail, ingested.manifest_path)


def _training_status(plan: StagePlan) -> list[StageStatus]:
    run = plan.train.location
    trained = finished_training(run)
    if trained is None:
        if Path(run, "checkpoints").exists():
            row = StageStatus("train", "partial", "checkpoints saved, will resume", run)
        elif _has_siblings(run):
            row = StageStatus(
                "train", "stale", "data or train config changed since the last run", run
            )
        else:
            row = StageStatus("train", "missing", "", run)
        return [row, StageStatus("evaluate", "missing", "", "")]
    best = trained.history[trained.best_epoch - 1] if trained.history else {}
    rows = [
        StageStatus(
            "train",
            "complete",
            f"{trained.epochs_run} epochs, best val macro-F1 {best.get('val_macro_f1') or 0:.3f}",
            trained.bundle_dir,
        )
    ]
    evaluated = finished_evaluation(plan.evaluate.location)
    if evaluated is None:
        rows.append(StageStatus("evaluate", "missing", "", ""))
    else:
        report = evaluated.report
        detail = f"accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}"
        rows.append(StageStatus("evaluate", "complete", detail, evaluated.report_path))
    return rows


def _registry_status(cfg: PipelineConfig, champion: VersionInfo | None) -> StageStatus:
    if champion is None:
        return StageStatus("champion", "missing", "no champion yet", "")
    metric = cfg.registry.metric
    value = champion.metrics.get(metric)
    detail = f"version {champion.version}" + (
        f", {metric} {value:.3f}" if value is not None else ""
    )
    return StageStatus(
        "champion", "complete", detail, f"models:/{cfg.registry.model_name}@champion"
    )


def pipeline_status(cfg: PipelineConfig) -> list[StageStatus]:
    """Every stage's state for ``cfg`` against its latest manifest.

    The plan is the pipeline's own (:func:`melflow.runs.plan_stages`, with the champion's
    bundle when ``train.init_from_champion`` is on), so both agree on what is done.
    """
    ingested = latest_manifest(cfg=cfg)
    rows = [_ingest_status(ingested)]
    if ingested is None:
        return rows
    champion = champion_info(cfg=cfg)
    init = champion.bundle_digest if champion and cfg.train.init_from_champion else None
    plan = plan_stages(cfg, ingested.manifest, init_bundle_digest=init)
    digest = ingested.manifest_digest
    rows.append(store_status(EXTRACT, cfg, digest))
    if plan.augmented is not None:
        rows.append(store_status(AUGMENT, cfg, digest))
    else:
        rows.append(StageStatus("augment", "disabled", "augment.enabled is false", ""))
    rows.extend(_training_status(plan))
    rows.append(_registry_status(cfg, champion))
    return rows

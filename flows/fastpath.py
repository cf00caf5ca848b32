"""A run with nothing to do, answered from the completion markers alone.

``melflow run`` over an unchanged corpus whose every stage is complete needs no Prefect,
no Dask cluster and no MLflow: ingest (incremental, about one directory listing) and the
domain's markers say everything the summary shows. Only the registration needs a marker
of its own, :data:`REGISTERED`, written beside the evaluation once the version is
registered and the gate has decided; it names the registry it was written for, so a
different tracking URI or model name (or a deleted local store) means "not done".

Any missing marker returns ``None`` and the caller runs the pipeline as usual. This module
imports nothing heavy: that is its purpose.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from melflow import storage
from melflow.config import PipelineConfig
from melflow.errors import RunLockedError
from melflow.flows.summary import PipelineSummary, fmt
from melflow.layout import Layout, StageRef

REGISTERED = "registered.json"


def _registry_of(cfg: PipelineConfig) -> dict[str, str]:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.registry.tracking_uri or ""
    return {"tracking_uri": uri, "model_name": cfg.registry.model_name}


def save_registration(
    eval_dir: str,
    *,
    cfg: PipelineConfig,
    numbers: dict[str, Any],
    output: str,
    links: dict[str, str] | None = None,
) -> None:
    """Record that the evaluation in ``eval_dir`` is registered and the gate has decided
    (``links``: the summary's, e.g. the report and the MLflow run)."""
    record = {
        "registry": _registry_of(cfg),
        "numbers": numbers,
        "output": output,
        "links": links or {},
    }
    storage.write_bytes_atomic(str(Path(eval_dir, REGISTERED)), json.dumps(record).encode())


def saved_registration(eval_dir: str, cfg: PipelineConfig) -> dict[str, Any] | None:
    """The registration record of ``eval_dir`` for ``cfg``'s registry, or ``None``."""
    path = Path(eval_dir, REGISTERED)
    if not path.exists():
        return None
    record: dict[str, Any] = json.loads(path.read_text())
    if record.get("registry") != _registry_of(cfg):
        return None
    default_store = not record["registry"]["tracking_uri"]
    if default_store and not Path(Layout.of(cfg).mlflow_db()).exists():
        return None
    return record


def finished_for(cfg: PipelineConfig, manifest: StageRef) -> bool:
    """True when the run of ``cfg`` on ``manifest`` went as far as the registry's decision.

    A fine-tuning profile (``train.init_from_champion``) plans from whichever champion is
    current, so for it any earlier run on the manifest counts: retraining would only
    fine-tune the champion on the same data again.
    """
    from melflow.runs import plan_stages

    if cfg.train.init_from_champion:
        return True
    return saved_registration(plan_stages(cfg, manifest).evaluate.location, cfg) is not None


def cached_summary(cfg: PipelineConfig) -> PipelineSummary | None:
    """The summary of a whole run when every stage is complete, else ``None``.

    Holds the data folder's run lock like a run does; ingests (incrementally) first, so a
    changed corpus is seen.
    """
    from melflow.runlock import run_lock

    if cfg.train.init_from_champion:
        return None  # the plan depends on the registry's champion
    try:
        with run_lock(cfg, wait=False):
            return _from_markers(cfg)
    except RunLockedError:
        return None  # another run is writing: the pipeline waits for it


def _from_markers(cfg: PipelineConfig) -> PipelineSummary | None:
    from melflow.augment.offline import AUGMENT
    from melflow.features.extract import EXTRACT
    from melflow.ingest import ingest_corpus
    from melflow.runs import finished_evaluation, finished_training, plan_stages

    summary = PipelineSummary()
    start = time.perf_counter()
    ingested = ingest_corpus(cfg=cfg)
    if not ingested.cached:
        return None
    numbers: dict[str, Any] = {"clips": ingested.n_clips, "ok": ingested.n_ok}
    numbers["quarantined"] = ingested.n_quarantined
    summary.add("ingest", True, time.perf_counter() - start, numbers, ingested.report_path)
    plan = plan_stages(cfg, ingested.manifest)
    stages = [(EXTRACT, "rows")] + ([(AUGMENT, "variants")] if plan.augmented else [])
    for stage, unit in stages:
        filled = stage.cached(cfg=cfg, manifest_digest=plan.manifest.digest)
        if filled is None:
            return None
        numbers = {unit: filled.rows, "batches computed": 0}
        summary.add(stage.name, True, 0.0, numbers, filled.store_url)
    if plan.augmented is None:
        summary.add("augment", True, 0.0, {"disabled": "augment.enabled=false"}, "")
    trained = finished_training(plan.train.location)
    evaluated = finished_evaluation(plan.evaluate.location)
    registered = saved_registration(plan.evaluate.location, cfg)
    if trained is None or evaluated is None or registered is None:
        return None
    best = trained.history[trained.best_epoch - 1] if trained.history else {}
    numbers = {"epochs": trained.epochs_run, "best val macro-F1": fmt(best.get("val_macro_f1"))}
    summary.add("train", True, 0.0, numbers, trained.bundle_dir)
    report = evaluated.report
    numbers = {"accuracy": fmt(report.get("accuracy")), "macro-F1": fmt(report.get("macro_f1"))}
    summary.add("evaluate", True, 0.0, numbers, evaluated.html_path or evaluated.report_path)
    summary.add("register", True, 0.0, registered["numbers"], registered["output"])
    summary.links.update(registered.get("links", {}))
    return summary

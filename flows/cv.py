"""The cross-validation flow: ingest and extract once, augment once, then train and test
each fold (see :mod:`melflow.cv`) and log a parent MLflow run with one nested run per fold.

No model version is registered: CV scores a recipe, the production model comes from
``melflow run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from melflow.augment.offline import AUGMENT
from melflow.config import PipelineConfig
from melflow.cv import CvResult, FoldResult, make_folds, run_cv
from melflow.digest import digest_of
from melflow.flows.deferred_flow import melflow_flow
from melflow.flows.orchestration import call
from melflow.flows.pipeline import pipeline_flow
from melflow.ingest import latest_manifest, load_manifest
from melflow.layout import Layout, StageRef
from melflow.manifest import manifest_digest, write_manifest
from melflow.registry import log_cv
from melflow.runlock import run_lock
from melflow.tasks.augment import augment_task
from melflow.tasks.progress import note, reporter


@dataclass(frozen=True)
class CvSummary:
    """The folds' results and the MLflow parent run that holds them."""

    result: CvResult
    run_id: str


def augment_every_clip(cfg: PipelineConfig, manifest: pd.DataFrame) -> str | None:
    """Augment every usable clip once (each is ``train`` in some fold); ``None`` if off.

    The variants of one augmented store serve every fold: training keeps those whose source
    clip is in the fold's train split. Clips already augmented are not augmented again.
    """
    if not (cfg.augment.enabled and cfg.train.use_augmented):
        return None
    every = manifest.assign(split="train")
    digest = manifest_digest(every)
    path = Layout.of(cfg).path("cv", f"manifest-all-train-{digest[:16]}.parquet")
    write_manifest(every, path, storage_options=cfg.paths.storage_options)
    return call(augment_task, cfg, StageRef(digest, path)).store_url


@melflow_flow(name="cv", flow_run_name="cv/{cfg.name}", log_prints=False)
def cv_flow(cfg: PipelineConfig) -> CvSummary:
    """Cross-validate ``cfg`` with the folds of ``cfg.cv``; finished folds are read back.

    Holds the data folder's run lock throughout, like the pipeline.
    """
    with run_lock(cfg, on_wait=lambda message: note("run", message)):
        return _cv(cfg)


def _cv(cfg: PipelineConfig) -> CvSummary:
    call(pipeline_flow, cfg, until="extract")
    ingested = latest_manifest(cfg=cfg)
    assert ingested is not None  # ingest always writes the pointer
    manifest = load_manifest(ingested, storage_options=cfg.paths.storage_options)
    n_folds = len(make_folds(manifest, cfg.cv))  # fold errors surface before augmentation
    augmented = augment_every_clip(cfg, manifest)
    progress = reporter("cv")
    done: list[FoldResult] = []

    def on_fold(result: FoldResult) -> None:
        done.append(result)
        progress(len(done), n_folds)

    result = run_cv(
        cfg=cfg,
        manifest=manifest,
        work_dir=Layout.of(cfg).run("cv"),
        augmented_store_url=augmented,
        on_fold=on_fold,
    )
    # Names, not paths: the same CV in a moved data folder is the same logged run.
    augment_digest = AUGMENT.store_digest(cfg) if augmented else None
    folds = [Path(f.run_dir).name for f in done]
    digest = digest_of("cv", ingested.manifest_digest, augment_digest, cfg.train, cfg.cv, folds)
    tags = {"melflow.kind": "cv", "profile": cfg.name, "manifest_digest": ingested.manifest_digest}
    return CvSummary(result=result, run_id=log_cv(cfg=cfg, result=result, digest=digest, tags=tags))

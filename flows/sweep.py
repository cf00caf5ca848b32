"""The sweep flow: prepare the data once, then train, score and cost every grid point.

Every point reads the same manifest, feature store and augmented store (a grid varies
``train.*`` only). Points are content-addressed folders under the data folder's
``sweeps/points`` (see :class:`~melflow.layout.Layout`); a finished point is read back, so
a killed sweep reruns only what had not finished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from melflow.augment.offline import AUGMENT
from melflow.config import PipelineConfig
from melflow.digest import digest_of
from melflow.features.extract import EXTRACT
from melflow.flows.cv import augment_every_clip
from melflow.flows.deferred_flow import melflow_flow
from melflow.flows.observe import observed_run
from melflow.flows.orchestration import call
from melflow.flows.pipeline import pipeline_flow
from melflow.ingest import IngestResult, latest_manifest, load_manifest
from melflow.layout import Layout
from melflow.registry import log_sweep
from melflow.runlock import run_lock
from melflow.sweep.folds import has_folds, sweep_folds
from melflow.sweep.grid import Point, axes_from, grid_points
from melflow.sweep.run import Fold, PointResult, finished_point, point_digest
from melflow.sweep.table import SweepFiles, results_frame, write_results
from melflow.tasks.augment import augment_task
from melflow.tasks.progress import note, reporter
from melflow.tasks.sweep import sweep_point_task


@dataclass
class SweepRun:
    """A finished sweep: the table, its files, its MLflow parent run, and which points ran
    now or were cached."""

    frame: pd.DataFrame
    files: SweepFiles
    out_dir: str
    run_id: str
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)


def _uses_augmented(cfg: PipelineConfig) -> bool:
    return cfg.augment.enabled and cfg.train.use_augmented


def _augmented(
    cfg: PipelineConfig, ingested: IngestResult, manifest: pd.DataFrame, *, cv: bool
) -> str | None:
    """The augmented store's URL once it holds what training reads (``None`` if off).

    With folds every clip is ``train`` in some fold, so every clip is augmented (as
    ``melflow cv`` does); otherwise only the split's train clips, as ``melflow run`` does.
    """
    if not _uses_augmented(cfg):
        return None
    if cv:
        return augment_every_clip(cfg, manifest)
    return call(augment_task, cfg, ingested.manifest).store_url


@melflow_flow(name="sweep", flow_run_name="sweep/{cfg.name}", log_prints=False)
def sweep_flow(cfg: PipelineConfig, grid: list[str]) -> SweepRun:
    """Prepare the data (cached stages), then run every point not finished before.

    ``grid`` holds ``train.FIELD=V1,V2`` options; empty means the profile's ``sweep.grid``.
    Holds the data folder's run lock throughout, like the pipeline.
    """
    points = grid_points(cfg, axes_from(cfg, grid))
    with observed_run(cfg, "sweep"), run_lock(cfg, on_wait=lambda m: note("run", m)):
        return _sweep(cfg, points)


@dataclass(frozen=True)
class _Data:
    """What every point reads: the manifest, its folds, the augmented store, their digest."""

    ingested: IngestResult
    folds: list[Fold]
    augmented: str | None
    digest: str


def _prepare(cfg: PipelineConfig, points: list[Point]) -> _Data:
    """Ingest and extract (cached stages), the folds, and the augmented store if any point
    trains on augmented variants."""
    call(pipeline_flow, cfg, until="extract")
    ingested = latest_manifest(cfg=cfg)
    assert ingested is not None  # ingest always writes the pointer
    manifest = load_manifest(ingested, storage_options=cfg.paths.storage_options)
    data_cfg = next((p.cfg for p in points if _uses_augmented(p.cfg)), cfg)
    augmented = _augmented(data_cfg, ingested, manifest, cv=has_folds(cfg, manifest))
    digest = digest_of(
        EXTRACT.ref(cfg, ingested.manifest_digest).digest,
        AUGMENT.ref(data_cfg, ingested.manifest_digest).digest if augmented else None,
    )
    return _Data(ingested, sweep_folds(cfg, manifest), augmented, digest)


def _sweep(cfg: PipelineConfig, points: list[Point]) -> SweepRun:
    root = Layout.of(cfg).sweeps()
    data = _prepare(cfg, points)
    progress = reporter("sweep")
    digests = [point_digest(p.cfg, data_digest=data.digest, folds=data.folds) for p in points]
    results: list[PointResult] = []
    for point, digest in zip(points, digests, strict=True):
        point_dir = str(root / "points" / digest)
        result = finished_point(point_dir) or call(
            sweep_point_task,
            point,
            digest,
            point_dir,
            data.folds,
            data.augmented,
            cfg.sweep.latency_repeats,
        )
        results.append(result)
        progress(len(results), len(points))

    fields = [name for name, _ in points[0].assignments]
    frame = results_frame([r.row() for r in results], fields=fields)
    sweep_digest = digest_of("sweep", digests)
    out_dir = str(root / sweep_digest)
    about = {
        "profile": cfg.name,
        "grid": fields,
        "folds": [f.name for f in data.folds],
        "manifest_digest": data.ingested.manifest_digest,
        "latency": "CPU, one thread, median ms per clip of the model's forward pass over "
        f"{cfg.sweep.latency_repeats} repeats",
    }
    files = write_results(frame, out_dir=out_dir, about=about, title=f"{cfg.name}: sweep")
    run_id = log_sweep(
        cfg=cfg,
        digest=sweep_digest,
        rows=json.loads(frame.to_json(orient="records")),
        fields=fields,
        artifacts=[files.csv, files.json, files.plot],
        tags={"profile": cfg.name, "manifest_digest": data.ingested.manifest_digest},
    )
    return SweepRun(
        frame=frame,
        files=files,
        out_dir=out_dir,
        run_id=run_id,
        computed=[r.point for r in results if not r.cached],
        cached=[r.point for r in results if r.cached],
    )

"""Run one sweep point: train and score it on every fold, measure its cost, cache the result.

A point's folder (content-addressed by :func:`point_digest`) holds::

    fold-<name>/            the fold's training run (checkpoints, bundle/, eval-test/)
    fold-<name>/meter.json  training seconds and peak memory, summed over interrupted tries
    point.json              the finished point (written last: the point's "done" marker)

A killed sweep resumes point by point: finished points are read back, an unfinished
point resumes its fold's training from the last checkpoint (same final weights).
"""

from __future__ import annotations

import json
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from melflow import storage
from melflow.config import PipelineConfig
from melflow.digest import digest_of
from melflow.errors import MelflowError
from melflow.evaluation.evaluate import evaluate_bundle
from melflow.manifest import manifest_digest
from melflow.models.bundle import load_bundle
from melflow.models.cost import LATENCY_BATCHES, model_cost
from melflow.sweep.grid import Point
from melflow.training.loop import TRAIN_CODE_VERSION, TrainResult, train_model

SWEEP_CODE_VERSION = "1"
POINT_FILE = "point.json"
METER_FILE = "meter.json"
POINT_ID_CHARS = 8
_MB = 1024 * 1024


@dataclass(frozen=True)
class Fold:
    """One division of the manifest: its ``split`` column says train, val or test per clip."""

    name: str
    manifest: pd.DataFrame


@dataclass(frozen=True)
class FoldScore:
    """A fold's test scores and what its training cost."""

    fold: str
    accuracy: float
    macro_f1: float
    epochs: int
    train_s: float
    peak_train_mb: float


# The seam to a cross-validation runner: anything that trains ``cfg`` on one fold in the
# local folder ``run_dir`` (resuming what it finds there) and scores it on the fold's test.
FoldRunner = Callable[[PipelineConfig, Fold, str], FoldScore]


@dataclass(frozen=True)
class PointResult:
    """A finished point: its grid values, per-fold scores and model cost."""

    point: str
    assignments: dict[str, Any]
    overrides: list[str]
    folds: list[FoldScore]
    params: int
    macs: int
    latency_ms: dict[int, float]
    cached: bool = field(default=False, compare=False)

    def row(self) -> dict[str, Any]:
        """The point's row of the sweep table (see :mod:`melflow.sweep.table`).

        Spreads are population standard deviations over folds (0 for a single split).
        """
        acc = [f.accuracy for f in self.folds]
        f1 = [f.macro_f1 for f in self.folds]
        return {
            "point": self.point,
            **self.assignments,
            "accuracy_mean": statistics.fmean(acc),
            "accuracy_std": statistics.pstdev(acc),
            "macro_f1_mean": statistics.fmean(f1),
            "macro_f1_std": statistics.pstdev(f1),
            "params": self.params,
            "macs": self.macs,
            **{f"latency_b{b}_ms": ms for b, ms in self.latency_ms.items()},
            "train_s": statistics.fmean(f.train_s for f in self.folds),
            "peak_train_mb": max(f.peak_train_mb for f in self.folds),
            "folds": len(self.folds),
        }


def point_digest(cfg: PipelineConfig, *, data_digest: str, folds: Sequence[Fold]) -> str:
    """Identity of a point: its data, its ``train`` config, its folds and the code.

    ``data_digest`` identifies the stores the folds read; each fold counts by its name and
    the digest of its manifest (its ``split`` column: which clips train, validate, test).
    Latency settings are left out: they measure, they do not change what is trained.
    """
    return digest_of(
        "sweep-point",
        SWEEP_CODE_VERSION,
        TRAIN_CODE_VERSION,
        data_digest,
        cfg.train,
        [(fold.name, manifest_digest(fold.manifest)) for fold in folds],
    )


def point_id(digest: str) -> str:
    """The short id shown in tables and given to ``melflow models register-sweep``."""
    return digest[:POINT_ID_CHARS]


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far (``ru_maxrss``: KiB on Linux, B on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (_MB if sys.platform == "darwin" else 1024)


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / _MB


def _read_meter(path: Path) -> dict[str, float]:
    if path.exists():
        return {k: float(v) for k, v in json.loads(path.read_text()).items()}
    return {"train_s": 0.0, "peak_train_mb": 0.0}


def _metered_training(
    cfg: PipelineConfig, manifest: pd.DataFrame, run_dir: str, augmented_store_url: str | None
) -> TrainResult:
    """Train, saving seconds and memory growth after every epoch (run in a fresh process)."""
    meter_path = Path(run_dir, METER_FILE)
    before = _read_meter(meter_path)
    start, idle_mb = time.perf_counter(), _rss_mb()

    def save_meter(_: dict[str, Any]) -> None:
        meter = {
            "train_s": before["train_s"] + time.perf_counter() - start,
            "peak_train_mb": max(before["peak_train_mb"], _peak_rss_mb() - idle_mb),
        }
        storage.write_bytes_atomic(str(meter_path), json.dumps(meter).encode())

    return train_model(
        cfg=cfg,
        manifest=manifest,
        run_dir=run_dir,
        augmented_store_url=augmented_store_url,
        on_epoch=save_meter,
    )


def train_test_fold(
    cfg: PipelineConfig, fold: Fold, run_dir: str, *, augmented_store_url: str | None
) -> FoldScore:
    """Train on the fold's train (and val) split, score the best epoch on its test split.

    Training runs in a fresh (spawned) process, so its memory is its own, not what earlier
    points left in this one; it resumes from a checkpoint in ``run_dir``.

    Parameters
    ----------
    cfg : PipelineConfig
        The point's configuration.
    fold : Fold
        Its manifest's ``split`` column divides the clips.
    run_dir : str
        Local folder of this fold's run; checkpoints there are resumed.
    augmented_store_url : str, optional
        Augmented train variants, used when ``cfg.train.use_augmented``.

    Returns
    -------
    FoldScore
        ``train_s`` (seconds of completed epochs) adds up every try of an interrupted
        training; ``peak_train_mb`` (peak resident memory of the training process above
        its size once imports were done: data windows, activations, gradients, optimizer
        state) is the largest over the tries.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        trained = pool.submit(
            _metered_training, cfg, fold.manifest, run_dir, augmented_store_url
        ).result()
    meter = _read_meter(Path(run_dir, METER_FILE))
    evaluated = evaluate_bundle(
        cfg=cfg,
        manifest=fold.manifest,
        bundle_dir=trained.bundle_dir,
        split="test",
        out_dir=str(Path(run_dir, "eval-test")),
        spectrograms=False,
    )
    return FoldScore(
        fold=fold.name,
        accuracy=float(evaluated.report["accuracy"]),
        macro_f1=float(evaluated.report["macro_f1"]),
        epochs=trained.epochs_run,
        train_s=meter["train_s"],
        peak_train_mb=meter["peak_train_mb"],
    )


def _load_point(path: Path) -> PointResult:
    data = json.loads(path.read_text())
    return PointResult(
        **{
            **data,
            "folds": [FoldScore(**f) for f in data["folds"]],
            "latency_ms": {int(k): v for k, v in data["latency_ms"].items()},
            "cached": True,
        }
    )


def finished_point(point_dir: str) -> PointResult | None:
    """The saved result of a finished point, or ``None`` while it is missing or unfinished."""
    path = Path(point_dir, POINT_FILE)
    return _load_point(path) if path.exists() else None


def find_point(points_dir: str, point: str) -> PointResult:
    """The finished point whose id (a digest prefix, 4+ hex digits) is ``point``.

    Raises
    ------
    MelflowError
        Not a point id, no finished point with that id, or more than one.
    """
    if not re.fullmatch(r"[0-9a-f]{4,64}", point):
        raise MelflowError(f"{point!r} is not a point id (the 'point' column of melflow sweep)")
    root = Path(points_dir)
    found = sorted(d for d in root.glob(f"{point}*") if (d / POINT_FILE).exists())
    if not found:
        known = sorted(point_id(d.parent.name) for d in root.glob(f"*/{POINT_FILE}"))
        raise MelflowError(
            f"no finished sweep point {point!r} in {root}; finished: {', '.join(known) or 'none'}"
        )
    if len(found) > 1:
        raise MelflowError(f"point id {point!r} is ambiguous; give more of its digits")
    return _load_point(found[0] / POINT_FILE)


def run_point(
    *,
    point: Point,
    digest: str,
    point_dir: str,
    folds: Sequence[Fold],
    run_fold: FoldRunner,
    latency_repeats: int = 20,
) -> PointResult:
    """Train and score ``point`` on every fold, measure the model's cost, save the result.

    Parameters
    ----------
    point : Point
        The grid point (its ``cfg`` is trained).
    digest : str
        The point's :func:`point_digest`; its first characters are the point's id.
    point_dir : str
        Local folder of the point, named after ``digest``.
    folds : sequence of Fold
        At least one; a single train/test split is one fold.
    run_fold : FoldRunner
        Trains and scores one fold, e.g. :func:`train_test_fold`.
    latency_repeats : int
        Timed forward passes per batch size (the median is kept).

    Returns
    -------
    PointResult
        Read back with ``cached=True`` when the point had finished before.
    """
    done = finished_point(point_dir)
    if done is not None:
        return done
    scores = [
        run_fold(point.cfg, fold, str(Path(point_dir, f"fold-{fold.name}"))) for fold in folds
    ]
    # Cost of the trained network (all folds share its shape); latency on one thread.
    model, meta = load_bundle(str(Path(point_dir, f"fold-{folds[0].name}", "bundle")))
    cost = model_cost(
        model,
        input_shape=(meta.n_bins, meta.n_frames),  # raw dB: the front end is in the model
        repeats=latency_repeats,
        batches=LATENCY_BATCHES,
    )
    result = PointResult(
        point=point_id(digest),
        assignments=dict(point.assignments),
        overrides=point.overrides,
        folds=scores,
        params=cost.params,
        macs=cost.macs,
        latency_ms=cost.latency_ms,
    )
    saved = {k: v for k, v in asdict(result).items() if k != "cached"}
    storage.write_bytes_atomic(
        str(Path(point_dir, POINT_FILE)), json.dumps(saved, indent=2).encode()
    )
    return result

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
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from melflow import storage
from melflow.config import PipelineConfig
from melflow.digest import digest_of
from melflow.evaluation.evaluate import evaluate_bundle
from melflow.models.bundle import load_bundle
from melflow.models.cost import LATENCY_BATCHES, model_cost
from melflow.sweep.grid import Point
from melflow.training.loop import TRAIN_CODE_VERSION, train_model

SWEEP_CODE_VERSION = "1"
POINT_FILE = "point.json"
METER_FILE = "meter.json"
POINT_ID_CHARS = 8
_SAMPLE_S = 0.02
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


def point_digest(cfg: PipelineConfig, *, data_digest: str, folds: Sequence[str]) -> str:
    """Identity of a point: its data, its ``train`` config, the folds and the code.

    ``data_digest`` identifies the manifest and stores the folds read; latency settings
    are left out (they measure, they do not change what is trained).
    """
    return digest_of(
        "sweep-point", SWEEP_CODE_VERSION, TRAIN_CODE_VERSION, data_digest, cfg.train, list(folds)
    )


def point_id(digest: str) -> str:
    """The short id shown in tables and given to ``melflow models register-sweep``."""
    return digest[:POINT_ID_CHARS]


@contextmanager
def peak_memory() -> Iterator[Callable[[], float]]:
    """Sample this process's resident memory; yields a function giving the peak growth in MB.

    Peak growth over the resident size at entry, sampled every 20 ms by a thread: the
    process's lifetime maximum (``ru_maxrss``) cannot be reset between points.
    """
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = base
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(_SAMPLE_S):
            peak = max(peak, proc.memory_info().rss)

    thread = threading.Thread(target=sample, name="melflow-peak-memory", daemon=True)
    thread.start()
    try:
        yield lambda: (max(peak, proc.memory_info().rss) - base) / _MB
    finally:
        stop.set()
        thread.join()


def _read_meter(path: Path) -> dict[str, float]:
    if path.exists():
        return {k: float(v) for k, v in json.loads(path.read_text()).items()}
    return {"train_s": 0.0, "peak_train_mb": 0.0}


def train_test_fold(
    cfg: PipelineConfig, fold: Fold, run_dir: str, *, augmented_store_url: str | None
) -> FoldScore:
    """Train on the fold's train (and val) split, score the best epoch on its test split.

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
        ``train_s`` and ``peak_train_mb`` add up every try of an interrupted training:
        seconds are summed, memory is the largest peak.
    """
    meter_path = Path(run_dir, METER_FILE)
    before = _read_meter(meter_path)
    start = time.perf_counter()

    with peak_memory() as peak_mb:

        def save_meter(_: dict[str, Any]) -> None:
            meter = {
                "train_s": before["train_s"] + time.perf_counter() - start,
                "peak_train_mb": max(before["peak_train_mb"], peak_mb()),
            }
            storage.write_bytes_atomic(str(meter_path), json.dumps(meter).encode())

        trained = train_model(
            cfg=cfg,
            manifest=fold.manifest,
            run_dir=run_dir,
            augmented_store_url=augmented_store_url,
            on_epoch=save_meter,
        )
    meter = _read_meter(meter_path)
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
    # Cost of the trained network (all folds share its shape), at the training thread count.
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

"""One sweep point on a synthetic store: scores, cost, cached result, metered training.

Scoring on the test split (``train_test_fold``) decodes audio for its report, so it is
covered by the flow test on real clips; here the fold runner trains for real and reports
its best validation scores.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from training.synthetic_store import synthetic

from melflow.config import PipelineConfig
from melflow.errors import MelflowError
from melflow.models.bundle import load_bundle
from melflow.models.cost import count_macs
from melflow.sweep.grid import grid_points, parse_axis
from melflow.sweep.run import (
    POINT_FILE,
    Fold,
    FoldScore,
    find_point,
    finished_point,
    point_digest,
    run_point,
)
from melflow.training.loop import train_model

FAST = ("train.epochs=2", "train.batch_size=16", "train.num_threads=1")


def test_a_point_is_trained_scored_costed_and_then_cached(
    small_cfg: PipelineConfig, tmp_path: Path
) -> None:
    cfg, manifest = synthetic(small_cfg, *FAST, per_class=10)
    (point,) = grid_points(cfg, [parse_axis("train.model.arch=vgg")])
    folds = [Fold("split", manifest)]
    digest = point_digest(point.cfg, data_digest="d", folds=folds)
    assert digest != point_digest(cfg, data_digest="d", folds=folds)  # cnn is another point
    assert digest != point_digest(point.cfg, data_digest="e", folds=folds)
    resplit = [Fold("split", manifest.assign(split="train"))]
    assert digest != point_digest(point.cfg, data_digest="d", folds=resplit)
    point_dir = str(tmp_path / "points" / digest)

    def run_fold(fold_cfg: PipelineConfig, fold: Fold, run_dir: str) -> FoldScore:
        trained = train_model(cfg=fold_cfg, manifest=fold.manifest, run_dir=run_dir)
        best = trained.history[trained.best_epoch - 1]
        return FoldScore(fold.name, best["val_accuracy"], best["val_macro_f1"], 2, 1.5, 10.0)

    result = run_point(
        point=point,
        digest=digest,
        point_dir=point_dir,
        folds=folds,
        run_fold=run_fold,
        latency_repeats=2,
    )
    assert not result.cached and result.point == digest[:8]
    (fold,) = result.folds
    assert fold.fold == "split" and fold.epochs == 2
    assert 0.0 <= fold.accuracy <= 1.0 and 0.0 <= fold.macro_f1 <= 1.0
    model, meta = load_bundle(str(Path(point_dir, "fold-split", "bundle")))
    assert result.params == sum(p.numel() for p in model.parameters())
    assert result.macs == count_macs(model, input_shape=(meta.n_bins, meta.n_frames))
    assert set(result.latency_ms) == {1, 64}
    row = result.row()
    assert row["train.model.arch"] == "vgg" and row["accuracy_std"] == 0.0
    assert row["accuracy_mean"] == fold.accuracy and row["folds"] == 1
    assert (row["train_s"], row["peak_train_mb"]) == (1.5, 10.0)

    again = run_point(
        point=point,
        digest=digest,
        point_dir=point_dir,
        folds=[Fold("split", manifest)],
        run_fold=lambda *_: (_ for _ in ()).throw(AssertionError("trained again")),
    )
    assert again.cached and again == result
    assert finished_point(point_dir) == result
    assert json.loads(Path(point_dir, POINT_FILE).read_text())["overrides"] == [
        "train.model.arch=vgg"
    ]


def test_a_finished_point_is_found_by_its_id(tmp_path: Path) -> None:
    saved = {
        "point": "abcd1234",
        "assignments": {"train.model.arch": "vgg"},
        "overrides": ["train.model.arch=vgg"],
        "folds": [asdict(FoldScore("split", 0.9, 0.8, 3, 1.0, 5.0))],
        "params": 10,
        "macs": 100,
        "latency_ms": {"1": 0.5, "64": 0.1},
    }
    for digest in ("abcd1234ffff0000", "abcd567800000000"):
        folder = tmp_path / digest
        folder.mkdir()
        (folder / POINT_FILE).write_text(json.dumps(saved))
    (tmp_path / "abcd9999").mkdir()  # unfinished: no point.json
    found = find_point(str(tmp_path), "abcd1")
    assert found.overrides == ["train.model.arch=vgg"] and found.latency_ms == {1: 0.5, 64: 0.1}
    with pytest.raises(MelflowError, match="ambiguous"):
        find_point(str(tmp_path), "abcd")
    with pytest.raises(MelflowError, match=r"no finished sweep point 'abcd9'.*abcd1234, abcd5678"):
        find_point(str(tmp_path), "abcd9")
    with pytest.raises(MelflowError, match="not a point id"):
        find_point(str(tmp_path), "../x")

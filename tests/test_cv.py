"""Cross-validation: fold names (column, path regex, k-fold), fold manifests, pooled scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from training.synthetic_store import synthetic, synthetic_manifest, with_overrides

from melflow.config import CvConfig, PipelineConfig
from melflow.cv import fold_names, make_folds, run_cv
from melflow.errors import ConfigError
from melflow.sweep.run import Fold, FoldScore, train_test_fold

FAST = (
    "train.model.channels=[8,16]",
    "train.model.hidden=32",
    "train.batch_size=8",
    "train.epochs=6",
    "train.patience=0",
    "train.num_threads=1",
)


def _with_folds(manifest: pd.DataFrame, n_folds: int) -> pd.DataFrame:
    """Fold ``i % n_folds + 1`` per clip, written into both the column and the path."""
    folds = np.arange(len(manifest)) % n_folds + 1
    clip_ids = [f"audio/fold{f}/{c}" for f, c in zip(folds, manifest["clip_id"], strict=True)]
    return manifest.assign(fold=folds, clip_id=clip_ids)


def test_fold_names_from_the_column_and_from_a_regex_over_the_path() -> None:
    manifest = _with_folds(synthetic_manifest(classes=["a", "b"], per_class=6), 3)
    by_column = fold_names(manifest, CvConfig())
    by_path = fold_names(
        manifest, CvConfig(folds_from="path_regex", fold_regex=r"/fold(?P<fold>\d+)/")
    )
    assert list(by_column) == list(by_path) == [str(i % 3 + 1) for i in range(12)]


def test_clips_without_a_fold_are_a_config_error_naming_them() -> None:
    manifest = _with_folds(synthetic_manifest(classes=["a", "b"], per_class=4), 2)
    manifest.loc[3, "clip_id"] = "elsewhere/x.wav"
    cv = CvConfig(folds_from="path_regex", fold_regex=r"fold(?P<fold>\d+)")
    with pytest.raises(ConfigError, match=r"1 usable clips have no fold.*elsewhere/x\.wav"):
        fold_names(manifest, cv)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        fold_names(manifest.assign(fold=1), CvConfig())
    with pytest.raises(ValueError, match=r"\(\?P<fold>"):
        CvConfig(folds_from="path_regex", fold_regex=r"fold\d+")


def test_kfold_is_grouped_and_stratified() -> None:
    # 3 classes x 9 groups x 2 clips: every fold gets 3 groups of every class
    manifest = synthetic_manifest(classes=["a", "b", "c"], per_class=18)
    manifest["group"] = [f"{c}-{i // 2}" for c, i in zip(manifest["label"], range(54), strict=True)]
    names = fold_names(manifest, CvConfig(folds_from="kfold", k=3, seed=1))
    assert manifest.assign(fold=names).groupby("group")["fold"].nunique().max() == 1
    per_fold = manifest.assign(fold=names).groupby(["fold", "label"])["group"].nunique()
    assert set(per_fold) == {3} and len(per_fold) == 9


def test_each_fold_tests_on_its_clips_with_a_stratified_val_from_the_rest() -> None:
    manifest = _with_folds(synthetic_manifest(classes=["a", "b", "c"], per_class=20), 2)
    folds = make_folds(manifest, CvConfig(val_fraction=0.2))
    assert [f.name for f in folds] == ["1", "2"]
    for fold in folds:
        split = fold.manifest["split"]
        assert ((split == "test") == (manifest["fold"].astype(str) == fold.name)).all()
        val = fold.manifest[split == "val"]
        assert val["label"].value_counts().to_dict() == {"a": 2, "b": 2, "c": 2}  # 20 % of 10
    (only,) = make_folds(manifest, CvConfig(only=("2",)))
    assert only.name == "2"
    with pytest.raises(ConfigError, match=r"cv.only names folds \['7'\]"):
        make_folds(manifest, CvConfig(only=("7",)))


def test_cv_trains_every_fold_pools_scores_and_reads_finished_folds_back(
    small_cfg: PipelineConfig, tmp_path: Path
) -> None:
    cfg, manifest = synthetic(small_cfg, *FAST, per_class=12, n_classes=3)
    manifest = manifest.assign(fold=np.arange(len(manifest)) % 3 + 1)
    # the test report plays its worst mistakes: they need audio behind the stored features
    paths = [tmp_path / "audio" / f"{i}.wav" for i in range(len(manifest))]
    noise = np.random.default_rng(0).normal(0, 0.1, cfg.audio.sr // 2).astype(np.float32)
    for path in paths:
        path.parent.mkdir(exist_ok=True)
        sf.write(path, noise, cfg.audio.sr)
    manifest["path"] = [str(p) for p in paths]
    calls: list[str] = []

    def runner(fold_cfg: PipelineConfig, fold: Fold, run_dir: str) -> FoldScore:
        calls.append(fold.name)
        return train_test_fold(fold_cfg, fold, run_dir, augmented_store_url=None)

    work = str(tmp_path / "cv")
    result = run_cv(cfg=cfg, manifest=manifest, work_dir=work, runner=runner)
    assert calls == ["1", "2", "3"]
    assert result.classes == ["c0", "c1", "c2"]
    assert [f.n_test for f in result.folds] == [12, 12, 12]
    assert all(f.n_val > 0 and f.n_train + f.n_val == 24 for f in result.folds)
    confusion = np.asarray(result.confusion)
    assert confusion.sum() == len(manifest)  # each clip tested exactly once
    accuracy = [f.score.accuracy for f in result.folds]
    summary = result.summary()
    assert summary["accuracy_mean"] == pytest.approx(np.mean(accuracy))
    assert summary["accuracy_std"] == pytest.approx(np.std(accuracy))
    assert summary["accuracy_mean"] >= 0.9  # the synthetic classes are easy
    # the same folds again: read back, nothing trained
    again = run_cv(cfg=cfg, manifest=manifest, work_dir=work, runner=runner)
    assert calls == ["1", "2", "3"] and again.summary() == summary
    # another train config is another run
    other = with_overrides(cfg, "train.seed=1", "cv.only=['1']")
    run_cv(cfg=other, manifest=manifest, work_dir=work, runner=runner)
    assert calls == ["1", "2", "3", "1"]

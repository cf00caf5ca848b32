"""A sweep scores points by cross-validation when the profile has folds, else on its split."""

from __future__ import annotations

from training.synthetic_store import synthetic_manifest

from melflow.config import load_config
from melflow.sweep.folds import has_folds, sweep_folds


def test_without_folds_the_profiles_split_is_the_one_fold() -> None:
    cfg = load_config("small")
    manifest = synthetic_manifest(classes=["a", "b"], per_class=10)
    assert not has_folds(cfg, manifest)
    (fold,) = sweep_folds(cfg, manifest)
    assert fold.name == "split" and fold.manifest is manifest


def test_kfold_or_a_fold_column_gives_cross_validation() -> None:
    manifest = synthetic_manifest(classes=["a", "b"], per_class=10)
    kfold = load_config("small", overrides=["cv.folds_from=kfold", "cv.k=2"])
    folds = sweep_folds(kfold, manifest)
    assert [f.name for f in folds] == ["1", "2"]
    tested = [set(f.manifest.loc[f.manifest["split"] == "test", "clip_id"]) for f in folds]
    assert not tested[0] & tested[1] and len(tested[0] | tested[1]) == 20

    numbered = manifest.assign(fold=[i % 2 + 1 for i in range(len(manifest))])
    assert has_folds(load_config("small"), numbered)
    assert [f.name for f in sweep_folds(load_config("small"), numbered)] == ["1", "2"]

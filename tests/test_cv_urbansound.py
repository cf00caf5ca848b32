"""The urbansound profile's folds on the real UrbanSound8K folds 1-2 (skipped without data)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from melflow.config import load_config
from melflow.cv import make_folds
from melflow.ingest import ingest_corpus, load_manifest

US8K = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "us8k-folds12"

pytestmark = pytest.mark.slow


def test_urbansound_cv_tests_on_each_dataset_fold_with_grouped_stratified_val(
    tmp_path: Path,
) -> None:
    if not (US8K / "metadata.csv").exists():
        pytest.skip(f"UrbanSound8K folds 1-2 not found at {US8K} (needs ../shared beside the repo)")
    cfg = load_config(
        "urbansound", overrides=[f"paths.data_dir={tmp_path / 'data'}", f"corpus.root={US8K}"]
    )
    manifest = load_manifest(ingest_corpus(cfg=cfg))
    meta = pd.read_csv(US8K / "metadata.csv")
    folds = make_folds(manifest, cfg.cv)
    assert [f.name for f in folds] == ["1", "2"]
    usable = manifest["status"] == "ok"
    for fold in folds:
        split = fold.manifest.loc[usable, "split"]
        tested = set(fold.manifest.loc[usable & (fold.manifest["split"] == "test"), "clip_id"])
        assert tested <= set(meta.loc[meta["fold"] == int(fold.name), "path"])
        assert len(tested) >= 0.99 * (meta["fold"] == int(fold.name)).sum()
        # every class is in val, and no recording (fsID) is in two splits
        val = fold.manifest[usable & (fold.manifest["split"] == "val")]
        assert val["label"].nunique() == 10
        assert fold.manifest[usable].groupby("group")["split"].nunique().max() == 1
        assert 0.08 < (split == "val").sum() / (split != "test").sum() < 0.14

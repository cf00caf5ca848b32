"""Ingest of the Free Spoken Digit Dataset with its own metadata and official test split."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from conftest import fsdd_or_skip

from melflow.config import load_config
from melflow.ingest import ingest_corpus, load_manifest


def test_fsdd_manifest_matches_its_metadata(tmp_path: Path) -> None:
    root = fsdd_or_skip()
    # Grouped by speaker here to check the grouped split on real data; the profile itself
    # groups by clip (see pipeline_config/fsdd.yaml).
    overrides = [f"paths.data_dir={tmp_path / 'data'}", f"corpus.root={root}"]
    cfg = load_config("fsdd", overrides=[*overrides, "corpus.group_column=speaker"])
    start = time.perf_counter()
    result = ingest_corpus(cfg=cfg)
    cold_s = time.perf_counter() - start
    df = load_manifest(result)
    meta = pd.read_csv(root / "metadata.csv", dtype=str)

    assert (result.n_clips, result.n_ok, result.reasons) == (3000, 3000, {})
    assert sorted(df["label"].unique()) == [str(d) for d in range(10)]
    assert df["group"].nunique() == 6
    assert sorted(df.loc[df["split"] == "test", "clip_id"]) == sorted(
        meta.loc[meta["split"] == "test", "path"]
    )
    assert (df["sr"] == 8000).all() and (df["channels"] == 1).all()
    durations = df.set_index("clip_id")["duration_s"]
    expected = meta.set_index("path")["duration_s"].astype(float)
    assert (durations.loc[expected.index] - expected).abs().max() < 1e-3
    # Six speakers cannot give a 10 % val share by hash alone; one whole speaker is lent.
    val_groups = set(df.loc[df["split"] == "val", "group"])
    assert len(val_groups) == 1 and not val_groups & set(df.loc[df["split"] == "train", "group"])
    assert df["split"].value_counts().to_dict() == {"train": 2250, "val": 450, "test": 300}

    start = time.perf_counter()
    again = ingest_corpus(cfg=cfg)
    rerun_s = time.perf_counter() - start
    assert again.cached and again.manifest_digest == result.manifest_digest
    print(f"FSDD ingest: cold {cold_s:.2f} s, unchanged rerun {rerun_s:.2f} s")

"""Chunk-aware batches from Zarr: coverage, locality, seeding, statistics, selection."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_store import synthetic, synthetic_feature, synthetic_manifest

from melflow.config import PipelineConfig
from melflow.errors import MelflowError, StoreError
from melflow.features.extract import feature_store_url
from melflow.features.store import ArraySpec, RowStore, StoreLayout
from melflow.training.dataset import (
    ChunkBatches,
    Selection,
    class_names,
    feature_stats,
    select_augmented,
    select_split,
)

CHUNK = 8


def _row_id_store(path: Path, n_rows: int) -> RowStore:
    """A store whose row ``r`` holds the value ``r`` everywhere (shape (2, 3))."""
    store = RowStore(str(path))
    store.ensure(
        StoreLayout(arrays=(ArraySpec("logmel", (2, 3), "float32"),), columns=(), chunk_rows=CHUNK)
    )
    for batch in store.append([{"key": f"k{i}"} for i in range(n_rows)], columns=()):
        values = np.arange(batch.start, batch.start + len(batch.items), dtype=np.float32)
        store.write_batch(
            batch,
            {"logmel": np.broadcast_to(values[:, None, None], (len(values), 2, 3))},
            columns=(),
        )
    return store


def _selection(store: RowStore, rows: np.ndarray, offset: int = 0) -> Selection:
    """Labels = row id + offset, so every yielded label names its row."""
    return Selection(
        store=store,
        feature="logmel",
        rows=rows,
        labels=rows + offset,
        keys=np.array([f"k{r}" for r in rows], dtype=object),
    )


@pytest.fixture
def two_selections(tmp_path: Path) -> list[Selection]:
    a = _row_id_store(tmp_path / "a", 100)
    b = _row_id_store(tmp_path / "b", 30)
    rows_a = np.array([r for r in range(100) if r % 7 != 3])  # a sparse selection
    return [_selection(a, rows_a), _selection(b, np.arange(30), offset=1000)]


def test_every_row_exactly_once_per_epoch(two_selections: list[Selection]) -> None:
    batches = ChunkBatches(two_selections, batch_size=10, window_chunks=2, seed=3)
    expected = sorted([*two_selections[0].labels.tolist(), *two_selections[1].labels.tolist()])
    for epoch in range(3):
        seen = [(x, y) for x, y in batches.epoch(epoch)]
        labels = np.concatenate([y for _, y in seen])
        assert sorted(labels.tolist()) == expected
        assert Counter(labels.tolist()).most_common(1)[0][1] == 1
        assert [len(y) for _, y in seen[:-1]] == [10] * (len(seen) - 1)
        assert len(seen) == len(batches)
        for x, y in seen:  # features travel with their labels
            np.testing.assert_array_equal(x[:, 0, 0], y % 1000)


def test_order_is_seeded_per_epoch_and_chunk_local(two_selections: list[Selection]) -> None:
    batches = ChunkBatches(two_selections, batch_size=10, window_chunks=2, seed=3)
    first = np.concatenate([y for _, y in batches.epoch(0)])
    np.testing.assert_array_equal(first, np.concatenate([y for _, y in batches.epoch(0)]))
    assert not np.array_equal(first, np.concatenate([y for _, y in batches.epoch(1)]))
    other_seed = ChunkBatches(two_selections, batch_size=10, window_chunks=2, seed=4)
    assert not np.array_equal(first, np.concatenate([y for _, y in other_seed.epoch(0)]))
    # a batch only mixes rows of its window and the previous window's remainder
    for _, y in batches.epoch(0):
        chunks = {(int(v) // 1000, int(v) % 1000 // CHUNK) for v in y}
        assert len(chunks) <= 2 * 2


def test_unshuffled_is_store_order(two_selections: list[Selection]) -> None:
    batches = ChunkBatches(two_selections[:1], batch_size=7, window_chunks=3, shuffle=False)
    labels = np.concatenate([y for _, y in batches.epoch(5)])
    np.testing.assert_array_equal(labels, two_selections[0].labels)


def test_reads_whole_chunks_once_per_epoch(
    two_selections: list[Selection], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    original = Selection.read_chunk

    def counting(self: Selection, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        reads.append(chunk)
        return original(self, chunk)

    monkeypatch.setattr(Selection, "read_chunk", counting)
    list(ChunkBatches(two_selections, batch_size=10, window_chunks=2).epoch(0))
    assert len(reads) == 13 + 4  # ceil(100 / 8) chunks of a, ceil(30 / 8) of b


@pytest.mark.timeout(60)
def test_stopping_early_does_not_hang(two_selections: list[Selection]) -> None:
    batches = ChunkBatches(two_selections, batch_size=4, window_chunks=1)
    iterator = batches.epoch(0)
    x, y = next(iterator)
    assert len(x) == len(y) == 4
    iterator.close()  # joins the prefetch thread (a hang fails by the timeout)
    assert not any(t.name == "melflow-prefetch" for t in threading.enumerate())


def test_normalization_stats_equal_numpy(small_cfg: PipelineConfig) -> None:
    cfg, manifest = synthetic(small_cfg, per_class=11, n_classes=3)
    store = RowStore(feature_store_url(cfg))
    classes = class_names(manifest)
    train = select_split(store, manifest=manifest, split="train", feature="logmel", classes=classes)
    mean, std = feature_stats(train)
    rows = manifest[manifest["split"] == "train"]
    shape = train.row_shape()
    x = np.stack(
        [
            synthetic_feature(c, classes.index(label), shape)
            for c, label in zip(rows["clip_id"], rows["label"], strict=True)
        ]
    ).astype(np.float64)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2)), rtol=1e-10)
    np.testing.assert_allclose(std, x.std(axis=(0, 2)), rtol=1e-9)
    assert mean.shape == (cfg.features.n_mels,)


def test_constant_bins_get_unit_std(tmp_path: Path) -> None:
    store = _row_id_store(tmp_path / "s", 5)
    mean, std = feature_stats(_selection(store, np.array([2])))
    np.testing.assert_array_equal(mean, [2.0, 2.0])
    np.testing.assert_array_equal(std, [1.0, 1.0])


def test_select_split_labels_and_missing_clips(small_cfg: PipelineConfig) -> None:
    cfg, manifest = synthetic(small_cfg, per_class=10, n_classes=3)
    store = RowStore(feature_store_url(cfg))
    classes = class_names(manifest)
    assert classes == ["c0", "c1", "c2"]
    test = select_split(store, manifest=manifest, split="test", feature="logmel", classes=classes)
    assert len(test) == 6 and np.all(np.diff(test.rows) > 0)
    assert [k.split("/")[0] for k in test.keys] == [classes[i] for i in test.labels]
    only_two = select_split(
        store, manifest=manifest, split="test", feature="logmel", classes=["c0", "c1"]
    )
    assert len(only_two) == 4
    extra = pd.concat([manifest, synthetic_manifest(classes=["new"], per_class=1)])
    with pytest.raises(StoreError, match="not in store"):
        select_split(store, manifest=extra, split="train", feature="logmel", classes=["new"])
    mfcc = select_split(store, manifest=manifest, split="train", feature="mfcc", classes=classes)
    with pytest.raises(StoreError, match="no 'mfcc' array"):
        mfcc.row_shape()


def test_class_names_need_two_classes() -> None:
    with pytest.raises(MelflowError, match="at least 2"):
        class_names(synthetic_manifest(classes=["only"], per_class=5))


def test_select_augmented_keeps_variants_of_current_train_clips(tmp_path: Path) -> None:
    old = synthetic_manifest(classes=["a", "b"], per_class=5)
    store = RowStore(str(tmp_path / "aug"))
    columns = ("clip_id", "label", "split", "sha256", "source_clip_id")
    layout = StoreLayout(
        arrays=(ArraySpec("logmel", (2, 3), "float32"),), columns=columns, chunk_rows=4
    )
    store.ensure(layout)
    # variants of every clip, as if all had been train clips when augmented
    items = [
        {
            "key": f"{c}~v{v}",
            "clip_id": f"{c}~v{v}",
            "label": label,
            "split": "train",
            "sha256": sha,
            "source_clip_id": c,
        }
        for c, label, sha in zip(old["clip_id"], old["label"], old["sha256"], strict=True)
        for v in range(2)
    ]
    store.append(items, columns=columns)
    manifest = old.copy()
    changed = manifest.index[manifest["split"] == "train"][0]
    manifest.loc[changed, "sha256"] = "f" * 64  # the file was edited since
    sel = select_augmented(store, manifest=manifest, feature="logmel", classes=["a", "b"])
    train_ids = set(manifest.loc[manifest["split"] == "train", "clip_id"])
    expected = train_ids - {manifest.at[changed, "clip_id"]}
    assert len(sel) == 2 * len(expected)
    assert {k.split("~")[0] for k in sel.keys} == expected
    assert [k[0] for k in sel.keys] == [["a", "b"][i] for i in sel.labels]

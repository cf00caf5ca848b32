"""The Zarr row store: chunk-aligned plans, padded batch writes, markers, layout checks."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from melflow import storage
from melflow.errors import StoreError
from melflow.features import store as store_module
from melflow.features.keyindex import hashes_bytes, key_hashes
from melflow.features.store import KEY, ArraySpec, RowStore, StoreLayout

LAYOUT = StoreLayout(arrays=(ArraySpec("x", (2, 3), "float16"),), columns=("label",), chunk_rows=4)


def items(*keys: str) -> list[dict[str, str]]:
    return [{KEY: k, "label": k.upper()} for k in keys]


@pytest.fixture
def store(tmp_path: Path) -> RowStore:
    s = RowStore(str(tmp_path / "store"))
    s.ensure(LAYOUT)
    return s


def test_batches_are_whole_chunks_and_appends_never_share_one(store: RowStore) -> None:
    first = store.append(items(*"abcdef"), columns=("label",))
    assert [(b.index, b.start, len(b.items)) for b in first] == [(0, 0, 4), (1, 4, 2)]
    assert store.append(items(*"abc"), columns=("label",)) == []
    second = store.append(items(*"abcdefg"), columns=("label",))
    assert [(b.index, b.start, [i[KEY] for i in b.items]) for b in second] == [(2, 8, ["g"])]
    assert store.group()["x"].shape == (12, 2, 3)
    assert list(store.index()["row"]) == [0, 1, 2, 3, 4, 5, 8]


def test_write_batch_pads_the_chunk_and_marks_it_done(store: RowStore) -> None:
    batches = store.append(items(*"abcdef"), columns=("label",))
    assert store.pending_batches() == [0, 1]
    values = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    store.write_batch(store.batch(1), {"x": values}, columns=("label",))
    assert store.pending_batches() == [0]
    root = store.group()
    np.testing.assert_array_equal(root["x"][4:6], values.astype(np.float16))
    assert not root["x"][6:8].any()
    assert list(root[KEY][4:8]) == ["e", "f", "", ""]
    assert list(root["label"][4:6]) == ["E", "F"]
    assert batches[1].items == store.batch(1).items


def test_writes_after_the_store_grew_reach_the_new_rows(store: RowStore) -> None:
    # The first write keeps open array handles; the append then grows the arrays under them.
    store.append(items(*"abcd"), columns=("label",))
    store.write_batch(store.batch(0), {"x": np.ones((4, 2, 3))}, columns=("label",))
    store.append(items(*"abcdef"), columns=("label",))
    values = np.full((2, 2, 3), 7.0)
    store.write_batch(store.batch(1), {"x": values}, columns=("label",))
    root = store.group()
    assert root["x"].shape == (8, 2, 3)
    np.testing.assert_array_equal(root["x"][3:6], [np.ones((2, 3)), *values])
    assert list(root[KEY][3:8]) == ["d", "e", "f", "", ""]
    assert store.pending_batches() == []


def test_wrong_row_count_and_foreign_layout_are_refused(store: RowStore, tmp_path: Path) -> None:
    store.append(items(*"ab"), columns=("label",))
    with pytest.raises(StoreError, match="expected 2"):
        store.write_batch(store.batch(0), {"x": np.zeros((3, 2, 3))}, columns=("label",))
    other = StoreLayout(
        arrays=(ArraySpec("x", (2, 4), "float16"),), columns=("label",), chunk_rows=4
    )
    with pytest.raises(StoreError, match="another layout"):
        RowStore(store.url).ensure(other)


def test_complete_markers_and_row_lookup(store: RowStore) -> None:
    store.append(items(*"abcde"), columns=("label",))
    assert store.complete_info("m1") is None
    store.mark_complete("m1", {"rows": 5})
    assert store.complete_info("m1") == {"rows": 5}
    assert list(store.rows_for(["e", "a"])["row"]) == [4, 0]
    with pytest.raises(StoreError, match="not in store"):
        store.rows_for(["zz"])


def test_an_incremental_plan_at_20k_clips_reads_no_plan_of_the_old_clips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RowStore(str(tmp_path / "big"))
    store.ensure(StoreLayout(arrays=LAYOUT.arrays, columns=("label",), chunk_rows=256))
    old = [f"clip{i:05d}" for i in range(20_000)]
    store.append(items(*old), columns=("label",))
    reads: list[tuple[str, int]] = []
    read_bytes = storage.read_bytes

    def counted(path: str, storage_options: dict[str, object] | None = None) -> bytes:
        data = read_bytes(path, storage_options)
        reads.append((path.split("_melflow/", 1)[1], len(data)))
        return data

    monkeypatch.setattr(storage, "read_bytes", counted)
    store = RowStore(store.url)  # the next run's handle
    keys = [*old, *(f"new{i:03d}" for i in range(200))]
    fresh = [k for k, new in zip(keys, store.unplanned(keys), strict=True) if new]
    assert fresh == keys[20_000:]
    batches = store.append(items(*fresh), columns=("label",))
    assert [b.index for b in batches] == [79]  # 20,000 rows fill 79 chunks of 256 (78.1)
    # Only the key index (16 bytes per planned key) is read, and once: the append reuses
    # it. No plan file, no batch file of the old clips.
    assert [name for name, _ in reads] == ["keys/00000000.npy"]
    assert reads[0][1] <= 16 * 20_000 + 128
    monkeypatch.undo()
    assert list(store.index()["row"][-2:]) == [79 * 256 + 198, 79 * 256 + 199]


def test_keys_of_an_uncommitted_append_are_not_planned(store: RowStore) -> None:
    store.append(items(*"ab"), columns=("label",))
    # A run killed after writing its keys but before its plan file: "c" is not planned.
    meta = Path(store.url, "_melflow")
    (meta / "keys" / "00000001.npy").write_bytes(hashes_bytes(key_hashes(["c"])))
    assert list(store.unplanned(["a", "c"])) == [False, True]
    assert [b.index for b in store.append(items(*"abc"), columns=("label",))] == [1]
    assert store.planned_batches() == [0, 1]


def _claim_by_another_machine(store: RowStore, first: int, *, age_s: float) -> Path:
    path = Path(store.url, "_melflow", "claims", f"{first:08d}.0")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": "other", "pid": 1, "at": time.time() - age_s}))
    return path


def test_a_live_claim_of_another_machine_blocks_planning_with_a_clear_error(
    store: RowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PLAN_WAIT_S", 0.2)
    store.append(items(*"ab"), columns=("label",))
    _claim_by_another_machine(store, 1, age_s=5)
    with pytest.raises(StoreError, match="another machine has been planning"):
        store.append(items(*"abc"), columns=("label",))
    assert store.planned_batches() == [0] and list(store.unplanned(["c"])) == [True]


def test_a_stale_claim_is_taken_over_and_claims_are_gone_after_planning(
    store: RowStore,
) -> None:
    stale = _claim_by_another_machine(store, 0, age_s=store_module.CLAIM_STALE_S + 1)
    assert [b.index for b in store.append(items(*"ab"), columns=("label",))] == [0]
    assert stale.exists()  # the dead planner's claim stays; the next generation was used
    assert sorted(p.name for p in stale.parent.iterdir()) == ["00000000.0"]
    with pytest.raises(FileExistsError):
        storage.create_exclusive(str(stale), b"x")


def test_a_plan_committed_between_reading_and_claiming_is_not_overwritten(
    store: RowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.append(items(*"ab"), columns=("label",))  # another machine's plan, claim released
    real_next = RowStore.next_batch
    stale = [0]  # our first read came just before that commit

    def next_batch(self: RowStore) -> int:
        return stale.pop() if stale else real_next(self)

    monkeypatch.setattr(RowStore, "next_batch", next_batch)
    assert [b.index for b in store.append(items(*"abc"), columns=("label",))] == [1]
    assert [i[KEY] for i in store.batch(0).items] == ["a", "b"]
    assert not list(Path(store.url, "_melflow", "claims").iterdir())


def _keys_files(store: RowStore) -> list[str]:
    return sorted(p.name for p in Path(store.url, "_melflow", "keys").iterdir())


def test_key_parts_are_consolidated_and_a_plan_after_consolidation_equals_one_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = {}
    for name, max_parts in (("merged", 3), ("parts", 1000)):
        monkeypatch.setattr(store_module, "MAX_KEY_PARTS", max_parts)
        stores[name] = s = RowStore(str(tmp_path / name))
        s.ensure(LAYOUT)
        for n in range(1, 7):  # six appends of one batch each
            s.append(items(*(f"k{i:02d}" for i in range(4 * n))), columns=("label",))
    merged, parts = stores["merged"], stores["parts"]
    # The 4th append made 4 parts (> 3): consolidated up to batch 4; appends 5, 6 follow.
    assert _keys_files(merged) == sorted(
        [*(f"{b:08d}.npy" for b in range(6)), "00000000-00000004.npy"]
    )
    assert _keys_files(parts) == [f"{b:08d}.npy" for b in range(6)]
    reads: list[str] = []
    read_bytes = storage.read_bytes

    def counted(path: str, storage_options: dict[str, object] | None = None) -> bytes:
        reads.append(path.split("_melflow/keys/", 1)[1])
        return read_bytes(path, storage_options)

    monkeypatch.setattr(storage, "read_bytes", counted)
    keys = [*(f"k{i:02d}" for i in range(30)), "z", "k07"]
    fresh = RowStore(merged.url)
    assert list(fresh.unplanned(keys)) == list(RowStore(parts.url).unplanned(keys))
    assert reads[:3] == ["00000000-00000004.npy", "00000004.npy", "00000005.npy"]
    assert [b.items for b in fresh.append(items(*keys), columns=("label",))] == [
        b.items for b in parts.append(items(*keys), columns=("label",))
    ]
    monkeypatch.undo()
    assert fresh.index().equals(parts.index())
    assert len(fresh.key_index()) == 24 + 7 and RowStore(merged.url).unplanned(keys).sum() == 0


def test_a_newer_consolidation_supersedes_older_ones_and_one_past_the_plans_is_ignored(
    store: RowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "MAX_KEY_PARTS", 1)
    for n in range(1, 4):
        store.append(items(*(f"k{i}" for i in range(4 * n))), columns=("label",))
    assert [f for f in _keys_files(store) if "-" in f] == ["00000000-00000003.npy"]
    # A consolidation whose end is no committed plan (e.g. a plan removed by hand) is not
    # trusted: the index is read from the one before it, or from the parts.
    keys = Path(store.url, "_melflow", "keys")
    (keys / "00000000-00000009.npy").write_bytes(hashes_bytes(key_hashes(["x"])))
    assert list(RowStore(store.url).unplanned(["k0", "k11", "x"])) == [False, False, True]
    (keys / "00000000-00000003.npy").unlink()
    # A reader that listed it just before a newer consolidation removed it lists again.
    listed = [[3, 9]]
    real = RowStore._consolidations
    monkeypatch.setattr(RowStore, "_consolidations", lambda s: listed.pop() if listed else real(s))
    assert list(RowStore(store.url).unplanned(["k0", "k11", "x"])) == [False, False, True]
    assert not listed


def test_a_handle_sees_a_store_removed_and_made_again_under_its_url(store: RowStore) -> None:
    store.append(items(*"abcdef"), columns=("label",))
    assert list(store.unplanned(["a", "z"])) == [False, True]
    shutil.rmtree(store.url)
    store.ensure(LAYOUT)
    store.append(items("z"), columns=("label",))
    assert list(store.unplanned(["a", "z"])) == [True, False]

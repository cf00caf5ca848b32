"""The planned-key index: hash pairs per append, exact membership, duplicates of a first hash."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest

from melflow.features.keyindex import (
    KeyIndex,
    hashes_bytes,
    hashes_from_bytes,
    key_hashes,
    sorted_hashes,
)


def test_membership_over_several_parts_round_trips_through_bytes() -> None:
    keys = [f"class{i % 7}/clip{i:05d}.wav#{i:016x}" for i in range(5000)]
    parts = [sorted_hashes(key_hashes(keys[:3000])), key_hashes(keys[3000:4000])]  # one unsorted
    index = KeyIndex([hashes_from_bytes(hashes_bytes(p)) for p in parts])
    assert len(index) == 4000
    mask = index.contains(key_hashes(keys[::-1]))
    assert list(np.flatnonzero(~mask)) == list(range(1000))  # keys[4999..4000] reversed
    assert key_hashes([]).shape == (0, 2)
    assert (key_hashes(keys[:2]) == key_hashes(keys[:2])).all()  # stable across calls


def test_a_shared_first_hash_is_told_apart_by_the_second() -> None:
    part = np.array([[5, 1], [5, 2], [9, 3]], dtype=np.uint64)
    asked = np.array([[5, 2], [5, 3], [9, 3], [7, 1]], dtype=np.uint64)
    assert list(KeyIndex([part]).contains(asked)) == [True, False, True, False]


def test_consolidated_parts_hold_the_same_keys_as_one_sorted_column_major_part() -> None:
    rng = np.random.default_rng(7)
    keys = [f"clip{i:05d}#{i:016x}" for i in rng.permutation(3000)]
    index = KeyIndex([sorted_hashes(key_hashes(keys[o : o + 500])) for o in range(0, 3000, 500)])
    assert index.n_parts == 6
    merged = index.consolidated()
    assert merged.shape == (3000, 2) and merged.flags.f_contiguous
    assert (np.diff(merged[:, 0].astype(np.float64)) >= 0).all()
    assert set(map(tuple, merged.tolist())) == set(map(tuple, key_hashes(keys).tolist()))
    asked = key_hashes([*keys[::7], "clip99999#0", "new"])
    before = index.contains(asked)
    index.replace_parts(hashes_from_bytes(hashes_bytes(merged)))
    assert index.n_parts == 1 and len(index) == 3000
    assert (index.contains(asked) == before).all() and before.sum() == len(keys[::7])


def test_parts_load_without_a_copy_and_row_major_parts_of_earlier_stores_still_load() -> None:
    hashes = sorted_hashes(key_hashes([f"k{i}" for i in range(100)]))
    data = hashes_bytes(hashes)
    loaded = hashes_from_bytes(data)
    assert np.shares_memory(loaded, np.frombuffer(data, dtype=np.uint8))
    assert loaded.flags.f_contiguous and (loaded == hashes).all()
    old = hashes_from_bytes(_npy(np.ascontiguousarray(hashes)))  # as earlier versions wrote
    assert old.flags.c_contiguous and (old == hashes).all()
    assert KeyIndex([old]).contains(hashes[:3]).all()
    with pytest.raises(ValueError, match="not a key index part"):
        hashes_from_bytes(_npy(np.zeros(3, dtype=np.uint64)))


def test_arrow_strings_hash_like_python_strings() -> None:
    keys = ["a#0123", "é/ü.wav#ff", ""]
    assert (key_hashes(pa.array(keys, type=pa.large_string())) == key_hashes(keys)).all()
    assert (key_hashes(pa.chunked_array([keys[:1], keys[1:]])) == key_hashes(keys)).all()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_lookups_agree_with_a_set_for_random_shared_and_extreme_hashes() -> None:
    rng = np.random.default_rng(3)
    top = np.iinfo(np.uint64).max
    first = rng.integers(0, top, 4000, dtype=np.uint64, endpoint=True)
    first[:40] = first[40:80]  # 40 first hashes shared by two keys
    first[80:84] = [0, 0, top, top]  # the ends of the first and last buckets
    pairs = np.stack([first, rng.integers(0, top, 4000, dtype=np.uint64)], axis=1)
    stored, asked = pairs[::2], pairs.copy()
    asked[2::4, 1] += np.uint64(1)  # same first hash as a stored key, another second
    index = KeyIndex([sorted_hashes(stored[o : o + 500]) for o in range(0, 2000, 500)])
    want = {tuple(p) for p in stored.tolist()}
    assert list(index.contains(asked)) == [tuple(p) in want for p in asked.tolist()]
    assert index.contains(asked).sum() == 1000 and len(index) == 2000

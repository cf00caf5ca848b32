"""The planned-key index: hash pairs per append, exact membership, duplicates of a first hash."""

from __future__ import annotations

import numpy as np

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

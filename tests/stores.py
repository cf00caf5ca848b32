"""Compare two row stores exactly: same arrays, same values, same rows for the same keys."""

from __future__ import annotations

import numpy as np

from melflow.features.store import RowStore


def store_arrays(store: RowStore) -> dict[str, np.ndarray]:
    return {name: np.asarray(array[:]) for name, array in store.group().arrays()}


def assert_same_store(found: RowStore, expected: RowStore) -> None:
    """Every array of ``found`` equals ``expected``'s bit for bit, and so does its row plan."""
    got, want = store_arrays(found), store_arrays(expected)
    assert sorted(got) == sorted(want)
    for name, values in want.items():
        assert got[name].dtype == values.dtype, name
        assert np.array_equal(got[name], values), f"{name} differs"
    plan, reference = found.index(), expected.index()
    assert plan[["key", "row", "batch"]].equals(reference[["key", "row", "batch"]])
    assert found.done_batches() == expected.done_batches() == set(found.planned_batches())

"""The planned-key index of a row store: 16 bytes per key, so planning stays flat in memory.

Planning must tell new clips from planned ones. Keeping every planned key as text costs
~100 bytes of Python string per clip (100 MB at a million clips) and reading every plan
file; the index holds two independent 64-bit SipHashes per key instead (collision odds
about n^2 / 2^129, i.e. nil), sorted, so membership of a chunk of keys is a binary search.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

# Fixed 16-character SipHash keys: the hashes are part of the store format.
_HASH_KEYS = ("melflow-keyidx-1", "melflow-keyidx-2")


def key_hashes(keys: Sequence[str] | np.ndarray) -> np.ndarray:
    """Two 64-bit hashes per key, shape ``(len(keys), 2)``, dtype uint64."""
    values = np.asarray(keys, dtype=object)
    if values.size == 0:
        return np.zeros((0, 2), dtype=np.uint64)
    return np.stack(
        [pd.util.hash_array(values, hash_key=k, categorize=False) for k in _HASH_KEYS], axis=1
    )


class KeyIndex:
    """Set of planned keys, held as sorted hash pairs (shape ``(n, 2)``, uint64)."""

    def __init__(self, hashes: np.ndarray) -> None:
        order = np.lexsort((hashes[:, 1], hashes[:, 0]))
        self.hashes = np.ascontiguousarray(hashes[order])

    @classmethod
    def concat(cls, parts: Sequence[np.ndarray]) -> KeyIndex:
        return cls(np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.uint64))

    def __len__(self) -> int:
        return len(self.hashes)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean mask, shape ``(len(hashes),)``: which hash pairs are in the index."""
        first = self.hashes[:, 0]
        lo = np.searchsorted(first, hashes[:, 0], side="left")
        hi = np.searchsorted(first, hashes[:, 0], side="right")
        found = np.zeros(len(hashes), dtype=bool)
        single = hi - lo == 1  # the common case: the first hash alone is unique
        found[single] = self.hashes[lo[single], 1] == hashes[single, 1]
        for i in np.flatnonzero(hi - lo > 1):
            found[i] = bool((self.hashes[lo[i] : hi[i], 1] == hashes[i, 1]).any())
        return found


def hashes_bytes(hashes: np.ndarray) -> bytes:
    """``.npy`` bytes of a ``(n, 2)`` uint64 hash array."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(hashes, dtype=np.uint64), allow_pickle=False)
    return buffer.getvalue()


def hashes_from_bytes(data: bytes) -> np.ndarray:
    hashes: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    return hashes

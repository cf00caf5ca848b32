"""The planned-key index of a row store: 16 bytes per key, so planning stays flat in memory.

Planning must tell new clips from planned ones. Keeping every planned key as text costs
~100 bytes of Python string per clip (100 MB at a million clips) and reading every plan
file; the index holds two independent 64-bit SipHashes per key instead (collision odds
about n^2 / 2^129, i.e. nil), sorted, so membership is a binary search.
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


def sorted_hashes(hashes: np.ndarray) -> np.ndarray:
    """``hashes`` ordered by their first hash: the form an index part is stored in."""
    return np.ascontiguousarray(hashes[np.argsort(hashes[:, 0], kind="stable")])


class KeyIndex:
    """Set of planned keys, held as one sorted ``(n, 2)`` uint64 hash array.

    Stored parts (one per append) are each sorted already, so merging them is a stable
    sort over a few presorted runs, not a full sort of a million hashes.
    """

    def __init__(self, parts: Sequence[np.ndarray]) -> None:
        hashes = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.uint64)
        self.hashes = sorted_hashes(hashes) if len(parts) > 1 else hashes
        if len(parts) == 1 and not (hashes[1:, 0] >= hashes[:-1, 0]).all():
            self.hashes = sorted_hashes(hashes)

    def __len__(self) -> int:
        return len(self.hashes)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean mask, shape ``(len(hashes),)``: which hash pairs are in the index."""
        # Sorted needles make the binary search walk memory in order: ~2x faster.
        order = np.argsort(hashes[:, 0])
        needles = hashes[order]
        first = self.hashes[:, 0]
        lo = np.searchsorted(first, needles[:, 0], side="left")
        at = np.minimum(lo, max(len(first) - 1, 0))
        found = np.zeros(len(needles), dtype=bool)
        if len(first):
            hit = first[at] == needles[:, 0]
            found = hit & (self.hashes[at, 1] == needles[:, 1])
            # A first hash shared by several keys (odds ~n^2/2^65): compare all of them.
            shared = hit & ~found & (at + 1 < len(first))
            shared[shared] &= first[at[shared] + 1] == needles[shared, 0]
            for i in np.flatnonzero(shared):
                hi = np.searchsorted(first, needles[i, 0], side="right")
                found[i] = bool((self.hashes[lo[i] : hi, 1] == needles[i, 1]).any())
        mask = np.empty_like(found)
        mask[order] = found
        return mask


def hashes_bytes(hashes: np.ndarray) -> bytes:
    """``.npy`` bytes of a ``(n, 2)`` uint64 hash array."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(hashes, dtype=np.uint64), allow_pickle=False)
    return buffer.getvalue()


def hashes_from_bytes(data: bytes) -> np.ndarray:
    hashes: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    return hashes

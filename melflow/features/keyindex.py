"""The planned-key index of a row store: 16 bytes per key, so planning stays flat in memory.

Planning must tell new clips from planned ones. Keeping every planned key as text costs
~100 bytes of Python string per clip (100 MB at a million clips) and reading every plan
file; the index holds two independent 64-bit SipHashes per key instead (collision odds
about n^2 / 2^129, i.e. nil), in a few sorted parts, so membership is a lookup in a
sorted array per part.

A part is stored as an ``.npy`` array of shape ``(n, 2)``, written column-major so that
each hash column loads as one contiguous array straight from the file's bytes (no copy,
no sort); row-major parts written by earlier versions load too.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # a worker reads a store through this module: no pandas, no pyarrow
    import pyarrow as pa

# Fixed 16-character SipHash keys: the hashes are part of the store format.
_HASH_KEYS = ("melflow-keyidx-1", "melflow-keyidx-2")


def key_hashes(keys: Sequence[str] | np.ndarray | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Two 64-bit hashes per key, shape ``(len(keys), 2)``, dtype uint64.

    Arrow string arrays are hashed from their UTF-8 bytes, which SipHash reads as they are
    (a Python ``str`` is encoded first: 3x slower at a million keys); both give the same
    hashes.
    """
    import pandas as pd

    arrow = sys.modules.get("pyarrow")  # Arrow arrays exist only if pyarrow is loaded
    if arrow is not None and isinstance(keys, arrow.Array | arrow.ChunkedArray):
        values = np.asarray(keys.cast(arrow.large_binary()).to_numpy(zero_copy_only=False))
    else:
        values = np.asarray(keys, dtype=object)
    if values.size == 0:
        return np.zeros((0, 2), dtype=np.uint64)
    out = np.empty((len(values), 2), dtype=np.uint64, order="F")
    for column, hash_key in enumerate(_HASH_KEYS):
        out[:, column] = pd.util.hash_array(values, hash_key=hash_key, categorize=False)
    return out


def sorted_hashes(hashes: np.ndarray) -> np.ndarray:
    """``hashes`` ordered by their first hash, column-major: the form a part is stored in."""
    return np.asfortranarray(hashes[np.argsort(hashes[:, 0], kind="stable")])


class _Part:
    """One sorted part: hash columns ``first`` and ``second``, and a bucket directory.

    Hashes are uniform, so the top bits of a first hash say where it lies: bucket ``k``
    (first hashes whose top ``bits`` bits equal ``k``) spans ``starts[k]:starts[k + 1]``,
    about 2 keys. A lookup reads its bucket's bounds and then ~1-2 keys, where a binary
    search of a million keys reads 20 (half as fast, even on sorted needles).
    """

    KEYS_PER_BUCKET = 2

    def __init__(self, first: np.ndarray, second: np.ndarray) -> None:
        self.first, self.second = first, second
        bits = max(1, int(np.ceil(np.log2(max(len(first), 1) / self.KEYS_PER_BUCKET))))
        self.shift = np.uint64(64 - bits)
        # 4 bytes per bucket (2 per key) while positions fit: half of int64's memory.
        self.starts = np.empty(2**bits + 1, dtype=np.int32 if len(first) < 2**31 else np.int64)
        # Bucket by bucket range: a whole-array temporary would cost 16 bytes per key.
        step = 1 << 16
        for lo in range(0, 2**bits, step):
            bounds = np.arange(lo, min(lo + step, 2**bits), dtype=np.uint64) << self.shift
            self.starts[lo : lo + len(bounds)] = np.searchsorted(first, bounds)
        self.starts[-1] = len(first)

    def contains(self, needles: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """Which ``(needles[i], seconds[i])`` pairs the part holds, shape ``(len(needles),)``."""
        bucket = (needles >> self.shift).astype(np.intp)
        pos = self.starts[bucket].astype(np.intp)
        end = self.starts[bucket + 1]
        found = np.zeros(len(needles), dtype=bool)
        live = np.flatnonzero(pos < end)
        # Walk each bucket in step, all needles at once: a needle stops at its key, or at
        # a larger first hash (the bucket is sorted), or at the bucket's end. A first hash
        # shared by several keys (odds ~n^2/2^65) is walked past until the second matches.
        while live.size:
            at = pos[live]
            first = self.first[at]
            wanted = needles[live]
            match = (first == wanted) & (self.second[at] == seconds[live])
            found[live[match]] = True
            live = live[~match & (first <= wanted) & (at + 1 < end[live])]
            pos[live] += 1
        return found


class KeyIndex:
    """Set of planned keys: sorted parts of hash pairs, each held as two contiguous columns.

    ``parts`` are ``(n, 2)`` uint64 arrays (a part that is not sorted is sorted here). The
    store keeps the number of parts small by consolidating them (:meth:`consolidated`).
    """

    def __init__(self, parts: Sequence[np.ndarray] = ()) -> None:
        self._parts: list[_Part] = []
        for part in parts:
            self.add(part)

    def __len__(self) -> int:
        return sum(len(part.first) for part in self._parts)

    @property
    def n_parts(self) -> int:
        return len(self._parts)

    def add(self, part: np.ndarray) -> None:
        """Add the keys of one part, shape ``(n, 2)``, to the set."""
        if len(part) == 0:
            return
        if not (part[1:, 0] >= part[:-1, 0]).all():
            part = sorted_hashes(part)
        # Views when the part is column-major; a row-major part is copied column by column.
        self._parts.append(
            _Part(np.ascontiguousarray(part[:, 0]), np.ascontiguousarray(part[:, 1]))
        )

    def consolidated(self) -> np.ndarray:
        """Every key of the index as one sorted part, shape ``(len(self), 2)``, column-major.

        Merging presorted runs is a stable sort over a few runs, not a full sort.
        """
        out = np.empty((len(self), 2), dtype=np.uint64, order="F")
        if not self._parts:
            return out
        first = np.concatenate([part.first for part in self._parts])
        order = np.argsort(first, kind="stable")
        out[:, 0] = first[order]
        del first
        out[:, 1] = np.concatenate([part.second for part in self._parts])[order]
        return out

    def replace_parts(self, part: np.ndarray) -> None:
        """Hold ``part`` (the same keys, e.g. :meth:`consolidated`) instead of the parts."""
        self._parts = []
        self.add(part)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean mask, shape ``(len(hashes),)``: which hash pairs are in the index."""
        needles = np.ascontiguousarray(hashes[:, 0])
        seconds = np.ascontiguousarray(hashes[:, 1])
        found = np.zeros(len(needles), dtype=bool)
        for part in self._parts:
            found |= part.contains(needles, seconds)
        return found


def hashes_bytes(hashes: np.ndarray) -> bytes:
    """``.npy`` bytes of a ``(n, 2)`` uint64 hash array, column-major."""
    buffer = io.BytesIO()
    np.save(buffer, np.asfortranarray(hashes, dtype=np.uint64), allow_pickle=False)
    return buffer.getvalue()


def hashes_from_bytes(data: bytes) -> np.ndarray:
    """The ``(n, 2)`` uint64 array of ``.npy`` bytes: a read-only view of ``data``, no copy."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    read_header = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, fortran_order, dtype = read_header(stream)
    if dtype != np.uint64 or len(shape) != 2 or shape[1] != 2:
        raise ValueError(f"not a key index part: shape {shape}, dtype {dtype}")
    flat = np.frombuffer(data, dtype=np.uint64, count=shape[0] * 2, offset=stream.tell())
    return flat.reshape(shape, order="F" if fortran_order else "C")

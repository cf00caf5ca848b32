"""Training batches streamed from Zarr feature stores, chunk by chunk, in bounded memory.

Rows are selected by key (:func:`~melflow.features.extract.clip_key`) from the clean
feature store and, optionally, from an augmented store of the same layout. An epoch
visits every selected row exactly once:

1. the chunks that hold selected rows are put in a seeded random order,
2. ``window_chunks`` consecutive chunks of that order are read whole (one Zarr slice
   each, so decompression is done once per chunk, never per row),
3. the rows of a window are shuffled and cut into batches, the first batch topped up
   with the few rows left over from the previous window.

At most a window (plus one batch) of rows is in memory, whatever the corpus size; a
background thread reads the next window while the current one is being trained on.
Normalization statistics (mean and standard deviation per frequency bin) are computed
by streaming over the train chunks, merging per-chunk moments (Chan et al.).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import zarr

from melflow.errors import MelflowError, StoreError
from melflow.features.extract import clip_key
from melflow.features.store import KEY, RowStore
from melflow.manifest import ok_rows

MIN_STD = 1e-6
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Selection:
    """Rows of one store used for one purpose, with their class indices.

    ``rows`` is sorted ascending; ``labels[i]`` is the class index of ``rows[i]``;
    ``keys[i]`` its row key (for reports).
    """

    store: RowStore
    feature: str
    rows: np.ndarray
    labels: np.ndarray
    keys: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    @cached_property
    def array(self) -> zarr.Array:
        """The feature array (opened once; Zarr arrays are safe to read from threads)."""
        group = self.store.group()
        if self.feature not in group.array_keys():
            raise StoreError(
                f"store {self.store.url} has no {self.feature!r} array; extract it first"
            )
        array = group[self.feature]
        assert isinstance(array, zarr.Array)
        return array

    @property
    def chunk_rows(self) -> int:
        return int(self.array.chunks[0])

    def chunk_ids(self) -> np.ndarray:
        """Sorted indices of the chunks that hold at least one selected row."""
        return np.unique(self.rows // self.chunk_rows)

    def read_chunk(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """Selected rows of one chunk: float32 ``(n, n_bins, n_frames)`` and labels ``(n,)``."""
        size = self.chunk_rows
        lo, hi = np.searchsorted(self.rows, [chunk * size, (chunk + 1) * size])
        block = self.array[chunk * size : (chunk + 1) * size]
        x = np.asarray(block, dtype=np.float32)[self.rows[lo:hi] - chunk * size]
        return x, self.labels[lo:hi]

    def row_shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[1:])


def class_names(manifest: pd.DataFrame) -> list[str]:
    """The label encoding: sorted class names of the usable train rows."""
    train = ok_rows(manifest)
    names = sorted(str(label) for label in train.loc[train["split"] == "train", "label"].unique())
    if len(names) < 2:
        raise MelflowError(
            f"the train split has {len(names)} class(es); a classifier needs at least 2"
        )
    return names


def _selection(
    store: RowStore,
    feature: str,
    keys: Sequence[str],
    labels: Sequence[str],
    classes: Sequence[str],
) -> Selection:
    lookup = {name: i for i, name in enumerate(classes)}
    known = [i for i, label in enumerate(labels) if label in lookup]
    keys = [keys[i] for i in known]
    found = store.rows_for(keys) if keys else pd.DataFrame({KEY: [], "row": []})
    order = np.argsort(found["row"].to_numpy(dtype=np.int64), kind="stable")
    return Selection(
        store=store,
        feature=feature,
        rows=found["row"].to_numpy(dtype=np.int64)[order],
        labels=np.array([lookup[labels[i]] for i in known], dtype=np.int64)[order],
        keys=np.asarray(keys, dtype=object)[order],
    )


def select_split(
    store: RowStore, *, manifest: pd.DataFrame, split: str, feature: str, classes: Sequence[str]
) -> Selection:
    """The clean-store rows of the usable ``split`` clips whose label is in ``classes``.

    Raises :class:`~melflow.errors.StoreError` if a clip has not been extracted.
    """
    rows = ok_rows(manifest)
    rows = rows[rows["split"] == split]
    keys = [clip_key(c, s) for c, s in zip(rows["clip_id"], rows["sha256"], strict=True)]
    return _selection(store, feature, keys, [str(v) for v in rows["label"]], classes)


def select_augmented(
    store: RowStore, *, manifest: pd.DataFrame, feature: str, classes: Sequence[str]
) -> Selection:
    """Rows of an augmented store made from clips that are in the manifest's train split.

    A variant is kept when its ``source_clip_id`` and ``sha256`` (of the source file) are
    those of a current usable train clip, so variants of clips that were removed, changed
    or moved to ``val``/``test`` never reach training.
    """
    train = ok_rows(manifest)
    train = train[train["split"] == "train"]
    index = store.index()
    if not len(index):
        return _selection(store, feature, [], [], classes)
    source = index["source_clip_id"] if "source_clip_id" in index.columns else index["clip_id"]
    wanted = set(zip(train["clip_id"], train["sha256"], strict=True))
    current = np.array([pair in wanted for pair in zip(source, index["sha256"], strict=True)])
    kept = index[(index["split"] == "train").to_numpy() & current]
    return _selection(store, feature, list(kept[KEY]), [str(v) for v in kept["label"]], classes)


def feature_stats(selection: Selection) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per frequency bin over every frame of the selected rows.

    Streams over chunks, merging per-chunk means and sums of squared deviations in
    float64 (numerically stable, exact up to rounding).

    Returns
    -------
    (np.ndarray, np.ndarray)
        ``mean`` and ``std``, each float64 of shape ``(n_bins,)``; a constant bin gets
        ``std = 1`` so normalization never divides by zero.
    """
    if not len(selection):
        raise MelflowError("cannot compute normalization statistics of an empty train split")
    count = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None
    for chunk in selection.chunk_ids():
        x, _ = selection.read_chunk(int(chunk))
        values = np.moveaxis(x.astype(np.float64), -2, 0).reshape(x.shape[-2], -1)
        n_b = values.shape[1]
        mean_b = values.mean(axis=1)
        m2_b = ((values - mean_b[:, None]) ** 2).sum(axis=1)
        if mean is None or m2 is None:
            count, mean, m2 = n_b, mean_b, m2_b
            continue
        delta = mean_b - mean
        total = count + n_b
        mean = mean + delta * n_b / total
        m2 = m2 + m2_b + delta**2 * count * n_b / total
        count = total
    assert mean is not None and m2 is not None
    std = np.sqrt(m2 / count)
    return mean, np.where(std < MIN_STD, 1.0, std)


class ChunkBatches:
    """Batches ``(x, y)`` over one or more selections, chunk-aware and seeded per epoch.

    Parameters
    ----------
    selections : sequence of Selection
        Their rows are pooled (e.g. clean train + augmented train); row shapes must match.
    batch_size : int
        Rows per batch; only the last batch of an epoch may be smaller.
    window_chunks : int
        Chunks read and shuffled together; memory is about
        ``window_chunks * chunk_rows`` rows.
    shuffle : bool
        ``False`` visits rows in store order (evaluation).
    seed : int
        Base seed; epoch ``e`` uses the generator seeded with ``(seed, e)``, so an epoch's
        order never depends on what ran before it (resume gives the same batches).
    """

    def __init__(
        self,
        selections: Sequence[Selection],
        *,
        batch_size: int,
        window_chunks: int = 4,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        self.selections = [s for s in selections if len(s)]
        shapes = {s.row_shape() for s in self.selections}
        if len(shapes) > 1:
            raise StoreError(f"selected stores hold rows of different shapes {sorted(shapes)}")
        self.batch_size = batch_size
        self.window_chunks = window_chunks
        self.shuffle = shuffle
        self.seed = seed
        self._units = [(i, int(c)) for i, s in enumerate(self.selections) for c in s.chunk_ids()]

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-self.n_rows // self.batch_size)

    @property
    def n_rows(self) -> int:
        return sum(len(s) for s in self.selections)

    def _windows(self, rng: np.random.Generator) -> Iterator[list[tuple[int, int]]]:
        units = self._units
        if self.shuffle:
            units = [units[i] for i in rng.permutation(len(units))]
        for start in range(0, len(units), self.window_chunks):
            yield units[start : start + self.window_chunks]

    def _read(self, window: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        parts = [self.selections[i].read_chunk(c) for i, c in window]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def epoch(self, epoch: int = 0) -> Generator[tuple[np.ndarray, np.ndarray], None, None]:
        """Yield ``x`` float32 ``(batch, n_bins, n_frames)`` and ``y`` int64 ``(batch,)``."""
        rng = np.random.default_rng([self.seed, epoch])
        windows = list(self._windows(rng))
        if not self.selections:
            return
        size = self.batch_size
        x_left = np.empty((0, *self.selections[0].row_shape()), np.float32)
        y_left = np.empty((0,), np.int64)
        for x, y in _prefetched(self._read, windows):
            # Batches index the window through a permutation (one copy per batch, as from
            # memory); the previous window's remainder tops up the first batch.
            order = rng.permutation(len(y)) if self.shuffle else np.arange(len(y))
            pos = 0
            if len(y_left):
                pos = size - len(y_left)
                x_left = np.concatenate([x_left, x[order[:pos]]])
                y_left = np.concatenate([y_left, y[order[:pos]]])
                if len(y_left) < size:
                    continue
                yield x_left, y_left
            end = pos + (len(y) - pos) // size * size
            for start in range(pos, end, size):
                take = order[start : start + size]
                yield x[take], y[take]
            x_left, y_left = x[order[end:]], y[order[end:]]
        if len(y_left):
            yield x_left, y_left


def _prefetched(read: Callable[[T], R], items: list[T]) -> Iterator[R]:
    """``read(item)`` for each item in order, computed one item ahead on a background thread."""
    results: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(kind: str, payload: Any) -> bool:
        while not stop.is_set():
            try:
                results.put((kind, payload), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put("ok", read(item)):
                    return
            put("end", None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put("error", exc)

    thread = threading.Thread(target=work, name="melflow-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, payload = results.get()
            if kind == "end":
                return
            if kind == "error":
                raise payload
            yield payload
    finally:
        stop.set()
        thread.join()

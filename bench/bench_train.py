"""Training throughput when batches stream from the Zarr store vs from an in-memory array.

One model trains on the same rows with the same batch size from both sources, one step
from each in turn, so both paths do the same work and load changes on the machine hit
both alike. The Zarr path reads chunk windows through
:class:`~melflow.training.dataset.ChunkBatches` (bounded memory); the baseline holds every
row in one NumPy array and shuffles it globally.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from bench.timing import REPEATS, spread
from melflow.config import ModelConfig
from melflow.features.store import KEY, RowStore
from melflow.models import build_model
from melflow.training.dataset import ChunkBatches, Selection, feature_stats


def _selection(store: RowStore, *, feature: str, n_samples: int) -> Selection:
    """The first ``n_samples`` rows (rounded up to whole chunks) with their encoded labels."""
    index = store.index()
    index = index[index[KEY] != ""]
    classes = sorted(index["label"].unique())
    chunk_rows = store.chunk_rows
    keep = index["row"] < -(-n_samples // chunk_rows) * chunk_rows
    index = index[keep].sort_values("row")
    return Selection(
        store=store,
        feature=feature,
        rows=index["row"].to_numpy(np.int64),
        labels=index["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64),
        keys=index[KEY].to_numpy(object),
    )


class _Trainer:
    def __init__(self, *, n_classes: int, n_bins: int, mean: np.ndarray, std: np.ndarray) -> None:
        torch.manual_seed(0)
        self.model = build_model(ModelConfig(), n_classes=n_classes, n_bins=n_bins)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.mean = torch.as_tensor(mean, dtype=torch.float32)[:, None]
        self.std = torch.as_tensor(std, dtype=torch.float32)[:, None]

    def step(self, x: np.ndarray, y: np.ndarray) -> None:
        inputs = ((torch.from_numpy(x) - self.mean) / self.std).unsqueeze(1)
        loss = functional.cross_entropy(self.model(inputs), torch.from_numpy(y))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def _memory_batches(
    x: np.ndarray, y: np.ndarray, *, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    order = rng.permutation(len(y))
    for start in range(0, len(y), batch_size):
        take = order[start : start + batch_size]
        yield x[take], y[take]


def bench_train(
    *,
    store_url: str,
    feature: str = "logmel",
    batch_size: int = 64,
    n_samples: int = 4096,
    epochs: int = 2,
    window_chunks: int = 32,
    num_threads: int = 2,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Samples per second of training from Zarr and from memory, and their ratio.

    Parameters
    ----------
    store_url : str
        A complete feature store (as written by extraction) with a ``label`` column.
    n_samples : int
        Rows used per epoch (the first ones, whole chunks), to bound the run time.
    epochs : int
        Epochs per path and repeat (3 repeats); steps alternate between the two paths.

    Returns
    -------
    dict
        ``zarr_samples_per_s``, ``memory_samples_per_s`` and ``zarr_over_memory``: medians
        of the repeats, with ``_min`` and ``_max``.
    """
    torch.set_num_threads(num_threads)
    store = RowStore(store_url, storage_options=storage_options)
    selection = _selection(store, feature=feature, n_samples=n_samples)
    mean, std = feature_stats(selection)
    n_classes, n_bins = int(selection.labels.max()) + 1, selection.row_shape()[0]
    chunks = [selection.read_chunk(int(c)) for c in selection.chunk_ids()]
    x_all = np.concatenate([c[0] for c in chunks])
    y_all = np.concatenate([c[1] for c in chunks])
    del chunks

    # One model trains on both sources in turn, so both paths do identical work.
    trainer = _Trainer(n_classes=n_classes, n_bins=n_bins, mean=mean, std=std)
    trainer.step(x_all[:batch_size], y_all[:batch_size])  # one-time kernel set-up
    batches = ChunkBatches([selection], batch_size=batch_size, window_chunks=window_chunks)
    rng = np.random.default_rng(0)
    rates: dict[str, list[float]] = {"zarr": [], "memory": [], "ratio": []}
    for repeat in range(REPEATS):
        seconds = {"zarr": 0.0, "memory": 0.0}
        samples = 0
        for epoch in range(repeat * epochs, (repeat + 1) * epochs):
            sources = {
                "zarr": batches.epoch(epoch),
                "memory": _memory_batches(x_all, y_all, batch_size=batch_size, rng=rng),
            }
            # Steps alternate between the sources, so load from other processes on the
            # machine hits both paths alike; each path's time includes fetching its batch.
            for _ in range(len(batches)):
                for name, source in sources.items():
                    start = time.perf_counter()
                    x, y = next(source)
                    trainer.step(x, y)
                    seconds[name] += time.perf_counter() - start
                samples += len(y)
        rates["zarr"].append(samples / seconds["zarr"])
        rates["memory"].append(samples / seconds["memory"])
        rates["ratio"].append(rates["zarr"][-1] / rates["memory"][-1])
    return {
        **spread("zarr_samples_per_s", rates["zarr"]),
        **spread("memory_samples_per_s", rates["memory"]),
        **spread("zarr_over_memory", rates["ratio"]),
    }

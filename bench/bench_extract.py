"""Extraction throughput: naive librosa loop vs melflow on 1 and 2 Dask workers, in one run.

Also the decode-only floor, cached-rerun and 10 %-incremental times, and peak RSS of the
whole process tree (client + workers) sampled every 50 ms.
"""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import pandas as pd
import psutil
import soundfile as sf

from melflow.config import FeaturesConfig, PipelineConfig, load_config
from melflow.features.extract import extract_features
from melflow.features.spectral import compute_features
from melflow.ingest import ingest_corpus, load_manifest
from melflow.manifest import manifest_digest, ok_rows
from melflow.parallel import dask_client


@contextmanager
def peak_rss_mb() -> Iterator[list[float]]:
    """Yield a one-item list that holds the peak RSS (MB) of this process and its children."""
    peak = [0.0]
    stop = threading.Event()
    me = psutil.Process()

    def sample() -> None:
        while not stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            peak[0] = max(peak[0], total / 2**20)
            stop.wait(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn`` takes, after a full garbage collection.

    Earlier benchmarks leave garbage behind; a gen-2 collection landing inside a
    sub-second timing would add ~0.1 s that belongs to them.
    """
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def per_second(n: int, fn: Callable[[], Any]) -> float:
    return n / timed(fn)


def naive_loop(paths: list[str], cfg: PipelineConfig) -> None:
    f = cfg.features
    for path in paths:
        y, sr = librosa.load(path, sr=cfg.audio.sr)
        S = librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels
        )
        librosa.power_to_db(S)


def decode_floor(paths: list[str]) -> None:
    for path in paths:
        sf.read(path, dtype="float32")


def warm_worker() -> None:
    """Import and JIT everything a batch needs, so timings measure steady throughput."""
    compute_features(np.zeros((2, 4096), dtype=np.float32), sr=22050, cfg=FeaturesConfig())


def timed_extract(manifest: pd.DataFrame, cfg: PipelineConfig, workers: int) -> dict[str, float]:
    """Cold extraction on a warm cluster of ``workers`` processes; returns clips/s and peak RSS."""
    digest = manifest_digest(manifest)  # as the pipeline gets it from ingest
    shutil.rmtree(cfg.paths.data_dir, ignore_errors=True)
    with dask_client(cfg.dask.model_copy(update={"n_workers": workers})) as client:
        client.run(warm_worker)
        with peak_rss_mb() as peak:
            rate = per_second(
                len(manifest),
                lambda: extract_features(manifest=manifest, cfg=cfg, client=client, digest=digest),
            )
    return {"clips_per_s": rate, "peak_rss_mb": peak[0]}


def cache_fractions(
    manifest: pd.DataFrame, grown: pd.DataFrame, cfg: PipelineConfig
) -> dict[str, float]:
    """Cold, cached-rerun and +10 % incremental extraction times on 2 warm workers.

    The incremental run brings the store of ``manifest`` up to date with ``grown``
    (``manifest`` plus 10 % new clips); it is compared with extracting ``grown`` from
    scratch, the work it saves.
    """

    def extract(m: pd.DataFrame) -> float:
        digest = manifest_digest(m)  # as the pipeline gets it from ingest
        return timed(lambda: extract_features(manifest=m, cfg=cfg, client=client, digest=digest))

    with dask_client(cfg.dask.model_copy(update={"n_workers": 2})) as client:
        client.run(warm_worker)
        shutil.rmtree(cfg.paths.data_dir, ignore_errors=True)
        full = extract(grown)
        shutil.rmtree(cfg.paths.data_dir, ignore_errors=True)
        cold, cached, incremental = extract(manifest), extract(manifest), extract(grown)
    return {
        "cold_s": cold,
        "cached_rerun_s": cached,
        "cached_rerun_fraction": cached / cold,
        "full_grown_s": full,
        "incremental_10pct_s": incremental,
        "incremental_10pct_fraction": incremental / full,
    }


def bench_extract(
    *, manifest: pd.DataFrame, cfg: PipelineConfig, naive_clips: int = 2000
) -> dict[str, float]:
    """The ``extract`` section of the results JSON (same corpus, same run)."""
    sample = list(manifest["path"][:naive_clips])
    naive_loop(sample[:20], cfg)  # librosa's first call compiles and caches; time steady state
    naive = per_second(len(sample), lambda: naive_loop(sample, cfg))
    floor = per_second(len(sample), lambda: decode_floor(sample))
    one = timed_extract(manifest, cfg, 1)
    two = timed_extract(manifest, cfg, 2)
    return {
        "naive_clips_per_s": naive,
        "melflow_1w_clips_per_s": one["clips_per_s"],
        "melflow_2w_clips_per_s": two["clips_per_s"],
        "io_floor_clips_per_s": floor,
        "ratio_vs_naive_2w": two["clips_per_s"] / naive,
        "scaling_2w_over_1w": two["clips_per_s"] / one["clips_per_s"],
        "peak_rss_mb": two["peak_rss_mb"],
    }


def bench_memory(*, profile_overrides: list[str]) -> float:
    """Peak RSS (MB) of a cold 2-worker extraction, in a fresh process.

    A fresh interpreter keeps the heap that generating and ingesting the corpus left behind
    out of the figure, so only what extraction itself holds is measured.
    """
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_extract", *profile_overrides],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def _memory_main(overrides: list[str]) -> None:
    cfg = load_config("default", overrides=overrides)
    manifest = ok_rows(load_manifest(ingest_corpus(cfg=cfg)))
    print(json.dumps(timed_extract(manifest, cfg, 2)))


if __name__ == "__main__":
    _memory_main(sys.argv[1:])

"""Extraction throughput: naive librosa loop vs melflow on 1 and 2 Dask workers, in one run.

Also the decode-only floor, cached-rerun and 10 %-incremental times, and peak RSS of the
whole process tree (client + workers) sampled every 50 ms.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import psutil
import soundfile as sf

from bench.timing import Timing, spread, timed
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
    """Cold extractions on a warm cluster of ``workers`` processes: clips/s and peak RSS."""
    digest = manifest_digest(manifest)  # as the pipeline gets it from ingest
    with dask_client(cfg.dask.model_copy(update={"n_workers": workers})) as client:
        client.run(warm_worker)
        with peak_rss_mb() as peak:
            timing = timed(
                lambda: extract_features(manifest=manifest, cfg=cfg, client=client, digest=digest),
                setup=lambda: shutil.rmtree(cfg.paths.data_dir, ignore_errors=True),
            )
    return {
        **timing.figures("clips_per_s", value=lambda s: len(manifest) / s),
        "peak_rss_mb": peak[0],
    }


def cache_fractions(
    manifest: pd.DataFrame, grown: pd.DataFrame, cfg: PipelineConfig
) -> dict[str, float]:
    """Cold, cached-rerun and +10 % incremental extraction times on 2 warm workers.

    The incremental run brings the store of ``manifest`` up to date with ``grown``
    (``manifest`` plus 10 % new clips); it is compared with extracting ``grown`` from
    scratch, the work it saves. Each repeat is one cold -> cached -> incremental sequence
    and one from-scratch run; fractions are taken within a repeat.
    """

    def extract(m: pd.DataFrame) -> Timing:
        digest = manifest_digest(m)  # as the pipeline gets it from ingest
        return timed(
            lambda: extract_features(manifest=m, cfg=cfg, client=client, digest=digest), repeats=1
        )

    def fresh() -> None:
        shutil.rmtree(cfg.paths.data_dir, ignore_errors=True)

    runs: dict[str, list[float]] = {"full": [], "cold": [], "cached": [], "incremental": []}
    with dask_client(cfg.dask.model_copy(update={"n_workers": 2})) as client:
        client.run(warm_worker)
        for _ in range(3):
            fresh()
            runs["full"].append(extract(grown).median)
            fresh()
            for name, m in (("cold", manifest), ("cached", manifest), ("incremental", grown)):
                runs[name].append(extract(m).median)
    fractions = {
        "cached_rerun_fraction": [c / w for c, w in zip(runs["cached"], runs["cold"], strict=True)],
        "incremental_10pct_fraction": [
            i / f for i, f in zip(runs["incremental"], runs["full"], strict=True)
        ],
    }
    keys = {"cold": "cold_s", "cached": "cached_rerun_s", "full": "full_grown_s"}
    keys["incremental"] = "incremental_10pct_s"
    out: dict[str, float] = {}
    for name, key in keys.items():
        out.update(spread(key, runs[name]))
    for key, values in fractions.items():
        out.update(spread(key, values))
    return out


def bench_extract(
    *, manifest: pd.DataFrame, cfg: PipelineConfig, naive_clips: int = 2000
) -> dict[str, float]:
    """The ``extract`` section of the results JSON (same corpus, same run), medians of 3."""
    sample = list(manifest["path"][:naive_clips])
    naive_loop(sample[:20], cfg)  # librosa's first call compiles and caches; time steady state
    naive = timed(lambda: naive_loop(sample, cfg)).figures(
        "naive_clips_per_s", value=lambda s: len(sample) / s
    )
    floor = timed(lambda: decode_floor(sample)).figures(
        "io_floor_clips_per_s", value=lambda s: len(sample) / s
    )
    one = timed_extract(manifest, cfg, 1)
    two = timed_extract(manifest, cfg, 2)
    return {
        **naive,
        **{k.replace("clips", "melflow_1w_clips"): v for k, v in one.items() if "clips" in k},
        **{k.replace("clips", "melflow_2w_clips"): v for k, v in two.items() if "clips" in k},
        **floor,
        "ratio_vs_naive_2w": two["clips_per_s"] / naive["naive_clips_per_s"],
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

"""Augmentation throughput: a naive librosa loop vs melflow's augment stage, same clips and ops.

Both make ``variants_per_clip`` variants of every clip with the same ops (time stretch,
pitch shift, white noise at an SNR; gain and shift off) and a log-mel spectrogram of
each; both are warmed up first (imports, numba JIT) so the figures are steady-state.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import librosa
import numpy as np
import pandas as pd

from bench.timing import timed
from melflow.audio.io import probe
from melflow.augment.offline import augment_features
from melflow.config import PipelineConfig, load_config
from melflow.digest import digest_file
from melflow.ingest.sources import audio_extensions, walk_local_audio
from melflow.manifest import OK, normalize
from melflow.parallel import dask_client

VARIANTS_PER_CLIP = 2
WARMUP_CLIPS = 8


def bench_config(*, corpus_dir: str, data_dir: str, workers: int) -> PipelineConfig:
    """The default profile on ``corpus_dir`` with stretch, pitch and noise on every variant."""
    return load_config(
        "default",
        overrides=[
            "name=bench-augment",
            f"paths.data_dir={data_dir}",
            f"corpus.root={corpus_dir}",
            f"dask.n_workers={workers}",
            f"augment.variants_per_clip={VARIANTS_PER_CLIP}",
            "augment.time_stretch.p=1",
            "augment.pitch_shift.p=1",
            "augment.noise.p=1",
            "augment.noise.kind=white",
            "augment.gain.p=0",
            "augment.shift.p=0",
        ],
    )


def naive_loop(paths: list[str], cfg: PipelineConfig) -> None:
    """Per file: load, then per variant librosa stretch + pitch shift + noise + log-mel."""
    aug, f = cfg.augment, cfg.features
    n = round(cfg.audio.sr * cfg.audio.duration_s)
    rng = np.random.default_rng(0)
    for path in paths:
        y, sr = librosa.load(path, sr=cfg.audio.sr)
        y = librosa.util.fix_length(y, size=n)
        for _ in range(aug.variants_per_clip):
            rate = rng.uniform(aug.time_stretch.low, aug.time_stretch.high)
            v = librosa.effects.time_stretch(y, rate=rate)
            steps = rng.uniform(aug.pitch_shift.low, aug.pitch_shift.high)
            v = librosa.util.fix_length(
                librosa.effects.pitch_shift(v, sr=sr, n_steps=steps), size=n
            )
            noise = rng.standard_normal(n)
            snr_db = rng.uniform(aug.noise.low, aug.noise.high)
            v = v + noise * np.sqrt(np.mean(v**2) / (np.mean(noise**2) * 10 ** (snr_db / 10)))
            S = librosa.feature.melspectrogram(
                y=v, sr=sr, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels
            )
            librosa.power_to_db(S)


def train_manifest(cfg: PipelineConfig, n_clips: int) -> pd.DataFrame:
    """``n_clips`` clips spread evenly over the corpus (all classes), all in the train split.

    Built directly rather than by ingest, which would probe every file of a large corpus.
    """
    root = cfg.corpus.root
    found = list(walk_local_audio(root, audio_extensions(cfg.corpus)))
    chosen = found[:: max(1, len(found) // n_clips)][:n_clips]
    rows = []
    for rel in chosen:
        path = str(Path(root, rel))
        info = probe(path)
        rows.append(
            {
                "clip_id": rel,
                "path": path,
                "label": Path(rel).parent.name,
                "split": "train",
                "fold": -1,
                "group": rel,
                "sha256": digest_file(path),
                "duration_s": info.duration_s,
                "sr": info.sr,
                "channels": info.channels,
                "status": OK,
                "detail": "",
            }
        )
    return normalize(pd.DataFrame(rows))


def bench_augment(*, corpus_dir: str, n_clips: int, workers: int) -> dict[str, float]:
    """The ``augment`` section of the results JSON: variants/s of both paths and their ratio."""
    with tempfile.TemporaryDirectory(prefix="melflow-bench-augment-") as tmp:
        cfg = bench_config(corpus_dir=corpus_dir, data_dir=str(Path(tmp, "data")), workers=workers)
        manifest = train_manifest(cfg, n_clips)
        paths = list(manifest["path"])
        naive_loop(paths[:WARMUP_CLIPS], cfg)
        variants = len(paths) * VARIANTS_PER_CLIP
        naive = timed(lambda: naive_loop(paths, cfg)).figures(
            "naive_variants_per_s", value=lambda s: variants / s
        )

        warm_cfg = bench_config(
            corpus_dir=corpus_dir, data_dir=str(Path(tmp, "warm")), workers=workers
        )
        # Small batches, so that every worker gets some of the warm-up.
        warm_cfg = warm_cfg.model_copy(
            update={"features": warm_cfg.features.model_copy(update={"batch_size": 4})}
        )
        with dask_client(cfg.dask) as client:
            # Every worker imports melflow and JIT-compiles librosa's kernels before timing.
            augment_features(
                manifest=manifest.head(WARMUP_CLIPS * workers), cfg=warm_cfg, client=client
            )
            rows = [0]

            def run() -> None:
                rows[0] = augment_features(manifest=manifest, cfg=cfg, client=client).rows

            key = f"melflow_{workers}w_variants_per_s"
            # Untimed, before each repeat: a second run into the same store is a cache hit.
            fresh = lambda: shutil.rmtree(cfg.paths.data_dir, ignore_errors=True)  # noqa: E731
            melflow = timed(run, setup=fresh).figures(key, value=lambda s: variants / s)
        assert rows[0] == variants
    return {
        **naive,
        **melflow,
        f"ratio_vs_naive_{workers}w": melflow[key] / naive["naive_variants_per_s"],
    }

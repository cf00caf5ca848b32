"""Extraction of real formats: the naive librosa loop vs melflow on 2 Dask workers, in one run.

The bench corpus is re-encoded as 4 s, 44.1 kHz, 24-bit stereo WAV and as FLAC (each
1 s clip resampled, tiled to 4 s, with a delayed, quieter right channel), so decoding,
downmixing and resampling all do real work. Clips are kept at their full 4 s
(``audio.duration_s=4``), the length the naive loop featurizes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from bench.bench_extract import naive_loop, warm_worker
from bench.timing import spread, timed
from melflow.config import PipelineConfig, load_config
from melflow.features.extract import extract_features
from melflow.ingest import ingest_corpus, load_manifest
from melflow.manifest import manifest_digest, ok_rows
from melflow.parallel import dask_client

SOURCE_SR = 44100
CLIP_S = 4.0
RIGHT_DELAY_S = 0.01
# name -> (libsndfile container, subtype, file extension)
FORMATS: dict[str, tuple[str, str, str]] = {
    "wav": ("WAV", "PCM_24", ".wav"),
    "flac": ("FLAC", "PCM_24", ".flac"),
}


def encode_corpus(sources: pd.DataFrame, *, root: Path, fmt: str) -> None:
    """Write each source clip as a 4 s, 44.1 kHz stereo file ``root/<label>/<stem><ext>``.

    Files already there are kept, so a rerun encodes only what is missing; files of other
    sources are removed, so the corpus holds exactly ``sources``.
    """
    container, subtype, ext = FORMATS[fmt]
    n_samples = round(SOURCE_SR * CLIP_S)
    delay = round(SOURCE_SR * RIGHT_DELAY_S)
    wanted = {
        root / label / f"{Path(path).stem}{ext}": path
        for path, label in zip(sources["path"], sources["label"], strict=True)
    }
    for stale in set(root.rglob(f"*{ext}")) - set(wanted):
        stale.unlink()
    for out, path in wanted.items():
        if out.exists():
            continue
        y, sr = sf.read(path, dtype="float32")
        left = np.resize(soxr.resample(y, sr, SOURCE_SR, quality="HQ"), n_samples)
        stereo = np.stack([left, 0.7 * np.roll(left, delay)], axis=1)
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, stereo, SOURCE_SR, subtype=subtype, format=container)


def formats_config(work: Path, fmt: str, n_clips: int) -> PipelineConfig:
    """The default profile over the ``fmt`` corpus of ``n_clips``, keeping whole 4 s clips."""
    name = f"formats-{fmt}-{n_clips}"
    return load_config(
        "default",
        overrides=[
            f"name=bench-{name}",
            f"paths.data_dir={work / f'{name}-data'}",
            f"corpus.root={work / name}",
            f"audio.duration_s={CLIP_S}",
        ],
    )


def compare(manifest: pd.DataFrame, cfg: PipelineConfig, *, naive_clips: int) -> dict[str, float]:
    """Naive loop and cold 2-worker extraction, alternating, 3 repeats; ratio per repeat.

    The naive loop times the first ``naive_clips`` clips, melflow the whole manifest; both
    are clips per second, so the ratio compares rates measured side by side.
    """
    sample = list(manifest["path"][:naive_clips])
    naive_loop(sample[:10], cfg)  # librosa's first calls compile and cache; time steady state
    digest = manifest_digest(manifest)
    store_dir = cfg.paths.data_dir + "-store"
    cfg = cfg.model_copy(update={"paths": cfg.paths.model_copy(update={"data_dir": store_dir})})
    naive, melflow = [], []
    with dask_client(cfg.dask.model_copy(update={"n_workers": 2})) as client:
        client.run(warm_worker)
        for _ in range(3):
            naive.append(len(sample) / timed(lambda: naive_loop(sample, cfg), repeats=1).median)
            seconds = timed(
                lambda: extract_features(manifest=manifest, cfg=cfg, client=client, digest=digest),
                setup=lambda: shutil.rmtree(store_dir, ignore_errors=True),
                repeats=1,
            ).median
            melflow.append(len(manifest) / seconds)
    ratios = [m / n for m, n in zip(melflow, naive, strict=True)]
    return {
        **spread("naive_clips_per_s", naive),
        **spread("melflow_2w_clips_per_s", melflow),
        **spread("ratio_vs_naive_2w", ratios),
    }


def bench_extract_formats(
    *, sources: pd.DataFrame, work: Path, n_clips: int, naive_clips: int
) -> dict[str, float]:
    """The ``extract_formats`` section: WAV figures unprefixed, FLAC ones prefixed ``flac_``."""
    out: dict[str, float] = {"clips": n_clips}
    step = max(len(sources) // n_clips, 1)  # spread over the classes (FLAC sizes differ)
    picked = sources.iloc[::step].iloc[:n_clips]
    for fmt in FORMATS:
        cfg = formats_config(work, fmt, n_clips)
        encode_corpus(picked, root=Path(cfg.corpus.root), fmt=fmt)
        manifest = ok_rows(load_manifest(ingest_corpus(cfg=cfg)))
        if len(manifest) != n_clips:
            raise RuntimeError(f"{fmt} corpus: {len(manifest)} usable clips, expected {n_clips}")
        prefix = "" if fmt == "wav" else f"{fmt}_"
        out.update(
            {f"{prefix}{k}": v for k, v in compare(manifest, cfg, naive_clips=naive_clips).items()}
        )
    return out

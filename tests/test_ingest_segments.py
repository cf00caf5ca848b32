"""Long recordings: ingest cuts them into windows grouped by file; extraction reads each window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import small_config, tone

from melflow.audio.io import load_clip
from melflow.config import PipelineConfig, SegmentConfig
from melflow.errors import ConfigError
from melflow.features.extract import clip_key, extract_features
from melflow.features.spectral import compute_features
from melflow.features.store import RowStore
from melflow.ingest import ingest_corpus, load_manifest
from melflow.ingest.segments import window_starts_ms

SR = 16000
TONES_HZ = (440.0, 880.0, 1760.0)  # 4 s each, in sequence


def write_long(path: Path, *, amplitude: float = 0.5) -> None:
    """Three tones in sequence: 0-4 s 440 Hz, 4-8 s 880 Hz, 8-12 s 1760 Hz."""
    y = np.concatenate([tone(f, sr=SR, duration_s=4.0, amplitude=amplitude) for f in TONES_HZ])
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, SR, subtype="PCM_16")


def long_corpus(tmp_path: Path, *overrides: str) -> PipelineConfig:
    """Two 12 s recordings and 8 one-second clips per class; windows of 2 s every 1 s."""
    cfg = small_config(
        tmp_path,
        "audio.max_duration_s=5",
        "corpus.demo=null",
        "corpus.test_fraction=0.3",
        "corpus.val_fraction=0.2",
        *overrides,
    )
    root = Path(cfg.corpus.root)
    write_long(root / "tones" / "long_a.wav")
    write_long(root / "tones" / "long_b.wav", amplitude=0.3)
    for label, freq in (("low", 300.0), ("high", 3000.0)):
        for i in range(8):
            (root / label).mkdir(parents=True, exist_ok=True)
            sf.write(root / label / f"{i}.wav", tone(freq + i, sr=SR, duration_s=1.0), SR)
    return cfg


def test_window_starts_cover_the_file_and_pad_a_long_enough_tail() -> None:
    overlapping = SegmentConfig(window_s=4, hop_s=2)
    assert window_starts_ms(10.0, segment=overlapping) == [0, 2000, 4000, 6000]  # 6-10 ends it
    # 0-4, 4-8, then 8-12 holds 2 s of audio: half a window, kept and padded.
    assert window_starts_ms(10.0, segment=SegmentConfig(window_s=4)) == [0, 4000, 8000]
    assert window_starts_ms(9.9, segment=SegmentConfig(window_s=4)) == [0, 4000]
    assert window_starts_ms(1.5, segment=SegmentConfig(window_s=4)) == [0]


def test_window_longer_than_max_duration_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"audio.segment.window_s=8 must not exceed"):
        small_config(tmp_path, "audio.max_duration_s=5", "audio.segment={window_s: 8}")


def test_long_files_quarantined_without_segment_and_windowed_with_it(tmp_path: Path) -> None:
    plain = load_manifest(ingest_corpus(cfg=long_corpus(tmp_path)))
    long_rows = plain[plain["clip_id"].str.startswith("tones/")]
    assert list(long_rows["status"]) == ["too_long", "too_long"]

    cfg = long_corpus(tmp_path, "audio.segment={window_s: 2, hop_s: 1.5}")
    manifest = load_manifest(ingest_corpus(cfg=cfg))
    windows = manifest[manifest["clip_id"].str.startswith("tones/long_a.wav#")]
    # 12 s, 2 s windows every 1.5 s: starts 0..9 s, and 10.5 s (1.5 s of audio, padded).
    starts_ms = [0, 1500, 3000, 4500, 6000, 7500, 9000, 10500]
    assert list(windows["offset_s"]) == [s / 1000 for s in sorted(starts_ms, key=str)]
    assert set(windows["clip_id"]) == {f"tones/long_a.wav#{s}-{s + 2000}" for s in starts_ms}
    assert windows.set_index("offset_s")["duration_s"].to_dict() == {
        s / 1000: 1.5 if s == 10500 else 2.0 for s in starts_ms
    }
    assert (windows["status"] == "ok").all() and windows["sha256"].nunique() == 1
    assert set(windows["group"]) == {"tones/long_a.wav"}
    assert len(manifest) == 2 * len(starts_ms) + 16
    # Every group, windowed or not, sits in exactly one split.
    assert manifest.groupby("group")["split"].nunique().max() == 1
    short = manifest[~manifest["clip_id"].str.startswith("tones/")]
    assert short["offset_s"].isna().all() and (short["status"] == "ok").all()


def test_extraction_reads_each_window_by_offset(tmp_path: Path, dask_client_inproc: object) -> None:
    cfg = long_corpus(tmp_path, "audio.segment={window_s: 4, hop_s: 2}", "audio.duration_s=4")
    manifest = load_manifest(ingest_corpus(cfg=cfg))
    windows = manifest[manifest["clip_id"].str.startswith("tones/long_a.wav#")]
    assert list(windows["offset_s"]) == [0.0, 2.0, 4.0, 6.0, 8.0]
    result = extract_features(manifest=manifest, cfg=cfg, client=dask_client_inproc)
    store = RowStore(result.store_url)
    rows = store.rows_for([clip_key(r.clip_id, r.sha256) for r in windows.itertuples()])
    logmel = store.group()["logmel"]
    peaks = {}
    for r, row in zip(windows.itertuples(), rows["row"], strict=True):
        y = load_clip(r.path, sr=SR, duration_s=4.0, span=(r.offset_s, r.duration_s))
        expected = compute_features(y[None], sr=SR, cfg=cfg.features)["logmel"][0]
        np.testing.assert_allclose(logmel[int(row)], expected, atol=1e-4)
        peaks[r.offset_s] = int(np.argmax(logmel[int(row)].mean(axis=1)))
    # The windows that hold one tone each: 440 Hz < 880 Hz < 1760 Hz in mel bins.
    assert peaks[0.0] < peaks[4.0] < peaks[8.0]

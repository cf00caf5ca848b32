"""Every supported layout decodes to what librosa gives (soxr HQ), within 1e-4."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from melflow.audio.io import fix_length, load_clip, load_clips

SR = 22050
LAYOUTS = [
    # (name, container, subtype, source rate in Hz, channels)
    ("pcm16_mono_22k", "WAV", "PCM_16", 22050, 1),
    ("pcm16_stereo_44k", "WAV", "PCM_16", 44100, 2),
    ("pcm24_stereo_44k", "WAV", "PCM_24", 44100, 2),
    ("pcm24_6ch_48k", "WAV", "PCM_24", 48000, 6),
    ("pcm32_stereo_48k", "WAV", "PCM_32", 48000, 2),
    ("float_stereo_48k", "WAV", "FLOAT", 48000, 2),
    ("double_mono_44k", "WAV", "DOUBLE", 44100, 1),
    ("wavex_pcm24_4ch_44k", "WAVEX", "PCM_24", 44100, 4),
    ("flac16_mono_48k", "FLAC", "PCM_16", 48000, 1),
    ("flac24_stereo_44k", "FLAC", "PCM_24", 44100, 2),
    ("pcm8_stereo_44k", "WAV", "PCM_U8", 44100, 2),  # libsndfile's path
]


def signal(rng: np.random.Generator, *, sr: int, channels: int, duration_s: float) -> np.ndarray:
    """Different tones per channel plus noise: shape ``(n_samples, channels)``, peak < 1."""
    t = np.arange(round(sr * duration_s)) / sr
    tones = [0.4 * np.sin(2 * np.pi * (300 + 250 * c) * t) for c in range(channels)]
    noise = rng.uniform(-0.2, 0.2, (t.size, channels))
    return (np.stack(tones, axis=1) + noise).astype(np.float32)


def write(tmp_path: Path, rng: np.random.Generator, layout: tuple[str, str, str, int, int]) -> str:
    name, container, subtype, sr, channels = layout
    path = tmp_path / f"{name}.{'flac' if container == 'FLAC' else 'wav'}"
    y = signal(rng, sr=sr, channels=channels, duration_s=1.3)
    sf.write(path, y, sr, subtype=subtype, format=container)
    return str(path)


def librosa_clip(path: str, *, n_samples: int, crop: str = "start", **window: float) -> np.ndarray:
    y, _ = librosa.load(path, sr=SR, mono=True, res_type="soxr_hq", **window)  # type: ignore[arg-type]
    return fix_length(y, n_samples=n_samples, crop=crop)  # type: ignore[arg-type]


@pytest.mark.parametrize("layout", LAYOUTS, ids=[layout[0] for layout in LAYOUTS])
@pytest.mark.parametrize("crop", ["start", "center"])
def test_load_clips_matches_librosa_for_each_layout(
    tmp_path: Path, rng: np.random.Generator, layout: tuple[str, str, str, int, int], crop: str
) -> None:
    path = write(tmp_path, rng, layout)
    for duration_s in (1.0, 2.0):  # cropped, padded
        n = round(SR * duration_s)
        got = load_clips([path], sr=SR, duration_s=duration_s, crop=crop)  # type: ignore[arg-type]
        expected = librosa_clip(path, n_samples=n, crop=crop)
        assert got.shape == (1, n)
        assert np.abs(expected).max() > 0.3  # the comparison is on real signal
        np.testing.assert_allclose(got[0], expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("layout", [LAYOUTS[2], LAYOUTS[5], LAYOUTS[9]], ids=lambda x: x[0])
def test_windows_match_librosa_offset_and_duration(
    tmp_path: Path, rng: np.random.Generator, layout: tuple[str, str, str, int, int]
) -> None:
    path = write(tmp_path, rng, layout)
    spans = [(0.0, 0.5), (0.5, 0.5), (1.0, 0.5)]  # the last runs past the end: padded
    got = load_clips([path] * 3, sr=SR, duration_s=0.5, spans=spans)
    for row, (offset, duration) in zip(got, spans, strict=True):
        expected = librosa_clip(path, n_samples=row.size, offset=offset, duration=duration)
        np.testing.assert_allclose(row, expected, rtol=0, atol=1e-4)
    assert np.abs(got[2, round(0.3 * SR) + 50 :]).max() == 0  # beyond the 1.3 s file
    np.testing.assert_array_equal(load_clip(path, sr=SR, duration_s=0.5, span=spans[1]), got[1])

"""Decoding and shaping audio: pad/crop, downmix, resampling, and every read failure reason."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone

from melflow.audio.io import (
    MAX_CHANNELS,
    PROBE_BLOCK_FRAMES,
    REASONS,
    decode_audio,
    fix_length,
    load_clip,
    probe,
    probe_bytes,
    read_audio,
    resample,
    to_mono,
)
from melflow.errors import AudioError, ParameterError


def wav_bytes(y: np.ndarray, sr: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, sr, subtype=subtype, format="WAV")
    return buffer.getvalue()


def test_fix_length_pads_crops_start_and_center() -> None:
    y = np.arange(10, dtype=np.float32)
    padded = fix_length(y, n_samples=13)
    assert padded.shape == (13,)
    np.testing.assert_array_equal(padded[:10], y)
    np.testing.assert_array_equal(padded[10:], 0)
    np.testing.assert_array_equal(fix_length(y, n_samples=4), [0, 1, 2, 3])
    np.testing.assert_array_equal(fix_length(y, n_samples=4, crop="center"), [3, 4, 5, 6])
    batch = np.ones((2, 5), dtype=np.float32)
    assert fix_length(batch, n_samples=7).shape == (2, 7)
    assert fix_length(batch, n_samples=7)[:, 5:].sum() == 0
    with pytest.raises(ParameterError):
        fix_length(y, n_samples=0)


def test_to_mono_averages_channels() -> None:
    stereo = np.stack([np.full(4, 1.0), np.full(4, -0.5)], axis=1).astype(np.float32)
    mono = to_mono(stereo)
    assert mono.shape == (4,) and mono.dtype == np.float32
    np.testing.assert_allclose(mono, 0.25)
    already = np.array([0.1, 0.2], dtype=np.float64)
    assert to_mono(already).dtype == np.float32


def test_resample_keeps_a_tone_at_its_frequency() -> None:
    y = tone(1000.0, sr=16000, duration_s=1.0)
    out = resample(y, orig_sr=16000, target_sr=8000)
    assert out.shape == (8000,) and out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    peak_hz = np.argmax(spectrum) * 8000 / out.size
    assert abs(peak_hz - 1000.0) <= 1.0
    assert np.max(np.abs(out[100:-100])) == pytest.approx(0.5, abs=0.01)
    assert resample(y, orig_sr=16000, target_sr=16000) is y


def test_load_clip_downmixes_resamples_and_fixes_length(tmp_path: Path) -> None:
    left = tone(440.0, sr=44100, duration_s=0.3)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, left], axis=1), 44100)
    y = load_clip(str(path), sr=16000, duration_s=0.5)
    assert y.shape == (8000,) and y.dtype == np.float32
    assert np.max(np.abs(y[:4000])) == pytest.approx(0.5, abs=0.01)
    np.testing.assert_array_equal(y[4900:], 0)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_probe_reads_each_supported_format(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, tone(440.0, sr=16000, duration_s=0.5), 16000, format=fmt)
    info = probe(str(path))
    assert (info.sr, info.channels) == (16000, 1)
    assert info.duration_s == pytest.approx(0.5, abs=0.01)
    assert info.peak_db == pytest.approx(20 * np.log10(0.5), abs=1.0)  # lossy codecs overshoot


GOOD = wav_bytes(tone(440.0, sr=16000, duration_s=0.5), 16000)


def _nan_wav() -> bytes:
    y = tone(440.0, sr=16000, duration_s=0.1)
    y[7] = np.nan
    return wav_bytes(y, 16000, subtype="FLOAT")


BAD_BYTES: dict[str, Callable[[], bytes]] = {
    "empty_file": lambda: b"",
    "not_audio": lambda: b"just some text, not a RIFF header\n" * 20,
    "corrupt": lambda: GOOD[: 44 + 2000],  # data chunk declares 8000 frames, 1000 present
    "no_samples": lambda: wav_bytes(np.zeros(0, dtype=np.float32), 16000),
    "non_finite": _nan_wav,
    "bad_sample_rate": lambda: wav_bytes(np.full(300, 0.5, dtype=np.float32), 500),
    "too_many_channels": lambda: wav_bytes(
        np.full((100, MAX_CHANNELS + 4), 0.5, dtype=np.float32), 16000
    ),
}


@pytest.mark.parametrize("reason", sorted(BAD_BYTES))
def test_decode_failures_carry_their_reason(reason: str) -> None:
    with pytest.raises(AudioError) as info:
        decode_audio(BAD_BYTES[reason](), name="clip.wav")
    assert info.value.reason == reason
    assert reason in REASONS
    assert "BytesIO" not in info.value.detail


@pytest.mark.parametrize("reason", sorted(BAD_BYTES))
def test_probe_fails_with_the_same_reasons(reason: str) -> None:
    with pytest.raises(AudioError) as info:
        probe_bytes(BAD_BYTES[reason](), name="clip.wav")
    assert info.value.reason == reason


def test_probe_reads_block_by_block_and_sees_every_block(rng: np.random.Generator) -> None:
    n = 3 * PROBE_BLOCK_FRAMES + 123
    y = (rng.uniform(-0.25, 0.25, (n, 2))).astype(np.float32)
    y[n - 5, 1] = -0.75  # the peak, in the last block
    info = probe_bytes(wav_bytes(y, 16000, subtype="FLOAT"), name="long.wav")
    assert (info.sr, info.channels, info.frames) == (16000, 2, n)
    assert info.peak_db == pytest.approx(20 * np.log10(0.75), abs=1e-5)
    y[n - 1, 0] = np.inf
    y[2, 1] = np.nan
    with pytest.raises(AudioError, match="2 NaN/inf samples") as bad:
        probe_bytes(wav_bytes(y, 16000, subtype="FLOAT"), name="long.wav")
    assert bad.value.reason == "non_finite"


def test_malformed_header_of_a_known_format_is_corrupt() -> None:
    with pytest.raises(AudioError) as info:
        decode_audio(GOOD[:20], name="clip.wav")
    assert info.value.reason == "corrupt"


def test_read_audio_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as missing:
        read_audio(str(tmp_path / "absent.wav"))
    assert missing.value.reason == "missing"
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    with pytest.raises(AudioError) as unreadable:
        read_audio(str(folder))
    assert unreadable.value.reason == "unreadable"


def test_read_audio_returns_samples_by_channel(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    y = np.stack([tone(440.0, sr=8000, duration_s=0.25)] * 2, axis=1)
    sf.write(path, y, 8000, subtype="FLOAT")
    samples, sr = read_audio(str(path))
    assert sr == 8000 and samples.shape == (2000, 2) and samples.dtype == np.float32
    np.testing.assert_allclose(samples, y, atol=1e-7)

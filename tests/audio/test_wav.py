"""RIFF/WAVE parsing and the batch decoder: the numpy WAV decoder equals libsndfile."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone

from melflow.audio.io import fix_length, load_clips, resample, to_mono
from melflow.audio.wav import chunks, data_truncated, layout, mono
from melflow.errors import AudioError

SR = 16000


def encoded(y: np.ndarray, sr: int = SR, *, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, sr, subtype=subtype, format=fmt)
    return buffer.getvalue()


def with_chunk_before_data(data: bytes, chunk: bytes, payload: bytes) -> bytes:
    """Insert a chunk (odd sizes get their pad byte) in front of the ``data`` chunk."""
    start = next(offset for cid, offset, _ in chunks(data) if cid == b"data") - 8
    extra = chunk + len(payload).to_bytes(4, "little") + payload + b"\0" * (len(payload) & 1)
    body = data[start:]
    riff_size = (4 + (start - 12) + len(extra) + len(body)).to_bytes(4, "little")
    return b"RIFF" + riff_size + data[8:start] + extra + body


LAYOUTS = [
    # (subtype, channels, bit-identical to libsndfile + a float32 mean)
    ("PCM_16", 1, True),
    ("PCM_16", 2, True),
    ("PCM_24", 1, True),
    ("PCM_24", 2, True),
    ("PCM_24", 4, False),  # the integer sum is exact, float32 partial sums are not
    ("PCM_24", 3, False),  # one rounding apart: the sum is scaled by 1/3 once
    ("PCM_32", 2, False),  # libsndfile rounds each channel to float32 before the mean
    ("FLOAT", 1, True),
    ("FLOAT", 2, True),
    ("FLOAT", 6, False),
    ("DOUBLE", 2, True),
]


@pytest.mark.parametrize(("subtype", "channels", "exact"), LAYOUTS)
def test_numpy_decoder_gives_libsndfile_samples(
    rng: np.random.Generator, subtype: str, channels: int, exact: bool
) -> None:
    y = (rng.uniform(-1, 1, (999, channels)) * 0.9).astype(np.float32)
    data = with_chunk_before_data(encoded(y, 44100, subtype=subtype), b"LIST", b"odd")
    wav = layout(data)
    assert wav is not None
    assert (wav.channels, wav.sr, wav.frames) == (channels, 44100, 999)
    reference = to_mono(sf.read(io.BytesIO(data), dtype="float32", always_2d=True)[0])
    got = mono(data, wav)
    assert got.dtype == np.float32 and got.shape == (999,)
    if exact:
        np.testing.assert_array_equal(got, reference)
    else:
        np.testing.assert_allclose(got, reference, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(mono(data, wav, start=100, frames=50), got[100:150])
    np.testing.assert_array_equal(mono(data, wav, start=990, frames=50), got[990:])
    extensible = layout(encoded(y, 44100, subtype=subtype, fmt="WAVEX"))
    assert extensible is not None and extensible.tag == wav.tag


@pytest.mark.parametrize(
    "case",
    ["pcm8", "ulaw", "flac", "truncated", "streamed", "not_riff", "short_fmt"],
)
def test_numpy_decoder_declines_everything_else(case: str) -> None:
    y = tone(440.0, sr=SR, duration_s=0.1)
    good = encoded(y)
    data = {
        "pcm8": encoded(y, subtype="PCM_U8"),
        "ulaw": encoded(y, subtype="ULAW"),
        "flac": encoded(y, fmt="FLAC"),
        "truncated": good[:-100],
        "streamed": good[:40] + b"\0\0\0\0" + good[44:],
        "not_riff": b"RIFX" + good[4:],
        "short_fmt": b"RIFF\x10\x00\x00\x00WAVEfmt \x10\x00\x00\x00garbage",
    }[case]
    assert layout(data) is None
    assert data_truncated(data) == (case == "truncated")


def reference_clip(path: Path, *, sr: int, n_samples: int, crop: str) -> np.ndarray:
    y, orig_sr = sf.read(path, dtype="float32", always_2d=True)
    mono = resample(to_mono(y), orig_sr=orig_sr, target_sr=sr)
    return fix_length(mono, n_samples=n_samples, crop=crop)  # type: ignore[arg-type]


@pytest.mark.parametrize("crop", ["start", "center"])
def test_load_clips_equals_full_decode_then_fix_length(tmp_path: Path, crop: str) -> None:
    short, long_ = tone(440.0, sr=SR, duration_s=0.3), tone(660.0, sr=SR, duration_s=0.9)
    files = {
        "pcm16_short.wav": (short, SR, "PCM_16"),  # fast path, padded
        "pcm16_long.wav": (long_, SR, "PCM_16"),  # fast path, cropped
        "pcm16_44k.wav": (tone(440.0, sr=44100, duration_s=0.7), 44100, "PCM_16"),
        "stereo.wav": (np.stack([long_, -long_ / 2], axis=1), SR, "PCM_16"),
        "float.wav": (long_, SR, "FLOAT"),
        "clip.flac": (short, SR, "PCM_16"),
    }
    paths = []
    for name, (y, sr, subtype) in files.items():
        sf.write(tmp_path / name, y, sr, subtype=subtype)
        paths.append(tmp_path / name)
    batch = load_clips([str(p) for p in paths], sr=SR, duration_s=0.5, crop=crop)  # type: ignore[arg-type]
    assert batch.shape == (len(paths), 8000) and batch.dtype == np.float32
    for row, path in zip(batch, paths, strict=True):
        expected = reference_clip(path, sr=SR, n_samples=8000, crop=crop)
        np.testing.assert_array_equal(row, expected, err_msg=path.name)


def test_load_clips_failure_reasons(tmp_path: Path) -> None:
    (tmp_path / "text.wav").write_text("not audio at all\n" * 10)
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), SR, subtype="PCM_16")
    (tmp_path / "folder.wav").mkdir()
    expected = {
        "absent.wav": "missing",
        "folder.wav": "unreadable",
        "text.wav": "corrupt",
        "empty.wav": "no_samples",
    }
    for name, reason in expected.items():
        with pytest.raises(AudioError) as info:
            load_clips([str(tmp_path / name)], sr=SR, duration_s=0.1)
        assert info.value.reason == reason, name

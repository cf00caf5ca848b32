"""The numpy window and mel filterbank against librosa's, which they replace on workers."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from melflow.features.filters import hann_window, hz_to_mel, mel_filterbank, mel_to_hz


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "fmin", "fmax"),
    [
        (22050, 2048, 128, 0.0, None),
        (16000, 512, 40, 50.0, 7600.0),
        (8000, 256, 64, 0.0, 4000.0),
        (44100, 1024, 96, 20.0, 18000.0),
    ],
)
def test_mel_filterbank_equals_librosa(
    sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None
) -> None:
    ours = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    reference = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.shape == reference.shape == (n_mels, 1 + n_fft // 2)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6 * reference.max())


@pytest.mark.parametrize(("n_fft", "win_length"), [(512, None), (512, 400), (256, 101), (8, 8)])
def test_hann_window_equals_librosa_padded_window(n_fft: int, win_length: int | None) -> None:
    reference = librosa.util.pad_center(
        librosa.filters.get_window("hann", win_length or n_fft, fftbins=True), size=n_fft
    )
    np.testing.assert_allclose(
        hann_window(n_fft=n_fft, win_length=win_length), reference, atol=1e-7
    )


def test_mel_scale_round_trips_and_matches_librosa_on_both_sides_of_1_khz() -> None:
    f_hz = np.array([0.0, 200.0, 999.0, 1000.0, 1001.0, 4000.0, 22050.0])
    np.testing.assert_allclose(hz_to_mel(f_hz), librosa.hz_to_mel(f_hz), rtol=1e-12)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f_hz)), f_hz, rtol=1e-12, atol=1e-9)
    assert hz_to_mel(1000.0) == pytest.approx(15.0)

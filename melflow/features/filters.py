"""The STFT window and the mel filterbank, in numpy alone.

Both equal librosa's (``get_window("hann", fftbins=True)`` + ``pad_center``, and
``filters.mel`` with Slaney's mel scale and area normalisation; tested to 1e-6), but
``librosa.filters`` imports ``scipy.signal`` and numba's cached ufuncs: ~1.4 s that every
fresh Dask worker would pay before its first batch.
"""

from __future__ import annotations

import numpy as np

# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_HZ_PER_MEL, _LOG_HZ = 200.0 / 3.0, 1000.0
_LOG_MEL, _LOG_STEP = _LOG_HZ / _HZ_PER_MEL, np.log(6.4) / 27.0


def hz_to_mel(f_hz: np.ndarray | float) -> np.ndarray:
    """Slaney mels of frequencies ``f_hz`` (Hz), same shape."""
    f_hz = np.asarray(f_hz, dtype=np.float64)
    linear = f_hz / _HZ_PER_MEL
    logarithmic = _LOG_MEL + np.log(np.maximum(f_hz, _LOG_HZ) / _LOG_HZ) / _LOG_STEP
    return np.where(f_hz >= _LOG_HZ, logarithmic, linear)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Frequencies (Hz) of Slaney ``mels``, same shape."""
    mels = np.asarray(mels, dtype=np.float64)
    logarithmic = _LOG_HZ * np.exp(_LOG_STEP * (np.maximum(mels, _LOG_MEL) - _LOG_MEL))
    return np.where(mels >= _LOG_MEL, logarithmic, mels * _HZ_PER_MEL)


def hann_window(*, n_fft: int, win_length: int | None = None) -> np.ndarray:
    """Periodic Hann window of ``win_length`` (default ``n_fft``) samples, zero-padded on
    both sides to ``n_fft``: shape ``(n_fft,)``, float32."""
    length = win_length or n_fft
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)
    left = (n_fft - length) // 2
    return np.pad(window, (left, n_fft - length - left)).astype(np.float32)


def mel_filterbank(
    *, sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular filters on the Slaney mel scale, each scaled to unit area in Hz.

    Returns
    -------
    np.ndarray
        ``(n_mels, 1 + n_fft // 2)`` float32 weights over the real-FFT bins of ``n_fft``
        samples at ``sr`` Hz, covering ``fmin``..``fmax`` Hz (default ``sr / 2``).
    """
    fmax = sr / 2.0 if fmax is None else fmax
    fft_hz = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, np.newaxis] - fft_hz[np.newaxis, :]
    rising = -ramps[:-2] / widths[:-1, np.newaxis]
    falling = ramps[2:] / widths[1:, np.newaxis]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, np.newaxis]
    return weights.astype(np.float32)

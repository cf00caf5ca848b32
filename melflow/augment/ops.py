"""Waveform augmentation ops: pure functions of a mono waveform and a seeded generator.

Every op takes ``y`` (float32, shape ``(n_samples,)``), keyword-only arguments and a
``numpy.random.Generator``; it draws its parameter uniformly from ``[low, high]`` with that
generator, applies it, and returns ``(y_out, params)`` where ``params`` is a JSON-able
dict of what it drew. The same generator state therefore always gives the same output.

:func:`augment_waveform` chains the ops enabled by an :class:`~melflow.config.AugmentConfig`
into one variant of a clip, keeping the clip's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import librosa
import numpy as np
import scipy.fft
import soxr

from melflow.audio.io import fix_length
from melflow.config import AugmentConfig
from melflow.errors import ParameterError

Params = dict[str, Any]
OpResult = tuple[np.ndarray, Params]
# Application order: pitch/time first (they re-synthesise the signal), then the cheap
# sample-domain ops, and noise last so its SNR refers to the final signal.
OP_ORDER: tuple[str, ...] = ("time_stretch", "pitch_shift", "shift", "gain", "noise")
# Phase-vocoder analysis window of about 93 ms (2048 samples at 22,050 Hz, librosa's default).
_VOCODER_WINDOW_S = 0.093


def _draw(rng: np.random.Generator, low: float, high: float, name: str) -> float:
    if low > high:
        raise ParameterError(f"{name}: low={low} must not exceed high={high}")
    return float(rng.uniform(low, high))


def vocoder_n_fft(*, sr: int, n_samples: int) -> int:
    """Power-of-two FFT size near 93 ms at ``sr`` Hz, at most the signal length (>= 16)."""
    n_fft = 2 ** round(np.log2(sr * _VOCODER_WINDOW_S))
    return int(max(16, min(n_fft, 2 ** int(np.log2(max(n_samples, 16))))))


def phase_vocoder(D: np.ndarray, *, rate: float, hop_length: int) -> np.ndarray:
    """Time-scale a complex STFT by ``rate`` (> 1 faster), vectorised over frames.

    Same algorithm as :func:`librosa.phase_vocoder` (linear magnitude interpolation,
    accumulated phase advance), computed with one cumulative sum instead of a frame loop.

    Parameters
    ----------
    D : np.ndarray, complex, shape ``(1 + n_fft // 2, n_frames)``
    rate : float
        Speed-up factor, > 0.
    hop_length : int
        Hop of ``D`` in samples.

    Returns
    -------
    np.ndarray, complex, shape ``(1 + n_fft // 2, ceil(n_frames / rate))``
    """
    if rate <= 0:
        raise ParameterError(f"rate must be positive, got {rate}")
    n_bins, frames = D.shape
    n_fft = 2 * (n_bins - 1)
    steps = np.arange(0, frames, rate, dtype=np.float64)
    left = steps.astype(np.intp)
    alpha = (steps - left).astype(np.float32)[:, None]
    # Work frames-major so the phase accumulation is a contiguous cumulative sum.
    padded = np.pad(D.T, [(0, 2), (0, 0)])
    magnitude, angle = np.abs(padded), np.angle(padded)
    mag = (1.0 - alpha) * magnitude[left] + alpha * magnitude[left + 1]
    advance = (hop_length * 2 * np.pi * np.arange(n_bins) / n_fft).astype(np.float32)
    dphase = angle[left + 1] - angle[left] - advance
    dphase -= (2 * np.pi) * np.round(dphase / (2 * np.pi))
    # Increments wrapped to [-pi, pi) keep the float32 running phase small and precise.
    step = advance + dphase[:-1]
    step -= (2 * np.pi) * np.round(step / (2 * np.pi))
    phase = np.empty_like(dphase)
    phase[0] = angle[0]
    np.cumsum(step, axis=0, out=phase[1:])
    phase[1:] += angle[0]
    # C-contiguous (bins, frames), the layout the inverse STFT reads fastest.
    return np.ascontiguousarray((mag * (np.cos(phase) + 1j * np.sin(phase))).T)


def stretch(y: np.ndarray, *, sr: int, rate: float) -> np.ndarray:
    """Phase-vocoder time stretch: output length ``round(len(y) / rate)``, pitch unchanged."""
    n_fft = vocoder_n_fft(sr=sr, n_samples=y.shape[-1])
    hop = n_fft // 4
    D = librosa.stft(y, n_fft=n_fft, hop_length=hop)
    out = librosa.istft(
        phase_vocoder(D, rate=rate, hop_length=hop),
        hop_length=hop,
        n_fft=n_fft,
        length=round(y.shape[-1] / rate),
    )
    return np.asarray(out, dtype=np.float32)


def vocode(y: np.ndarray, *, sr: int, rate: float = 1.0, n_steps: float = 0.0) -> np.ndarray:
    """Time-stretch by ``rate`` and pitch-shift by ``n_steps`` semitones in one vocoder pass.

    Stretching by ``rate / 2**(n_steps/12)`` and then resampling by ``2**(n_steps/12)``
    equals a stretch by ``rate`` followed by librosa's pitch shift (itself a stretch and a
    resample), at the cost of one phase vocoder instead of two.

    Returns
    -------
    np.ndarray
        float32, ``round(len(y) / rate)`` samples at ``sr`` Hz.
    """
    factor = 2.0 ** (n_steps / 12.0)
    out = stretch(y, sr=sr, rate=rate / factor)
    if n_steps != 0.0:
        # soxr takes the rate ratio directly; audio.io.resample is for integer file rates.
        out = np.asarray(soxr.resample(out, sr * factor, sr, quality="HQ"), dtype=np.float32)
    return fix_length(out, n_samples=round(y.shape[-1] / rate))


def time_stretch(
    y: np.ndarray, *, sr: int, rng: np.random.Generator, low: float, high: float
) -> OpResult:
    """Stretch by a rate drawn from ``[low, high]`` (> 1 faster and shorter).

    Returns
    -------
    (np.ndarray, dict)
        Waveform of ``round(len(y) / rate)`` samples, and ``{"rate": rate}``.
    """
    rate = _draw(rng, low, high, "time_stretch")
    return vocode(y, sr=sr, rate=rate), {"rate": rate}


def pitch_shift(
    y: np.ndarray, *, sr: int, rng: np.random.Generator, low: float, high: float
) -> OpResult:
    """Shift pitch by ``n_steps`` semitones drawn from ``[low, high]``, keeping the length.

    Stretch by ``2**(-n_steps/12)`` then resample by the inverse factor (as librosa does).

    Returns
    -------
    (np.ndarray, dict)
        Waveform of ``len(y)`` samples, and ``{"n_steps": n_steps}``.
    """
    n_steps = _draw(rng, low, high, "pitch_shift")
    return vocode(y, sr=sr, n_steps=n_steps), {"n_steps": n_steps}


def time_stretch_and_pitch_shift(
    y: np.ndarray,
    *,
    sr: int,
    rng: np.random.Generator,
    rate: tuple[float, float],
    n_steps: tuple[float, float],
) -> tuple[np.ndarray, Params, Params]:
    """:func:`time_stretch` then :func:`pitch_shift` in one vocoder pass.

    Draws exactly what the two ops draw in turn, so the parameters are the same as
    applying them one after the other with the same generator.

    Returns
    -------
    (np.ndarray, dict, dict)
        Waveform of ``round(len(y) / rate)`` samples, ``{"rate"}`` and ``{"n_steps"}``.
    """
    drawn_rate = _draw(rng, *rate, "time_stretch")
    drawn_steps = _draw(rng, *n_steps, "pitch_shift")
    out = vocode(y, sr=sr, rate=drawn_rate, n_steps=drawn_steps)
    return out, {"rate": drawn_rate}, {"n_steps": drawn_steps}


def pink_noise(n_samples: int, *, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectral density ~ 1/f (zero mean), shape ``(n_samples,)``."""
    spectrum = scipy.fft.rfft(rng.standard_normal(size=n_samples, dtype=np.float32))
    spectrum[1:] /= np.sqrt(np.arange(1, spectrum.shape[0], dtype=np.float32))
    spectrum[0] = 0.0
    return np.asarray(scipy.fft.irfft(spectrum, n=n_samples), dtype=np.float32)


def mix_at_snr(y: np.ndarray, noise: np.ndarray, *, snr_db: float) -> np.ndarray:
    """``y + g * noise`` with ``g`` chosen so that ``10 log10(P_y / P_(g noise)) = snr_db``.

    Powers are mean squares over the whole clip; a silent ``y`` or ``noise`` returns ``y``.
    """
    if noise.shape != y.shape:
        raise ParameterError(f"noise shape {noise.shape} differs from signal shape {y.shape}")
    p_signal = float(np.mean(np.square(y, dtype=np.float64)))
    p_noise = float(np.mean(np.square(noise, dtype=np.float64)))
    if p_signal == 0.0 or p_noise == 0.0:
        return y.copy()
    gain = np.sqrt(p_signal / (p_noise * 10.0 ** (snr_db / 10.0)))
    return (y + gain * noise).astype(np.float32)


def add_noise(
    y: np.ndarray,
    *,
    rng: np.random.Generator,
    low: float,
    high: float,
    kind: Literal["white", "pink", "folder"] = "white",
    background: Sequence[np.ndarray] = (),
) -> OpResult:
    """Add white, pink or background noise at an SNR (dB) drawn from ``[low, high]``.

    Parameters
    ----------
    background : sequence of np.ndarray
        Mono clips at the signal's rate, used when ``kind == 'folder'``: one is drawn,
        started at a random offset and looped to ``len(y)``.

    Returns
    -------
    (np.ndarray, dict)
        Noisy waveform of ``len(y)`` samples, and ``{"snr_db", "kind"}`` plus
        ``{"clip", "offset"}`` (index into ``background``, samples) for ``folder``.
    """
    snr_db = _draw(rng, low, high, "noise")
    params: Params = {"snr_db": snr_db, "kind": kind}
    n = y.shape[-1]
    noise: np.ndarray
    if kind == "white":
        noise = rng.standard_normal(size=(n,), dtype=np.float32)
    elif kind == "pink":
        noise = pink_noise(n, rng=rng)
    else:
        if not background:
            raise ParameterError("noise kind 'folder' needs at least one background clip")
        clip = int(rng.integers(len(background)))
        source = background[clip]
        offset = int(rng.integers(source.shape[-1]))
        noise = np.resize(np.roll(source, -offset), n)
        params.update(clip=clip, offset=offset)
    return mix_at_snr(y, noise, snr_db=snr_db), params


def gain(y: np.ndarray, *, rng: np.random.Generator, low: float, high: float) -> OpResult:
    """Scale by a gain in dB drawn from ``[low, high]`` (no clipping: features are float).

    Returns ``(y * 10**(gain_db/20), {"gain_db": gain_db})``.
    """
    gain_db = _draw(rng, low, high, "gain")
    return (y * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32), {"gain_db": gain_db}


def time_shift(
    y: np.ndarray,
    *,
    rng: np.random.Generator,
    low: float,
    high: float,
    mode: Literal["circular", "zero"] = "circular",
) -> OpResult:
    """Shift by a fraction of the clip length drawn from ``[low, high]`` (negative = earlier).

    ``circular`` wraps samples around; ``zero`` drops the samples shifted out and fills
    the gap with silence.

    Returns
    -------
    (np.ndarray, dict)
        Shifted waveform of ``len(y)`` samples, and ``{"fraction", "samples"}``.
    """
    fraction = _draw(rng, low, high, "shift")
    n = y.shape[-1]
    samples = round(fraction * n)
    if mode == "circular":
        out = np.roll(y, samples)
    else:
        out = np.zeros_like(y)
        if samples >= 0:
            out[samples:] = y[: n - samples]
        else:
            out[:samples] = y[-samples:]
    return out, {"fraction": fraction, "samples": samples}


def _apply(
    name: str,
    y: np.ndarray,
    *,
    sr: int,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    background: Sequence[np.ndarray],
) -> OpResult:
    match name:
        case "time_stretch":
            return time_stretch(
                y, sr=sr, rng=rng, low=cfg.time_stretch.low, high=cfg.time_stretch.high
            )
        case "pitch_shift":
            return pitch_shift(
                y, sr=sr, rng=rng, low=cfg.pitch_shift.low, high=cfg.pitch_shift.high
            )
        case "shift":
            return time_shift(
                y, rng=rng, low=cfg.shift.low, high=cfg.shift.high, mode=cfg.shift.mode
            )
        case "gain":
            return gain(y, rng=rng, low=cfg.gain.low, high=cfg.gain.high)
        case "noise":
            noise = cfg.noise
            return add_noise(
                y, rng=rng, low=noise.low, high=noise.high, kind=noise.kind, background=background
            )
    raise ParameterError(f"unknown augmentation op {name!r}; expected one of {OP_ORDER}")


def choose_ops(*, cfg: AugmentConfig, rng: np.random.Generator) -> list[str]:
    """Ops of one variant, in :data:`OP_ORDER`: each fires with its probability ``p``.

    When none fires, one op is drawn with probability proportional to ``p``, so a variant
    always differs from its source clip.
    """
    probs = np.array([getattr(cfg, name).p for name in OP_ORDER])
    chosen = [name for name, p in zip(OP_ORDER, probs, strict=True) if rng.random() < p]
    if chosen or probs.sum() == 0:
        return chosen
    return [OP_ORDER[int(rng.choice(len(OP_ORDER), p=probs / probs.sum()))]]


def augment_waveform(
    y: np.ndarray,
    *,
    sr: int,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    crop: Literal["start", "center"] = "start",
    background: Sequence[np.ndarray] = (),
) -> tuple[np.ndarray, dict[str, Params]]:
    """One augmented variant of ``y``: the ops of :func:`choose_ops`, applied in order.

    Parameters
    ----------
    y : np.ndarray, shape ``(n_samples,)``
        Clean mono clip at ``sr`` Hz.
    cfg : AugmentConfig
        Probabilities and ranges of each op.
    rng : np.random.Generator
        Seeded per variant; the only source of randomness.
    crop : {"start", "center"}
        How a time-stretched signal is cropped (or zero-padded at the end) back to
        ``n_samples``, as :func:`melflow.audio.io.fix_length`.
    background : sequence of np.ndarray
        Background-noise clips for ``cfg.noise.kind == 'folder'``.

    Returns
    -------
    (np.ndarray, dict)
        float32 waveform of shape ``(n_samples,)`` and ``{op name: drawn params}`` in the
        order applied.
    """
    n_samples = y.shape[-1]
    applied: dict[str, Params] = {}
    names = choose_ops(cfg=cfg, rng=rng)
    if "time_stretch" in names and "pitch_shift" in names:
        y, applied["time_stretch"], applied["pitch_shift"] = time_stretch_and_pitch_shift(
            y,
            sr=sr,
            rng=rng,
            rate=(cfg.time_stretch.low, cfg.time_stretch.high),
            n_steps=(cfg.pitch_shift.low, cfg.pitch_shift.high),
        )
        y = fix_length(y, n_samples=n_samples, crop=crop)
    for name in names:
        if name in applied:
            continue
        y, applied[name] = _apply(name, y, sr=sr, cfg=cfg, rng=rng, background=background)
        if y.shape[-1] != n_samples:
            y = fix_length(y, n_samples=n_samples, crop=crop)
    return y.astype(np.float32, copy=False), applied

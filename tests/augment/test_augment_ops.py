"""Waveform ops on synthetic signals with known answers: SNR, duration, pitch, gain, shift."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import tone

from melflow.augment.ops import (
    OP_ORDER,
    add_noise,
    augment_waveform,
    choose_ops,
    gain,
    phase_vocoder,
    pitch_shift,
    time_shift,
    time_stretch,
    time_stretch_and_pitch_shift,
    vocoder_n_fft,
)
from melflow.config import AugmentConfig
from melflow.errors import ParameterError

SR = 22050


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean
    return float(10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2)))


def _octave_powers(x: np.ndarray, *, sr: int, edges: list[float]) -> np.ndarray:
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / sr)
    return np.array(
        [power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in itertools.pairwise(edges)]
    )


@pytest.mark.parametrize("kind", ["white", "pink"])
@pytest.mark.parametrize("snr", [-10.0, 0.0, 12.5, 40.0])
def test_noise_hits_the_requested_snr(kind: str, snr: float, rng: np.random.Generator) -> None:
    y = tone(440, sr=SR, duration_s=1.0)
    noisy, params = add_noise(y, rng=rng, low=snr, high=snr, kind=kind)  # type: ignore[arg-type]
    assert params == {"snr_db": snr, "kind": kind}
    assert noisy.shape == y.shape and noisy.dtype == np.float32
    assert abs(_snr_db(y, noisy) - snr) < 0.1


def test_pink_noise_has_equal_power_per_octave_and_white_does_not(rng: np.random.Generator) -> None:
    y = tone(440, sr=SR, duration_s=4.0, amplitude=1e-3)
    edges = [250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0]
    pink, _ = add_noise(y, rng=rng, low=-40, high=-40, kind="pink")
    white, _ = add_noise(y, rng=rng, low=-40, high=-40, kind="white")
    pink_db = 10 * np.log10(_octave_powers(pink, sr=SR, edges=edges))
    white_db = 10 * np.log10(_octave_powers(white, sr=SR, edges=edges))
    assert np.ptp(pink_db) < 1.5  # 1/f: the same power in every octave
    # White noise doubles its power per octave: +3 dB per octave over five octaves.
    assert np.allclose(np.diff(white_db), 3.0, atol=0.5)


def test_folder_noise_loops_a_background_clip_at_the_snr(rng: np.random.Generator) -> None:
    y = tone(440, sr=SR, duration_s=1.0)
    short = tone(3000, sr=SR, duration_s=0.3)
    noisy, params = add_noise(y, rng=rng, low=5, high=5, kind="folder", background=[short])
    assert params["clip"] == 0 and 0 <= params["offset"] < short.shape[0]
    assert abs(_snr_db(y, noisy) - 5) < 0.1
    with pytest.raises(ParameterError, match="background"):
        add_noise(y, rng=rng, low=5, high=5, kind="folder")


def _active_samples(y: np.ndarray, *, frame: int = 64) -> int:
    """Samples between the first and last frame whose RMS exceeds half the peak RMS."""
    frames = y[: y.shape[0] // frame * frame].reshape(-1, frame)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    active = np.nonzero(rms > rms.max() / 2)[0]
    return int(active[-1] - active[0] + 1) * frame


# Down to 0.8 (the default range); at 0.5 a phase vocoder smears onsets by about a window.
@pytest.mark.parametrize("rate", [0.8, 0.9, 1.25, 1.6, 2.0])
def test_time_stretch_changes_duration_by_one_over_rate(
    rate: float, rng: np.random.Generator
) -> None:
    n = SR * 2
    burst = np.zeros(n, dtype=np.float32)
    start, length = SR // 4, SR  # a one-second tone burst inside two seconds
    burst[start : start + length] = tone(660, sr=SR, duration_s=1.0)
    out, params = time_stretch(burst, sr=SR, rng=rng, low=rate, high=rate)
    hop = vocoder_n_fft(sr=SR, n_samples=n) // 4
    assert params == {"rate": rate}
    assert out.shape == (round(n / rate),)
    assert abs(_active_samples(out) - length / rate) <= hop


@pytest.mark.parametrize("n_steps", [-3.0, 2.0, 5.5])
def test_pitch_shift_moves_a_tone_by_the_semitone_ratio(
    n_steps: float, rng: np.random.Generator
) -> None:
    y = tone(440, sr=SR, duration_s=1.0)
    out, params = pitch_shift(y, sr=SR, rng=rng, low=n_steps, high=n_steps)
    assert params == {"n_steps": n_steps} and out.shape == y.shape
    n_fft = 8192
    middle = out[(SR - n_fft) // 2 : (SR + n_fft) // 2] * np.hanning(n_fft)
    peak_hz = np.argmax(np.abs(np.fft.rfft(middle))) * SR / n_fft
    assert abs(peak_hz - 440 * 2 ** (n_steps / 12)) <= SR / n_fft


def test_phase_vocoder_matches_librosa() -> None:
    import librosa

    y = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    D = librosa.stft(y, n_fft=1024, hop_length=256)
    for rate in (0.7, 1.3):
        ours = phase_vocoder(D, rate=rate, hop_length=256)
        # librosa in double precision as the reference (its float32 phase drifts).
        theirs = librosa.phase_vocoder(
            D.astype(np.complex128), rate=rate, hop_length=256, n_fft=1024
        )
        assert ours.shape == theirs.shape
        assert np.allclose(ours, theirs, atol=2e-3 * np.abs(theirs).max())
    with pytest.raises(ParameterError, match="positive"):
        phase_vocoder(D, rate=0.0, hop_length=256)


def test_gain_scales_by_decibels(rng: np.random.Generator) -> None:
    y = tone(440, sr=SR, duration_s=0.1)
    out, params = gain(y, rng=rng, low=-6.0, high=-6.0)
    assert params == {"gain_db": -6.0}
    assert np.allclose(out, y * 0.501187, atol=1e-6)


def test_time_shift_circular_and_zero(rng: np.random.Generator) -> None:
    y = np.arange(1, 11, dtype=np.float32)
    out, params = time_shift(y, rng=rng, low=0.3, high=0.3, mode="circular")
    assert params == {"fraction": 0.3, "samples": 3}
    assert out.tolist() == [8, 9, 10, 1, 2, 3, 4, 5, 6, 7]
    out, _ = time_shift(y, rng=rng, low=-0.2, high=-0.2, mode="zero")
    assert out.tolist() == [3, 4, 5, 6, 7, 8, 9, 10, 0, 0]
    out, _ = time_shift(y, rng=rng, low=0.2, high=0.2, mode="zero")
    assert out.tolist() == [0, 0, 1, 2, 3, 4, 5, 6, 7, 8]


def test_ops_reject_inverted_ranges(rng: np.random.Generator) -> None:
    with pytest.raises(ParameterError, match="low=2"):
        gain(np.zeros(4, dtype=np.float32), rng=rng, low=2, high=1)


def test_augment_waveform_is_seeded_and_keeps_length() -> None:
    cfg = AugmentConfig()
    y = tone(440, sr=SR, duration_s=1.0) + tone(1250, sr=SR, duration_s=1.0, amplitude=0.2)
    a, pa = augment_waveform(y, sr=SR, cfg=cfg, rng=np.random.default_rng(3))
    b, pb = augment_waveform(y, sr=SR, cfg=cfg, rng=np.random.default_rng(3))
    c, pc = augment_waveform(y, sr=SR, cfg=cfg, rng=np.random.default_rng(4))
    assert np.array_equal(a, b) and pa == pb
    assert not np.array_equal(a, c) and pa != pc
    for out, params in ((a, pa), (c, pc)):
        assert out.shape == y.shape and out.dtype == np.float32
        assert params and list(params) == [op for op in OP_ORDER if op in params]


def _with_p(**p: float) -> AugmentConfig:
    """An augment config whose op probabilities are ``p`` (0 for ops not named)."""
    return AugmentConfig(**{op: {"p": p.get(op, 0.0)} for op in OP_ORDER})  # type: ignore[arg-type]


def test_every_variant_gets_at_least_one_op() -> None:
    rare = _with_p(gain=0.01)
    seen = {tuple(choose_ops(cfg=rare, rng=np.random.default_rng(s))) for s in range(50)}
    assert seen == {("gain",)}
    always = _with_p(**dict.fromkeys(OP_ORDER, 1.0))
    assert choose_ops(cfg=always, rng=np.random.default_rng(0)) == list(OP_ORDER)


def test_fused_stretch_and_shift_equals_the_two_ops_in_turn() -> None:
    y = tone(440, sr=SR, duration_s=1.0)
    fused, rate_params, step_params = time_stretch_and_pitch_shift(
        y, sr=SR, rng=np.random.default_rng(8), rate=(0.8, 1.25), n_steps=(-3.0, 3.0)
    )
    rng = np.random.default_rng(8)
    stretched, first = time_stretch(y, sr=SR, rng=rng, low=0.8, high=1.25)
    sequential, second = pitch_shift(stretched, sr=SR, rng=rng, low=-3.0, high=3.0)
    assert (rate_params, step_params) == (first, second)
    assert fused.shape == sequential.shape == (round(SR / first["rate"]),)
    n_fft = 8192
    peaks = [
        np.argmax(np.abs(np.fft.rfft(x[:n_fft] * np.hanning(n_fft)))) * SR / n_fft
        for x in (fused, sequential)
    ]
    assert abs(peaks[0] - peaks[1]) <= SR / n_fft
    assert abs(peaks[0] - 440 * 2 ** (second["n_steps"] / 12)) <= SR / n_fft


def test_every_op_at_once_keeps_the_length_and_records_all_params() -> None:
    always = _with_p(**dict.fromkeys(OP_ORDER, 1.0))
    y = tone(440, sr=SR, duration_s=1.0)
    out, params = augment_waveform(
        y, sr=SR, cfg=always, rng=np.random.default_rng(2), crop="center"
    )
    assert out.shape == y.shape and list(params) == list(OP_ORDER)

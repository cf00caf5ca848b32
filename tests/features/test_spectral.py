"""Spectral features against known answers and against librosa's per-file reference."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from conftest import tone

from melflow.config import FeaturesConfig
from melflow.errors import ParameterError
from melflow.features.shapes import feature_shapes, n_frames
from melflow.features.spectral import (
    block_clips,
    compute_features,
    logmel,
    mel_bands,
    mel_basis,
    mfcc_from_logmel,
    power_to_db,
)

SR = 16000


@pytest.mark.parametrize(
    ("n_samples", "hop_length"), [(16000, 256), (8000, 512), (1000, 100), (1023, 1)]
)
def test_frame_count_follows_centred_formula(n_samples: int, hop_length: int) -> None:
    y = np.zeros(n_samples, dtype=np.float32)
    S = logmel(y, sr=SR, n_fft=64, hop_length=hop_length, n_mels=8)
    assert (
        S.shape
        == (8, 1 + n_samples // hop_length)
        == (8, n_frames(n_samples, hop_length=hop_length))
    )


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3500.0])
def test_tone_peaks_in_the_mel_bin_centred_nearest_its_frequency(freq: float) -> None:
    n_mels = 40
    S = logmel(tone(freq, sr=SR, duration_s=0.5), sr=SR, n_fft=1024, hop_length=256, n_mels=n_mels)
    centres = librosa.mel_frequencies(n_mels=n_mels + 2, fmin=0.0, fmax=SR / 2)[1:-1]
    assert int(S.mean(axis=1).argmax()) == int(np.abs(centres - freq).argmin())


def test_logmel_matches_librosa_per_file(rng: np.random.Generator) -> None:
    y = rng.standard_normal(SR).astype(np.float32) * 0.1
    reference = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=SR, n_fft=512, hop_length=128, n_mels=32)
    )
    ours = logmel(y, sr=SR, n_fft=512, hop_length=128, n_mels=32)
    np.testing.assert_allclose(ours, reference, atol=1e-3)


def test_mfcc_matches_librosa(rng: np.random.Generator) -> None:
    y = rng.standard_normal(SR // 2).astype(np.float32) * 0.1
    S_db = logmel(y, sr=SR, n_fft=512, hop_length=128, n_mels=40)
    np.testing.assert_allclose(
        mfcc_from_logmel(S_db, n_mfcc=13), librosa.feature.mfcc(S=S_db, n_mfcc=13), atol=1e-3
    )


def test_batched_equals_looped_and_top_db_is_per_clip(rng: np.random.Generator) -> None:
    loud = tone(440, sr=SR, duration_s=0.25, amplitude=0.9)
    quiet = (rng.standard_normal(loud.shape) * 1e-4).astype(np.float32)
    cfg = FeaturesConfig(
        kinds=("logmel", "mfcc", "stft"), n_fft=256, hop_length=64, n_mels=24, n_mfcc=10
    )
    batch = compute_features(np.stack([loud, quiet]), sr=SR, cfg=cfg)
    for i, y in enumerate((loud, quiet)):
        single = compute_features(y[None], sr=SR, cfg=cfg)
        for kind in cfg.kinds:
            np.testing.assert_allclose(batch[kind][i], single[kind][0], atol=1e-4)
    # The quiet clip keeps its own values instead of being floored at the loud clip's peak - 80 dB.
    assert batch["logmel"][1].max() < batch["logmel"][0].max() - cfg.top_db
    assert batch["logmel"][1].max() - batch["logmel"][1].min() > 5


def test_blocks_hold_a_fixed_number_of_samples_and_do_not_change_values(
    rng: np.random.Generator,
) -> None:
    assert (block_clips(22050), block_clips(88200), block_clips(220500)) == (8, 2, 1)
    cfg = FeaturesConfig(n_fft=512, hop_length=256, n_mels=32)
    y = (rng.standard_normal((5, 88200)) * 0.1).astype(np.float32)  # 4 s: blocks of 2, 2, 1
    batch = compute_features(y, sr=22050, cfg=cfg)["logmel"]
    for i in range(len(y)):
        single = compute_features(y[i : i + 1], sr=22050, cfg=cfg)["logmel"][0]
        np.testing.assert_allclose(batch[i], single, atol=1e-4)


def test_feature_shapes_match_computed_arrays() -> None:
    cfg = FeaturesConfig(
        kinds=("logmel", "mfcc", "stft"), n_fft=256, hop_length=64, n_mels=24, n_mfcc=10
    )
    arrays = compute_features(np.zeros((3, 4000), dtype=np.float32), sr=SR, cfg=cfg)
    shapes = feature_shapes(n_samples=4000, cfg=cfg)
    assert {k: v.shape[1:] for k, v in arrays.items()} == shapes
    assert shapes["stft"] == (129, 63)


def test_power_to_db_floor_and_errors() -> None:
    S = np.array([[[1.0, 1e-12], [1e-3, 1e-9]]])
    db = power_to_db(S, top_db=40)
    assert db.max() == 0.0 and db.min() == -40.0
    with pytest.raises(ParameterError):
        power_to_db(S, top_db=-1)
    with pytest.raises(ParameterError):
        mfcc_from_logmel(np.zeros((4, 10)), n_mfcc=5)


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels"), [(22050, 1024, 64), (8000, 256, 40), (16000, 512, 13)]
)
def test_banded_filterbank_equals_the_dense_one(
    rng: np.random.Generator, sr: int, n_fft: int, n_mels: int
) -> None:
    kwargs = {"sr": sr, "n_fft": n_fft, "n_mels": n_mels, "fmin": 0.0, "fmax": None}
    basis, bands = mel_basis(**kwargs), mel_bands(**kwargs)
    dense = np.zeros_like(basis)
    for mels, bins, weights in bands:
        dense[mels, bins] = weights.T
    np.testing.assert_array_equal(dense, basis)  # nothing outside the blocks is dropped
    stored = sum(weights.size for _, _, weights in bands)
    assert stored < 0.5 * basis.size

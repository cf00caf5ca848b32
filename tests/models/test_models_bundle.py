"""Model bundles: round trip, normalization inside prediction, features from raw audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from melflow.audio.io import fix_length
from melflow.config import PipelineConfig
from melflow.errors import ParameterError, StoreError
from melflow.features.spectral import compute_features
from melflow.models import (
    ModelMeta,
    build_model,
    load_bundle,
    predict_features,
    predict_waveforms,
    save_bundle,
)
from melflow.models.bundle import featurize_waveforms


def _bundle(cfg: PipelineConfig, tmp_path: Path, rng: np.random.Generator) -> tuple[str, ModelMeta]:
    torch.manual_seed(0)
    n_bins = cfg.features.n_mels
    model = build_model(cfg.train.model, n_classes=3, n_bins=n_bins)
    meta = ModelMeta(
        classes=["a", "b", "c"],
        model=cfg.train.model.model_dump(mode="json"),
        audio=cfg.audio.model_dump(mode="json"),
        features=cfg.features.model_dump(mode="json"),
        feature="logmel",
        mean=rng.normal(-40, 5, n_bins).tolist(),
        std=rng.uniform(5, 15, n_bins).tolist(),
        n_bins=n_bins,
        n_frames=32,
    )
    bundle_dir = str(tmp_path / "bundle")
    save_bundle(bundle_dir, model=model, meta=meta)
    return bundle_dir, meta


def test_round_trip_keeps_meta_and_outputs(
    small_cfg: PipelineConfig, tmp_path: Path, rng: np.random.Generator
) -> None:
    bundle_dir, meta = _bundle(small_cfg, tmp_path, rng)
    model, loaded = load_bundle(bundle_dir)
    assert loaded == meta
    assert not model.training
    x = rng.normal(-40, 10, (5, meta.n_bins, 32)).astype(np.float32)
    again, _ = load_bundle(bundle_dir)
    np.testing.assert_array_equal(
        predict_features(model, loaded, x), predict_features(again, meta, x)
    )


def test_predict_features_normalizes_then_softmaxes(
    small_cfg: PipelineConfig, tmp_path: Path, rng: np.random.Generator
) -> None:
    bundle_dir, meta = _bundle(small_cfg, tmp_path, rng)
    model, _ = load_bundle(bundle_dir)
    x = rng.normal(-40, 10, (300, meta.n_bins, 20)).astype(np.float32)  # > one inner batch
    probs = predict_features(model, meta, x)
    z = (x - np.array(meta.mean, np.float32)[:, None]) / np.array(meta.std, np.float32)[:, None]
    with torch.no_grad():
        expected = torch.softmax(model.body(torch.from_numpy(z).unsqueeze(1)), dim=1).numpy()
    assert probs.shape == (300, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)


def test_waveforms_go_through_the_training_features(
    small_cfg: PipelineConfig, tmp_path: Path, rng: np.random.Generator
) -> None:
    bundle_dir, meta = _bundle(small_cfg, tmp_path, rng)
    model, _ = load_bundle(bundle_dir)
    sr = small_cfg.audio.sr
    y = rng.normal(0, 0.1, (4, sr // 3)).astype(np.float32)  # shorter than duration_s: padded
    padded = fix_length(y, n_samples=round(sr * small_cfg.audio.duration_s))
    expected = compute_features(padded, sr=sr, cfg=small_cfg.features)["logmel"]
    np.testing.assert_array_equal(featurize_waveforms(meta, y, sr=sr), expected)
    np.testing.assert_array_equal(
        predict_waveforms(model, meta, y, sr=sr), predict_features(model, meta, expected)
    )
    # at twice the rate the clip is resampled to the training rate first
    assert featurize_waveforms(meta, np.repeat(y, 2, axis=1), sr=2 * sr).shape == expected.shape


def test_bad_inputs_raise(
    small_cfg: PipelineConfig, tmp_path: Path, rng: np.random.Generator
) -> None:
    bundle_dir, meta = _bundle(small_cfg, tmp_path, rng)
    model, _ = load_bundle(bundle_dir)
    with pytest.raises(ParameterError, match="expected features"):
        predict_features(model, meta, np.zeros((2, meta.n_bins + 1, 10), np.float32))
    with pytest.raises(ParameterError, match="waveforms"):
        predict_waveforms(model, meta, np.zeros(100, np.float32), sr=16000)
    with pytest.raises(StoreError, match="no model bundle"):
        load_bundle(str(tmp_path / "missing"))

"""The model's front end: normalisation and test-time crop averaging, one code path."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from melflow.config import ModelConfig
from melflow.errors import ParameterError
from melflow.models.bundle import ModelMeta, load_bundle, save_bundle
from melflow.models.cnn import build_model
from melflow.models.frontend import FrontEnd, build_classifier, crop_starts

CFG = ModelConfig(channels=(4, 8), hidden=0, pool=(1, 1), crop_frames=10, test_crops=3)


def _stats(n_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return -40 + 5 * torch.randn(n_bins, generator=gen), 5 + torch.rand(n_bins, generator=gen)


def test_front_end_normalises_per_bin_and_adds_the_channel_axis() -> None:
    mean, std = _stats(6)
    x = torch.randn(2, 6, 7) * 10 - 40
    z = FrontEnd(mean, std)(x)
    assert z.shape == (2, 1, 6, 7)
    torch.testing.assert_close(z[:, 0], (x - mean[:, None]) / std[:, None])
    with pytest.raises(ParameterError, match="mean and std"):
        FrontEnd(mean, std[:3])


def test_crop_starts_cover_the_input_evenly() -> None:
    assert crop_starts(20, crop_frames=10, n_crops=3) == [0, 5, 10]
    assert crop_starts(20, crop_frames=10, n_crops=1) == [5]
    assert crop_starts(8, crop_frames=10, n_crops=3) == [0]


def test_eval_mode_averages_the_logits_of_the_crops() -> None:
    torch.manual_seed(0)
    mean, std = _stats(6)
    model = build_classifier(CFG, n_classes=3, mean=mean, std=std).eval()
    x = torch.randn(4, 6, 20) * 10 - 40
    z = model.front(x)
    expected = torch.stack([model.body(z[..., s : s + 10]) for s in (0, 5, 10)]).mean(dim=0)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)
        short = torch.randn(4, 6, 10)
        torch.testing.assert_close(model(short), model.body(model.front(short)))
        model.train()  # in training the caller crops: the whole input goes through
        assert model.classify(z).shape == (4, 3)


def test_bundle_round_trip_keeps_the_statistics_in_the_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    mean, std = _stats(6)
    model = build_classifier(CFG, n_classes=3, mean=mean, std=std).eval()
    meta = ModelMeta(
        classes=["a", "b", "c"],
        model=CFG.model_dump(mode="json"),
        audio={},
        features={},
        feature="logmel",
        mean=[0.0] * 6,  # the weights' statistics win over these informational copies
        std=[1.0] * 6,
        n_bins=6,
        n_frames=20,
    )
    save_bundle(str(tmp_path / "b"), model=model, meta=meta)
    state = torch.load(io.BytesIO((tmp_path / "b" / "model.pt").read_bytes()), weights_only=True)
    assert "front.mean" in state
    loaded, _ = load_bundle(str(tmp_path / "b"))
    x = torch.randn(2, 6, 20)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_a_bundle_of_a_bare_network_gets_its_front_end_from_meta(tmp_path: Path) -> None:
    torch.manual_seed(0)
    mean, std = _stats(6)
    body = build_model(CFG, n_classes=3, n_bins=6).eval()
    meta = ModelMeta(
        classes=["a", "b", "c"],
        model=CFG.model_dump(mode="json"),
        audio={},
        features={},
        feature="logmel",
        mean=mean.tolist(),
        std=std.tolist(),
        n_bins=6,
        n_frames=10,
    )
    save_bundle(str(tmp_path / "old"), model=body, meta=meta)
    loaded, _ = load_bundle(str(tmp_path / "old"))
    x = np.random.default_rng(0).normal(-40, 10, (2, 6, 10)).astype(np.float32)
    z = (x - np.asarray(meta.mean, np.float32)[:, None]) / np.asarray(meta.std, np.float32)[:, None]
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(torch.from_numpy(x)),
            body(torch.from_numpy(z).unsqueeze(1)),
            rtol=1e-5,
            atol=1e-5,
        )

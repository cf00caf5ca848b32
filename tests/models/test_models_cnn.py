"""The model zoo: shapes for any input length, parameter counts, one step of learning."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from melflow.config import ModelConfig
from melflow.errors import ParameterError
from melflow.models import build_model, count_parameters

ARCHS = ("cnn", "vgg", "resnet")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("n_frames", [1, 16, 32, 87])
def test_forward_shape_for_any_length(arch: str, n_frames: int) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, channels=(8, 16, 32)), n_classes=6, n_bins=40).eval()
    logits = model(torch.randn(3, 1, 40, n_frames))
    assert logits.shape == (3, 6)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_count_is_reported_and_grows_with_width(arch: str) -> None:
    small = build_model(ModelConfig(arch=arch, channels=(8, 16)), n_classes=4, n_bins=32)
    wide = build_model(ModelConfig(arch=arch, channels=(16, 32)), n_classes=4, n_bins=32)
    n = count_parameters(small)
    assert n == sum(p.numel() for p in small.parameters()) > 0
    assert count_parameters(wide) > n


def test_families_differ_in_depth() -> None:
    cfg = {"channels": (8, 16), "hidden": 0, "pool": (1, 1)}
    counts = {
        a: count_parameters(build_model(ModelConfig(arch=a, **cfg), n_classes=2, n_bins=8))
        for a in ARCHS
    }
    # cnn: two 3x3 convs; vgg: four; resnet: a stem plus two blocks of two (and a projection).
    assert counts["cnn"] < counts["vgg"] < counts["resnet"]
    cnn_convs = 1 * 9 * 8 + 8 * 9 * 16
    assert counts["cnn"] == cnn_convs + 2 * (8 + 16) + 16 * 2 + 2


def test_kernel_size_five_and_pool_change_the_head() -> None:
    three = build_model(ModelConfig(channels=(8,), hidden=0, pool=(1, 1)), n_classes=3, n_bins=16)
    five = build_model(
        ModelConfig(channels=(8,), hidden=0, pool=(1, 1), kernel_size=5), n_classes=3, n_bins=16
    )
    pooled = build_model(ModelConfig(channels=(8,), hidden=0, pool=(4, 2)), n_classes=3, n_bins=16)
    assert count_parameters(five) - count_parameters(three) == 8 * (25 - 9)
    assert count_parameters(pooled) - count_parameters(three) == 3 * 8 * (8 - 1)


@pytest.mark.parametrize("arch", ARCHS)
def test_one_training_step_reduces_the_loss(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(arch=arch, channels=(8, 16), dropout=0.0), n_classes=3, n_bins=16
    )
    x = torch.randn(12, 1, 16, 20)
    y = torch.arange(12) % 3
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    before = functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    after = functional.cross_entropy(model(x), y)
    assert after.item() < before.item() - 1e-3


def test_invalid_sizes_are_parameter_errors() -> None:
    with pytest.raises(ParameterError, match="at least 2 classes"):
        build_model(ModelConfig(), n_classes=1, n_bins=32)
    with pytest.raises(ParameterError, match="n_bins"):
        build_model(ModelConfig(), n_classes=2, n_bins=0)

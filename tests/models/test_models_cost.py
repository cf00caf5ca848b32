"""Model cost: MACs counted by hooks equal hand-computed counts; latency is per item."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from melflow.config import ModelConfig
from melflow.errors import ParameterError
from melflow.models import build_model
from melflow.models.cost import count_macs, latency_ms, model_cost


def test_macs_of_single_layers_match_the_formula() -> None:
    conv = nn.Conv2d(4, 6, kernel_size=3, padding=1, groups=2)
    # 6 x 8 x 10 outputs, each a dot product over 4/2 channels x 3 x 3 taps.
    assert count_macs(conv, input_shape=(4, 8, 10)) == 6 * 8 * 10 * 2 * 9
    strided = nn.Conv2d(1, 2, kernel_size=(3, 5), stride=2, padding=(1, 2))
    assert count_macs(strided, input_shape=(1, 8, 10)) == 2 * 4 * 5 * 15
    assert count_macs(nn.Linear(10, 5), input_shape=(10,)) == 50
    assert count_macs(nn.Linear(10, 5), input_shape=(7, 10)) == 7 * 50


def test_macs_of_the_seed_cnn_by_hand() -> None:
    cfg = ModelConfig(arch="cnn", channels=(8, 16), hidden=32, pool=(4, 4))
    model = build_model(cfg, n_classes=6, n_bins=32)
    conv1 = 8 * 32 * 20 * (1 * 9)  # 32 bins x 20 frames, 1 -> 8 channels
    conv2 = 16 * 16 * 10 * (8 * 9)  # after 2x2 pooling
    head = 16 * 4 * 4 * 32 + 32 * 6
    assert count_macs(model, input_shape=(1, 32, 20)) == conv1 + conv2 + head


def test_counting_leaves_the_model_as_it_was() -> None:
    model = build_model(ModelConfig(arch="resnet", channels=(8, 16)), n_classes=3, n_bins=16)
    model.train()
    first = count_macs(model, input_shape=(1, 16, 12))
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
    assert count_macs(model, input_shape=(1, 16, 12)) == first
    # Twice the frames, twice the convolution work; the head after pooling stays the same.
    head = 16 * 4 * 4 * 128 + 128 * 3
    assert count_macs(model, input_shape=(1, 16, 24)) - head == 2 * (first - head)


def test_model_cost_reports_params_macs_and_latency_per_batch() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="vgg", channels=(4, 8)), n_classes=4, n_bins=16)
    cost = model_cost(model, input_shape=(1, 16, 16), repeats=3, batches=(1, 8))
    assert cost.params == sum(p.numel() for p in model.parameters())
    assert cost.macs == count_macs(model, input_shape=(1, 16, 16))
    assert set(cost.latency_ms) == {1, 8}
    assert all(v > 0 for v in cost.latency_ms.values())


@pytest.mark.parametrize(("batch_size", "repeats"), [(0, 3), (1, 0)])
def test_latency_rejects_empty_measurements(batch_size: int, repeats: int) -> None:
    with pytest.raises(ParameterError, match="positive"):
        latency_ms(nn.Linear(2, 2), input_shape=(2,), batch_size=batch_size, repeats=repeats)

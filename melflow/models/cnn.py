"""The model zoo: three CNN families over a spectrogram ``(batch, 1, n_bins, n_frames)``.

Every family ends in adaptive average pooling to ``ModelConfig.pool`` followed by a small
fully connected head, so one trained model accepts any number of frames. ``forward``
returns logits; probabilities come from :func:`torch.softmax` at prediction time, so
training can use the numerically stable ``cross_entropy`` on logits.

- ``cnn``: the seed's network. Per entry of ``channels``: ``convs_per_block`` x
  (conv -> ReLU -> BatchNorm), max pooling 2x2, spatial dropout.
- ``vgg``: deeper VGG-style stacks, conv -> BatchNorm -> ReLU, ``convs_per_block``
  convolutions (default 2) per block, max pooling; dropout only in the head.
- ``resnet``: a stem convolution and one stage per entry of ``channels`` of
  ``convs_per_block`` basic residual blocks (two convolutions each); stages after the
  first halve both axes with a strided convolution.
"""

from __future__ import annotations

import torch
from torch import nn

from melflow.config import ModelConfig
from melflow.errors import ParameterError

DEFAULT_CONVS_PER_BLOCK = {"cnn": 1, "vgg": 2, "resnet": 1}


def _conv(c_in: int, c_out: int, *, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)


def _pool() -> nn.MaxPool2d:
    # ceil_mode keeps an axis of length 1 at 1, so very short inputs never collapse to 0.
    return nn.MaxPool2d(2, ceil_mode=True)


def _plain_features(
    cfg: ModelConfig, n_convs: int, *, relu_before_norm: bool, block_dropout: bool
) -> nn.Sequential:
    """Blocks of ``n_convs`` convolutions, each followed by ReLU and BatchNorm (in the
    family's order), then 2x2 max pooling and, for the seed's CNN, spatial dropout."""
    layers: list[nn.Module] = []
    c_in = 1
    for c_out in cfg.channels:
        for _ in range(n_convs):
            act, norm = nn.ReLU(inplace=True), nn.BatchNorm2d(c_out)
            pair = (act, norm) if relu_before_norm else (norm, act)
            layers += [_conv(c_in, c_out, kernel_size=cfg.kernel_size), *pair]
            c_in = c_out
        layers.append(_pool())
        if block_dropout:
            layers.append(nn.Dropout2d(cfg.dropout))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two convolutions with a skip connection (a 1x1 projection when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, *, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(c_in, c_out, kernel_size=kernel_size, stride=stride),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            _conv(c_out, c_out, kernel_size=kernel_size),
            nn.BatchNorm2d(c_out),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                _conv(c_in, c_out, kernel_size=1, stride=stride), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def _resnet_features(cfg: ModelConfig, n_blocks: int) -> nn.Sequential:
    stem = cfg.channels[0]
    layers: list[nn.Module] = [
        _conv(1, stem, kernel_size=cfg.kernel_size),
        nn.BatchNorm2d(stem),
        nn.ReLU(inplace=True),
    ]
    c_in = stem
    for stage, c_out in enumerate(cfg.channels):
        for block in range(n_blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(c_in, c_out, kernel_size=cfg.kernel_size, stride=stride))
            c_in = c_out
    return nn.Sequential(*layers)


class SpectrogramClassifier(nn.Module):
    """Convolutional features -> adaptive average pooling -> fully connected head (logits)."""

    def __init__(self, features: nn.Sequential, *, cfg: ModelConfig, n_classes: int) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(cfg.pool)
        width = cfg.channels[-1] * cfg.pool[0] * cfg.pool[1]
        head: list[nn.Module] = [nn.Flatten(), nn.Dropout(cfg.dropout)]
        if cfg.hidden:
            head += [nn.Linear(width, cfg.hidden), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout)]
            width = cfg.hidden
        head.append(nn.Linear(width, n_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of shape ``(batch, 1, n_bins, n_frames)`` -> logits ``(batch, n_classes)``."""
        return self.head(self.pool(self.features(x)))


def build_model(cfg: ModelConfig, *, n_classes: int, n_bins: int) -> nn.Module:
    """Build the configured network for ``n_classes`` outputs.

    Parameters
    ----------
    cfg : ModelConfig
        Family (``arch``), widths, depth, kernel size, dropout, head.
    n_classes : int
        Number of output logits (at least 2).
    n_bins : int
        Frequency bins of the input; the network accepts any ``n_frames``.

    Returns
    -------
    torch.nn.Module
        Maps ``(batch, 1, n_bins, n_frames)`` float32 to logits ``(batch, n_classes)``.
    """
    if n_classes < 2:
        raise ParameterError(f"a classifier needs at least 2 classes, got {n_classes}")
    if n_bins < 1:
        raise ParameterError(f"n_bins must be positive, got {n_bins}")
    n_convs = cfg.convs_per_block or DEFAULT_CONVS_PER_BLOCK[cfg.arch]
    if cfg.arch == "resnet":
        features = _resnet_features(cfg, n_convs)
    else:  # the seed's CNN is conv-ReLU-BN with dropout per block; VGG is conv-BN-ReLU
        cnn = cfg.arch == "cnn"
        features = _plain_features(cfg, n_convs, relu_before_norm=cnn, block_dropout=cnn)
    return SpectrogramClassifier(features, cfg=cfg, n_classes=n_classes)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

"""The model's front end: the one place raw dB features become network inputs.

Training (:mod:`melflow.training.loop`) and serving (:mod:`melflow.models.bundle`) both
call :class:`AudioClassifier`, so normalisation and test-time crop averaging exist once and
cannot drift. The statistics are buffers of the module: they travel in the ``state_dict``
(plain tensors, loadable with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from melflow.config import ModelConfig
from melflow.errors import ParameterError
from melflow.models.cnn import build_model


class FrontEnd(nn.Module):
    """Raw dB ``(batch, n_bins, n_frames)`` -> normalised ``(batch, 1, n_bins, n_frames)``.

    Parameters
    ----------
    mean, std : Tensor, shape ``(n_bins,)``
        Per-bin statistics of the training features, in dB; applied as ``(x - mean) / std``.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        if mean.shape != std.shape or mean.ndim != 1:
            raise ParameterError(
                f"mean and std must both be (n_bins,), got {tuple(mean.shape)}, {tuple(std.shape)}"
            )
        self.register_buffer("mean", mean.detach().to(torch.float32).reshape(-1, 1).clone())
        self.register_buffer("std", std.detach().to(torch.float32).reshape(-1, 1).clone())

    def forward(self, x: Tensor) -> Tensor:
        return ((x - self.mean) / self.std).unsqueeze(1)


def crop_starts(n_frames: int, *, crop_frames: int, n_crops: int) -> list[int]:
    """``n_crops`` evenly spaced starts covering ``n_frames`` (one crop when it fits)."""
    if n_frames <= crop_frames:
        return [0]
    last = n_frames - crop_frames
    if n_crops == 1:
        return [last // 2]
    return sorted({round(i * last / (n_crops - 1)) for i in range(n_crops)})


class AudioClassifier(nn.Module):
    """Front end -> CNN body -> logits, with test-time crop averaging in eval mode.

    ``forward`` takes raw dB features ``(batch, n_bins, n_frames)`` and returns logits
    ``(batch, n_classes)``. With ``crop_frames`` set, the body was trained on crops of that
    many frames; in eval mode a longer input is cut into ``test_crops`` evenly spaced crops
    and their logits are averaged (in train mode the caller crops, see
    :func:`melflow.training.loop.random_crops`).
    """

    def __init__(
        self, *, front: FrontEnd, body: nn.Module, crop_frames: int | None, test_crops: int
    ) -> None:
        super().__init__()
        self.front = front
        self.body = body
        self.crop_frames = crop_frames
        self.test_crops = test_crops

    def classify(self, z: Tensor) -> Tensor:
        """Logits of normalised inputs ``z`` ``(batch, 1, n_bins, n_frames)``."""
        frames = self.crop_frames
        if self.training or frames is None or z.shape[-1] <= frames:
            return self.body(z)
        starts = crop_starts(z.shape[-1], crop_frames=frames, n_crops=self.test_crops)
        crops = torch.cat([z[..., s : s + frames] for s in starts])
        return self.body(crops).reshape(len(starts), z.shape[0], -1).mean(dim=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.front(x))


def build_classifier(
    cfg: ModelConfig, *, n_classes: int, mean: Tensor, std: Tensor
) -> AudioClassifier:
    """The configured network behind a front end with the given per-bin statistics.

    Parameters
    ----------
    cfg : ModelConfig
        Architecture (see :func:`melflow.models.cnn.build_model`), ``crop_frames`` and
        ``test_crops``.
    n_classes : int
        Number of output logits.
    mean, std : Tensor, shape ``(n_bins,)``
        Normalisation statistics in dB.
    """
    body = build_model(cfg, n_classes=n_classes, n_bins=int(mean.shape[0]))
    return AudioClassifier(
        front=FrontEnd(mean, std), body=body, crop_frames=cfg.crop_frames, test_crops=cfg.test_crops
    )

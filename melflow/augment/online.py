"""Online augmentation of training batches: SpecAugment masking and mixup on torch tensors.

Both transforms are pure (the input is never modified in place), act on a whole batch at
once, draw every random number from the ``torch.Generator`` passed in (so a seeded
generator gives the same batch every run), and keep the input's dtype and device.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from melflow.config import MixupConfig, SpecAugmentConfig
from melflow.errors import ParameterError


def _band_mask(
    *, size: int, width: int, n_masks: int, batch: int, generator: torch.Generator
) -> Tensor:
    """Boolean ``(batch, size)``: the union of ``n_masks`` bands per example.

    Each band's width is uniform in ``0 .. min(width, size)`` and its start uniform over the
    positions where it fits, as in Park et al. (2019).
    """
    width = min(width, size)
    positions = torch.arange(size, device=generator.device)
    masked = torch.zeros(batch, size, dtype=torch.bool, device=generator.device)
    for _ in range(n_masks):
        widths = torch.randint(
            0, width + 1, (batch, 1), generator=generator, device=generator.device
        )
        starts = (
            torch.rand(batch, 1, generator=generator, device=generator.device) * (size - widths + 1)
        ).floor()
        masked |= (positions >= starts) & (positions < starts + widths)
    return masked


def spec_augment(
    x: Tensor,
    *,
    freq_mask: int,
    time_mask: int,
    n_masks: int,
    generator: torch.Generator,
    fill: Literal["mean", "zero"] = "mean",
) -> Tensor:
    """SpecAugment frequency and time masking, independently per example.

    Each example gets ``n_masks`` frequency bands of width uniform in ``0 .. freq_mask``
    bins and ``n_masks`` time bands of width uniform in ``0 .. time_mask`` frames (widths
    are capped at the axis length); all channels of an example share its masks.

    Parameters
    ----------
    x : Tensor, shape ``(batch, channels, n_bins, n_frames)``
        Spectrogram batch (e.g. log-mel in dB).
    freq_mask, time_mask : int
        Largest band width in bins / frames; 0 disables that axis.
    n_masks : int
        Bands per axis per example; 0 returns ``x`` unchanged (as a copy).
    generator : torch.Generator
        Source of every random draw.
    fill : {"mean", "zero"}
        Masked cells become the example's mean over all its cells before masking
        (default: for dB features a zero would be a loud 0 dB band), or 0.

    Returns
    -------
    Tensor
        Same shape, dtype and device as ``x``.
    """
    if x.ndim != 4:
        raise ParameterError(
            f"x must be (batch, channels, n_bins, n_frames), got shape {tuple(x.shape)}"
        )
    if min(freq_mask, time_mask, n_masks) < 0:
        raise ParameterError(
            "freq_mask, time_mask and n_masks must be >= 0, "
            f"got {freq_mask}, {time_mask}, {n_masks}"
        )
    if fill not in ("mean", "zero"):
        raise ParameterError(f"fill must be 'mean' or 'zero', got {fill!r}")
    batch, _, n_bins, n_frames = x.shape
    freq = _band_mask(
        size=n_bins, width=freq_mask, n_masks=n_masks, batch=batch, generator=generator
    )
    time = _band_mask(
        size=n_frames, width=time_mask, n_masks=n_masks, batch=batch, generator=generator
    )
    masked = (freq[:, None, :, None] | time[:, None, None, :]).to(x.device)
    value = (
        x.mean(dim=(1, 2, 3), keepdim=True)
        if fill == "mean"
        else torch.zeros_like(x[:, :1, :1, :1])
    )
    return torch.where(masked, value, x)


def mixup(
    x: Tensor, y_onehot: Tensor, *, alpha: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Mix each example with a randomly chosen partner from the same batch.

    For example ``i`` with partner ``j = perm[i]`` and weight ``lam_i ~ Beta(alpha, alpha)``
    (one weight per example): ``x_i' = lam_i x_i + (1 - lam_i) x_j`` and likewise for the
    targets, so target rows that sum to 1 (one-hot or label-smoothed) still sum to 1.

    Parameters
    ----------
    x : Tensor, shape ``(batch, ...)``
        Inputs, e.g. ``(batch, 1, n_mels, n_frames)``.
    y_onehot : Tensor, shape ``(batch, n_classes)``
        Target distributions (one-hot rows).
    alpha : float
        Beta concentration, > 0; small values keep most examples close to unmixed.
    generator : torch.Generator
        Source of the permutation and (via a derived NumPy seed) the Beta draws, since
        ``torch.distributions`` cannot take a generator.

    Returns
    -------
    (Tensor, Tensor)
        Mixed inputs (shape and dtype of ``x``) and soft targets ``(batch, n_classes)``.
    """
    if alpha <= 0:
        raise ParameterError(f"alpha must be > 0, got {alpha}")
    if y_onehot.ndim != 2 or y_onehot.shape[0] != x.shape[0]:
        raise ParameterError(
            f"y_onehot must be (batch, n_classes) with batch={x.shape[0]}, "
            f"got {tuple(y_onehot.shape)}"
        )
    batch = x.shape[0]
    perm = torch.randperm(batch, generator=generator, device=generator.device).to(x.device)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    lam_np = np.random.default_rng(seed).beta(alpha, alpha, size=batch)
    lam = torch.as_tensor(lam_np, dtype=x.dtype, device=x.device)
    lam_x = lam.reshape(batch, *([1] * (x.ndim - 1)))
    lam_y = lam.to(y_onehot.dtype).reshape(batch, 1)
    return lam_x * x + (1 - lam_x) * x[perm], lam_y * y_onehot + (1 - lam_y) * y_onehot[perm]


def augment_batch(
    x: Tensor,
    y_onehot: Tensor,
    *,
    spec: SpecAugmentConfig,
    mix: MixupConfig,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Apply the enabled online transforms (SpecAugment, then mixup) to one training batch.

    Shapes as in :func:`spec_augment` and :func:`mixup`; disabled transforms are skipped
    without consuming random numbers.
    """
    if spec.enabled:
        x = spec_augment(
            x,
            freq_mask=spec.freq_mask,
            time_mask=spec.time_mask,
            n_masks=spec.n_masks,
            generator=generator,
        )
    if mix.enabled:
        x, y_onehot = mixup(x, y_onehot, alpha=mix.alpha, generator=generator)
    return x, y_onehot

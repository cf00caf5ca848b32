"""SpecAugment and mixup on torch batches: mask widths, fill values, mixing weights, seeding."""

from __future__ import annotations

import pytest
import torch

from melflow.augment.online import augment_batch, mixup, spec_augment
from melflow.config import MixupConfig, SpecAugmentConfig
from melflow.errors import ParameterError


def _batch(
    batch: int = 256, channels: int = 2, n_bins: int = 32, n_frames: int = 40
) -> torch.Tensor:
    # Continuous random values: a cell equals the fill value only when it was masked.
    return torch.randn(
        batch, channels, n_bins, n_frames, generator=torch.Generator().manual_seed(7)
    )


def _masked(x: torch.Tensor, out: torch.Tensor, *, axis: str) -> torch.Tensor:
    """``(batch, size)``: the bins (``axis='freq'``) or frames masked across the whole example.

    Also checks that a masked cell never occurs outside such a full band.
    """
    changed = out != x
    across = 3 if axis == "freq" else 2
    masked = changed.all(dim=across).all(dim=1)
    assert torch.equal(changed.any(dim=across).any(dim=1), masked)
    return masked


def _band_width(row: torch.Tensor) -> int:
    """Width of the single contiguous True run of a 1-D boolean tensor (0 when none)."""
    idx = torch.nonzero(row).flatten()
    if len(idx) == 0:
        return 0
    assert int(idx[-1] - idx[0]) + 1 == len(idx), "a single mask must be one contiguous band"
    return len(idx)


@pytest.mark.parametrize(("axis", "width"), [("freq", 6), ("time", 9)])
def test_spec_augment_masks_have_the_configured_widths(axis: str, width: int) -> None:
    x = _batch()
    widths = {
        "freq_mask": width if axis == "freq" else 0,
        "time_mask": width if axis == "time" else 0,
    }
    out = spec_augment(x, **widths, n_masks=1, generator=torch.Generator().manual_seed(0))
    changed = out != x
    # Masked cells take the example's mean, in every channel.
    assert torch.allclose(out[changed], x.mean(dim=(1, 2, 3), keepdim=True).expand_as(x)[changed])
    seen = {_band_width(row) for row in _masked(x, out, axis=axis)}
    assert seen == set(range(width + 1)), "widths are uniform over 0..width, never wider"


def test_spec_augment_zero_fill_multiple_masks_and_width_cap() -> None:
    x = _batch(batch=64, n_bins=8)
    # freq_mask above n_bins is capped: some example has all 8 bins masked. Three time
    # bands of at most 3 frames cover more than one band's width but never over 9 frames.
    for axis, widths, lowest, highest in (("freq", (50, 0), 8, 8), ("time", (0, 3), 4, 9)):
        out = spec_augment(
            x,
            freq_mask=widths[0],
            time_mask=widths[1],
            n_masks=3,
            generator=torch.Generator().manual_seed(2),
            fill="zero",
        )
        assert torch.all(out[out != x] == 0)
        per_example = _masked(x, out, axis=axis).sum(dim=1)
        assert lowest <= int(per_example.max()) <= highest


def test_spec_augment_is_seeded_and_pure() -> None:
    x = _batch(batch=8)
    before = x.clone()
    a = spec_augment(
        x, freq_mask=5, time_mask=5, n_masks=2, generator=torch.Generator().manual_seed(3)
    )
    b = spec_augment(
        x, freq_mask=5, time_mask=5, n_masks=2, generator=torch.Generator().manual_seed(3)
    )
    c = spec_augment(
        x, freq_mask=5, time_mask=5, n_masks=2, generator=torch.Generator().manual_seed(4)
    )
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(x, before)
    none = spec_augment(x, freq_mask=5, time_mask=5, n_masks=0, generator=torch.Generator())
    assert torch.equal(none, x)


def test_spec_augment_rejects_bad_shapes_and_widths() -> None:
    g = torch.Generator()
    with pytest.raises(ParameterError, match="batch, channels"):
        spec_augment(torch.zeros(2, 8, 8), freq_mask=1, time_mask=1, n_masks=1, generator=g)
    with pytest.raises(ParameterError, match=">= 0"):
        spec_augment(torch.zeros(2, 1, 8, 8), freq_mask=-1, time_mask=1, n_masks=1, generator=g)


def test_mixup_soft_targets_sum_to_one_and_match_inputs() -> None:
    n = 10
    x = _batch(batch=n, channels=1)
    y = torch.eye(n)  # one class per example, so each row reveals its weight and partner
    xm, ym = mixup(x, y, alpha=0.4, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(ym.sum(dim=1), torch.ones(n), atol=1e-6)
    assert torch.all(ym >= 0)
    for i in range(n):
        lam = float(ym[i, i])
        partners = [j for j in range(n) if j != i and ym[i, j] > 0]
        expected = x[i] if not partners else lam * x[i] + (1 - lam) * x[partners[0]]
        assert len(partners) <= 1
        assert torch.allclose(xm[i], expected, atol=1e-5)
    assert (ym.diagonal() < 0.999).sum() >= n // 2, "alpha 0.4 actually mixes most examples"


def test_mixup_is_seeded() -> None:
    x, y = _batch(batch=16), torch.eye(4)[torch.arange(16) % 4]
    a = mixup(x, y, alpha=1.0, generator=torch.Generator().manual_seed(9))
    b = mixup(x, y, alpha=1.0, generator=torch.Generator().manual_seed(9))
    c = mixup(x, y, alpha=1.0, generator=torch.Generator().manual_seed(10))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    with pytest.raises(ParameterError, match="y_onehot"):
        mixup(x, y[:3], alpha=1.0, generator=torch.Generator())


def test_augment_batch_applies_only_enabled_transforms() -> None:
    x, y = _batch(batch=8), torch.eye(8)
    same = augment_batch(
        x,
        y,
        spec=SpecAugmentConfig(),
        mix=MixupConfig(),
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(same[0], x) and torch.equal(same[1], y)
    spec = SpecAugmentConfig(enabled=True, freq_mask=4, time_mask=4, n_masks=1)
    xs, ys = augment_batch(
        x,
        y,
        spec=spec,
        mix=MixupConfig(enabled=True, alpha=0.5),
        generator=torch.Generator().manual_seed(0),
    )
    assert not torch.equal(xs, x)
    assert torch.allclose(ys.sum(dim=1), torch.ones(8), atol=1e-6)

"""The shape of each feature kind for a clip length: planning needs it, with no scipy."""

from __future__ import annotations

from melflow.config import FeatureKind, FeaturesConfig


def n_frames(n_samples: int, *, hop_length: int) -> int:
    """Number of centred STFT frames for a signal of ``n_samples``."""
    return 1 + n_samples // hop_length


def feature_shapes(*, n_samples: int, cfg: FeaturesConfig) -> dict[FeatureKind, tuple[int, int]]:
    """Per-clip ``(n_bins, n_frames)`` of each configured feature kind."""
    frames = n_frames(n_samples, hop_length=cfg.hop_length)
    bins: dict[FeatureKind, int] = {
        "logmel": cfg.n_mels,
        "mfcc": cfg.n_mfcc,
        "stft": 1 + cfg.n_fft // 2,
    }
    return {kind: (bins[kind], frames) for kind in cfg.kinds}

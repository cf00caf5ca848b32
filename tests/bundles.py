"""A tiny, untrained model bundle for tests of prediction and the registry."""

from __future__ import annotations

import torch
from torch import nn

from melflow.config import PipelineConfig
from melflow.models import ModelMeta, save_bundle
from melflow.models.frontend import build_classifier


def tiny_bundle(
    cfg: PipelineConfig, bundle_dir: str, *, classes: list[str], seed: int = 0
) -> tuple[nn.Module, ModelMeta]:
    """Save a seeded, randomly initialised ``cfg.train.model`` for ``classes`` into ``bundle_dir``.

    Features are normalized with a fixed mean of -40 dB and std of 20 dB per bin.
    """
    torch.manual_seed(seed)
    n_bins = cfg.features.n_mels
    model = build_classifier(
        cfg.train.model,
        n_classes=len(classes),
        mean=torch.full((n_bins,), -40.0),
        std=torch.full((n_bins,), 20.0),
    ).eval()
    meta = ModelMeta(
        classes=classes,
        model=cfg.train.model.model_dump(mode="json"),
        audio=cfg.audio.model_dump(mode="json"),
        features=cfg.features.model_dump(mode="json"),
        feature="logmel",
        mean=[-40.0] * n_bins,
        std=[20.0] * n_bins,
        n_bins=n_bins,
        n_frames=32,
    )
    save_bundle(bundle_dir, model=model, meta=meta)
    return model, meta

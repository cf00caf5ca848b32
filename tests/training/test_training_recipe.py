"""The training recipe: device choice, LR warm-up and schedule, random crops, EMA, and
parity of the scores seen in training with the served bundle's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_store import synthetic

from melflow.config import PipelineConfig, TrainConfig
from melflow.errors import ConfigError
from melflow.evaluation.metrics import classification_report
from melflow.features.extract import feature_store_url
from melflow.features.store import RowStore
from melflow.models import load_bundle, predict_features
from melflow.training.dataset import select_split
from melflow.training.loop import lr_factor, random_crops, resolve_device, train_model

FAST = (
    "train.model.channels=[8,16]",
    "train.model.hidden=0",
    "train.model.pool=[4,1]",
    "train.batch_size=16",
    "train.patience=0",
    "train.num_threads=1",
)
no_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def test_auto_picks_cuda_only_when_present_and_cpu_always_works() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_a_missing_cuda_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"train.device='cuda'.*use train.device=auto or cpu"):
        resolve_device("cuda")


def test_warm_up_is_linear_then_cosine_decays_to_zero() -> None:
    tc = TrainConfig(epochs=10, warmup_epochs=2, scheduler="cosine")
    assert lr_factor(tc, 0.0, step=0.25) == pytest.approx(0.125)  # first step: not 0
    assert lr_factor(tc, 1.0, step=0.25) == pytest.approx(0.625)
    assert lr_factor(tc, 2.0) == pytest.approx(1.0)
    assert lr_factor(tc, 6.0) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_factor(tc, 10.0) == pytest.approx(0.0, abs=1e-12)
    step = TrainConfig(epochs=10, scheduler="step", step_size=3, gamma=0.5)
    assert [lr_factor(step, e) for e in (0, 2.9, 3, 6.5)] == [1, 1, 0.5, 0.25]
    with pytest.raises(ValueError, match=r"warmup_epochs=10 must be below train\.epochs=10"):
        TrainConfig(epochs=10, warmup_epochs=10)


def test_random_crops_are_contiguous_windows_of_each_example() -> None:
    x = torch.arange(3 * 2 * 20, dtype=torch.float32).reshape(3, 2, 20)
    crops = random_crops(x, frames=8, generator=torch.Generator().manual_seed(0))
    assert crops.shape == (3, 2, 8)
    for example, crop in zip(x, crops, strict=True):
        start = int(crop[0, 0] - example[0, 0])
        assert 0 <= start <= 12
        torch.testing.assert_close(crop, example[:, start : start + 8])
    assert random_crops(x, frames=30, generator=torch.Generator()) is x


def test_the_bundle_scores_val_exactly_as_training_did(
    small_cfg: PipelineConfig, tmp_path: Path
) -> None:
    # crops, test-time crop averaging, EMA, mixup and warm-up on: the bundle's
    # predictions through the serving path give the best epoch's val scores.
    cfg, manifest = synthetic(
        small_cfg,
        *FAST,
        "train.epochs=6",
        "train.batch_size=8",
        "train.lr=0.003",
        "train.warmup_epochs=1",
        "train.ema_decay=0.9",
        "train.model.crop_frames=12",
        "train.model.test_crops=3",
        "train.mixup.enabled=true",
        per_class=15,
    )
    result = train_model(cfg=cfg, manifest=manifest, run_dir=str(tmp_path / "run"))
    best = result.history[result.best_epoch - 1]
    model, meta = load_bundle(result.bundle_dir)
    val = select_split(
        RowStore(feature_store_url(cfg)),
        manifest=manifest,
        split="val",
        feature="logmel",
        classes=meta.classes,
    )
    x = np.concatenate([val.read_chunk(int(c))[0] for c in val.chunk_ids()])
    assert x.shape[-1] > 12  # so serving really averages crops
    pred = predict_features(model, meta, x).argmax(axis=1)
    report = classification_report(y_true=val.labels, y_pred=pred, classes=meta.classes)
    assert report["accuracy"] == pytest.approx(best["val_accuracy"])
    assert report["macro_f1"] == pytest.approx(best["val_macro_f1"])
    assert best["val_accuracy"] >= 0.5  # 4 easy classes: chance is 0.25


@no_cuda
def test_training_on_cuda_with_mixed_precision(small_cfg: PipelineConfig, tmp_path: Path) -> None:
    cfg, manifest = synthetic(small_cfg, *FAST, "train.epochs=3", "train.device=cuda")
    result = train_model(cfg=cfg, manifest=manifest, run_dir=str(tmp_path / "run"))
    assert result.history[-1]["val_accuracy"] >= 0.75

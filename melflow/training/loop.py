"""The training loop: seeded, checkpointed every epoch, resumable to the same final weights.

``run_dir`` (chosen by the caller, content-addressed) holds::

    checkpoints/last.pt   model, optimizer, scheduler and RNG states, history, best weights
    bundle/               the best epoch's model bundle (see :mod:`melflow.models.bundle`)
                          plus ``history.json``

A run killed at any point restarts from the last completed epoch. Data order depends
only on ``(seed, epoch)`` and the global and augmentation RNG states are restored from
the checkpoint, so a resumed run ends with exactly the weights and history of an
uninterrupted one (CPU, same ``num_threads``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional

from melflow import storage
from melflow.augment.online import augment_batch
from melflow.config import PipelineConfig, TrainConfig
from melflow.digest import digest_of
from melflow.errors import StoreError
from melflow.evaluation.metrics import classification_report
from melflow.features.extract import feature_store_url
from melflow.features.store import RowStore
from melflow.models.bundle import HISTORY, ModelMeta, save_bundle
from melflow.models.cnn import build_model
from melflow.training.dataset import (
    ChunkBatches,
    Selection,
    class_names,
    feature_stats,
    select_augmented,
    select_split,
)

log = logging.getLogger(__name__)

TRAIN_CODE_VERSION = "1"
CHECKPOINT = "last.pt"
EVAL_BATCH = 256


@dataclass(frozen=True)
class TrainResult:
    """Where the trained bundle is and how training went.

    ``history`` has one dict per epoch: ``epoch`` (1-based), ``train_loss``, ``val_loss``,
    ``val_accuracy``, ``val_macro_f1`` (``None`` without a validation split) and ``lr``.
    """

    bundle_dir: str
    history: list[dict[str, Any]]
    best_epoch: int
    classes: list[str]
    epochs_run: int


@dataclass
class _Data:
    classes: list[str]
    train: ChunkBatches
    val: ChunkBatches
    stats_source: Selection
    train_labels: np.ndarray
    n_bins: int
    n_frames: int


def _load_data(
    cfg: PipelineConfig, manifest: pd.DataFrame, augmented_store_url: str | None
) -> _Data:
    tc = cfg.train
    store = RowStore(feature_store_url(cfg), storage_options=cfg.paths.storage_options)
    if not store.exists():
        raise StoreError(f"no feature store at {store.url}; run extraction first")
    classes = class_names(manifest)
    train, val = (
        select_split(store, manifest=manifest, split=split, feature=tc.feature, classes=classes)
        for split in ("train", "val")
    )
    selections = [train]
    if augmented_store_url is not None and tc.use_augmented:
        augmented = RowStore(augmented_store_url, storage_options=cfg.paths.storage_options)
        if not augmented.exists():
            log.warning("no augmented store at %s; training on clean features only", augmented.url)
        else:
            selections.append(
                select_augmented(augmented, manifest=manifest, feature=tc.feature, classes=classes)
            )
    n_bins, n_frames = train.row_shape()
    return _Data(
        classes=classes,
        train=ChunkBatches(
            selections, batch_size=tc.batch_size, window_chunks=tc.window_chunks, seed=tc.seed
        ),
        val=ChunkBatches(
            [val], batch_size=EVAL_BATCH, window_chunks=tc.window_chunks, shuffle=False
        ),
        stats_source=train,
        train_labels=np.concatenate([s.labels for s in selections]),
        n_bins=n_bins,
        n_frames=n_frames,
    )


def _optimizer(tc: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if tc.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=tc.lr,
            momentum=tc.momentum,
            weight_decay=tc.weight_decay,
            nesterov=tc.momentum > 0,
        )
    if tc.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    return torch.optim.Adam(params, lr=tc.lr, weight_decay=tc.weight_decay)


def _scheduler(tc: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    if tc.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=tc.epochs)
    if tc.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=tc.step_size, gamma=tc.gamma)
    if tc.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=tc.gamma, patience=tc.lr_patience
        )
    return None


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights ``n / (n_classes * count)`` (1 for the balanced case)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.as_tensor(weights, dtype=torch.float32)


class _Normalizer:
    """Raw dB ``(batch, n_bins, n_frames)`` -> normalized ``(batch, 1, n_bins, n_frames)``."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean = mean.to(torch.float32)[:, None]
        self.std = std.to(torch.float32)[:, None]

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        return ((torch.from_numpy(x) - self.mean) / self.std).unsqueeze(1)


def _load_init_state(model: nn.Module, init_state: dict[str, Any]) -> None:
    """Warm start: copy every tensor whose name and shape match (a new head stays fresh)."""
    own = model.state_dict()
    usable = {
        k: v for k, v in init_state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)
    }
    if not usable:
        raise StoreError("init_state shares no tensor of matching shape with the configured model")
    skipped = sorted(set(own) - set(usable))
    if skipped:
        log.info("warm start: %d tensors re-initialised (%s ...)", len(skipped), skipped[:3])
    model.load_state_dict(usable, strict=False)


def _evaluate(
    model: nn.Module, batches: ChunkBatches, normalize: _Normalizer, classes: list[str]
) -> dict[str, float | None]:
    if not batches.n_rows:
        return {"val_loss": None, "val_accuracy": None, "val_macro_f1": None}
    model.eval()
    total_loss, truth, pred = 0.0, [], []
    with torch.inference_mode():
        for x, y in batches.epoch(0):
            logits = model(normalize(x))
            target = torch.from_numpy(y)
            total_loss += float(functional.cross_entropy(logits, target, reduction="sum"))
            truth.append(y)
            pred.append(logits.argmax(dim=1).numpy())
    report = classification_report(
        y_true=np.concatenate(truth), y_pred=np.concatenate(pred), classes=classes
    )
    return {
        "val_loss": total_loss / batches.n_rows,
        "val_accuracy": report["accuracy"],
        "val_macro_f1": report["macro_f1"],
    }


def _step_reporter(
    on_step: Callable[[dict[str, Any]], None], epoch: int, steps: int
) -> Callable[[int, float], None]:
    return lambda step, loss: on_step(
        {"epoch": epoch + 1, "step": step, "steps": steps, "loss": loss}
    )


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    normalize: _Normalizer,
    tc: TrainConfig,
    n_classes: int,
    weight: torch.Tensor | None,
    generator: torch.Generator,
    on_step: Callable[[int, float], None] | None,
) -> float:
    """One pass over ``batches`` (with online augmentation if enabled); mean training loss."""
    model.train()
    total, seen = 0.0, 0
    for step, (x, y) in enumerate(batches, start=1):
        inputs, target = normalize(x), torch.from_numpy(y)
        if tc.spec_augment.enabled or tc.mixup.enabled:
            onehot = functional.one_hot(target, n_classes).to(torch.float32)
            inputs, soft = augment_batch(
                inputs, onehot, spec=tc.spec_augment, mix=tc.mixup, generator=generator
            )
            if tc.mixup.enabled:
                target = soft
        loss = functional.cross_entropy(
            model(inputs), target, weight=weight, label_smoothing=tc.label_smoothing
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        seen += len(y)
        if on_step is not None:
            on_step(step, loss.item())
    return total / max(seen, 1)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fingerprint(cfg: PipelineConfig, data: _Data, init_state: dict[str, Any] | None) -> str:
    return digest_of(
        "train",
        TRAIN_CODE_VERSION,
        cfg.train,
        cfg.audio,
        cfg.features,
        data.classes,
        data.train.n_rows,
        data.val.n_rows,
        init_state is not None,
    )


def _write_bundle(
    bundle_dir: str,
    *,
    model: nn.Module,
    cfg: PipelineConfig,
    data: _Data,
    mean: torch.Tensor,
    std: torch.Tensor,
    history: list[dict[str, Any]],
) -> None:
    meta = ModelMeta(
        classes=data.classes,
        model=cfg.train.model.model_dump(mode="json"),
        audio=cfg.audio.model_dump(mode="json"),
        features=cfg.features.model_dump(mode="json"),
        feature=cfg.train.feature,
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
        n_bins=data.n_bins,
        n_frames=data.n_frames,
    )
    save_bundle(bundle_dir, model=model, meta=meta)
    history_json = json.dumps(history, indent=2).encode()
    storage.write_bytes_atomic(storage.join(bundle_dir, HISTORY), history_json)


def train_model(
    *,
    cfg: PipelineConfig,
    manifest: pd.DataFrame,
    run_dir: str,
    augmented_store_url: str | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    init_state: dict[str, Any] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``cfg.train.model`` on the manifest's train split, early-stopping on val macro-F1.

    Parameters
    ----------
    cfg : PipelineConfig
        ``train`` drives optimisation; ``audio``, ``features`` and ``paths`` locate the
        clean feature store (which must hold every usable train/val clip).
    manifest : DataFrame
        Splits and labels; classes are the sorted labels of the train split.
    run_dir : str
        Local folder owned by this run; a checkpoint found there is resumed.
    augmented_store_url : str, optional
        A store of augmented train variants, used when ``cfg.train.use_augmented``.
    on_epoch : callable, optional
        Called after each epoch with that epoch's history entry plus ``epochs`` (planned).
    init_state : dict, optional
        A ``state_dict`` to start from (e.g. the champion's); tensors of another shape
        (a different number of classes) are left freshly initialised.
    on_step : callable, optional
        Called after each optimizer step with ``epoch``, ``step``, ``steps`` and ``loss``.

    Returns
    -------
    TrainResult
        ``bundle_dir`` holds the weights of the best epoch (by val macro-F1; the last
        epoch when there is no validation split).
    """
    tc = cfg.train
    torch.set_num_threads(tc.num_threads)
    torch.manual_seed(tc.seed)
    data = _load_data(cfg, manifest, augmented_store_url)
    ckpt_path = Path(run_dir, "checkpoints", CHECKPOINT)
    fingerprint = _fingerprint(cfg, data, init_state)
    ckpt: dict[str, Any] | None = None
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt["fingerprint"] != fingerprint:
            raise StoreError(
                f"checkpoint {ckpt_path} belongs to another training setup; remove {run_dir}"
            )

    if ckpt is not None:
        mean, std = ckpt["mean"], ckpt["std"]
    else:
        mean_np, std_np = feature_stats(data.stats_source)
        mean, std = torch.from_numpy(mean_np), torch.from_numpy(std_np)
    normalize = _Normalizer(mean, std)
    n_classes = len(data.classes)
    model = build_model(tc.model, n_classes=n_classes, n_bins=data.n_bins)
    if init_state is not None and ckpt is None:
        _load_init_state(model, init_state)
    optimizer = _optimizer(tc, model)
    scheduler = _scheduler(tc, optimizer)
    weight = class_weights(data.train_labels, n_classes) if tc.class_weights else None
    generator = torch.Generator().manual_seed(tc.seed)

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {
        "epoch": 0,
        "score": -math.inf,
        "state": copy.deepcopy(model.state_dict()),
    }
    bad_epochs, start, done = 0, 0, False
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["torch_rng"])
        generator.set_state(ckpt["generator_rng"])
        history, best, bad_epochs = ckpt["history"], ckpt["best"], ckpt["bad_epochs"]
        start, done = ckpt["epoch"], ckpt["done"]
        log.info("resuming %s after epoch %d", run_dir, start)

    for epoch in range(start, start if done else tc.epochs):
        lr = float(optimizer.param_groups[0]["lr"])
        train_loss = _train_epoch(
            model,
            optimizer,
            data.train.epoch(epoch),
            normalize=normalize,
            tc=tc,
            n_classes=n_classes,
            weight=weight,
            generator=generator,
            on_step=None if on_step is None else _step_reporter(on_step, epoch, len(data.train)),
        )
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            **_evaluate(model, data.val, normalize, data.classes),
            "lr": lr,
        }
        history.append(record)
        f1 = record["val_macro_f1"]
        score = f1 if f1 is not None else -record["train_loss"]
        if score > best["score"]:
            best = {"epoch": epoch + 1, "score": score, "state": copy.deepcopy(model.state_dict())}
            bad_epochs = 0
        else:
            bad_epochs += 1
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(score)
        elif scheduler is not None:
            scheduler.step()
        done = epoch + 1 == tc.epochs or (tc.patience > 0 and bad_epochs >= tc.patience)
        _save_checkpoint(
            ckpt_path,
            {
                "fingerprint": fingerprint,
                "epoch": epoch + 1,
                "done": done,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "torch_rng": torch.get_rng_state(),
                "generator_rng": generator.get_state(),
                "history": history,
                "best": best,
                "bad_epochs": bad_epochs,
                "mean": mean,
                "std": std,
            },
        )
        if on_epoch is not None:
            on_epoch({**record, "epochs": tc.epochs})
        if done:
            break

    model.load_state_dict(best["state"])
    bundle_dir = str(Path(run_dir, "bundle"))
    _write_bundle(bundle_dir, model=model, cfg=cfg, data=data, mean=mean, std=std, history=history)
    return TrainResult(
        bundle_dir=bundle_dir,
        history=history,
        best_epoch=int(best["epoch"]),
        classes=data.classes,
        epochs_run=len(history),
    )

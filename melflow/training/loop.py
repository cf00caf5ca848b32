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
from melflow.errors import ConfigError, StoreError
from melflow.evaluation.metrics import classification_report
from melflow.features.extract import feature_store_url
from melflow.features.store import RowStore
from melflow.models.bundle import HISTORY, ModelMeta, save_bundle
from melflow.models.frontend import AudioClassifier, build_classifier
from melflow.training.dataset import (
    ChunkBatches,
    Selection,
    class_names,
    feature_stats,
    select_augmented,
    select_split,
)
from melflow.training.result import TRAIN_CODE_VERSION, TrainResult

log = logging.getLogger(__name__)

CHECKPOINT = "last.pt"
EVAL_BATCH = 256


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


def lr_factor(tc: TrainConfig, epoch: float, *, step: float = 0.0) -> float:
    """LR multiplier of the step that starts at fractional ``epoch`` (``step`` epochs long).

    A linear warm-up over ``warmup_epochs`` (reaching ``1`` as the last warm-up step
    ends, so no step runs at LR 0), then ``cosine`` (half a cosine period down to 0
    over the remaining epochs), ``step`` (times ``gamma`` every ``step_size`` epochs) or a
    constant; ``plateau`` is driven by validation scores instead (see :func:`_scheduler`).
    """
    if epoch < tc.warmup_epochs:
        return min(1.0, (epoch + step) / tc.warmup_epochs)
    if tc.scheduler == "cosine":
        progress = (epoch - tc.warmup_epochs) / (tc.epochs - tc.warmup_epochs)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if tc.scheduler == "step":
        return float(tc.gamma ** (int(epoch) // tc.step_size))
    return 1.0


def _scheduler(tc: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    if tc.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=tc.gamma, patience=tc.lr_patience
        )
    return None


def _set_lr(tc: TrainConfig, optimizer: torch.optim.Optimizer, epoch: float, step: float) -> float:
    """Set (and return) the LR of the step starting at fractional ``epoch``."""
    if not (tc.scheduler == "plateau" and epoch >= tc.warmup_epochs):
        # after warm-up, ReduceLROnPlateau owns the LR of the plateau schedule
        for group in optimizer.param_groups:
            group["lr"] = tc.lr * lr_factor(tc, epoch, step=step)
    return float(optimizer.param_groups[0]["lr"])


def resolve_device(setting: str) -> torch.device:
    """The device of ``train.device``: ``auto`` is CUDA when available, else the CPU.

    Raises :class:`~melflow.errors.ConfigError` when ``cuda`` or ``mps`` is asked for and
    this machine's torch cannot use it.
    """
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if not available[setting]:
        raise ConfigError(
            f"train.device={setting!r} but this torch build sees no {setting.upper()} device; "
            "use train.device=auto or cpu"
        )
    return torch.device(setting)


def random_crops(x: torch.Tensor, *, frames: int, generator: torch.Generator) -> torch.Tensor:
    """One random crop of ``frames`` frames per example of ``x`` ``(batch, n_bins, n_frames)``.

    Starts are uniform over the positions where the crop fits; an input no longer than
    ``frames`` is returned as is.
    """
    n_frames = x.shape[-1]
    if n_frames <= frames:
        return x
    starts = torch.randint(0, n_frames - frames + 1, (x.shape[0], 1), generator=generator)
    index = (starts + torch.arange(frames)).to(x.device)
    return x.gather(-1, index[:, None, :].expand(-1, x.shape[1], -1))


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights ``n / (n_classes * count)`` (1 for the balanced case)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.as_tensor(weights, dtype=torch.float32)


@dataclass(frozen=True)
class _Device:
    """Where tensors go, and whether float16 autocast with gradient scaling is on."""

    device: torch.device
    amp: bool

    def tensor(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        if self.device.type == "cuda":  # pinned pages let the copy overlap compute
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def autocast(self) -> Any:
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)


class _Ema:
    """Exponential moving average of a model's weights and float buffers.

    BatchNorm statistics are averaged like the weights, so they match the averaged
    weights; integer buffers (batch counters) are copied. The decay ramps up as
    ``min(decay, (1 + t) / (10 + t))`` at step ``t`` (as in TensorFlow's EMA), so the
    random initial weights fade out quickly in short trainings.
    """

    def __init__(self, model: AudioClassifier, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, *, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        mine, theirs = self.model.state_dict(), model.state_dict()
        for name, kept in mine.items():
            if kept.is_floating_point():
                kept.lerp_(theirs[name], 1.0 - decay)
            else:
                kept.copy_(theirs[name])


def _load_init_state(model: nn.Module, init_state: dict[str, Any]) -> None:
    """Warm start: copy every tensor whose name and shape match (a new head stays fresh).

    The front end keeps this run's statistics; a bare network's state (older bundles)
    lands in the body.
    """
    if not any(k.startswith("body.") for k in init_state):
        init_state = {f"body.{k}": v for k, v in init_state.items()}
    init_state = {k: v for k, v in init_state.items() if not k.startswith("front.")}
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
    model: nn.Module, batches: ChunkBatches, dev: _Device, classes: list[str]
) -> dict[str, float | None]:
    if not batches.n_rows:
        return {"val_loss": None, "val_accuracy": None, "val_macro_f1": None}
    model.eval()
    total_loss, truth, pred = 0.0, [], []
    with torch.inference_mode():
        for x, y in batches.epoch(0):
            with dev.autocast():
                logits = model(dev.tensor(x)).float()
            target = dev.tensor(y)
            total_loss += float(functional.cross_entropy(logits, target, reduction="sum"))
            truth.append(y)
            pred.append(logits.argmax(dim=1).cpu().numpy())
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


@dataclass
class _Step:
    """What one optimisation step needs besides the batch."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: _Ema | None
    dev: _Device
    weight: torch.Tensor | None
    generator: torch.Generator
    n_classes: int


def _train_epoch(
    model: AudioClassifier,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    epoch: int,
    steps: int,
    tc: TrainConfig,
    step: _Step,
    on_step: Callable[[int, float], None] | None,
) -> tuple[float, float]:
    """One pass over ``batches`` (random crops, online augmentation, LR warm-up/schedule,
    EMA update when enabled); the mean training loss and the LR of the first step."""
    model.train()
    total, seen, first_lr = 0.0, 0, math.nan
    for i, (x, y) in enumerate(batches, start=1):
        lr = _set_lr(tc, step.optimizer, epoch + (i - 1) / max(steps, 1), 1 / max(steps, 1))
        first_lr = lr if i == 1 else first_lr
        raw, target = step.dev.tensor(x), step.dev.tensor(y)
        if tc.model.crop_frames is not None:
            raw = random_crops(raw, frames=tc.model.crop_frames, generator=step.generator)
        with step.dev.autocast():
            inputs = model.front(raw)
            if tc.spec_augment.enabled or tc.mixup.enabled:
                onehot = functional.one_hot(target, step.n_classes).to(torch.float32)
                inputs, soft = augment_batch(
                    inputs, onehot, spec=tc.spec_augment, mix=tc.mixup, generator=step.generator
                )
                if tc.mixup.enabled:
                    target = soft
            loss = functional.cross_entropy(
                model.classify(inputs).float(),
                target,
                weight=step.weight,
                label_smoothing=tc.label_smoothing,
            )
        step.optimizer.zero_grad(set_to_none=True)
        step.scaler.scale(loss).backward()
        step.scaler.step(step.optimizer)
        step.scaler.update()
        if step.ema is not None:
            step.ema.update(model, step=epoch * steps + i)
        total += loss.item() * len(y)
        seen += len(y)
        if on_step is not None:
            on_step(i, loss.item())
    return total / max(seen, 1), first_lr


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
        cfg.features.identity(),
        data.classes,
        data.train.n_rows,
        data.val.n_rows,
        init_state is not None,
    )


def _write_bundle(
    bundle_dir: str,
    *,
    model: AudioClassifier,
    cfg: PipelineConfig,
    data: _Data,
    history: list[dict[str, Any]],
) -> None:
    meta = ModelMeta(
        classes=data.classes,
        model=cfg.train.model.model_dump(mode="json"),
        audio=cfg.audio.model_dump(mode="json"),
        features=cfg.features.model_dump(mode="json"),
        feature=cfg.train.feature,
        mean=[float(v) for v in model.front.mean.flatten()],
        std=[float(v) for v in model.front.std.flatten()],
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

    n_classes = len(data.classes)
    n_bins = data.n_bins
    if ckpt is None:  # a resumed run gets its statistics back with the model's state
        mean, std = (torch.from_numpy(v) for v in feature_stats(data.stats_source))
    else:
        mean, std = torch.zeros(n_bins), torch.ones(n_bins)
    model = build_classifier(tc.model, n_classes=n_classes, mean=mean, std=std)
    if init_state is not None and ckpt is None:
        _load_init_state(model, init_state)
    device = resolve_device(tc.device)
    model.to(device)
    dev = _Device(device=device, amp=tc.mixed_precision and device.type == "cuda")
    optimizer = _optimizer(tc, model)
    scheduler = _scheduler(tc, optimizer)
    weight = class_weights(data.train_labels, n_classes).to(device) if tc.class_weights else None
    step = _Step(
        optimizer=optimizer,
        scaler=torch.amp.GradScaler(device.type, enabled=dev.amp),
        ema=_Ema(model, tc.ema_decay) if tc.ema_decay > 0 else None,
        dev=dev,
        weight=weight,
        generator=torch.Generator().manual_seed(tc.seed),
        n_classes=n_classes,
    )
    scored = model if step.ema is None else step.ema.model  # validated and saved

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {
        "epoch": 0,
        "score": -math.inf,
        "state": copy.deepcopy(scored.state_dict()),
    }
    bad_epochs, start, done = 0, 0, False
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        if step.ema is not None:
            step.ema.model.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step.scaler.load_state_dict(ckpt["scaler"])
        if scheduler is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["torch_rng"])
        step.generator.set_state(ckpt["generator_rng"])
        history, best, bad_epochs = ckpt["history"], ckpt["best"], ckpt["bad_epochs"]
        start, done = ckpt["epoch"], ckpt["done"]
        log.info("resuming %s after epoch %d", run_dir, start)

    for epoch in range(start, start if done else tc.epochs):
        train_loss, lr = _train_epoch(
            model,
            data.train.epoch(epoch),
            epoch=epoch,
            steps=len(data.train),
            tc=tc,
            step=step,
            on_step=None if on_step is None else _step_reporter(on_step, epoch, len(data.train)),
        )
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            **_evaluate(scored, data.val, dev, data.classes),
            "lr": lr,
        }
        history.append(record)
        f1 = record["val_macro_f1"]
        score = f1 if f1 is not None else -record["train_loss"]
        if score > best["score"]:
            best = {"epoch": epoch + 1, "score": score, "state": copy.deepcopy(scored.state_dict())}
            bad_epochs = 0
        else:
            bad_epochs += 1
        if scheduler is not None and epoch + 1 >= tc.warmup_epochs:
            scheduler.step(score)
        done = epoch + 1 == tc.epochs or (tc.patience > 0 and bad_epochs >= tc.patience)
        _save_checkpoint(
            ckpt_path,
            {
                "fingerprint": fingerprint,
                "epoch": epoch + 1,
                "done": done,
                "model": model.state_dict(),
                "ema": None if step.ema is None else step.ema.model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": step.scaler.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "torch_rng": torch.get_rng_state(),
                "generator_rng": step.generator.get_state(),
                "history": history,
                "best": best,
                "bad_epochs": bad_epochs,
            },
        )
        if on_epoch is not None:
            on_epoch({**record, "epochs": tc.epochs})
        if done:
            break

    scored.load_state_dict(best["state"])
    bundle_dir = str(Path(run_dir, "bundle"))
    _write_bundle(bundle_dir, model=scored.cpu(), cfg=cfg, data=data, history=history)
    return TrainResult(
        bundle_dir=bundle_dir,
        history=history,
        best_epoch=int(best["epoch"]),
        classes=data.classes,
        epochs_run=len(history),
    )

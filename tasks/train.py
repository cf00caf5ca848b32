"""Training as a cached Prefect task over content-addressed run folders."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import task

from melflow import storage
from melflow.config import PipelineConfig
from melflow.digest import digest_of
from melflow.features.extract import feature_store_digest
from melflow.lineage import bundle_digest
from melflow.manifest import read_manifest
from melflow.models.bundle import load_bundle
from melflow.training.loop import TRAIN_CODE_VERSION, TrainResult, train_model
from tasks.caching import keyed_by, transient_only
from tasks.progress import note, reporter

RESULT_FILE = "train-result.json"


def train_digest(
    cfg: PipelineConfig,
    manifest_digest: str,
    augmented_url: str | None,
    init_bundle: str | None = None,
) -> str:
    """Identity of a training run: its data (features, manifest, augmentation), its config
    and the bundle it fine-tunes, if any."""
    return digest_of(
        "train",
        TRAIN_CODE_VERSION,
        feature_store_digest(cfg),
        manifest_digest,
        augmented_url,
        cfg.train,
        bundle_digest(init_bundle) if init_bundle else None,
    )


def run_dir(cfg: PipelineConfig, digest: str) -> str:
    """Local folder of a training run (checkpoints need a local file system)."""
    base = cfg.paths.data_dir
    if storage.is_url(base):
        return str(Path(tempfile.gettempdir(), "melflow-runs", digest))
    return str(Path(base, "runs", digest))


def finished_training(run: str) -> TrainResult | None:
    """The saved result of a finished run, or ``None`` while it is missing or unfinished."""
    path = Path(run, RESULT_FILE)
    if not path.exists():
        return None
    return TrainResult(**json.loads(path.read_text()))


def epoch_line(row: dict[str, Any], *, epochs: int) -> str:
    """``epoch 3/10: train loss 0.412, val macro-F1 0.871, lr 0.003`` for one history row."""
    parts = [f"epoch {int(row['epoch'])}/{epochs}: train loss {row['train_loss']:.4f}"]
    if row.get("val_macro_f1") is not None:
        parts.append(f"val macro-F1 {row['val_macro_f1']:.4f}")
    parts.append(f"lr {row['lr']:.3g}")
    return ", ".join(parts)


def _train_key(
    *,
    cfg: PipelineConfig,
    manifest_path: str,
    manifest_digest: str,
    augmented_url: str | None,
    init_bundle: str | None = None,
) -> str | None:
    digest = train_digest(cfg, manifest_digest, augmented_url, init_bundle)
    return digest if finished_training(run_dir(cfg, digest)) is not None else None


@task(
    name="train-model",
    cache_key_fn=keyed_by("train", _train_key),
    persist_result=True,
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=transient_only,
)
def train_task(
    cfg: PipelineConfig,
    manifest_path: str,
    manifest_digest: str,
    augmented_url: str | None,
    init_bundle: str | None = None,
) -> TrainResult:
    """Train (or resume training) into ``runs/<train digest>``; a finished run is reused.

    ``init_bundle`` (a local bundle folder, e.g. the champion's) fine-tunes from its weights.
    """
    run = run_dir(cfg, train_digest(cfg, manifest_digest, augmented_url, init_bundle))
    done = finished_training(run)
    if done is not None:
        return done
    manifest = read_manifest(manifest_path, storage_options=cfg.paths.storage_options)
    progress = reporter("train")

    def on_epoch(row: dict[str, Any]) -> None:
        note("train", epoch_line(row, epochs=cfg.train.epochs))
        progress(int(row["epoch"]), cfg.train.epochs)

    result = train_model(
        cfg=cfg,
        manifest=manifest,
        run_dir=run,
        augmented_store_url=augmented_url,
        on_epoch=on_epoch,
        init_state=load_bundle(init_bundle)[0].state_dict() if init_bundle else None,
    )
    if result.epochs_run < cfg.train.epochs:
        note(
            "train",
            f"early stopping after epoch {result.epochs_run}: no gain for "
            f"{cfg.train.patience} epochs; keeping epoch {result.best_epoch}",
        )
    storage.write_bytes_atomic(str(Path(run, RESULT_FILE)), json.dumps(asdict(result)).encode())
    return result

"""Training as a cached Prefect task over content-addressed run folders."""

from __future__ import annotations

from typing import Any

from melflow.config import PipelineConfig
from melflow.layout import StageRef
from melflow.manifest import read_manifest
from melflow.models.bundle import load_bundle
from melflow.runs import finished_training, save_training
from melflow.tasks.caching import keyed_task, transient_only
from melflow.tasks.progress import note, reporter
from melflow.training.loop import TrainResult, train_model


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
    manifest: StageRef,
    run: StageRef,
    augmented: StageRef | None,
    init_bundle: str | None = None,
) -> str | None:
    return run.digest if finished_training(run.location) is not None else None


@keyed_task(
    "train",
    _train_key,
    name="train-model",
    tags=["stage:train"],
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=transient_only,
)
def train_task(
    cfg: PipelineConfig,
    manifest: StageRef,
    run: StageRef,
    augmented: StageRef | None,
    init_bundle: str | None = None,
) -> TrainResult:
    """Train (or resume training) into ``run.location``; a finished run is reused.

    ``init_bundle`` (a local bundle folder, the champion's) fine-tunes from its weights;
    its digest is part of ``run.digest`` already.
    """
    done = finished_training(run.location)
    if done is not None:
        return done
    rows = read_manifest(manifest.location, storage_options=cfg.paths.storage_options)
    progress = reporter("train")

    def on_epoch(row: dict[str, Any]) -> None:
        note("train", epoch_line(row, epochs=cfg.train.epochs))
        progress(int(row["epoch"]), cfg.train.epochs)

    result = train_model(
        cfg=cfg,
        manifest=rows,
        run_dir=run.location,
        augmented_store_url=augmented.location if augmented else None,
        on_epoch=on_epoch,
        init_state=load_bundle(init_bundle)[0].state_dict() if init_bundle else None,
    )
    if result.epochs_run < cfg.train.epochs:
        note(
            "train",
            f"early stopping after epoch {result.epochs_run}: no gain for "
            f"{cfg.train.patience} epochs; keeping epoch {result.best_epoch}",
        )
    save_training(run.location, result)
    return finished_training(run.location) or result

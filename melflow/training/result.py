"""What a training run produces, importable without torch (markers and summaries read it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Bump when training's results change for the same inputs: it is part of the run digest.
TRAIN_CODE_VERSION = "2"


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

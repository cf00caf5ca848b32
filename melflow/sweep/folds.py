"""Which divisions of the manifest a sweep scores every point on."""

from __future__ import annotations

import pandas as pd

from melflow.config import PipelineConfig
from melflow.cv import make_folds
from melflow.manifest import OK
from melflow.sweep.run import Fold

SINGLE_SPLIT = "split"


def has_folds(cfg: PipelineConfig, manifest: pd.DataFrame) -> bool:
    """True when the profile defines cross-validation folds.

    That is ``cv.folds_from`` ``kfold`` or ``path_regex``, or (``column``) a manifest
    whose usable clips carry a fold number (ingest reads ``corpus.fold_column``).
    """
    if cfg.cv.folds_from != "column":
        return True
    usable = manifest[manifest["status"] == OK]
    return bool((usable["fold"].astype(int) >= 0).any())


def sweep_folds(cfg: PipelineConfig, manifest: pd.DataFrame) -> list[Fold]:
    """The cross-validation folds of ``cfg.cv`` (:func:`melflow.cv.make_folds`) when the
    profile has folds, else one fold named ``split``: the manifest's own train/val/test."""
    if has_folds(cfg, manifest):
        return make_folds(manifest, cfg.cv)
    return [Fold(SINGLE_SPLIT, manifest)]

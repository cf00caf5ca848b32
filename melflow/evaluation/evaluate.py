"""Evaluate a model bundle on one split of the clean feature store: report, predictions, figures.

Outputs in ``out_dir``::

    report.json             classification report (see :mod:`.metrics`) + split, counts
    predictions.csv         clip_id, label, pred, prob_<class> for every evaluated clip
    confusion_matrix.png    counts, coloured by recall
    training_curves.png     loss and validation scores per epoch (if the bundle has a history)
    spectrograms.png        STFT dB beside log-mel of one clip per class of the split
    report.html             all of the above in one self-contained page, with players for
                            the most confident mistakes (see :mod:`.report`)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from melflow import storage
from melflow.audio.io import load_clip
from melflow.config import PipelineConfig, without_storage_fields
from melflow.errors import ConfigError, MelflowError, StoreError
from melflow.evaluation.figures import (
    confusion_matrix_figure,
    spectrogram_panel_figure,
    training_curves_figure,
)
from melflow.evaluation.metrics import classification_report
from melflow.evaluation.report import ReportClip, render_report, worst_misclassified
from melflow.features.extract import clip_key, feature_store_url
from melflow.features.store import RowStore
from melflow.manifest import ok_rows
from melflow.models.bundle import HISTORY, ModelMeta, load_bundle, predict_features
from melflow.training.dataset import ChunkBatches, select_split

EVAL_BATCH = 256
WORST_CLIPS = 8  # players in report.html: enough to spot a pattern, ~60 KB per 1 s clip


@dataclass(frozen=True)
class EvalResult:
    """Report dict, per-clip predictions, figure paths (name -> PNG) and written files."""

    report: dict[str, Any]
    predictions: pd.DataFrame
    figures: dict[str, str] = field(default_factory=dict)
    report_path: str = ""
    predictions_path: str = ""
    html_path: str = ""


def _check_features(cfg: PipelineConfig, meta: ModelMeta) -> None:
    # Storage settings (features.batch_size, compression_level) change no feature value.
    same = (meta.audio, without_storage_fields(meta.features)) == (
        cfg.audio.model_dump(mode="json"),
        cfg.features.identity(),
    )
    if not same:
        raise ConfigError(
            "the model was trained on other audio/features settings than this configuration; "
            "evaluate with the profile it was trained with"
        )


def _examples(
    cfg: PipelineConfig, rows: pd.DataFrame, classes: list[str]
) -> list[tuple[str, np.ndarray]]:
    """The first clip (by clip_id) of each class, decoded as extraction did."""
    firsts = rows.assign(label=rows["label"].astype(str)).drop_duplicates("label")
    paths = dict(zip(firsts["label"], firsts["path"], strict=True))
    return [(label, _clip(cfg, str(paths[label]))) for label in classes if label in paths]


def _clip(cfg: PipelineConfig, path: str) -> np.ndarray:
    """One clip decoded as extraction did (from the corpus, local or on object storage)."""
    a, fs = cfg.audio, storage.source_fs(path, cfg.paths.storage_options)
    return load_clip(path, sr=a.sr, duration_s=a.duration_s, crop=a.crop, fs=fs)


def _worst_clips(
    cfg: PipelineConfig, rows: pd.DataFrame, predictions: pd.DataFrame
) -> list[ReportClip]:
    """The most confident mistakes, decoded as extraction did, for the report's players."""
    worst = worst_misclassified(predictions, n=WORST_CLIPS)
    paths = dict(zip(rows["clip_id"], rows["path"], strict=True))
    return [
        ReportClip(
            clip_id=str(r.clip_id),
            label=str(r.label),
            pred=str(r.pred),
            confidence=float(r.confidence),
            p_true=float(r.p_true),
            y=_clip(cfg, str(paths[r.clip_id])),
        )
        for r in worst.itertuples()
    ]


def evaluate_bundle(
    *,
    cfg: PipelineConfig,
    manifest: pd.DataFrame,
    bundle_dir: str,
    split: str = "test",
    out_dir: str,
    spectrograms: bool = True,
) -> EvalResult:
    """Predict every usable clip of ``split`` from the feature store and score the bundle.

    Parameters
    ----------
    cfg : PipelineConfig
        Locates the clean feature store; its ``audio``/``features`` must be the bundle's.
    manifest : DataFrame
        Splits and labels; clips whose label the model does not know are not scored
        (``report["n_unknown_label"]`` counts them).
    bundle_dir : str
        A bundle written by training.
    split : str
        ``"test"`` (default), ``"val"`` or ``"train"``.
    out_dir : str
        Local folder for the report, predictions and figures.
    spectrograms : bool
        Also draw the per-class spectrogram panel (decodes one clip per class).

    Returns
    -------
    EvalResult
    """
    model, meta = load_bundle(bundle_dir)
    _check_features(cfg, meta)
    store = RowStore(feature_store_url(cfg), storage_options=cfg.paths.storage_options)
    if not store.exists():
        raise StoreError(f"no feature store at {store.url}; run extraction first")
    selection = select_split(
        store, manifest=manifest, split=split, feature=meta.feature, classes=meta.classes
    )
    if not len(selection):
        raise MelflowError(f"the {split!r} split has no usable clip with a known label")
    batches = ChunkBatches([selection], batch_size=EVAL_BATCH, shuffle=False)
    probs = np.concatenate([predict_features(model, meta, x) for x, _ in batches.epoch(0)])
    pred = probs.argmax(axis=1)

    rows = ok_rows(manifest)
    rows = rows[rows["split"] == split]
    clip_ids = {clip_key(c, s): c for c, s in zip(rows["clip_id"], rows["sha256"], strict=True)}
    classes = np.asarray(meta.classes, dtype=object)
    predictions = pd.DataFrame(
        {
            "clip_id": [clip_ids[k] for k in selection.keys],
            "label": classes[selection.labels],
            "pred": classes[pred],
            **{f"prob_{c}": probs[:, i] for i, c in enumerate(meta.classes)},
        }
    )
    report = classification_report(y_true=selection.labels, y_pred=pred, classes=meta.classes)
    report.update(split=split, n_unknown_label=int(len(rows) - len(selection)))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = f"Confusion matrix ({split}, accuracy {report['accuracy']:.3f})"
    figures = {
        "confusion_matrix": confusion_matrix_figure(
            report["confusion_matrix"],
            classes=meta.classes,
            path=out / "confusion_matrix.png",
            title=title,
        )
    }
    history_path = storage.join(bundle_dir, HISTORY)
    if storage.exists(history_path):
        history = json.loads(storage.read_bytes(history_path))
        figures["training_curves"] = training_curves_figure(
            history, path=out / "training_curves.png"
        )
    if spectrograms:
        examples = _examples(cfg, rows, meta.classes)
        figures["spectrograms"] = spectrogram_panel_figure(
            examples, sr=cfg.audio.sr, features=cfg.features, path=out / "spectrograms.png"
        )
    predictions_path = str(out / "predictions.csv")
    predictions.to_csv(predictions_path, index=False)
    report_path = out / "report.json"
    storage.write_bytes_atomic(str(report_path), json.dumps(report, indent=2).encode())
    html_path = str(out / "report.html")
    page = render_report(
        report=report,
        figures=figures,
        worst=_worst_clips(cfg, rows, predictions),
        sr=cfg.audio.sr,
        title=f"{cfg.name}: evaluation on the {split} split",
        details={
            "profile": cfg.name,
            "split": split,
            "bundle": bundle_dir,
            "model": f"{meta.model.get('arch', 'cnn')} on {meta.feature}",
            "classes": str(len(meta.classes)),
        },
    )
    storage.write_bytes_atomic(html_path, page.encode("utf-8"))
    return EvalResult(
        report=report,
        predictions=predictions,
        figures=figures,
        report_path=str(report_path),
        predictions_path=predictions_path,
        html_path=html_path,
    )

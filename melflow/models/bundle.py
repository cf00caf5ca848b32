"""A trained model as a folder: weights plus everything needed to featurize raw audio.

Layout of ``bundle_dir``::

    model.pt     the ``state_dict`` of an :class:`~melflow.models.frontend.AudioClassifier`
                 (tensors only, front-end statistics included; ``weights_only=True``)
    meta.json    :class:`ModelMeta`: classes, model/audio/features config, normalization

The bundle carries the audio and feature configuration it was trained on, so
:func:`predict_waveforms` computes exactly the training features and cannot drift.
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from melflow import storage
from melflow.audio.io import fix_length, resample
from melflow.config import AudioConfig, FeaturesConfig, ModelConfig
from melflow.errors import ParameterError, StoreError
from melflow.features.spectral import compute_features
from melflow.models.frontend import AudioClassifier, build_classifier

WEIGHTS = "model.pt"
META = "meta.json"
HISTORY = "history.json"  # optional: per-epoch training history, for the curves figure
PREDICT_BATCH = 256


@dataclass(frozen=True)
class ModelMeta:
    """What a bundle's model expects and produces.

    ``mean`` and ``std`` have one entry per frequency bin (``n_bins``): the statistics of
    the model's front end, kept here for readers (the weights carry them too);
    ``n_frames`` is the training input length (the network itself accepts any length).
    """

    classes: list[str]
    model: dict[str, Any]
    audio: dict[str, Any]
    features: dict[str, Any]
    feature: str
    mean: list[float]
    std: list[float]
    n_bins: int
    n_frames: int


def save_bundle(bundle_dir: str, *, model: nn.Module, meta: ModelMeta) -> None:
    """Write ``model.pt`` (state dict) and ``meta.json`` atomically into ``bundle_dir``."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    storage.write_bytes_atomic(storage.join(bundle_dir, WEIGHTS), buf.getvalue())
    text = json.dumps(dataclasses.asdict(meta), indent=2, sort_keys=True)
    storage.write_bytes_atomic(storage.join(bundle_dir, META), text.encode())


def read_meta(bundle_dir: str) -> ModelMeta:
    """Just the :class:`ModelMeta` of a bundle."""
    path = storage.join(bundle_dir, META)
    if not storage.exists(path):
        raise StoreError(f"no model bundle at {bundle_dir} (missing {META})")
    return ModelMeta(**json.loads(storage.read_bytes(path)))


def load_bundle(bundle_dir: str) -> tuple[AudioClassifier, ModelMeta]:
    """Rebuild the classifier from ``meta.json``, load its weights, switch to eval mode.

    Bundles written before the front end was part of the model hold the bare network's
    weights; those get their front end from ``meta.mean`` and ``meta.std``.
    """
    meta = read_meta(bundle_dir)
    model = build_classifier(
        ModelConfig.model_validate(meta.model),
        n_classes=len(meta.classes),
        mean=torch.tensor(meta.mean),
        std=torch.tensor(meta.std),
    )
    state = torch.load(
        io.BytesIO(storage.read_bytes(storage.join(bundle_dir, WEIGHTS))),
        map_location="cpu",
        weights_only=True,
    )
    target: nn.Module = model if "front.mean" in state else model.body
    target.load_state_dict(state)
    model.eval()
    return model, meta


def predict_features(model: nn.Module, meta: ModelMeta, x: np.ndarray) -> np.ndarray:
    """Class probabilities for raw (un-normalized) dB features.

    Parameters
    ----------
    x : np.ndarray, shape ``(batch, n_bins, n_frames)``
        The bundle's feature kind (``meta.feature``) in dB, as stored by extraction.

    Returns
    -------
    np.ndarray, shape ``(batch, n_classes)``
        Softmax probabilities (float32), columns in the order of ``meta.classes``.
    """
    if x.ndim != 3 or x.shape[1] != meta.n_bins:
        raise ParameterError(
            f"expected features (batch, {meta.n_bins}, n_frames), got shape {x.shape}"
        )
    model.eval()
    out = np.empty((x.shape[0], len(meta.classes)), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, x.shape[0], PREDICT_BATCH):
            block = torch.from_numpy(np.asarray(x[start : start + PREDICT_BATCH], np.float32))
            logits = model(block)
            out[start : start + len(block)] = torch.softmax(logits, dim=1).numpy()
    return out


def featurize_waveforms(meta: ModelMeta, y: np.ndarray, *, sr: int) -> np.ndarray:
    """The bundle's training features of waveforms ``y`` ``(batch, n_samples)`` at ``sr`` Hz.

    Resamples to the training rate, pads/crops to the training duration, then computes
    ``meta.feature``: shape ``(batch, n_bins, n_frames)``, dB.
    """
    if y.ndim != 2:
        raise ParameterError(f"expected waveforms (batch, n_samples), got shape {y.shape}")
    audio = AudioConfig.model_validate(meta.audio)
    features = FeaturesConfig.model_validate(meta.features)
    n_samples = round(audio.sr * audio.duration_s)
    clips = np.stack(
        [
            fix_length(
                resample(np.asarray(row, dtype=np.float32), orig_sr=sr, target_sr=audio.sr),
                n_samples=n_samples,
                crop=audio.crop,
            )
            for row in y
        ]
    )
    return compute_features(clips, sr=audio.sr, cfg=features)[meta.feature]  # type: ignore[index]


def predict_waveforms(model: nn.Module, meta: ModelMeta, y: np.ndarray, *, sr: int) -> np.ndarray:
    """Probabilities ``(batch, n_classes)`` of waveforms ``(batch, n_samples)`` at ``sr`` Hz."""
    return predict_features(model, meta, featurize_waveforms(meta, y, sr=sr))

"""Raw audio in, labels and probabilities out: the contract of the registered model.

:func:`predict_frame` is what the MLflow pyfunc runs, and it decodes, resamples and
pads/crops exactly as training did (:mod:`melflow.audio.io`) before
:func:`~melflow.models.bundle.predict_waveforms` computes the features, so inference
cannot drift from training. :func:`predict_files` batches any such predictor over files.

Input rows carry either ``path`` (a local file or fsspec URL) or ``waveform`` (samples,
shape ``(n_samples,)`` or ``(n_samples, channels)``) with ``sr`` in Hz. Output rows carry
``label``, one ``prob_<class>`` per class and ``error`` (empty when the row was classified;
otherwise the reason, with ``label`` missing and probabilities NaN).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from melflow import storage
from melflow.audio.io import MAX_SOURCE_SR, MIN_SOURCE_SR, fix_length, load_clip, resample, to_mono
from melflow.config import AudioConfig
from melflow.errors import AudioError, MelflowError, ParameterError
from melflow.models.bundle import ModelMeta, predict_waveforms

DEFAULT_BATCH_SIZE = 64
PATH, WAVEFORM, SR, LABEL, ERROR = "path", "waveform", "sr", "label", "error"
PROB_PREFIX = "prob_"

Predictor = Callable[[pd.DataFrame], pd.DataFrame]


def prob_columns(classes: Sequence[str]) -> list[str]:
    """``prob_<class>`` for each class, in the model's class order."""
    return [f"{PROB_PREFIX}{c}" for c in classes]


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def _waveform_clip(waveform: Any, sr: Any, *, audio: AudioConfig) -> np.ndarray:
    y = np.asarray(waveform, dtype=np.float32)
    if y.ndim not in (1, 2) or y.shape[0] == 0:
        raise AudioError("no_samples", f"waveform of shape {y.shape}")
    if not np.isfinite(y).all():
        raise AudioError("non_finite", "waveform")
    if not _present(sr) or not MIN_SOURCE_SR <= int(sr) <= MAX_SOURCE_SR:
        raise AudioError("bad_sample_rate", f"sr={sr!r}")
    mono = resample(to_mono(y), orig_sr=int(sr), target_sr=audio.sr)
    return fix_length(mono, n_samples=round(audio.sr * audio.duration_s), crop=audio.crop)


def _path_clip(path: str, *, audio: AudioConfig) -> np.ndarray:
    fs = storage.filesystem(path)[0] if storage.is_url(path) else None
    return load_clip(path, sr=audio.sr, duration_s=audio.duration_s, crop=audio.crop, fs=fs)


def decode_rows(
    frame: pd.DataFrame, *, audio: AudioConfig
) -> tuple[list[np.ndarray | None], list[str]]:
    """Fixed-length waveforms at ``audio.sr`` for each row, or the reason it has none.

    Returns
    -------
    clips : list
        float32 arrays of shape ``(round(audio.sr * audio.duration_s),)``, ``None`` on error.
    errors : list of str
        ``""`` for decoded rows, else ``"<reason>: <detail>"``.
    """
    if PATH not in frame.columns and WAVEFORM not in frame.columns:
        raise ParameterError(f"input needs a {PATH!r} column or {WAVEFORM!r} and {SR!r} columns")
    clips: list[np.ndarray | None] = []
    errors: list[str] = []
    for row in frame.to_dict("records"):
        try:
            if _present(row.get(PATH)):
                clips.append(_path_clip(str(row[PATH]), audio=audio))
            elif _present(row.get(WAVEFORM)):
                clips.append(_waveform_clip(row[WAVEFORM], row.get(SR), audio=audio))
            else:
                raise AudioError("missing", f"row has neither {PATH!r} nor {WAVEFORM!r}")
            errors.append("")
        except AudioError as exc:
            clips.append(None)
            errors.append(str(exc))
    return clips, errors


def predict_frame(
    model: nn.Module, meta: ModelMeta, frame: pd.DataFrame, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> pd.DataFrame:
    """Classify every row of ``frame`` (paths or waveforms); bad rows get an ``error``.

    Parameters
    ----------
    model, meta
        A loaded bundle (:func:`melflow.models.bundle.load_bundle`).
    frame : DataFrame
        Column ``path``, or columns ``waveform`` and ``sr`` (Hz); one clip per row.
    batch_size : int
        Clips per forward pass; bounds memory for large frames.

    Returns
    -------
    DataFrame
        ``label``, ``prob_<class>`` per class of ``meta.classes``, ``error``; same row order.
    """
    audio = AudioConfig.model_validate(meta.audio)
    clips, errors = decode_rows(frame, audio=audio)
    probs = np.full((len(clips), len(meta.classes)), np.nan, dtype=np.float64)
    ok = [i for i, clip in enumerate(clips) if clip is not None]
    for start in range(0, len(ok), batch_size):
        rows = ok[start : start + batch_size]
        y = np.stack([clips[i] for i in rows])  # type: ignore[misc]
        probs[rows] = predict_waveforms(model, meta, y, sr=audio.sr)
    labels = [
        meta.classes[int(np.argmax(p))] if not err else None
        for p, err in zip(probs, errors, strict=True)
    ]
    out = pd.DataFrame(probs, columns=prob_columns(meta.classes))
    out.insert(0, LABEL, pd.Series(labels, dtype=object))
    out[ERROR] = errors
    return out


def find_audio_files(inputs: Iterable[str], *, extensions: Sequence[str]) -> list[str]:
    """Files named in ``inputs``, with folders walked recursively for ``extensions``.

    A file named explicitly is kept whatever its extension (so a mislabelled file shows up
    as an error row instead of vanishing); folder contents are sorted for a stable order.

    Raises
    ------
    ParameterError
        An input does not exist, or nothing was found.
    """
    wanted = {e.lower() for e in extensions}
    files: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(
                str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in wanted
            )
        elif path.is_file():
            files.append(str(path))
        else:
            raise ParameterError(f"{item}: no such file or folder")
    if not files:
        raise ParameterError(
            f"no audio files ({', '.join(sorted(wanted))}) in {', '.join(map(str, inputs))}"
        )
    return files


def predict_files(
    predict: Predictor,
    files: Sequence[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Run ``predict`` over ``files`` in batches of paths; never stops at a bad file.

    Parameters
    ----------
    predict : callable
        DataFrame with column ``path`` -> DataFrame with ``label``, ``prob_*``, ``error``
        (e.g. a registered model's ``predict``).
    files : sequence of str
        Audio paths.
    batch_size : int
        Files per call.
    on_progress : callable, optional
        ``on_progress(done, total)`` after each batch.

    Returns
    -------
    DataFrame
        ``path``, ``label``, ``prob_*``, ``error``: one row per file, in order.
    """
    if batch_size < 1:
        raise ParameterError(f"batch_size must be positive, got {batch_size}")
    parts = []
    for start in range(0, len(files), batch_size):
        paths = list(files[start : start + batch_size])
        result = predict(pd.DataFrame({PATH: paths})).reset_index(drop=True)
        if len(result) != len(paths):
            raise MelflowError(f"the model returned {len(result)} rows for {len(paths)} files")
        result.insert(0, PATH, paths)
        parts.append(result)
        if on_progress is not None:
            on_progress(start + len(paths), len(files))
    return pd.concat(parts, ignore_index=True)


def summarize(predictions: pd.DataFrame) -> dict[str, Any]:
    """Counts for a prediction table: files, classified, errors, and files per label."""
    ok = predictions[predictions[ERROR].fillna("") == ""]
    return {
        "files": len(predictions),
        "classified": len(ok),
        "errors": len(predictions) - len(ok),
        "labels": {str(k): int(v) for k, v in ok[LABEL].value_counts().sort_index().items()},
    }

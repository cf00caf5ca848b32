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

import math
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from melflow import storage
from melflow.audio.io import (
    MAX_SOURCE_SR,
    MIN_SOURCE_SR,
    Span,
    clips_from_bytes,
    declared_duration_s,
    decode_audio,
    file_bytes,
    fix_length,
    probe_bytes,
    resample,
    to_mono,
)
from melflow.config import AudioConfig, SegmentConfig
from melflow.errors import AudioError, MelflowError, ParameterError
from melflow.ingest.segments import window_starts_ms
from melflow.models.bundle import ModelMeta, predict_waveforms

DEFAULT_BATCH_SIZE = 64
PATH, WAVEFORM, SR, LABEL, ERROR = "path", "waveform", "sr", "label", "error"
OFFSET, DURATION = "offset_s", "duration_s"
PROB_PREFIX = "prob_"

Predictor = Callable[[pd.DataFrame], pd.DataFrame]


def prob_columns(classes: Sequence[str]) -> list[str]:
    """``prob_<class>`` for each class, in the model's class order."""
    return [f"{PROB_PREFIX}{c}" for c in classes]


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


@dataclass(frozen=True)
class Decoded:
    """The model inputs of each input row, or why it has none.

    Attributes
    ----------
    clips : list
        Per row, float32 ``(n_windows, round(audio.sr * audio.duration_s))`` at
        ``audio.sr`` (one window for a clip taken whole), or ``None`` on error.
    windows : list
        Per row, the ``(offset_s, duration_s)`` of each window of a long recording, or
        ``[]`` when the row was taken whole (padded/cropped like training clips).
    errors : list of str
        ``""`` for decoded rows, else ``"<reason>: <detail>"``.
    """

    clips: list[np.ndarray | None]
    windows: list[list[Span]]
    errors: list[str]


def long_file_segment(audio: AudioConfig) -> SegmentConfig:
    """How a recording longer than ``audio.max_duration_s`` is cut for prediction.

    ``audio.segment`` when the model was trained on windows, else back-to-back windows of
    ``audio.duration_s`` (ingest would have quarantined such a file as ``too_long``).
    """
    return audio.segment or SegmentConfig(window_s=audio.duration_s)


def _windows(duration_s: float, *, audio: AudioConfig) -> list[Span]:
    """``(offset_s, duration_s)`` of each window of a long recording, as ingest cuts it."""
    segment = long_file_segment(audio)
    return [
        (start_ms / 1000, min(segment.window_s, duration_s - start_ms / 1000))
        for start_ms in window_starts_ms(duration_s, segment=segment)
    ]


def _fit_windows(
    y: np.ndarray, orig_sr: int, *, audio: AudioConfig
) -> tuple[np.ndarray, list[Span]]:
    """Decoded samples ``(n_samples[, channels])`` at ``orig_sr`` Hz -> model clips and windows.

    A recording up to ``audio.max_duration_s`` is one clip, as training pads/crops it; a
    longer one is cut as ingest cuts it (:func:`melflow.ingest.segments.window_starts_ms`),
    each window downmixed, resampled and padded from its own source samples, as
    extraction reads a window.
    """
    n_samples = round(audio.sr * audio.duration_s)
    duration_s = y.shape[0] / orig_sr

    def fit(part: np.ndarray) -> np.ndarray:
        mono = resample(to_mono(part), orig_sr=orig_sr, target_sr=audio.sr)
        return fix_length(mono, n_samples=n_samples, crop=audio.crop)

    if duration_s <= audio.max_duration_s:
        return fit(y)[None], []
    windows = _windows(duration_s, audio=audio)
    clips = [
        fit(y[round(offset * orig_sr) : round(offset * orig_sr) + round(length * orig_sr)])
        for offset, length in windows
    ]
    return np.stack(clips), windows


def _waveform_samples(waveform: Any, sr: Any) -> tuple[np.ndarray, int]:
    y = np.asarray(waveform, dtype=np.float32)
    if y.ndim not in (1, 2) or y.shape[0] == 0:
        raise AudioError("no_samples", f"waveform of shape {y.shape}")
    if not np.isfinite(y).all():
        raise AudioError("non_finite", "waveform")
    if not _present(sr) or not MIN_SOURCE_SR <= int(sr) <= MAX_SOURCE_SR:
        raise AudioError("bad_sample_rate", f"sr={sr!r}")
    return y, int(sr)


def _path_clips(path: str, *, audio: AudioConfig) -> tuple[np.ndarray, list[Span]]:
    """Model clips and windows of a file, refused for the reasons ingest would refuse it.

    A file whose header declares more than ``audio.max_duration_s`` is validated block by
    block and each window decoded on its own, exactly as extraction reads windows, so an
    hour-long recording is never held as float32; anything else is decoded whole.
    """
    fs = storage.filesystem(path)[0] if storage.is_url(path) else None
    data = file_bytes(path, fs=fs)
    if declared_duration_s(data) <= audio.max_duration_s:
        y, sr = decode_audio(data, name=path)
        return _fit_windows(y, sr, audio=audio)
    windows = _windows(probe_bytes(data, name=path).duration_s, audio=audio)
    clips = clips_from_bytes(
        data, name=path, sr=audio.sr, duration_s=audio.duration_s, crop=audio.crop, spans=windows
    )
    return clips, windows


def decode_rows(frame: pd.DataFrame, *, audio: AudioConfig) -> Decoded:
    """The model inputs of each row (see :class:`Decoded`), or the reason it has none."""
    if PATH not in frame.columns and WAVEFORM not in frame.columns:
        raise ParameterError(f"input needs a {PATH!r} column or {WAVEFORM!r} and {SR!r} columns")
    decoded = Decoded([], [], [])
    for row in frame.to_dict("records"):
        try:
            if _present(row.get(PATH)):
                clips, windows = _path_clips(str(row[PATH]), audio=audio)
            elif _present(row.get(WAVEFORM)):
                y, sr = _waveform_samples(row[WAVEFORM], row.get(SR))
                clips, windows = _fit_windows(y, sr, audio=audio)
            else:
                raise AudioError("missing", f"row has neither {PATH!r} nor {WAVEFORM!r}")
            decoded.clips.append(clips)
            decoded.windows.append(windows)
            decoded.errors.append("")
        except AudioError as exc:
            decoded.clips.append(None)
            decoded.windows.append([])
            decoded.errors.append(str(exc))
    return decoded


def predict_frame(
    model: nn.Module, meta: ModelMeta, frame: pd.DataFrame, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> pd.DataFrame:
    """Classify every row of ``frame`` (paths or waveforms); bad rows get an ``error``.

    A recording longer than the model's ``audio.max_duration_s`` is classified window by
    window (:func:`long_file_segment`); its row holds the mean of the windows'
    probabilities and the label they give, and one row per window follows it.

    Parameters
    ----------
    model, meta
        A loaded bundle (:func:`melflow.models.bundle.load_bundle`).
    frame : DataFrame
        Column ``path``, or columns ``waveform`` and ``sr`` (Hz); one clip per row.
    batch_size : int
        Clips (windows) per forward pass; bounds memory for large frames.

    Returns
    -------
    DataFrame
        ``label``, ``prob_<class>`` per class of ``meta.classes``, ``error``, ``offset_s``
        and ``duration_s`` (seconds; NaN on a row for a whole input, set on window rows).
        The index is the position of the input row each output row belongs to: one row per
        input, in order, each followed by its window rows, if any.
    """
    audio = AudioConfig.model_validate(meta.audio)
    decoded = decode_rows(frame, audio=audio)
    owners = [i for i, clips in enumerate(decoded.clips) if clips is not None for _ in clips]
    inputs = [window for clips in decoded.clips if clips is not None for window in clips]
    window_probs = np.empty((len(inputs), len(meta.classes)), dtype=np.float64)
    for start in range(0, len(inputs), batch_size):
        y = np.stack(inputs[start : start + batch_size])
        window_probs[start : start + len(y)] = predict_waveforms(model, meta, y, sr=audio.sr)
    by_row: dict[int, list[np.ndarray]] = {}
    for owner, p in zip(owners, window_probs, strict=True):
        by_row.setdefault(owner, []).append(p)
    nan = np.full(len(meta.classes), np.nan)
    records, index = [], []
    for i, error in enumerate(decoded.errors):
        probs = by_row.get(i, [])
        mean = np.mean(probs, axis=0) if probs else nan
        records.append(_record(mean, error, meta.classes, (math.nan, math.nan)))
        index.append(i)
        for p, window in zip(probs if decoded.windows[i] else [], decoded.windows[i], strict=True):
            records.append(_record(p, "", meta.classes, window))
            index.append(i)
    columns = [LABEL, *prob_columns(meta.classes), ERROR, OFFSET, DURATION]
    out = pd.DataFrame.from_records(records, columns=columns, index=index)
    out[LABEL] = out[LABEL].astype(object)
    return out


def _record(
    probs: np.ndarray, error: str, classes: Sequence[str], window: Span | tuple[float, float]
) -> tuple[Any, ...]:
    label = None if error or np.isnan(probs).any() else classes[int(np.argmax(probs))]
    return (label, *map(float, probs), error, *window)


def find_audio_files(inputs: Iterable[str], *, extensions: Sequence[str]) -> list[str]:
    """Files named in ``inputs``, with folders walked recursively for ``extensions``.

    A file named explicitly is kept whatever its extension (so a mislabelled file shows up
    as an error row instead of vanishing); folder contents are sorted for a stable order.
    A file reached twice (named twice, or also inside a named folder) is listed once.

    Raises
    ------
    ParameterError
        An input does not exist, or nothing was found.
    """
    wanted = {e.lower() for e in extensions}
    found: dict[Path, str] = {}  # resolved path -> the spelling first seen, in order
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            listed = sorted(
                str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in wanted
            )
        elif path.is_file():
            listed = [str(path)]
        else:
            raise ParameterError(f"{item}: no such file or folder")
        for name in listed:
            found.setdefault(Path(name).resolve(), name)
    files = list(found.values())
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
        ``path``, ``label``, ``prob_*``, ``error`` (and ``offset_s``, ``duration_s`` from
        :func:`predict_frame`): one row per file, in order, each followed by the rows of
        its windows when it was classified window by window.
    """
    if batch_size < 1:
        raise ParameterError(f"batch_size must be positive, got {batch_size}")
    parts = []
    for start in range(0, len(files), batch_size):
        paths = list(files[start : start + batch_size])
        result = predict(pd.DataFrame({PATH: paths}))
        owners = result.index.to_numpy()  # the input row of each output row (see predict_frame)
        if sorted(set(owners.tolist())) != list(range(len(paths))):
            raise MelflowError(f"the model returned {len(result)} rows for {len(paths)} files")
        result = result.reset_index(drop=True)
        result.insert(0, PATH, [paths[i] for i in owners])
        parts.append(result)
        if on_progress is not None:
            on_progress(start + len(paths), len(files))
    return pd.concat(parts, ignore_index=True)


OUTPUT_FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet"}
STDOUT = "-"


def output_format(out: str) -> str:
    """``csv``, ``json`` or ``parquet`` from ``out``'s extension (``-``, stdout, is CSV).

    Raises
    ------
    ParameterError
        Any other extension.
    """
    if out == STDOUT:
        return "csv"
    fmt = OUTPUT_FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise ParameterError(
            f"--out {out}: unknown format; end the name in {', '.join(OUTPUT_FORMATS)} "
            "(or give - for CSV on stdout)"
        )
    return fmt


def encode_predictions(predictions: pd.DataFrame, *, fmt: str) -> bytes:
    """The prediction table as ``csv``, ``json`` (a list of records, NaN as null) or
    ``parquet`` bytes."""
    if fmt == "csv":
        return predictions.to_csv(index=False).encode()
    if fmt == "json":
        return (predictions.to_json(orient="records", indent=1) + "\n").encode()
    if fmt == "parquet":
        return predictions.to_parquet(index=False)
    raise ParameterError(f"unknown prediction format {fmt!r}; use one of {sorted(OUTPUT_FORMATS)}")


def write_predictions(
    predictions: pd.DataFrame, out: str, *, storage_options: dict[str, Any] | None = None
) -> None:
    """Write the table to ``out`` (path or URL, format by extension; ``-`` is stdout)."""
    data = encode_predictions(predictions, fmt=output_format(out))
    if out == STDOUT:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        storage.write_bytes_atomic(out, data, storage_options)
    except OSError as exc:
        raise MelflowError(f"cannot write the predictions to {out}: {exc}") from exc


def check_writable(out: str) -> None:
    """Fail before any work when ``out`` cannot be written (bad extension, missing or
    read-only folder, a folder in its place). URLs are checked when written.

    Raises
    ------
    ParameterError
        Naming ``out`` and what is wrong with it.
    """
    output_format(out)
    if out == STDOUT or storage.is_url(out):
        return
    path = Path(out)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ParameterError(f"--out {out} is a folder; give a file name")
    if not parent.is_dir():
        raise ParameterError(f"--out {out}: folder {parent} does not exist")
    try:  # a real write: permission bits say nothing to root, nor on read-only mounts
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
        if path.exists():
            with open(path, "ab"):
                pass
    except OSError as exc:
        raise ParameterError(f"--out {out}: cannot write there ({exc.strerror})") from exc


def summarize(predictions: pd.DataFrame) -> dict[str, Any]:
    """Counts for a prediction table: files, classified, errors, and files per label.

    Window rows (``offset_s`` set) are details of their file's row and are not counted.
    """
    if OFFSET in predictions.columns:
        predictions = predictions[predictions[OFFSET].isna()]
    ok = predictions[predictions[ERROR].fillna("") == ""]
    return {
        "files": len(predictions),
        "classified": len(ok),
        "errors": len(predictions) - len(ok),
        "labels": {str(k): int(v) for k, v in ok[LABEL].value_counts().sort_index().items()},
    }

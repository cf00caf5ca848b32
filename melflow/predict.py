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

import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from melflow import storage
from melflow.audio.io import (
    MAX_SOURCE_SR,
    MIN_SOURCE_SR,
    fix_length,
    read_audio,
    resample,
    to_mono,
)
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
    # The full decode ingest uses: the same reasons (empty_file, not_audio, non_finite, ...).
    fs = storage.filesystem(path)[0] if storage.is_url(path) else None
    y, sr = read_audio(path, fs=fs)
    mono = resample(to_mono(y), orig_sr=sr, target_sr=audio.sr)
    return fix_length(mono, n_samples=round(audio.sr * audio.duration_s), crop=audio.crop)


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
    """Counts for a prediction table: files, classified, errors, and files per label."""
    ok = predictions[predictions[ERROR].fillna("") == ""]
    return {
        "files": len(predictions),
        "classified": len(ok),
        "errors": len(predictions) - len(ok),
        "labels": {str(k): int(v) for k, v in ok[LABEL].value_counts().sort_index().items()},
    }

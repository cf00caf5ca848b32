"""Decode audio files into fixed-length mono float32 waveforms, and probe them for ingest.

Every way a file can be unusable maps to one short ``reason`` code (see :data:`REASONS`)
carried by :class:`~melflow.errors.AudioError`, so ingest can quarantine it with a cause.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import soundfile as sf
import soxr

from melflow.audio import wav
from melflow.errors import AudioError, ParameterError

MIN_SOURCE_SR = 1000
MAX_SOURCE_SR = 384_000
MAX_CHANNELS = 8
PROBE_BLOCK_FRAMES = 1 << 16
_SF_ERR_UNRECOGNISED_FORMAT = 1

REASONS: dict[str, str] = {
    "missing": "the file does not exist",
    "unreadable": "the file exists but cannot be opened (permissions, I/O error)",
    "empty_file": "the file has zero bytes",
    "not_audio": "the bytes are not a known audio format",
    "corrupt": "a known audio format whose header or data is damaged or truncated",
    "no_samples": "the file decodes to zero samples",
    "non_finite": "the audio contains NaN or infinite samples",
    "silent": "the peak level is below audio.silence_db",
    "too_short": "the duration is below audio.min_duration_s",
    "too_long": "the duration is above audio.max_duration_s",
    "bad_sample_rate": f"the sample rate is outside {MIN_SOURCE_SR}-{MAX_SOURCE_SR} Hz",
    "too_many_channels": f"the file has more than {MAX_CHANNELS} channels",
    "path_outside_root": "the path escapes the corpus root",
    "duplicate": "the bytes are identical to another clip's",
    "unlabelled": "no label could be derived for the file",
}


@dataclass(frozen=True)
class AudioInfo:
    """What ingest records about a decodable file."""

    sr: int
    channels: int
    frames: int
    peak_db: float

    @property
    def duration_s(self) -> float:
        return self.frames / self.sr


def file_bytes(path: str, *, fs: Any = None) -> bytes:
    """All bytes of a local file (``fs=None``) or of a path on an fsspec filesystem.

    Raises
    ------
    AudioError
        With reason ``missing`` or ``unreadable`` (permissions, a folder, an I/O error).
    """
    try:
        if fs is None:
            with open(path, "rb", buffering=0) as f:  # unbuffered: one read of fstat's size
                return f.readall()
        with fs.open(path, "rb") as f:
            return bytes(f.read())
    except FileNotFoundError as exc:
        raise AudioError("missing", f"{path}: {exc}") from exc
    except OSError as exc:
        raise AudioError("unreadable", f"{path}: {exc}") from exc


def decode_audio(data: bytes, *, name: str) -> tuple[np.ndarray, int]:
    """Decode the bytes of an audio file to float32 samples and its rate in Hz.

    Parameters
    ----------
    data : bytes
        The whole file (WAV, FLAC, OGG/Vorbis, MP3, or anything else libsndfile reads).
    name : str
        Used in error details only (the path or URL the bytes came from).

    Returns
    -------
    y : np.ndarray
        float32, shape ``(n_samples, channels)``.
    sr : int
        Sample rate in Hz.

    Raises
    ------
    AudioError
        With reason ``empty_file``, ``not_audio``, ``corrupt``, ``no_samples``,
        ``non_finite``, ``bad_sample_rate`` or ``too_many_channels``.
    """
    decoded = _Blocks(data, name=name, frames=-1)
    blocks = list(decoded)
    return (blocks[0] if len(blocks) == 1 else np.concatenate(blocks)), decoded.sr


class _Blocks:
    """The float32 ``(frames, channels)`` blocks of a file's bytes, every fault an AudioError.

    Iterating decodes block by block (``frames=-1``: in one read); the checks that need the
    whole stream (truncation, no samples, non-finite samples) raise once it is consumed,
    so a caller that reaches the end has a valid file. ``sr`` and ``channels`` are set as
    soon as iteration starts.
    """

    def __init__(self, data: bytes, *, name: str, frames: int) -> None:
        self.data, self.name, self.frames = data, name, frames
        self.sr = self.channels = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        data, name = self.data, self.name
        if not data:
            raise AudioError("empty_file", f"{name}: 0 bytes")
        try:
            f = sf.SoundFile(io.BytesIO(data))
        except sf.LibsndfileError as exc:
            # A recognised format with a malformed header is damage, not a foreign file.
            reason = "not_audio" if exc.code == _SF_ERR_UNRECOGNISED_FORMAT else "corrupt"
            raise AudioError(reason, f"{name}: {exc.error_string}") from exc
        total = bad = 0
        with f:
            self.sr, self.channels = int(f.samplerate), int(f.channels)
            declared, fmt = int(f.frames), f.format
            if not MIN_SOURCE_SR <= self.sr <= MAX_SOURCE_SR:
                raise AudioError("bad_sample_rate", f"{name}: {self.sr} Hz")
            if self.channels > MAX_CHANNELS:
                raise AudioError("too_many_channels", f"{name}: {self.channels} channels")
            while True:
                try:
                    y = f.read(self.frames, dtype="float32", always_2d=True)
                except (RuntimeError, ValueError) as exc:  # LibsndfileError is a RuntimeError
                    raise AudioError("corrupt", f"{name}: {exc}") from exc
                if not len(y):
                    break
                total += len(y)
                bad += int(y.size - np.count_nonzero(np.isfinite(y)))
                yield y
                if self.frames < 0:
                    break
        # MP3 frame counts are estimates for VBR streams, so only exact formats are checked.
        if (fmt != "MP3" and total < declared) or (fmt == "WAV" and wav.data_truncated(data)):
            raise AudioError("corrupt", f"{name}: truncated, only {total} frames present")
        if total == 0:
            raise AudioError("no_samples", f"{name}: decodes to 0 samples")
        if bad:
            raise AudioError("non_finite", f"{name}: {bad} NaN/inf samples")


def read_audio(path: str, *, fs: Any = None) -> tuple[np.ndarray, int]:
    """Read a file as float32 samples, shape ``(n_samples, channels)``, and its rate in Hz.

    Raises
    ------
    AudioError
        With reason ``missing``, ``unreadable``, ``empty_file``, ``not_audio``, ``corrupt``,
        ``no_samples``, ``non_finite``, ``bad_sample_rate`` or ``too_many_channels``.
    """
    return decode_audio(file_bytes(path, fs=fs), name=path)


def probe_bytes(data: bytes, *, name: str) -> AudioInfo:
    """Decode a file's bytes fully and describe them; raise :class:`AudioError` if unusable.

    Decoded in blocks of :data:`PROBE_BLOCK_FRAMES`: an hour-long recording (cut into
    windows by ``audio.segment``) never sits in memory as float32.
    """
    decoded = _Blocks(data, name=name, frames=PROBE_BLOCK_FRAMES)
    frames, peak = 0, 0.0
    for y in decoded:
        frames += len(y)
        peak = max(peak, float(np.max(np.abs(y))))
    level = 20.0 * float(np.log10(peak)) if peak > 0 else float("-inf")  # dBFS; all zeros: -inf
    return AudioInfo(sr=decoded.sr, channels=decoded.channels, frames=frames, peak_db=level)


def probe(path: str, *, fs: Any = None) -> AudioInfo:
    """Decode a file fully and describe it; raise :class:`AudioError` if it is unusable."""
    return probe_bytes(file_bytes(path, fs=fs), name=path)


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average channels: ``(n_samples, channels)`` -> float32 ``(n_samples,)``.

    Columns are added and the sum scaled once: ``y.mean(axis=1)`` reduces along the short
    axis and costs ~2 ms per 4 s stereo clip, twice the time to decode it.
    """
    if y.ndim == 1:
        return y.astype(np.float32, copy=False)
    if y.shape[1] == 1:
        return y[:, 0].astype(np.float32, copy=False)
    total = np.add(y[:, 0], y[:, 1], dtype=np.float32)
    for c in range(2, y.shape[1]):
        total += y[:, c]
    total *= np.float32(1 / y.shape[1])
    return total


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """High-quality resampling with soxr; a no-op when the rates already match."""
    if orig_sr == target_sr:
        return y
    return np.asarray(soxr.resample(y, orig_sr, target_sr, quality="HQ"), dtype=np.float32)


def fix_length(
    y: np.ndarray, *, n_samples: int, crop: Literal["start", "center"] = "start"
) -> np.ndarray:
    """Zero-pad at the end or crop to exactly ``n_samples`` along the last axis."""
    if n_samples <= 0:
        raise ParameterError(f"n_samples must be positive, got {n_samples}")
    kept = _kept(y, n_samples=n_samples, crop=crop)
    if kept.shape[-1] == n_samples:
        return kept
    out = np.zeros((*y.shape[:-1], n_samples), dtype=y.dtype)
    out[..., : kept.shape[-1]] = kept
    return out


def _kept(y: np.ndarray, *, n_samples: int, crop: Literal["start", "center"]) -> np.ndarray:
    """The samples of ``y`` that :func:`fix_length` keeps: at most ``n_samples``, a view."""
    length = y.shape[-1]
    if length <= n_samples:
        return y
    start = (length - n_samples) // 2 if crop == "center" else 0
    return y[..., start : start + n_samples]


Span = tuple[float, float]
"""``(offset_s, duration_s)``: a window of a source file, in seconds."""


def load_clip(
    path: str,
    *,
    sr: int,
    duration_s: float,
    crop: Literal["start", "center"] = "start",
    fs: Any = None,
    span: Span | None = None,
) -> np.ndarray:
    """Decode, downmix, resample and pad/crop one clip (or one window of a file).

    Returns
    -------
    np.ndarray
        float32 waveform, shape ``(round(sr * duration_s),)``, at ``sr`` Hz.
    """
    return load_clips([path], sr=sr, duration_s=duration_s, crop=crop, fs=fs, spans=[span])[0]


def load_clips(
    paths: Sequence[str],
    *,
    sr: int,
    duration_s: float,
    crop: Literal["start", "center"] = "start",
    fs: Any = None,
    spans: Sequence[Span | None] | None = None,
) -> np.ndarray:
    """Decode a batch of clips (as :func:`load_clip`) into one array.

    Each file is read with one system call (consecutive windows of one file share that
    read); WAVs in a layout :func:`melflow.audio.wav.layout` knows are converted and
    downmixed with numpy, anything else is decoded by libsndfile from those bytes. Only
    the kept frames are decoded when no resampling needs the rest. Every path gives what
    ``librosa.load(path, sr=sr, mono=True, offset=..., duration=...)`` (soxr HQ) followed
    by :func:`fix_length` gives, within 1e-6.

    Parameters
    ----------
    paths : sequence of str
        Local paths, or paths on ``fs`` (an fsspec filesystem).
    spans : sequence of Span or None, optional
        Per path, the ``(offset_s, duration_s)`` window to read; ``None`` (or no
        ``spans``) reads the whole file.

    Returns
    -------
    np.ndarray
        float32 waveforms, shape ``(len(paths), round(sr * duration_s))``, at ``sr`` Hz.

    Raises
    ------
    AudioError
        With reason ``missing``, ``unreadable``, ``corrupt`` or ``no_samples``.
    """
    n_samples = round(sr * duration_s)
    y = np.zeros((len(paths), n_samples), dtype=np.float32)
    last: tuple[str, bytes] = ("", b"")
    for row, path, span in zip(y, paths, spans or [None] * len(paths), strict=True):
        if path != last[0]:
            last = (path, file_bytes(path, fs=fs))
        _fit_into(row, last[1], name=path, sr=sr, crop=crop, span=span)
    return y


def clips_from_bytes(
    data: bytes,
    *,
    name: str,
    sr: int,
    duration_s: float,
    crop: Literal["start", "center"] = "start",
    spans: Sequence[Span | None],
) -> np.ndarray:
    """:func:`load_clips` of windows of one file whose bytes are in memory.

    Parameters
    ----------
    data : bytes
        The whole file.
    name : str
        Used in error details only.
    spans : sequence of Span or None
        ``(offset_s, duration_s)`` of each clip; ``None`` takes the whole file.

    Returns
    -------
    np.ndarray
        float32, shape ``(len(spans), round(sr * duration_s))``, at ``sr`` Hz.
    """
    y = np.zeros((len(spans), round(sr * duration_s)), dtype=np.float32)
    for row, span in zip(y, spans, strict=True):
        _fit_into(row, data, name=name, sr=sr, crop=crop, span=span)
    return y


def declared_duration_s(data: bytes) -> float:
    """The duration in seconds a file's header declares (an estimate for VBR MP3).

    0.0 when the header cannot be read: the full decode then says why.
    """
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            return int(f.frames) / int(f.samplerate) if f.samplerate else 0.0
    except (sf.LibsndfileError, RuntimeError, ValueError):
        return 0.0


def _fit_into(
    out: np.ndarray,
    data: bytes,
    *,
    name: str,
    sr: int,
    crop: Literal["start", "center"],
    span: Span | None,
) -> None:
    """Decode, downmix, resample and pad/crop one clip (or window) of ``data`` into ``out``."""
    source, orig_sr = _decode_mono(data, name=name, span=span, keep=(sr, len(out), crop))
    # fix_length straight into ``out``: np.pad's overhead was ~10 % of a batch of 1 s clips.
    kept = _kept(resample(source, orig_sr=orig_sr, target_sr=sr), n_samples=len(out), crop=crop)
    out[: len(kept)] = kept
    out[len(kept) :] = 0


def _frame_range(
    total: int, *, orig_sr: int, span: Span | None, keep: tuple[int, int, str]
) -> tuple[int, int | None]:
    """``(start, count)`` of the source frames that a clip needs (``None``: to the end).

    A window reads its own frames. Without resampling, only the frames that
    :func:`fix_length` keeps are read, which gives the very same samples.
    """
    if span is not None:
        offset_s, length_s = span
        return round(offset_s * orig_sr), round(length_s * orig_sr)
    sr, n_samples, crop = keep
    if orig_sr != sr or total <= n_samples:
        return 0, None
    return ((total - n_samples) // 2 if crop == "center" else 0), n_samples


def _decode_mono(
    data: bytes, *, name: str, span: Span | None, keep: tuple[int, int, str]
) -> tuple[np.ndarray, int]:
    """The mono float32 samples a clip needs from a file's bytes, and the file's rate in Hz."""
    if not data:
        raise AudioError("empty_file", f"{name}: 0 bytes")
    layout = wav.layout(data)
    if layout is not None:
        start, count = _frame_range(layout.frames, orig_sr=layout.sr, span=span, keep=keep)
        y, orig_sr = wav.mono(data, layout, start=start, frames=count), layout.sr
    else:
        try:
            with sf.SoundFile(io.BytesIO(data)) as f:
                orig_sr = int(f.samplerate)
                start, count = _frame_range(int(f.frames), orig_sr=orig_sr, span=span, keep=keep)
                if start:
                    f.seek(min(start, int(f.frames)))
                frames = -1 if count is None else count
                y = to_mono(f.read(frames=frames, dtype="float32", always_2d=True))
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise AudioError("corrupt", f"{name}: {exc}") from exc
    if not len(y):
        raise AudioError("no_samples", f"{name}: decodes to 0 samples")
    return y, orig_sr

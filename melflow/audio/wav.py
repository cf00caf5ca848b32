"""RIFF/WAVE chunk parsing: truncation checks, and a numpy decoder for common layouts.

libsndfile decodes every WAV, but opening a file through it costs ~25 system calls
(small header reads and seeks), and its 24-bit and multichannel conversions are slower
than numpy's. For PCM (16, 24 or 32 bit) and IEEE float (32 or 64 bit) WAVs with any
channel count and rate, reading the bytes once and converting them with numpy gives the
same samples as libsndfile, several times faster (see docs/formats.md).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

WAVE_FORMAT_PCM = 1
WAVE_FORMAT_IEEE_FLOAT = 3
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# The 14 bytes that follow the 2-byte format tag in the KSDATAFORMAT_SUBTYPE GUIDs.
_SUBTYPE_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
# Streaming writers leave 0 or 0xFFFFFFFF in the data size when the length was unknown.
UNKNOWN_SIZES = (0, 0xFFFFFFFF)
# Layouts numpy converts: (format tag, bits per sample).
_DECODABLE = {
    (WAVE_FORMAT_PCM, 16),
    (WAVE_FORMAT_PCM, 24),
    (WAVE_FORMAT_PCM, 32),
    (WAVE_FORMAT_IEEE_FLOAT, 32),
    (WAVE_FORMAT_IEEE_FLOAT, 64),
}


@dataclass(frozen=True)
class WavLayout:
    """Where and how the samples of a complete, numpy-decodable WAV are stored.

    Attributes
    ----------
    tag : int
        :data:`WAVE_FORMAT_PCM` or :data:`WAVE_FORMAT_IEEE_FLOAT`.
    bits : int
        Bits per sample: 16, 24 or 32 (PCM); 32 or 64 (float).
    channels, sr : int
        Channel count and sample rate in Hz.
    start : int
        Byte offset of the first sample.
    frames : int
        Samples per channel.
    """

    tag: int
    bits: int
    channels: int
    sr: int
    start: int
    frames: int

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.bits // 8


def chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """``(chunk id, payload offset, declared size)`` of each chunk of a RIFF/WAVE file.

    Yields nothing for bytes that are not RIFF/WAVE.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        yield chunk, pos + 8, size
        pos += 8 + size + (size & 1)


def data_truncated(data: bytes) -> bool:
    """True when the ``data`` chunk declares more bytes than the file holds.

    libsndfile silently clamps such files to the bytes present, so a clip cut off by an
    interrupted copy would otherwise pass as a valid, shorter one.
    """
    for chunk, start, size in chunks(data):
        if chunk == b"data":
            return size not in UNKNOWN_SIZES and start + size > len(data)
    return False


def layout(data: bytes) -> WavLayout | None:
    """The sample layout of a complete WAV that :func:`mono` can decode.

    Returns
    -------
    WavLayout or None
        ``None`` for any other file (another container or encoding, a damaged ``fmt ``
        chunk, or an incomplete or streamed ``data`` chunk), which the caller decodes with
        libsndfile instead.
    """
    fmt_chunk = None
    for chunk, start, size in chunks(data):
        if chunk == b"fmt ":
            fmt = data[start : start + size]
            if len(fmt) < 16:  # damaged header: let libsndfile name the problem
                return None
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
            if tag == WAVE_FORMAT_EXTENSIBLE:
                guid = fmt[24:40]
                tag = int.from_bytes(guid[:2], "little") if guid[2:] == _SUBTYPE_GUID_TAIL else 0
            fmt_chunk = (tag, bits, channels, rate)
        elif chunk == b"data":
            complete = size not in UNKNOWN_SIZES and start + size <= len(data)
            if fmt_chunk is None or not complete or fmt_chunk[:2] not in _DECODABLE:
                return None
            tag, bits, channels, rate = fmt_chunk
            if channels < 1:
                return None
            return WavLayout(tag, bits, channels, rate, start, size // (channels * bits // 8))
    return None


def mono(data: bytes, wav: WavLayout, *, start: int = 0, frames: int | None = None) -> np.ndarray:
    """Frames ``[start, start + frames)`` of a WAV, downmixed to float32 mono.

    Samples are scaled as libsndfile scales them (PCM by ``2**-(bits - 1)``), and
    channels are averaged by adding columns, then scaling once: for one or two channels of
    16- or 24-bit PCM or float this is bit-identical to libsndfile followed by a float32
    mean, and otherwise within a few float32 roundings of it.

    Parameters
    ----------
    data : bytes
        The whole file.
    wav : WavLayout
        Its :func:`layout`.
    start, frames : int
        First frame and frame count; ``frames=None`` reads to the end. Clamped to the file.

    Returns
    -------
    np.ndarray
        float32, shape ``(n_frames,)``.
    """
    start = min(max(start, 0), wav.frames)
    count = wav.frames - start if frames is None else min(frames, wav.frames - start)
    offset = wav.start + start * wav.frame_bytes
    x = _frames(data, wav, offset=offset, count=count)
    if wav.tag == WAVE_FORMAT_IEEE_FLOAT:
        # libsndfile hands out float32; averaging after that cast matches it.
        x = x.astype(np.float32, copy=False)
        if wav.channels == 1:
            return x[:, 0].copy()
        total = x[:, 0] + x[:, 1]
        for c in range(2, wav.channels):
            total += x[:, c]
        total *= np.float32(1 / wav.channels)
        return total
    if wav.channels == 1:
        y = x[:, 0].astype(np.float32)
    else:
        # Integer PCM: sum the channels exactly in integers, then scale once.
        acc: np.ndarray = x[:, 0].astype(np.int64 if wav.bits == 32 else np.int32)
        for c in range(1, wav.channels):
            acc += x[:, c]
        y = acc.astype(np.float32)
    y *= np.float32(2.0 ** -(wav.bits - 1) / wav.channels)
    return y


def _frames(data: bytes, wav: WavLayout, *, offset: int, count: int) -> np.ndarray:
    """``count`` frames from byte ``offset``, shape ``(count, channels)`` (a view if possible)."""
    n = count * wav.channels
    if wav.tag == WAVE_FORMAT_IEEE_FLOAT:
        dtype = "<f4" if wav.bits == 32 else "<f8"
        return np.frombuffer(data, dtype=dtype, count=n, offset=offset).reshape(count, -1)
    if wav.bits != 24:
        dtype = "<i2" if wav.bits == 16 else "<i4"
        return np.frombuffer(data, dtype=dtype, count=n, offset=offset).reshape(count, -1)
    # 24-bit: read each sample as the top 3 bytes of an int32 that starts one byte early
    # (the data chunk always follows a header, so offset >= 1), then shift down to
    # sign-extend. One strided pass: 8x faster than copying the bytes into a wider array.
    top = np.ndarray((n,), dtype="<i4", buffer=data, offset=offset - 1, strides=(3,))
    return (top >> 8).reshape(count, -1)

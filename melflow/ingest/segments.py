"""Long recordings as windows: one manifest row per window, grouped by its source file.

With ``audio.segment`` set, a usable file longer than ``audio.max_duration_s`` is not
quarantined as ``too_long``; its row is replaced by one row per window. A window's
``clip_id`` is ``<file clip_id>#<start_ms>-<end_ms>`` (stable, and changed by any change of
window or hop), ``offset_s`` and ``duration_s`` say which seconds of the file it holds,
and it keeps the file's ``group``, so a split never separates windows of one file.
"""

from __future__ import annotations

import math

import pandas as pd

from melflow.config import AudioConfig, SegmentConfig
from melflow.manifest import OK


def window_starts_ms(duration_s: float, *, segment: SegmentConfig) -> list[int]:
    """Window starts in whole milliseconds for a file of ``duration_s`` seconds.

    Windows start every ``hop`` seconds while they fit in the file. When the last of them
    ends before the file does, one more, zero-padded, covers the tail if at least half a
    window of audio is left for it.
    """
    window_ms, hop_ms = round(segment.window_s * 1000), round(segment.hop * 1000)
    length_ms = math.floor(duration_s * 1000)
    starts = list(range(0, max(length_ms - window_ms, 0) + 1, hop_ms))
    tail = starts[-1] + hop_ms
    if starts[-1] + window_ms < length_ms and length_ms - tail >= window_ms / 2:
        starts.append(tail)
    return starts


def segment_long_files(df: pd.DataFrame, *, audio: AudioConfig) -> pd.DataFrame:
    """Replace each usable row longer than ``audio.max_duration_s`` by its windows.

    Parameters
    ----------
    df : DataFrame
        Probed ingest rows with ``clip_id``, ``status``, ``duration_s`` (seconds) and
        ``offset_s`` (NaN: whole file).

    Returns
    -------
    DataFrame
        ``df`` unchanged when ``audio.segment`` is unset or nothing is that long; otherwise
        the other rows plus one row per window, sorted by ``clip_id``.
    """
    segment = audio.segment
    if segment is None:
        return df
    long = (df["status"] == OK) & (df["duration_s"] > audio.max_duration_s)
    if not long.any():
        return df
    window_ms = round(segment.window_s * 1000)
    windows = []
    for row in df[long].to_dict("records"):
        for start_ms in window_starts_ms(row["duration_s"], segment=segment):
            offset_s = start_ms / 1000
            windows.append(
                {
                    **row,
                    "clip_id": f"{row['clip_id']}#{start_ms}-{start_ms + window_ms}",
                    "offset_s": offset_s,
                    "duration_s": min(segment.window_s, row["duration_s"] - offset_s),
                }
            )
    return (
        pd.concat([df[~long], pd.DataFrame(windows, columns=df.columns)], ignore_index=True)
        .sort_values("clip_id", kind="stable")
        .reset_index(drop=True)
    )

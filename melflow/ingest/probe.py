"""Hash and decode every candidate file once, in a thread pool, with a persistent cache.

A file's probe (SHA-256, rate, channels, frames, peak level, or why it cannot be decoded)
depends only on its bytes, so it is cached by address and reused while the file's
``(size, mtime_ns)`` stamp is unchanged; a rerun over an unchanged corpus reads no audio.
The cache holds raw facts, not verdicts: limits such as ``audio.min_duration_s`` are
applied afterwards, so changing them needs no new probe.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, fields
from typing import Any

import pandas as pd

from melflow import storage
from melflow.audio.io import file_bytes, probe_bytes
from melflow.digest import digest_bytes
from melflow.errors import AudioError

# Bump when decode_audio's verdicts change, so cached probes are not trusted any more.
PROBE_VERSION = "1"
# Outcomes that may change without the file changing (retry them on the next run).
UNCACHED_REASONS = frozenset({"missing", "unreadable"})
_BATCH = 256
# Decoding releases the GIL, and object stores are latency-bound: more threads than cores.
LOCAL_THREADS = 2 * (os.cpu_count() or 1)
REMOTE_THREADS = 32


@dataclass(frozen=True)
class Probe:
    """What one read of a file established.

    ``reason`` is ``''`` for a decodable file, else an :class:`AudioError` reason; ``sr``
    (Hz), ``channels`` and ``frames`` are 0 and ``peak_db`` NaN when it was not decodable.
    """

    sha256: str
    reason: str
    detail: str
    sr: int
    channels: int
    frames: int
    peak_db: float


PROBE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Probe))
CACHE_COLUMNS: tuple[str, ...] = ("address", "size", "mtime_ns", "version", *PROBE_FIELDS)


@dataclass(frozen=True)
class Job:
    """A file to probe: its manifest address, where to read it, and its stat stamp."""

    address: str
    location: str
    size: int
    mtime_ns: int


def probe_file(location: str, *, fs: Any = None) -> Probe:
    """Read a file once, hash its bytes and decode them fully."""
    sha256 = ""
    try:
        data = file_bytes(location, fs=fs)
        sha256 = digest_bytes(data)
        info = probe_bytes(data, name=location)
    except AudioError as exc:
        # The report names the file already; keep just the cause.
        detail = exc.detail.removeprefix(f"{location}: ")
        return Probe(sha256, exc.reason, detail, 0, 0, 0, float("nan"))
    return Probe(sha256, "", "", info.sr, info.channels, info.frames, info.peak_db)


class ProbeCache:
    """Probes by address, valid while the file's ``(size, mtime_ns)`` is unchanged.

    Stored as one Parquet file shared by every corpus under the same ``data_dir``.
    """

    def __init__(self, path: str, *, storage_options: dict[str, Any] | None = None) -> None:
        self.path = path
        self.storage_options = storage_options
        self.table = self._load()

    def _load(self) -> pd.DataFrame:
        if not storage.exists(self.path, self.storage_options):
            return pd.DataFrame(columns=list(CACHE_COLUMNS))
        table = pd.read_parquet(io.BytesIO(storage.read_bytes(self.path, self.storage_options)))
        if list(table.columns) != list(CACHE_COLUMNS):
            return pd.DataFrame(columns=list(CACHE_COLUMNS))
        return table[table["version"] == PROBE_VERSION]

    def lookup(self, jobs: Sequence[Job]) -> dict[str, Probe]:
        """Cached probes of the jobs whose stamp matches, by address."""
        if self.table.empty or not jobs:
            return {}
        wanted = pd.DataFrame(
            {
                "address": [j.address for j in jobs],
                "size": [j.size for j in jobs],
                "mtime_ns": [j.mtime_ns for j in jobs],
            }
        )
        hits = wanted.merge(self.table, on=["address", "size", "mtime_ns"], how="inner")
        hits = hits[hits["mtime_ns"] >= 0]
        rows = hits.loc[:, ["address", *PROBE_FIELDS]].itertuples(index=False, name=None)
        return {address: Probe(*values) for address, *values in rows}

    def save(self, jobs: Sequence[Job], probes: dict[str, Probe], *, prefix: str) -> None:
        """Replace the entries under ``prefix`` (one corpus root) by this run's probes."""
        fresh = [
            (j.address, j.size, j.mtime_ns, PROBE_VERSION, *astuple(probes[j.address]))
            for j in jobs
            if j.mtime_ns >= 0 and probes[j.address].reason not in UNCACHED_REASONS
        ]
        kept = self.table[~self.table["address"].astype(str).str.startswith(prefix)]
        table = pd.concat(
            [kept, pd.DataFrame.from_records(fresh, columns=list(CACHE_COLUMNS))],
            ignore_index=True,
        )
        buffer = io.BytesIO()
        table.astype({"size": "int64", "mtime_ns": "int64", "sr": "int64"}).to_parquet(
            buffer, index=False
        )
        storage.write_bytes_atomic(self.path, buffer.getvalue(), self.storage_options)
        self.table = table


def probe_files(
    jobs: Sequence[Job],
    *,
    cache: ProbeCache,
    fs: Any = None,
    threads: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Probe], int]:
    """Probe every job, reusing cached probes of unchanged files.

    Parameters
    ----------
    threads : int, optional
        Reader threads; default :data:`LOCAL_THREADS`, or :data:`REMOTE_THREADS` with ``fs``.

    Returns
    -------
    probes : dict
        Address -> :class:`Probe`, one per job.
    n_probed : int
        How many files were actually read (the rest came from the cache).
    """
    probes = cache.lookup(jobs)
    todo = [j for j in jobs if j.address not in probes]
    total = len(jobs)
    done = total - len(todo)
    if on_progress is not None:
        on_progress(done, total)
    if todo:
        threads = threads or (LOCAL_THREADS if fs is None else REMOTE_THREADS)
        with ThreadPoolExecutor(max_workers=min(threads, len(todo))) as pool:
            for start in range(0, len(todo), _BATCH):
                batch = todo[start : start + _BATCH]
                for job, probe in zip(
                    batch, pool.map(lambda j: probe_file(j.location, fs=fs), batch), strict=True
                ):
                    probes[job.address] = probe
                done += len(batch)
                if on_progress is not None:
                    on_progress(done, total)
    return probes, len(todo)

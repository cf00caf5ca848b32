"""The ingest stage: corpus -> manifest Parquet + quarantine report + ``latest`` pointer.

Outputs under ``<data_dir>``:

- ``manifests/<manifest_digest>.parquet``: every clip, usable or not (see
  :mod:`melflow.manifest`);
- ``reports/quarantine-<manifest_digest>.csv``: ``clip_id,path,status,detail`` of each
  quarantined row;
- ``manifests/latest-<cfg.name>.json``: the :class:`IngestResult`, so later stages and
  ``melflow status`` find the last manifest of a profile;
- ``manifests/probe-cache.parquet``: per-file probes reused by the next run.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import pandas as pd

from melflow import storage
from melflow.config import AudioConfig, PipelineConfig
from melflow.demo_corpus import NotADemoCorpusError, ensure_demo_corpus
from melflow.ingest.probe import Job, Probe, ProbeCache, probe_files
from melflow.ingest.segments import segment_long_files
from melflow.ingest.sources import (
    Corpus,
    list_candidates,
    open_corpus,
)
from melflow.ingest.splits import assign_splits
from melflow.layout import Layout, StageRef
from melflow.manifest import COLUMNS, OK, manifest_bytes, manifest_digest, read_manifest

log = logging.getLogger(__name__)
REPORT_COLUMNS: tuple[str, ...] = ("clip_id", "path", "status", "detail")


@dataclass(frozen=True)
class IngestResult:
    """Where a manifest was written and what it holds.

    ``reasons`` counts quarantined rows per reason; ``n_probed`` is how many files were
    read this run (the rest were unchanged and came from the probe cache).
    """

    manifest_path: str
    manifest_digest: str
    report_path: str
    n_clips: int
    n_ok: int
    n_quarantined: int
    reasons: dict[str, int]
    n_probed: int = 0

    @property
    def manifest(self) -> StageRef:
        """The manifest as later stages receive it."""
        return StageRef(self.manifest_digest, self.manifest_path)

    @property
    def cached(self) -> bool:
        """True when no file had to be read: the corpus was unchanged since the last run."""
        return self.n_probed == 0


def pointer_path(cfg: PipelineConfig) -> str:
    """``<data_dir>/manifests/latest-<cfg.name>.json``."""
    return Layout.of(cfg).pointer(cfg.name)


def _ensure_demo(cfg: PipelineConfig) -> None:
    """Generate (or complete) the demo corpus in a local ``corpus.root`` when ``corpus.demo``
    is set; a complete corpus costs one small file read."""
    demo, root = cfg.corpus.demo, cfg.corpus.root
    if demo is None or storage.is_url(root):
        return
    log.info("demo corpus (%d clips per class) in %s", demo.per_class, root)
    try:
        ensure_demo_corpus(
            root=root,
            per_class=demo.per_class,
            seed=demo.seed,
            sr=demo.sr,
            min_duration_s=demo.min_duration_s,
            max_duration_s=demo.max_duration_s,
        )
    except NotADemoCorpusError as exc:  # the user's own corpus: ingest it as it is
        log.warning("%s", exc)


def _judge(probe: Probe, audio: AudioConfig) -> tuple[str, str]:
    """The status and detail of a probed file under the configured limits."""
    if probe.reason:
        return probe.reason, probe.detail
    duration = probe.frames / probe.sr
    if duration < audio.min_duration_s:
        return "too_short", f"{duration:.3f} s < audio.min_duration_s={audio.min_duration_s:g}"
    if duration > audio.max_duration_s and audio.segment is None:
        return "too_long", f"{duration:.3f} s > audio.max_duration_s={audio.max_duration_s:g}"
    if probe.peak_db < audio.silence_db:
        return "silent", f"peak {probe.peak_db:.1f} dBFS < audio.silence_db={audio.silence_db:g}"
    return OK, ""


def _apply_probes(df: pd.DataFrame, probes: dict[str, Probe], audio: AudioConfig) -> pd.DataFrame:
    """Fill the file columns and statuses of the rows that were probed (keyed by ``path``)."""
    probed = (df["status"] == OK).to_numpy()
    found = [probes[path] for path in df.loc[probed, "path"]]
    judged = [_judge(p, audio) for p in found]
    df = df.assign(sha256="", offset_s=math.nan, duration_s=math.nan, sr=0, channels=0)
    rows = df.index[probed]
    df.loc[rows, "status"] = [status for status, _ in judged]
    df.loc[rows, "detail"] = [detail for _, detail in judged]
    df.loc[rows, "sha256"] = [p.sha256 for p in found]
    df.loc[rows, "sr"] = [p.sr for p in found]
    df.loc[rows, "channels"] = [p.channels for p in found]
    df.loc[rows, "duration_s"] = [p.frames / p.sr if p.sr else math.nan for p in found]
    return df


def _mark_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    """Quarantine usable clips whose bytes equal an earlier usable clip's (``clip_id`` order).

    Two copies of one recording in different splits would leak test data into training.
    """
    ok = df[df["status"] == OK]
    repeat = ok["sha256"].duplicated(keep="first")
    if not repeat.any():
        return df
    first = ok[~repeat].set_index("sha256")["clip_id"]
    index = repeat[repeat].index
    df = df.copy()
    df.loc[index, "status"] = "duplicate"
    df.loc[index, "detail"] = "same bytes as " + df.loc[index, "sha256"].map(first)
    return df


def _jobs(df: pd.DataFrame) -> list[Job]:
    rows = df.loc[df["status"] == OK, ["path", "location", "size", "mtime_ns"]]
    return [Job(*row) for row in rows.itertuples(index=False, name=None)]


def _write_outputs(df: pd.DataFrame, cfg: PipelineConfig, n_probed: int) -> IngestResult:
    options = cfg.paths.storage_options
    layout = Layout.of(cfg)
    manifest = df.loc[:, list(COLUMNS)]
    digest = manifest_digest(manifest)
    quarantined = manifest[manifest["status"] != OK]
    result = IngestResult(
        manifest_path=layout.manifest(digest),
        manifest_digest=digest,
        report_path=layout.quarantine_report(digest),
        n_clips=len(manifest),
        n_ok=len(manifest) - len(quarantined),
        n_quarantined=len(quarantined),
        reasons={
            str(k): int(v) for k, v in quarantined["status"].value_counts().sort_index().items()
        },
        n_probed=n_probed,
    )
    storage.write_bytes_atomic(result.manifest_path, manifest_bytes(manifest), options)
    report = quarantined.loc[:, list(REPORT_COLUMNS)].to_csv(index=False).encode()
    storage.write_bytes_atomic(result.report_path, report, options)
    saved = {
        **asdict(result),
        # Relative: the pointer stays valid when the data folder is copied or moved.
        "manifest_path": layout.relative(result.manifest_path),
        "report_path": layout.relative(result.report_path),
    }
    pointer = json.dumps(saved, indent=2, sort_keys=True).encode()
    storage.write_bytes_atomic(layout.pointer(cfg.name), pointer, options)
    return result


def ingest_corpus(
    *, cfg: PipelineConfig, on_progress: Callable[[int, int], None] | None = None
) -> IngestResult:
    """Scan ``cfg.corpus`` into a manifest, quarantining every unusable file with a reason.

    Generates the demo corpus first when ``corpus.demo`` is set and the root holds no
    audio. Files unchanged since the last run (same size and mtime) are not read again.

    Parameters
    ----------
    cfg : PipelineConfig
        Reads ``corpus``, ``audio`` (duration and silence limits), ``paths`` and ``name``.
    on_progress : callable, optional
        Called as ``on_progress(done, total)`` with files probed (or found in the cache)
        so far, from the calling thread.

    Returns
    -------
    IngestResult
        Paths of the manifest, report and counts; also written to :func:`pointer_path`.

    Raises
    ------
    ConfigError
        The corpus root, the manifest file or a configured column is missing, no clip was
        found, or the split column/folds hold invalid values.
    """
    _ensure_demo(cfg)
    options = cfg.paths.storage_options
    corpus: Corpus = open_corpus(cfg.corpus.root, storage_options=options)
    df = list_candidates(corpus, cfg.corpus)
    cache = ProbeCache(Layout.of(cfg).probe_cache(), storage_options=options)
    jobs = _jobs(df)
    probes, n_probed = probe_files(jobs, cache=cache, fs=corpus.fs, on_progress=on_progress)
    if n_probed:
        cache.save(jobs, probes, prefix=corpus.address(corpus.location("")))
    df = _mark_duplicates(_apply_probes(df, probes, cfg.audio))
    # After de-duplication, which compares whole files: windows of one file share its bytes.
    df = segment_long_files(df, audio=cfg.audio)
    df["split"] = assign_splits(df, cfg.corpus)
    result = _write_outputs(df, cfg, n_probed)
    log.info(
        "ingest: %d clips, %d ok, %d quarantined %s, %d files read -> %s",
        result.n_clips,
        result.n_ok,
        result.n_quarantined,
        result.reasons,
        n_probed,
        result.manifest_path,
    )
    return result


def latest_manifest(*, cfg: PipelineConfig) -> IngestResult | None:
    """The result of the last :func:`ingest_corpus` of this profile, or ``None``.

    ``None`` also when the pointer names a manifest that no longer exists.
    """
    options = cfg.paths.storage_options
    layout = Layout.of(cfg)
    path = layout.pointer(cfg.name)
    if not storage.exists(path, options):
        return None
    data: dict[str, Any] = json.loads(storage.read_bytes(path, options))
    known = {f.name for f in fields(IngestResult)}
    result = IngestResult(**{k: v for k, v in data.items() if k in known})
    result = replace(
        result,
        manifest_path=layout.resolve(result.manifest_path),
        report_path=layout.resolve(result.report_path),
    )
    return result if storage.exists(result.manifest_path, options) else None


def load_manifest(
    result_or_path: IngestResult | str, *, storage_options: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Read the manifest of an :class:`IngestResult` (or at a path/URL), normalized."""
    path = (
        result_or_path.manifest_path if isinstance(result_or_path, IngestResult) else result_or_path
    )
    return read_manifest(path, storage_options=storage_options)

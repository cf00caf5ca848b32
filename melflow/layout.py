"""Where every output of a data folder lives: one object, derived from ``paths.data_dir``.

Layout of ``<data_dir>`` (a local folder or an fsspec URL)::

    manifests/<manifest digest>.parquet     ingest's manifest
    manifests/latest-<profile>.json         the last ingest of a profile (relative locations)
    manifests/probe-cache.parquet           per-file probes reused by the next ingest
    reports/quarantine-<digest>.csv         quarantined rows of a manifest
    features/<store digest>/                the clean feature store
    augmented/<store digest>/               the augmented feature store
    runs/<train digest>/                    checkpoints, bundle/, train-result.json
    runs/<train digest>/eval-<split>/       evaluation report, predictions, figures
    runs/_champion/<bundle digest>/         the champion's bundle, to fine-tune from
    sweeps/points/<point digest>/           a sweep point: its folds' runs, point.json
    sweeps/<sweep digest>/                  a sweep's table (CSV, JSON) and plot
    mlflow.db, mlartifacts/                 the default MLflow store
    prefect-results/                        Prefect's persisted task results (local)
    locks/                                  the run lock (and store locks when local)

Runs, sweeps, locks and Prefect results need a local file system: for a URL data folder
they live in a per-user cache folder named after the URL (:attr:`Layout.local_root`), never
under a fixed name in the shared temp directory.

Every digest that names a folder is a content digest: how ``data_dir`` is spelled, or
where the folder was copied, never enters one. Locations that are saved (the ``latest``
pointer, stage results) are stored relative to the data folder and resolved on reading.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from melflow import storage
from melflow.config import PipelineConfig
from melflow.digest import digest_of


@dataclass(frozen=True)
class StageRef:
    """A stage's output as the next stage receives it: content digest and location.

    ``digest`` identifies what the output holds (its inputs, config and code version);
    ``location`` is where it is, an absolute path or a URL.
    """

    digest: str
    location: str


@dataclass(frozen=True)
class Layout:
    """Every location of one data folder.

    ``root`` is absolute (a local path resolved against the working directory, or a URL):
    what a process hands to Dask workers must not depend on its working directory.
    """

    root: str
    storage_options: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, cfg: PipelineConfig) -> Layout:
        """The layout of ``cfg.paths.data_dir``."""
        return cls(storage.absolute(cfg.paths.data_dir), dict(cfg.paths.storage_options))

    @property
    def is_url(self) -> bool:
        return storage.is_url(self.root)

    def path(self, *parts: str) -> str:
        """``<root>/<parts...>``."""
        return storage.join(self.root, *parts)

    def exists(self) -> bool:
        """True when the data folder exists (read-only commands create nothing otherwise)."""
        return storage.exists(self.root, self.storage_options)

    # -- saved locations -------------------------------------------------------------------
    def relative(self, location: str) -> str:
        """``location`` relative to the root (POSIX), for saving; outside locations unchanged."""
        prefix = self.root.rstrip("/\\")
        if location.startswith(prefix + "/") or location.startswith(prefix + os.sep):
            return location[len(prefix) + 1 :].replace(os.sep, "/")
        return location

    def resolve(self, saved: str) -> str:
        """A saved location (see :meth:`relative`) as an absolute path or URL."""
        if not saved or storage.is_url(saved) or os.path.isabs(saved):
            return saved
        return self.path(*saved.split("/"))

    # -- ingest ----------------------------------------------------------------------------
    def manifest(self, digest: str) -> str:
        return self.path("manifests", f"{digest}.parquet")

    def quarantine_report(self, digest: str) -> str:
        return self.path("reports", f"quarantine-{digest}.csv")

    def pointer(self, profile: str) -> str:
        """``manifests/latest-<profile>.json``: the last ingest of a profile."""
        return self.path("manifests", f"latest-{profile}.json")

    def probe_cache(self) -> str:
        return self.path("manifests", "probe-cache.parquet")

    # -- stores ----------------------------------------------------------------------------
    def store(self, folder: str, digest: str) -> str:
        """A row store: ``features/<digest>`` or ``augmented/<digest>``."""
        return self.path(folder, digest)

    # -- local state: runs, locks --------------------------------------------------------
    @property
    def local_root(self) -> Path:
        """The data folder itself when local; a per-user cache folder for a URL."""
        if self.is_url:
            return storage.user_state_dir() / digest_of("data-dir", self.root)
        return Path(self.root)

    def run(self, digest: str) -> str:
        """Folder of the training run ``digest`` (checkpoints need a local file system)."""
        return str(self.local_root / "runs" / digest)

    def eval_dir(self, run: str, split: str) -> str:
        """Evaluation outputs of the bundle trained in ``run`` on ``split``."""
        return str(Path(run, f"eval-{split}"))

    def champion_dir(self, bundle_digest: str) -> str:
        """Where the champion's bundle is downloaded to fine-tune from."""
        return str(self.local_root / "runs" / "_champion" / bundle_digest)

    def sweeps(self) -> Path:
        """Sweep points and tables (``melflow sweep``; points train, so they are local)."""
        return self.local_root / "sweeps"

    def locks(self) -> Path:
        return self.local_root / "locks"

    def lock_file(self, name: str) -> str:
        """A local lock file ``locks/<name>.lock`` (created with its folder)."""
        folder = self.locks()
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / f"{name}.lock")

    # -- services --------------------------------------------------------------------------
    def mlflow_db(self) -> str:
        return str(self.local_root / "mlflow.db")

    def mlartifacts(self) -> str:
        return str(self.local_root / "mlartifacts")

    def prefect_results(self) -> str:
        """Prefect's persisted task results (a local folder: Prefect writes them itself)."""
        return str(self.local_root / "prefect-results")

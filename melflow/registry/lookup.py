"""Read the registry: list, show and compare versions, load one, fetch the champion's bundle.

Read-only: on a data folder whose MLflow store was never created, nothing is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from melflow.config import PipelineConfig
from melflow.errors import MelflowError, ParameterError
from melflow.lineage import PER_CLASS_PREFIX, SUMMARY_METRICS
from melflow.registry.location import store_exists
from melflow.registry.names import (
    BUNDLE_ARTIFACT,
    BUNDLE_DIGEST_TAG,
    CHAMPION,
    EVAL_DIGEST_TAG,
    GIT_COMMIT_TAG,
)
from melflow.registry.reader import (
    RegistryReader,
    VersionRecord,
    aliases_by_version,
    created_utc,
    find_version,
    known_model,
    plain_metrics,
    reading,
    run_of,
)

LIST_COLUMNS = ["version", "aliases", "accuracy", "macro_f1", "weighted_f1", "created", "run_id"]


@dataclass(frozen=True)
class VersionInfo:
    """One registered version as :func:`show` reports it.

    ``metrics`` are test metrics without prefix (``macro_f1``, ``f1_<class>``); ``tags``
    the version's tags (bundle and eval digests, promotion record); ``run_tags`` the
    run's own tags; ``feature`` and ``features`` the feature config it was trained on.
    """

    name: str
    version: str
    aliases: list[str]
    created: str
    run_id: str
    source: str
    metrics: dict[str, float]
    tags: dict[str, str]
    run_tags: dict[str, str]
    classes: list[str]
    feature: str | None
    features: dict[str, str]

    @property
    def bundle_digest(self) -> str | None:
        return self.tags.get(BUNDLE_DIGEST_TAG)

    @property
    def eval_digest(self) -> str | None:
        return self.tags.get(EVAL_DIGEST_TAG)


def _no_store(cfg: PipelineConfig) -> MelflowError:
    return MelflowError(
        f"no registered model {cfg.registry.model_name!r} yet; train and evaluate one first"
    )


def _test_metrics(reader: RegistryReader, record: VersionRecord) -> dict[str, float]:
    return plain_metrics(reader.run(run_of(record)).metrics)


def list_versions(*, cfg: PipelineConfig) -> pd.DataFrame:
    """Every version of the configured model, newest first.

    Returns
    -------
    DataFrame
        ``version``, ``aliases`` (comma-separated), ``accuracy``, ``macro_f1``,
        ``weighted_f1``, ``created`` (UTC), ``run_id``; empty when nothing is registered.
    """
    name = cfg.registry.model_name
    if not store_exists(cfg):
        return pd.DataFrame(columns=LIST_COLUMNS)
    with reading(cfg) as reader:
        if not reader.is_registered(name):
            return pd.DataFrame(columns=LIST_COLUMNS)
        by_version = aliases_by_version(reader, name)
        rows = []
        for record in reader.versions(name):
            metrics = _test_metrics(reader, record)
            rows.append(
                {
                    "version": record.version,
                    "aliases": ",".join(sorted(by_version.get(record.version, []))),
                    **{k: metrics.get(k, np.nan) for k in ("accuracy", "macro_f1", "weighted_f1")},
                    "created": created_utc(record.created_ms),
                    "run_id": record.run_id,
                }
            )
    frame = pd.DataFrame(rows, columns=LIST_COLUMNS)
    return frame.sort_values(
        "version", key=lambda s: s.astype(int), ascending=False, ignore_index=True
    )


def _show(reader: RegistryReader, name: str, ref: str) -> VersionInfo:
    known_model(reader, name)
    record = find_version(reader, name, ref)
    run = reader.run(run_of(record))
    return VersionInfo(
        name=name,
        version=record.version,
        aliases=sorted(aliases_by_version(reader, name).get(record.version, [])),
        created=created_utc(record.created_ms),
        run_id=run_of(record),
        source=record.source,
        metrics=plain_metrics(run.metrics),
        tags=record.tags,
        run_tags={
            k: v for k, v in run.tags.items() if k == GIT_COMMIT_TAG or not k.startswith("mlflow.")
        },
        classes=sorted(
            k.removeprefix(PER_CLASS_PREFIX) for k in run.metrics if k.startswith(PER_CLASS_PREFIX)
        ),
        feature=run.params.get("train.feature"),
        features={
            k.removeprefix("features."): v
            for k, v in run.params.items()
            if k.startswith("features.")
        },
    )


def show(*, cfg: PipelineConfig, ref: str) -> VersionInfo:
    """One version's details: aliases, metrics (incl. per-class F1), tags, data lineage."""
    if not store_exists(cfg):
        raise _no_store(cfg)
    with reading(cfg) as reader:
        return _show(reader, cfg.registry.model_name, ref)


def champion_info(*, cfg: PipelineConfig) -> VersionInfo | None:
    """The champion's details, or ``None`` when there is none (or no store yet)."""
    name = cfg.registry.model_name
    if not store_exists(cfg):
        return None
    with reading(cfg) as reader:
        if not reader.is_registered(name) or reader.version_by_alias(name, CHAMPION) is None:
            return None
        return _show(reader, name, CHAMPION)


def compare(*, cfg: PipelineConfig, a: str, b: str) -> pd.DataFrame:
    """Test metrics of two versions side by side.

    Returns
    -------
    DataFrame
        Index: metric (summary metrics first, then ``f1_<class>``); columns: ``a``'s and
        ``b``'s version as ``v<N>``, and ``delta`` (b - a). Also flags in
        ``attrs["same_eval_set"]`` whether both were scored on one evaluation set.
    """
    name = cfg.registry.model_name
    if not store_exists(cfg):
        raise _no_store(cfg)
    with reading(cfg) as reader:
        known_model(reader, name)
        rec_a, rec_b = find_version(reader, name, a), find_version(reader, name, b)
        ma, mb = _test_metrics(reader, rec_a), _test_metrics(reader, rec_b)
    col_a, col_b = f"v{rec_a.version}", f"v{rec_b.version}"
    if col_a == col_b:
        raise ParameterError(f"{a!r} and {b!r} are both version {rec_a.version}")
    summary = [k for k in SUMMARY_METRICS if k in ma or k in mb]
    per_class = sorted(k for k in set(ma) | set(mb) if k.startswith("f1_"))
    rows = summary + per_class
    frame = pd.DataFrame(
        {col_a: [ma.get(k, np.nan) for k in rows], col_b: [mb.get(k, np.nan) for k in rows]},
        index=pd.Index(rows, name="metric"),
    )
    frame["delta"] = frame[col_b] - frame[col_a]
    frame.attrs["same_eval_set"] = rec_a.tags.get(EVAL_DIGEST_TAG) == rec_b.tags.get(
        EVAL_DIGEST_TAG
    )
    return frame


def load_champion(*, cfg: PipelineConfig, ref: str = CHAMPION) -> Any:
    """Load a registered version (number or alias) as an MLflow pyfunc model.

    ``model.predict(DataFrame)`` takes ``path`` or ``waveform`` + ``sr`` columns and returns
    ``label``, ``prob_<class>`` and ``error`` columns.
    """
    import mlflow

    from melflow.registry.session import session
    from melflow.registry.versions import ClientReader

    name = cfg.registry.model_name
    if not store_exists(cfg):
        raise _no_store(cfg)
    with session(cfg) as client:
        reader = ClientReader(client)
        known_model(reader, name)
        version = find_version(reader, name, ref).version
        return mlflow.pyfunc.load_model(f"models:/{name}/{version}")


def download_bundle(*, cfg: PipelineConfig, version: str, dest: str) -> str:
    """Download the model bundle of ``version`` into ``dest``; returns the bundle folder.

    Used to fine-tune a challenger from the champion's weights (``train.init_from_champion``)
    and to re-score the champion on a new test split.
    """
    import mlflow

    from melflow.registry.session import session
    from melflow.registry.versions import ClientReader

    name = cfg.registry.model_name
    with session(cfg) as client:
        number = find_version(ClientReader(client), name, version).version
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{number}", dst_path=dest
        )
    return str(Path(local, "artifacts", BUNDLE_ARTIFACT))


def champion_bundle(*, cfg: PipelineConfig, dest: str) -> str | None:
    """Download the champion's model bundle into ``dest``; ``None`` when there is no champion."""
    info = champion_info(cfg=cfg)
    return None if info is None else download_bundle(cfg=cfg, version=info.version, dest=dest)

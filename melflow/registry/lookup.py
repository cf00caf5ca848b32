"""Read the registry: list, show and compare versions, load one, fetch the champion's bundle.

Read-only: on a data folder whose MLflow store was never created, nothing is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from melflow.config import PipelineConfig
from melflow.errors import MelflowError, ParameterError
from melflow.lineage import PER_CLASS_PREFIX, SUMMARY_METRICS
from melflow.registry.names import (
    BUNDLE_ARTIFACT,
    BUNDLE_DIGEST_TAG,
    CHAMPION,
    EVAL_DIGEST_TAG,
    GIT_COMMIT_TAG,
)
from melflow.registry.session import session, store_exists
from melflow.registry.versions import (
    aliases,
    champion,
    created,
    is_registered,
    known_model,
    run_id,
    test_metrics,
    version_of,
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
    with session(cfg) as client:
        if not is_registered(client, name):
            return pd.DataFrame(columns=LIST_COLUMNS)
        by_version = aliases(client, name)
        rows = []
        for mv in client.search_model_versions(f"name = '{name}'"):
            metrics = test_metrics(client, mv)
            rows.append(
                {
                    "version": str(mv.version),
                    "aliases": ",".join(sorted(by_version.get(str(mv.version), []))),
                    **{k: metrics.get(k, np.nan) for k in ("accuracy", "macro_f1", "weighted_f1")},
                    "created": created(mv),
                    "run_id": mv.run_id,
                }
            )
    frame = pd.DataFrame(rows, columns=LIST_COLUMNS)
    return frame.sort_values(
        "version", key=lambda s: s.astype(int), ascending=False, ignore_index=True
    )


def show(*, cfg: PipelineConfig, ref: str) -> VersionInfo:
    """One version's details: aliases, metrics (incl. per-class F1), tags, data lineage."""
    name = cfg.registry.model_name
    if not store_exists(cfg):
        raise _no_store(cfg)
    with session(cfg) as client:
        known_model(client, name)
        mv = version_of(client, name, ref)
        run = client.get_run(run_id(mv))
        params = run.data.params
        classes = sorted(
            k.removeprefix(PER_CLASS_PREFIX)
            for k in run.data.metrics
            if k.startswith(PER_CLASS_PREFIX)
        )
        return VersionInfo(
            name=name,
            version=str(mv.version),
            aliases=sorted(aliases(client, name).get(str(mv.version), [])),
            created=created(mv),
            run_id=run_id(mv),
            source=str(mv.source),
            metrics=test_metrics(client, mv),
            tags=dict(mv.tags),
            run_tags={
                k: v
                for k, v in run.data.tags.items()
                if k == GIT_COMMIT_TAG or not k.startswith("mlflow.")
            },
            classes=classes,
            feature=params.get("train.feature"),
            features={
                k.removeprefix("features."): v
                for k, v in params.items()
                if k.startswith("features.")
            },
        )


def champion_info(*, cfg: PipelineConfig) -> VersionInfo | None:
    """The champion's details, or ``None`` when there is none (or no store yet)."""
    if not store_exists(cfg):
        return None
    with session(cfg) as client:
        if not is_registered(client, cfg.registry.model_name):
            return None
        if champion(client, cfg.registry.model_name) is None:
            return None
    return show(cfg=cfg, ref=CHAMPION)


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
    with session(cfg) as client:
        known_model(client, name)
        mv_a, mv_b = version_of(client, name, a), version_of(client, name, b)
        ma, mb = test_metrics(client, mv_a), test_metrics(client, mv_b)
    col_a, col_b = f"v{mv_a.version}", f"v{mv_b.version}"
    if col_a == col_b:
        raise ParameterError(f"{a!r} and {b!r} are both version {mv_a.version}")
    summary = [k for k in SUMMARY_METRICS if k in ma or k in mb]
    per_class = sorted(k for k in set(ma) | set(mb) if k.startswith("f1_"))
    rows = summary + per_class
    frame = pd.DataFrame(
        {col_a: [ma.get(k, np.nan) for k in rows], col_b: [mb.get(k, np.nan) for k in rows]},
        index=pd.Index(rows, name="metric"),
    )
    frame["delta"] = frame[col_b] - frame[col_a]
    frame.attrs["same_eval_set"] = mv_a.tags.get(EVAL_DIGEST_TAG) == mv_b.tags.get(EVAL_DIGEST_TAG)
    return frame


def load_champion(*, cfg: PipelineConfig, ref: str = CHAMPION) -> Any:
    """Load a registered version (number or alias) as an MLflow pyfunc model.

    ``model.predict(DataFrame)`` takes ``path`` or ``waveform`` + ``sr`` columns and returns
    ``label``, ``prob_<class>`` and ``error`` columns.
    """
    name = cfg.registry.model_name
    if not store_exists(cfg):
        raise _no_store(cfg)
    with session(cfg) as client:
        known_model(client, name)
        mv = version_of(client, name, ref)
        return mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")


def download_bundle(*, cfg: PipelineConfig, version: str, dest: str) -> str:
    """Download the model bundle of ``version`` into ``dest``; returns the bundle folder.

    Used to fine-tune a challenger from the champion's weights (``train.init_from_champion``)
    and to re-score the champion on a new test split.
    """
    name = cfg.registry.model_name
    with session(cfg) as client:
        mv = version_of(client, name, version)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{mv.version}", dst_path=dest
        )
    return str(Path(local, "artifacts", BUNDLE_ARTIFACT))


def champion_bundle(*, cfg: PipelineConfig, dest: str) -> str | None:
    """Download the champion's model bundle into ``dest``; ``None`` when there is no champion."""
    info = champion_info(cfg=cfg)
    return None if info is None else download_bundle(cfg=cfg, version=info.version, dest=dest)

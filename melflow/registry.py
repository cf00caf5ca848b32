"""MLflow tracking and model registry: log evaluated models, gate promotion, load champions.

The only module that imports MLflow. Every registered version is an MLflow *pyfunc* that
takes raw audio (see :mod:`melflow.predict`) and carries its bundle plus a copy of the
``melflow`` package (``code_paths``), so it loads in any environment with the listed
pip requirements. Aliases: every new version becomes ``challenger``; ``champion`` moves
only through :func:`promote_if_better` (gated) or :func:`promote` (manual, with a reason).

Tracking defaults to a local SQLite database ``<data_dir>/mlflow.db`` with artifacts in
``<data_dir>/mlartifacts``; ``registry.tracking_uri`` or ``$MLFLOW_TRACKING_URI`` (which
wins) points elsewhere, e.g. at an MLflow server.
"""

from __future__ import annotations

import os

# Before mlflow is imported: it reads this once, and melflow never phones home.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import dataclasses
import logging
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array

import melflow
from melflow import storage
from melflow.config import PipelineConfig
from melflow.cv import CvResult
from melflow.errors import ConfigError, MelflowError, ParameterError
from melflow.lineage import (
    METRIC_PREFIX,
    PER_CLASS_PREFIX,
    SUMMARY_METRICS,
    bundle_digest,
    eval_set_digest,
    flatten,
    git_commit,
    report_metrics,
)
from melflow.models.bundle import load_bundle, read_meta
from melflow.predict import ERROR, LABEL, PATH, SR, WAVEFORM, predict_frame, prob_columns
from melflow.promotion import PREDICTED_COLUMN, Candidate, PromotionDecision, decide

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
BUNDLE_ARTIFACT = "bundle"
PREDICTIONS_ARTIFACT = "predictions/predictions.csv"
BUNDLE_DIGEST_TAG = "melflow.bundle_digest"
EVAL_DIGEST_TAG = "melflow.eval_digest"
GIT_COMMIT_TAG = "melflow.git_commit"
PROMOTION_TAG = "melflow.promotion"
# The registered model's runtime needs; pinned to this environment so a version loads
# the same way wherever it is served (melflow itself travels as code_paths).
RUNTIME_PACKAGES = (
    "mlflow",
    "torch",
    "numpy",
    "pandas",
    "scipy",
    "librosa",
    "soundfile",
    "soxr",
    "pydantic",
    "pyyaml",
    "fsspec",
)
_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@dataclass(frozen=True)
class RegisteredModel:
    """A model version created by :func:`log_and_register`, or found (``existing``) because
    the same bundle was already registered with the same evaluation set."""

    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    existing: bool = False


# --------------------------------------------------------------------------- connection


def tracking_uri(cfg: PipelineConfig) -> str:
    """Where runs and the registry live: ``$MLFLOW_TRACKING_URI``, else the config, else SQLite.

    Raises
    ------
    ConfigError
        ``paths.data_dir`` is a URL and no tracking URI is configured (SQLite needs a
        local file).
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.registry.tracking_uri
    if uri:
        return uri
    if storage.is_url(cfg.paths.data_dir):
        raise ConfigError(
            f"paths.data_dir={cfg.paths.data_dir!r} is a URL; set registry.tracking_uri "
            "(e.g. sqlite:////abs/path/mlflow.db or http://127.0.0.1:5000)"
        )
    return f"sqlite:///{Path(cfg.paths.data_dir).resolve() / 'mlflow.db'}"


def artifact_root(cfg: PipelineConfig) -> str | None:
    """Artifact location of new experiments; ``None`` lets a tracking server decide."""
    if tracking_uri(cfg).startswith(("http://", "https://")):
        return None
    return storage.join(storage.absolute(cfg.paths.data_dir), "mlartifacts")


@contextmanager
def _session(cfg: PipelineConfig) -> Iterator[MlflowClient]:
    """Point MLflow at ``cfg``'s store, quietly, and turn MLflow errors into ``MelflowError``.

    MLflow's fluent API keeps the URI in process globals *and* environment variables;
    both are restored afterwards so one process can serve several configurations.
    """
    uri = tracking_uri(cfg)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # Artifacts on S3 are written by MLflow's own boto3 client, which reads only the
    # environment: the endpoint and credentials of paths.storage_options go there.
    s3_env = storage.s3_environment(cfg.paths.storage_options)
    saved_env = {key: os.environ.get(key) for key in (*_URI_ENV, *s3_env)}
    os.environ.update(s3_env)
    logger = logging.getLogger("mlflow")
    saved_level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for category in (UserWarning, FutureWarning, DeprecationWarning):
                warnings.simplefilter("ignore", category)
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            yield MlflowClient(tracking_uri=uri, registry_uri=uri)
    except MlflowException as exc:
        raise MelflowError(f"MLflow ({uri}): {exc.message}") from None
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        logger.setLevel(saved_level)


def _experiment_id(client: MlflowClient, cfg: PipelineConfig) -> str:
    experiment = client.get_experiment_by_name(cfg.registry.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(
        client.create_experiment(cfg.registry.experiment, artifact_location=artifact_root(cfg))
    )


# --------------------------------------------------------------------------- the pyfunc


class AudioClassifierModel(PythonModel):
    """Raw audio -> labels and probabilities; the bundle is the ``bundle`` artifact.

    Input: a DataFrame with column ``path``, or ``waveform`` (samples) and ``sr`` (integer
    Hz); one kind per call (MLflow's schema check rejects ``sr`` with gaps, i.e. floats).
    Output: ``label``, ``prob_<class>`` per class, ``error`` (empty when classified).
    """

    def load_context(self, context: PythonModelContext) -> None:
        self.model, self.meta = load_bundle(context.artifacts[BUNDLE_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return predict_frame(self.model, self.meta, model_input)


def _signature(classes: list[str]) -> ModelSignature:
    inputs = Schema(
        [
            ColSpec(DataType.string, PATH, required=False),
            ColSpec(Array(DataType.double), WAVEFORM, required=False),
            ColSpec(DataType.long, SR, required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec(DataType.string, LABEL, required=False),
            *(ColSpec(DataType.double, c) for c in prob_columns(classes)),
            ColSpec(DataType.string, ERROR),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def _input_example(sr: int) -> pd.DataFrame:
    """A 0.1 s, 440 Hz tone: small enough to keep in the model's metadata."""
    t = np.arange(sr // 10) / sr
    return pd.DataFrame(
        {WAVEFORM: [np.round(0.1 * np.sin(2 * np.pi * 440 * t), 4).tolist()], SR: [sr]}
    )


def _pip_requirements() -> list[str]:
    pins = []
    for package in RUNTIME_PACKAGES:
        try:
            # Without the local tag (torch's "+cpu"): package indexes do not serve it.
            pins.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


# --------------------------------------------------------------------------- logging


def _history_metrics(history: list[dict[str, Any]]) -> list[Metric]:
    now = int(datetime.now(UTC).timestamp() * 1000)
    return [
        Metric(key, float(value), now, int(entry["epoch"]))
        for entry in history
        for key, value in entry.items()
        if key != "epoch" and value is not None
    ]


def _log_artifacts(
    client: MlflowClient, run_id: str, paths: list[str], cfg: PipelineConfig
) -> None:
    """Log report files (local or on object storage) under ``figures/`` or ``reports/``."""
    with tempfile.TemporaryDirectory(prefix="melflow-artifacts-") as tmp:
        for path in paths:
            if not storage.exists(path, cfg.paths.storage_options):
                raise ParameterError(f"artifact {path} does not exist")
            local = path
            if storage.is_url(path):  # MLflow logs local files only
                local = str(Path(tmp, path.rsplit("/", 1)[-1]))
                Path(local).write_bytes(storage.read_bytes(path, cfg.paths.storage_options))
            suffix = Path(local).suffix.lower()
            folder = "figures" if suffix in {".png", ".svg", ".jpg"} else "reports"
            client.log_artifact(run_id, local, artifact_path=folder)


def _existing_version(client: MlflowClient, name: str, tags: dict[str, str]) -> ModelVersion | None:
    """A version of ``name`` with the same bundle and evaluation set, if already registered."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for mv in versions:
        if all(mv.tags.get(k) == v for k, v in tags.items()):
            return mv
    return None


def log_and_register(
    *,
    cfg: PipelineConfig,
    bundle_dir: str,
    history: list[dict[str, Any]],
    report: dict[str, Any],
    artifacts: list[str],
    tags: dict[str, str],
    predictions: pd.DataFrame,
) -> RegisteredModel:
    """Log a trained, evaluated model as an MLflow run and register it as ``challenger``.

    Idempotent: a bundle already registered with the same evaluation set returns that
    version instead of a duplicate.

    Parameters
    ----------
    cfg : PipelineConfig
        Logged in full as flattened params; ``registry`` names the experiment and model.
    bundle_dir : str
        A local bundle (:func:`melflow.models.bundle.save_bundle`).
    history : list of dict
        One dict per epoch with ``epoch`` and metrics (``train_loss``, ``val_loss``,
        ``val_accuracy``, ``val_macro_f1``, ``lr``), logged as steps.
    report : dict
        A test-set :func:`~melflow.evaluation.metrics.classification_report`.
    artifacts : list of str
        Local files: images go under ``figures/``, everything else under ``reports/``.
    tags : dict
        Run tags, e.g. manifest and feature store digests, code version.
    predictions : DataFrame
        One row per test clip with ``clip_id``, ``label`` (truth) and ``pred``; stored as
        an artifact for paired significance tests.

    Returns
    -------
    RegisteredModel
    """
    meta = read_meta(bundle_dir)
    identity = {
        BUNDLE_DIGEST_TAG: bundle_digest(bundle_dir),
        EVAL_DIGEST_TAG: eval_set_digest(predictions),
    }
    metrics = report_metrics(report)
    name = cfg.registry.model_name
    with _session(cfg) as client:
        found = _existing_version(client, name, identity)
        if found is not None:
            return RegisteredModel(name, str(found.version), _run_id(found), metrics, existing=True)
        commit = git_commit()
        run_tags = {**tags, **identity, **({GIT_COMMIT_TAG: commit} if commit else {})}
        with mlflow.start_run(experiment_id=_experiment_id(client, cfg), tags=run_tags) as run:
            run_id = run.info.run_id
            mlflow.log_params(flatten(cfg.model_dump(mode="json")))
            client.log_batch(run_id, metrics=_history_metrics(history))
            mlflow.log_metrics(metrics)
            mlflow.log_dict(report, "reports/report.json")
            _log_artifacts(client, run_id, artifacts, cfg)
            mlflow.log_text(predictions.to_csv(index=False), PREDICTIONS_ARTIFACT)
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=AudioClassifierModel(),
                artifacts={BUNDLE_ARTIFACT: bundle_dir},
                code_paths=[str(Path(melflow.__file__).parent)],
                signature=_signature(meta.classes),
                input_example=_input_example(int(meta.audio["sr"])),
                pip_requirements=_pip_requirements(),
            )
        if not client.search_registered_models(f"name = '{name}'"):
            client.create_registered_model(
                name, description="melflow sound classifier (raw audio in)"
            )
        mv = client.create_model_version(
            name,
            source=info.model_uri,
            run_id=run_id,
            model_id=info.model_id,
            tags=identity,
        )
        client.set_registered_model_alias(name, CHALLENGER, mv.version)
        return RegisteredModel(name, str(mv.version), run_id, metrics)


# --------------------------------------------------------------------------- lookups


def _version(client: MlflowClient, name: str, ref: str) -> ModelVersion:
    """A version by number (``3`` or ``v3``) or alias (``champion``)."""
    number = ref[1:] if re.fullmatch(r"v\d+", ref) else ref
    try:
        if number.isdigit():
            return client.get_model_version(name, number)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException:
        kind = "version" if number.isdigit() else "alias"
        raise MelflowError(
            f"model {name!r} has no {kind} {ref!r} (see `melflow models list`)"
        ) from None


def _run_id(mv: ModelVersion) -> str:
    if mv.run_id is None:
        raise MelflowError(f"version {mv.version} of {mv.name!r} was not registered from a run")
    return str(mv.run_id)


def _aliases(client: MlflowClient, name: str) -> dict[str, list[str]]:
    """version -> its aliases."""
    by_version: dict[str, list[str]] = {}
    for alias, ver in client.get_registered_model(name).aliases.items():
        by_version.setdefault(str(ver), []).append(alias)
    return by_version


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _test_metrics(client: MlflowClient, mv: ModelVersion) -> dict[str, float]:
    metrics = client.get_run(_run_id(mv)).data.metrics
    return {
        k.removeprefix(METRIC_PREFIX): float(v)
        for k, v in metrics.items()
        if k.startswith(METRIC_PREFIX)
    }


def _created(mv: ModelVersion) -> str:
    return datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _known_model(client: MlflowClient, name: str) -> None:
    if not client.search_registered_models(f"name = '{name}'"):
        raise MelflowError(f"no registered model {name!r} yet; train and evaluate one first")


def list_versions(*, cfg: PipelineConfig) -> pd.DataFrame:
    """Every version of the configured model, newest first.

    Returns
    -------
    DataFrame
        ``version``, ``aliases`` (comma-separated), ``accuracy``, ``macro_f1``,
        ``weighted_f1``, ``created`` (UTC), ``run_id``; empty when nothing is registered.
    """
    name = cfg.registry.model_name
    columns = ["version", "aliases", "accuracy", "macro_f1", "weighted_f1", "created", "run_id"]
    with _session(cfg) as client:
        if not client.search_registered_models(f"name = '{name}'"):
            return pd.DataFrame(columns=columns)
        aliases = _aliases(client, name)
        rows = []
        for mv in client.search_model_versions(f"name = '{name}'"):
            metrics = _test_metrics(client, mv)
            rows.append(
                {
                    "version": str(mv.version),
                    "aliases": ",".join(sorted(aliases.get(str(mv.version), []))),
                    **{k: metrics.get(k, np.nan) for k in ("accuracy", "macro_f1", "weighted_f1")},
                    "created": _created(mv),
                    "run_id": mv.run_id,
                }
            )
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(
        "version", key=lambda s: s.astype(int), ascending=False, ignore_index=True
    )


def show(*, cfg: PipelineConfig, ref: str) -> dict[str, Any]:
    """One version's details: aliases, metrics (incl. per-class F1), tags, data lineage.

    Returns
    -------
    dict
        ``name``, ``version``, ``aliases``, ``created``, ``run_id``, ``source``,
        ``metrics`` (test metrics without prefix), ``tags`` (version tags), ``run_tags``,
        ``classes``, ``feature`` and ``features`` (the feature config it was trained on).
    """
    name = cfg.registry.model_name
    with _session(cfg) as client:
        _known_model(client, name)
        mv = _version(client, name, ref)
        run = client.get_run(_run_id(mv))
        params = run.data.params
        classes = sorted(
            k.removeprefix(PER_CLASS_PREFIX)
            for k in run.data.metrics
            if k.startswith(PER_CLASS_PREFIX)
        )
        return {
            "name": name,
            "version": str(mv.version),
            "aliases": sorted(_aliases(client, name).get(str(mv.version), [])),
            "created": _created(mv),
            "run_id": mv.run_id,
            "source": mv.source,
            "metrics": _test_metrics(client, mv),
            "tags": dict(mv.tags),
            "run_tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
            "classes": classes,
            "feature": params.get("train.feature"),
            "features": {
                k.removeprefix("features."): v
                for k, v in params.items()
                if k.startswith("features.")
            },
        }


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
    with _session(cfg) as client:
        _known_model(client, name)
        mv_a, mv_b = _version(client, name, a), _version(client, name, b)
        ma, mb = _test_metrics(client, mv_a), _test_metrics(client, mv_b)
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
    with _session(cfg) as client:
        _known_model(client, name)
        mv = _version(client, name, ref)
        return mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")


def champion_bundle(*, cfg: PipelineConfig, dest: str) -> str | None:
    """Download the champion's model bundle into ``dest``; ``None`` when there is no champion.

    Used to fine-tune a challenger from the champion's weights (``train.init_from_champion``).
    """
    name = cfg.registry.model_name
    with _session(cfg) as client:
        mv = _champion(client, name)
        if mv is None:
            return None
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{mv.version}", dst_path=dest
        )
    return str(Path(local, "artifacts", BUNDLE_ARTIFACT))


# --------------------------------------------------------------------------- promotion


def _read_predictions(client: MlflowClient, run_id: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, PREDICTIONS_ARTIFACT, tmp)
        return pd.read_csv(path, dtype={"clip_id": str, "label": str, PREDICTED_COLUMN: str})


def _record(client: MlflowClient, mv: ModelVersion, record: dict[str, Any]) -> None:
    """Tag the version with the decision and keep the full record as a JSON artifact."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    for key in [k for k in mv.tags if k.startswith(f"{PROMOTION_TAG}.")]:
        client.delete_model_version_tag(mv.name, str(mv.version), key)
    for key, value in record.items():
        if value is not None:
            text = f"{value:.6g}" if isinstance(value, float) else str(value)
            client.set_model_version_tag(mv.name, str(mv.version), f"{PROMOTION_TAG}.{key}", text)
    client.log_dict(_run_id(mv), {**record, "at": stamp}, f"promotion/{stamp}.json")


def _set_champion(client: MlflowClient, mv: ModelVersion) -> None:
    client.set_registered_model_alias(mv.name, CHAMPION, str(mv.version))
    challenger = client.get_registered_model(mv.name).aliases.get(CHALLENGER)
    if str(challenger) == str(mv.version):
        client.delete_registered_model_alias(mv.name, CHALLENGER)


def _candidate(client: MlflowClient, mv: ModelVersion) -> Candidate:
    return Candidate(
        version=str(mv.version),
        metrics=_test_metrics(client, mv),
        eval_digest=mv.tags.get(EVAL_DIGEST_TAG),
        predictions=lambda: _read_predictions(client, _run_id(mv)),
    )


def promote_if_better(
    *, cfg: PipelineConfig, version: str, eval_predictions: pd.DataFrame | None = None
) -> PromotionDecision:
    """Make ``version`` the champion only if it beats the current one on the same data.

    The gate: no champion yet -> promote. Otherwise both versions must carry the same
    evaluation-set digest, ``registry.metric`` must improve by more than
    ``registry.margin``, and with ``registry.mcnemar`` the paired exact McNemar test on
    per-clip predictions must give ``p < registry.alpha`` in the challenger's favour.
    The decision is recorded as ``melflow.promotion.*`` tags on the version and as
    ``promotion/<utc>.json`` in its run, whatever it is.

    Parameters
    ----------
    version : str
        Version number or alias of the challenger.
    eval_predictions : DataFrame, optional
        The challenger's per-clip predictions (``clip_id``, ``label``, ``pred``) on the
        set it was registered with, to spare reading them back for McNemar; by default
        the stored ``predictions/predictions.csv``.
    """
    name = cfg.registry.model_name
    with _session(cfg) as client:
        _known_model(client, name)
        challenger = _version(client, name, version)
        champion = _champion(client, name)
        candidate = _candidate(client, challenger)
        if eval_predictions is not None:
            if eval_set_digest(eval_predictions) != candidate.eval_digest:
                raise ParameterError(
                    f"eval_predictions are not on the set v{candidate.version} was evaluated on"
                )
            candidate = dataclasses.replace(candidate, predictions=lambda: eval_predictions)
        decision = decide(
            challenger=candidate,
            champion=None if champion is None else _candidate(client, champion),
            rules=cfg.registry,
        )
        if decision.champion_version != decision.challenger_version:  # else a rerun: no news
            _record(client, challenger, {"kind": "gate", **dataclasses.asdict(decision)})
        if decision.promoted:
            _set_champion(client, challenger)
        return decision


def promote(*, cfg: PipelineConfig, version: str, reason: str) -> None:
    """Manually make ``version`` the champion, bypassing the gate; ``reason`` is recorded."""
    if not reason.strip():
        raise ParameterError("a manual promotion needs a reason")
    name = cfg.registry.model_name
    with _session(cfg) as client:
        _known_model(client, name)
        mv = _version(client, name, version)
        previous = _champion(client, name)
        _record(
            client,
            mv,
            {
                "kind": "manual",
                "promoted": True,
                "challenger_version": str(mv.version),
                "champion_version": str(previous.version) if previous else None,
                "reason": reason,
            },
        )
        _set_champion(client, mv)


# --------------------------------------------------------------------------- cross-validation


def _logged_run(client: MlflowClient, experiment_id: str, tag: str, digest: str) -> str | None:
    """The id of a run already logged with ``tag = digest`` (parents are logged once)."""
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{tag}` = '{digest}'", max_results=1
    )
    return str(found[0].info.run_id) if found else None


CV_DIGEST_TAG = "melflow.cv_digest"
CV_FOLD_TAG = "melflow.cv_fold"


def log_cv(*, cfg: PipelineConfig, result: CvResult, digest: str, tags: dict[str, str]) -> str:
    """Log a cross-validation as a parent run with one nested run per fold.

    Nothing is registered: CV measures a recipe, it never makes a version of the
    production model. The parent holds the config (params), ``accuracy_mean``/``_std``,
    ``macro_f1_mean``/``_std`` and the summed confusion matrix; each fold's run its test
    scores, sizes and report files. Idempotent: a CV already logged with the same
    ``digest`` returns that run's id.

    Returns
    -------
    str
        The parent run's id.
    """
    with _session(cfg) as client:
        experiment_id = _experiment_id(client, cfg)
        found = _logged_run(client, experiment_id, CV_DIGEST_TAG, digest)
        if found is not None:
            return found
        commit = git_commit()
        run_tags = {**tags, CV_DIGEST_TAG: digest, **({GIT_COMMIT_TAG: commit} if commit else {})}
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"cv {cfg.name}", tags=run_tags
        ) as parent:
            mlflow.log_params(flatten(cfg.model_dump(mode="json")))
            mlflow.log_metrics({**result.summary(), "folds": float(len(result.folds))})
            mlflow.log_dict(
                {"classes": result.classes, "confusion_matrix": result.confusion},
                "reports/cv_confusion.json",
            )
            for fold in result.folds:
                with mlflow.start_run(
                    experiment_id=experiment_id,
                    run_name=f"fold {fold.score.fold}",
                    nested=True,
                    tags={CV_FOLD_TAG: fold.score.fold},
                ) as child:
                    mlflow.log_metrics(
                        {
                            "accuracy": fold.score.accuracy,
                            "macro_f1": fold.score.macro_f1,
                            "epochs": float(fold.score.epochs),
                            "train_s": fold.score.train_s,
                            "n_train": float(fold.n_train),
                            "n_val": float(fold.n_val),
                            "n_test": float(fold.n_test),
                        }
                    )
                    reports = Path(fold.run_dir, "eval-test")
                    files = [str(p) for p in sorted(reports.glob("*")) if p.is_file()]
                    _log_artifacts(client, child.info.run_id, files, cfg)
        return str(parent.info.run_id)


# --------------------------------------------------------------------------- sweeps

SWEEP_DIGEST_TAG = "melflow.sweep_digest"
SWEEP_POINT_TAG = "melflow.sweep_point"


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in row.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
    }


def log_sweep(
    *,
    cfg: PipelineConfig,
    digest: str,
    rows: list[dict[str, Any]],
    fields: list[str],
    artifacts: list[str],
    tags: dict[str, str],
) -> str:
    """Log an architecture sweep as a parent run with one nested run per point.

    Nothing is registered: a point becomes a version only through ``melflow models
    register-sweep``, which trains it as ``melflow run`` does and passes the same gate. The
    parent holds the profile's config (params), the number of points and ``artifacts``
    (the table and the plot, under ``sweep/``); each point's run its grid values (params),
    every figure of its row (metrics) and a ``pareto`` tag. Idempotent: a sweep already
    logged with the same ``digest`` returns that run's id.

    Parameters
    ----------
    digest : str
        Identity of the sweep (its points, which include their data).
    rows : list of dict
        The sweep table's rows: ``point``, each of ``fields``, the figures, ``pareto``.
    fields : list of str
        The grid's dotted fields.
    artifacts : list of str
        Local files for the parent run.
    tags : dict
        Parent run tags, e.g. the profile and the manifest digest.

    Returns
    -------
    str
        The parent run's id.
    """
    with _session(cfg) as client:
        experiment_id = _experiment_id(client, cfg)
        found = _logged_run(client, experiment_id, SWEEP_DIGEST_TAG, digest)
        if found is not None:
            return found
        commit = git_commit()
        run_tags = {
            **tags,
            SWEEP_DIGEST_TAG: digest,
            **({GIT_COMMIT_TAG: commit} if commit else {}),
        }
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"sweep {cfg.name}", tags=run_tags
        ) as parent:
            mlflow.log_params(flatten(cfg.model_dump(mode="json")))
            mlflow.log_metric("points", float(len(rows)))
            for path in artifacts:
                client.log_artifact(parent.info.run_id, path, artifact_path="sweep")
            for row in rows:
                with mlflow.start_run(
                    experiment_id=experiment_id,
                    run_name=f"point {row['point']}",
                    nested=True,
                    tags={SWEEP_POINT_TAG: str(row["point"]), "pareto": str(bool(row["pareto"]))},
                ):
                    mlflow.log_params(flatten({f: row[f] for f in fields}))
                    mlflow.log_metrics(_numbers({k: v for k, v in row.items() if k not in fields}))
        return str(parent.info.run_id)

"""Finding model versions: by number, alias, or the champion (shared by every registry job)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from melflow.errors import MelflowError
from melflow.lineage import METRIC_PREFIX
from melflow.registry.names import CHAMPION


def version_of(client: MlflowClient, name: str, ref: str) -> ModelVersion:
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


def run_id(mv: ModelVersion) -> str:
    """The run a version was registered from."""
    if mv.run_id is None:
        raise MelflowError(f"version {mv.version} of {mv.name!r} was not registered from a run")
    return str(mv.run_id)


def aliases(client: MlflowClient, name: str) -> dict[str, list[str]]:
    """version -> its aliases."""
    by_version: dict[str, list[str]] = {}
    for alias, ver in client.get_registered_model(name).aliases.items():
        by_version.setdefault(str(ver), []).append(alias)
    return by_version


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The current champion, or ``None``."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def test_metrics(client: MlflowClient, mv: ModelVersion) -> dict[str, float]:
    """A version's test metrics by plain name (``macro_f1``, ``f1_<class>``)."""
    metrics = client.get_run(run_id(mv)).data.metrics
    return {
        k.removeprefix(METRIC_PREFIX): float(v)
        for k, v in metrics.items()
        if k.startswith(METRIC_PREFIX)
    }


def created(mv: ModelVersion) -> str:
    """Creation time, UTC, to the second."""
    return datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def is_registered(client: MlflowClient, name: str) -> bool:
    return bool(client.search_registered_models(f"name = '{name}'"))


def known_model(client: MlflowClient, name: str) -> None:
    """Raise unless ``name`` is a registered model."""
    if not is_registered(client, name):
        raise MelflowError(f"no registered model {name!r} yet; train and evaluate one first")

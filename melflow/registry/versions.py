"""Finding model versions with an ``MlflowClient``: by number, alias, or the champion.

Shared by every registry job that writes (register, gate); :class:`ClientReader` serves
the read-only lookups (:mod:`melflow.registry.reader`) on a store only MLflow can open.
"""

from __future__ import annotations

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from melflow.registry import reader
from melflow.registry.names import CHAMPION
from melflow.registry.reader import RunRecord, VersionRecord


def _record(mv: ModelVersion) -> VersionRecord:
    return VersionRecord(
        name=str(mv.name),
        version=str(mv.version),
        created_ms=int(mv.creation_timestamp),
        run_id=mv.run_id,
        source=str(mv.source),
        tags=dict(mv.tags),
    )


class ClientReader:
    """A :class:`~melflow.registry.reader.RegistryReader` on an ``MlflowClient``."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    def is_registered(self, name: str) -> bool:
        return is_registered(self.client, name)

    def aliases(self, name: str) -> dict[str, str]:
        found = self.client.get_registered_model(name).aliases
        return {alias: str(version) for alias, version in found.items()}

    def versions(self, name: str) -> list[VersionRecord]:
        return [_record(mv) for mv in self.client.search_model_versions(f"name = '{name}'")]

    def version(self, name: str, number: str) -> VersionRecord | None:
        try:
            return _record(self.client.get_model_version(name, number))
        except MlflowException:
            return None

    def version_by_alias(self, name: str, alias: str) -> VersionRecord | None:
        try:
            return _record(self.client.get_model_version_by_alias(name, alias))
        except MlflowException:
            return None

    def run(self, run_id: str) -> RunRecord:
        data = self.client.get_run(run_id).data
        return RunRecord(metrics=dict(data.metrics), params=dict(data.params), tags=dict(data.tags))


def version_of(client: MlflowClient, name: str, ref: str) -> ModelVersion:
    """A version by number (``3`` or ``v3``) or alias (``champion``)."""
    number = reader.version_number(ref)
    try:
        if number is not None:
            return client.get_model_version(name, number)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException:
        raise reader.no_such_version(name, ref) from None


def run_id(mv: ModelVersion) -> str:
    """The run a version was registered from."""
    return reader.run_of(_record(mv))


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The current champion, or ``None``."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def test_metrics(client: MlflowClient, mv: ModelVersion) -> dict[str, float]:
    """A version's test metrics by plain name (``macro_f1``, ``f1_<class>``)."""
    return reader.plain_metrics(client.get_run(run_id(mv)).data.metrics)


def is_registered(client: MlflowClient, name: str) -> bool:
    return bool(client.search_registered_models(f"name = '{name}'"))


def known_model(client: MlflowClient, name: str) -> None:
    """Raise unless ``name`` is a registered model."""
    reader.known_model(ClientReader(client), name)

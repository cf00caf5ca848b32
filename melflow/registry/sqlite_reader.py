"""The registry of a local MLflow SQLite store, read with :mod:`sqlite3` (no MLflow import).

Opened read-only (``mode=ro``): nothing is created, migrated or locked for writing. The
queries follow MLflow's SQL store (3.x schema) to give exactly what an ``MlflowClient``
gives: the ``default`` workspace only, versions marked deleted left out, prompts (models
tagged ``mlflow.prompt.is_prompt = true``) left out of the registered models and their
versions, a metric stored as NaN read as NaN, the ``latest`` alias the newest version.
A store whose tables lack a column these queries use is not opened: MLflow reads it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Any

from melflow.errors import MelflowError
from melflow.registry.reader import LATEST, RunRecord, VersionRecord

WORKSPACE = "default"
DELETED = "Deleted_Internal"
# Every column the queries below read, by table.
COLUMNS = {
    "registered_models": {"name", "workspace"},
    "registered_model_tags": {"key", "value", "name", "workspace"},
    "registered_model_aliases": {"alias", "version", "name", "workspace"},
    "model_versions": {
        "name",
        "version",
        "creation_time",
        "run_id",
        "source",
        "current_stage",
        "workspace",
    },
    "model_version_tags": {"key", "value", "name", "version", "workspace"},
    "runs": {"run_uuid"},
    "latest_metrics": {"key", "value", "is_nan", "run_uuid"},
    "params": {"key", "value", "run_uuid"},
    "tags": {"key", "value", "run_uuid"},
}
_VERSIONS = (
    "SELECT name, version, creation_time, run_id, source FROM model_versions v "
    "WHERE workspace = ? AND name = ? AND current_stage != ?"
)
# What MLflow's searches add: a prompt's name is no registered model.
_NOT_PROMPT = (
    " AND NOT EXISTS (SELECT 1 FROM {tags} t WHERE t.workspace = {alias}.workspace "
    "AND t.name = {alias}.name AND t.key = 'mlflow.prompt.is_prompt' AND t.value = 'true')"
)


class SqliteReader:
    """A :class:`~melflow.registry.reader.RegistryReader` on an MLflow SQLite file.

    Every query of one reader sees the same snapshot of the store (one read transaction).
    """

    def __init__(self, connection: sqlite3.Connection, uri: str) -> None:
        self._db = connection
        self._uri = uri

    @classmethod
    def open(cls, db: Path, *, uri: str) -> SqliteReader | None:
        """A reader on ``db``, or ``None`` when it cannot be read this way (MLflow reads it)."""
        try:
            connection = sqlite3.connect(
                f"{db.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None
            )
        except sqlite3.Error:
            return None
        try:
            connection.execute("BEGIN")
            usable = all(
                wanted <= {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
                for table, wanted in COLUMNS.items()
            )
        except sqlite3.Error:
            usable = False
        if not usable:
            connection.close()
            return None
        return cls(connection, uri)

    def __enter__(self) -> SqliteReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._db.close()

    def _rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise MelflowError(f"MLflow ({self._uri}): {exc}") from None

    def is_registered(self, name: str) -> bool:
        sql = "SELECT 1 FROM registered_models m WHERE workspace = ? AND name = ?"
        not_prompt = _NOT_PROMPT.format(tags="registered_model_tags", alias="m")
        return bool(self._rows(sql + not_prompt, WORKSPACE, name))

    def aliases(self, name: str) -> dict[str, str]:
        rows = self._rows(
            "SELECT alias, version FROM registered_model_aliases WHERE workspace = ? AND name = ?",
            WORKSPACE,
            name,
        )
        return {alias: str(version) for alias, version in rows}

    def _versions(self, name: str, where: str = "", *args: object) -> list[VersionRecord]:
        """The versions of ``name`` not deleted, narrowed by ``where`` (SQL, with ``args``)."""
        records = []
        for name_, version, created, run_id, source in self._rows(
            _VERSIONS + where, WORKSPACE, name, DELETED, *args
        ):
            tags = self._rows(
                "SELECT key, value FROM model_version_tags "
                "WHERE workspace = ? AND name = ? AND version = ?",
                WORKSPACE,
                name_,
                version,
            )
            records.append(
                VersionRecord(
                    name=name_,
                    version=str(version),
                    created_ms=created,
                    run_id=run_id,
                    source=str(source),
                    tags=dict(tags),
                )
            )
        return records

    def versions(self, name: str) -> list[VersionRecord]:
        return self._versions(name, _NOT_PROMPT.format(tags="model_version_tags", alias="v"))

    def version(self, name: str, number: str) -> VersionRecord | None:
        found = self._versions(name, " AND version = ?", int(number))
        return found[0] if found else None

    def version_by_alias(self, name: str, alias: str) -> VersionRecord | None:
        if alias.lower() == LATEST:
            found = self._versions(name, " ORDER BY version DESC LIMIT 1")
        else:
            found = self._versions(
                name,
                " AND version = (SELECT version FROM registered_model_aliases a "
                "WHERE a.workspace = v.workspace AND a.name = v.name AND a.alias = ?)",
                alias,
            )
        return found[0] if found else None

    def run(self, run_id: str) -> RunRecord:
        if not self._rows("SELECT 1 FROM runs WHERE run_uuid = ?", run_id):
            raise MelflowError(f"MLflow ({self._uri}): Run with id={run_id} not found")
        metrics = self._rows(
            "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", run_id
        )
        params = self._rows("SELECT key, value FROM params WHERE run_uuid = ?", run_id)
        tags = self._rows("SELECT key, value FROM tags WHERE run_uuid = ?", run_id)
        return RunRecord(
            metrics={key: float("nan") if nan else value for key, value, nan in metrics},
            params=dict(params),
            tags=dict(tags),
        )

"""Reading the registry: one small interface, two back ends.

The data folder's own SQLite store is read directly (:mod:`melflow.registry.sqlite_reader`,
read-only, no MLflow import): ``status`` and ``models list`` answer in a fraction of a
second instead of importing MLflow and checking its schema migrations. A tracking server,
or a store that MLflow must open first (see :func:`~melflow.registry.location.readable_sqlite`),
is read through an ``MlflowClient`` (:class:`melflow.registry.versions.ClientReader`).
Both give the same records.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from melflow.config import PipelineConfig
from melflow.errors import MelflowError
from melflow.lineage import METRIC_PREFIX

# MLflow resolves this alias to the newest version itself.
LATEST = "latest"


@dataclass(frozen=True)
class VersionRecord:
    """One registered model version as the registry stores it.

    ``created_ms``: creation time in milliseconds since the epoch (UTC); ``run_id``:
    the run it was registered from, if any; ``tags``: the version's own tags.
    """

    name: str
    version: str
    created_ms: int
    run_id: str | None
    source: str
    tags: dict[str, str]


@dataclass(frozen=True)
class RunRecord:
    """A run's latest metrics, params and tags."""

    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


class RegistryReader(Protocol):
    """What melflow reads from a registry (never writes)."""

    def is_registered(self, name: str) -> bool:
        """``name`` is a registered model."""
        ...

    def aliases(self, name: str) -> dict[str, str]:
        """alias -> version number."""
        ...

    def versions(self, name: str) -> list[VersionRecord]:
        """Every version of ``name``, in no particular order."""
        ...

    def version(self, name: str, number: str) -> VersionRecord | None:
        """Version ``number`` of ``name``, or ``None``."""
        ...

    def version_by_alias(self, name: str, alias: str) -> VersionRecord | None:
        """The version ``alias`` points at (``latest``: the newest), or ``None``."""
        ...

    def run(self, run_id: str) -> RunRecord:
        """A run's record; raises :class:`MelflowError` when there is no such run."""
        ...


@contextmanager
def reading(cfg: PipelineConfig) -> Iterator[RegistryReader]:
    """A reader on ``cfg``'s registry: SQLite directly when it can, else an MLflow client."""
    from melflow.registry.location import readable_sqlite, tracking_uri
    from melflow.registry.sqlite_reader import SqliteReader

    db = readable_sqlite(cfg)
    reader = SqliteReader.open(db, uri=tracking_uri(cfg)) if db is not None else None
    if reader is not None:
        with reader:
            yield reader
        return
    from melflow.registry.session import session
    from melflow.registry.versions import ClientReader

    with session(cfg) as client:
        yield ClientReader(client)


def version_number(ref: str) -> str | None:
    """The number a reference names (``3`` and ``v3`` name 3), or ``None`` for an alias."""
    number = ref[1:] if re.fullmatch(r"v\d+", ref) else ref
    return number if number.isdigit() else None


def no_such_version(name: str, ref: str) -> MelflowError:
    kind = "alias" if version_number(ref) is None else "version"
    return MelflowError(f"model {name!r} has no {kind} {ref!r} (see `melflow models list`)")


def find_version(reader: RegistryReader, name: str, ref: str) -> VersionRecord:
    """A version by number (``3`` or ``v3``) or alias (``champion``)."""
    number = version_number(ref)
    found = reader.version(name, number) if number else reader.version_by_alias(name, ref)
    if found is None:
        raise no_such_version(name, ref)
    return found


def known_model(reader: RegistryReader, name: str) -> None:
    """Raise unless ``name`` is a registered model."""
    if not reader.is_registered(name):
        raise MelflowError(f"no registered model {name!r} yet; train and evaluate one first")


def run_of(record: VersionRecord) -> str:
    """The run a version was registered from."""
    if record.run_id is None:
        raise MelflowError(
            f"version {record.version} of {record.name!r} was not registered from a run"
        )
    return record.run_id


def aliases_by_version(reader: RegistryReader, name: str) -> dict[str, list[str]]:
    """version -> its aliases."""
    by_version: dict[str, list[str]] = {}
    for alias, version in reader.aliases(name).items():
        by_version.setdefault(version, []).append(alias)
    return by_version


def plain_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """A run's test metrics by plain name (``macro_f1``, ``f1_<class>``)."""
    return {
        k.removeprefix(METRIC_PREFIX): float(v)
        for k, v in metrics.items()
        if k.startswith(METRIC_PREFIX)
    }


def created_utc(created_ms: int) -> str:
    """A registry timestamp (ms) as UTC, to the second."""
    return datetime.fromtimestamp(created_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")

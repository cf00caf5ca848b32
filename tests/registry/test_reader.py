"""The registry read straight from SQLite gives what an ``MlflowClient`` gives."""

from __future__ import annotations

import math
import shutil
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import small_config
from registries import FakeRegistry, fake_registry

from melflow.config import PipelineConfig
from melflow.errors import MelflowError
from melflow.registry import location
from melflow.registry.lookup import champion_info, compare, list_versions, show
from melflow.registry.names import GIT_COMMIT_TAG
from melflow.registry.reader import RegistryReader, reading
from melflow.registry.session import session
from melflow.registry.sqlite_reader import SqliteReader
from melflow.registry.versions import ClientReader


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[PipelineConfig, FakeRegistry]:
    cfg = small_config(tmp_path_factory.mktemp("reader"))
    return cfg, fake_registry(cfg)


def _nan_safe(value: Any) -> Any:
    """NaN != NaN: compare it as a string."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, dict):
        return {k: _nan_safe(v) for k, v in value.items()}
    return value


def _everything(reader: RegistryReader, name: str, runs: list[str]) -> dict[str, Any]:
    """Every answer a reader gives on the fake registry (versions sorted: order is free)."""
    refs = ["champion", "challenger", "latest", "LATEST", "nope"]
    return {
        "registered": [reader.is_registered(n) for n in (name, f"{name}-other", "nobody")],
        "aliases": reader.aliases(name),
        "versions": sorted((asdict(r) for r in reader.versions(name)), key=str),
        "by_number": [reader.version(name, n) for n in ("1", "2", "3", "4", "002")],
        "by_alias": [reader.version_by_alias(name, ref) for ref in refs],
        "other": reader.version_by_alias(f"{name}-other", "champion"),
        "runs": [_nan_safe(asdict(reader.run(run))) for run in runs],
    }


def test_sqlite_reader_answers_like_the_mlflow_client(
    registry: tuple[PipelineConfig, FakeRegistry],
) -> None:
    cfg, fake = registry
    name = cfg.registry.model_name
    runs = list(fake.runs.values())
    with reading(cfg) as reader:
        assert isinstance(reader, SqliteReader)
        direct = _everything(reader, name, runs)
    with session(cfg) as client:
        via_mlflow = _everything(ClientReader(client), name, runs)
    assert direct == via_mlflow
    # The fixture is what it claims: v3 deleted (and so not the latest), a NaN kept.
    assert sorted(r["version"] for r in direct["versions"]) == ["1", "2"]
    assert direct["aliases"] == {"champion": "1", "challenger": "2"}
    assert direct["by_alias"][2].version == "2" and direct["by_number"][2] is None
    assert direct["by_number"][4].version == "2"
    assert direct["runs"][1]["metrics"]["test_macro_f1"] == "nan"


def test_lookups_are_the_same_through_sqlite_and_mlflow(
    registry: tuple[PipelineConfig, FakeRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, _ = registry

    def lookups() -> dict[str, Any]:
        return {
            "list": list_versions(cfg=cfg).to_dict("records"),
            "show": [asdict(show(cfg=cfg, ref=ref)) for ref in ("champion", "v2", "2")],
            "champion": asdict(champion_info(cfg=cfg) or show(cfg=cfg, ref="nope")),
            "compare": compare(cfg=cfg, a="champion", b="challenger").to_dict("index"),
        }

    direct = lookups()
    monkeypatch.setattr(location, "readable_sqlite", lambda cfg: None)  # MLflow reads
    assert str(direct) == str(lookups())  # str: NaN == NaN
    listed = pd.DataFrame(direct["list"])
    assert list(listed["version"]) == ["2", "1"]
    assert list(listed["aliases"]) == ["challenger", "champion"]
    assert listed["accuracy"].tolist() == [0.95, 0.9]
    shown = direct["show"][0]
    assert shown["version"] == "1" and shown["classes"] == ["high", "low"]
    assert shown["metrics"]["macro_f1"] == 0.8 and shown["feature"] == "logmel"
    assert shown["features"] == {"n_mels": "32"}
    assert shown["tags"] == {"melflow.eval_digest": "eval1"}
    assert shown["run_tags"] == {GIT_COMMIT_TAG: f"{1:040d}", "melflow.profile": "small"}


def test_errors_are_the_same_through_sqlite_and_mlflow(
    registry: tuple[PipelineConfig, FakeRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, _ = registry
    other = small_config(Path(cfg.paths.data_dir).parent, "registry.model_name=nobody")

    def errors() -> list[str]:
        messages = []
        for call in (
            lambda: show(cfg=cfg, ref="v9"),
            lambda: show(cfg=cfg, ref="gone"),
            lambda: show(cfg=cfg, ref="3"),  # deleted
            lambda: show(cfg=other, ref="champion"),
        ):
            with pytest.raises(MelflowError) as caught:
                call()
            messages.append(str(caught.value))
        return messages

    direct = errors()
    monkeypatch.setattr(location, "readable_sqlite", lambda cfg: None)
    assert direct == errors()
    assert direct[0] == "model 'melflow-classifier' has no version 'v9' (see `melflow models list`)"
    assert "has no alias 'gone'" in direct[1] and "has no version '3'" in direct[2]
    assert champion_info(cfg=other) is None


def test_a_store_mlflow_must_open_first_is_not_read_directly(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    assert location.readable_sqlite(cfg) is None  # not created yet
    with session(cfg):
        pass  # creates the store and the artifacts' location marker
    db = Path(location.tracking_uri(cfg).removeprefix(location.SQLITE))
    assert location.readable_sqlite(cfg) == db
    moved = small_config(tmp_path / "moved")
    shutil.copytree(tmp_path / "data", tmp_path / "moved" / "data")
    assert location.readable_sqlite(moved) is None  # MLflow's session rewrites paths first
    with sqlite3.connect(db) as connection:  # a schema these queries do not know
        connection.execute("ALTER TABLE model_versions RENAME COLUMN workspace TO space")
    assert SqliteReader.open(db, uri=location.tracking_uri(cfg)) is None
    server = small_config(tmp_path, "registry.tracking_uri=http://127.0.0.1:5000")
    assert location.readable_sqlite(server) is None

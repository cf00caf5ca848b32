"""The data folder's layout: absolute locations, relative saving, no path in a digest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import small_config

from melflow.layout import Layout, StageRef
from melflow.runs import plan_stages


def test_every_location_is_under_the_absolute_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    layout = Layout.of(small_config(tmp_path, "paths.data_dir=data"))
    root = str(tmp_path / "data")
    assert layout.root == root
    assert layout.manifest("abc") == os.path.join(root, "manifests", "abc.parquet")
    assert layout.pointer("small") == os.path.join(root, "manifests", "latest-small.json")
    assert layout.run("d1") == os.path.join(root, "runs", "d1")
    assert layout.eval_dir(layout.run("d1"), "test") == os.path.join(
        root, "runs", "d1", "eval-test"
    )
    assert layout.mlflow_db() == os.path.join(root, "mlflow.db")
    assert layout.prefect_results() == os.path.join(root, "prefect-results")
    assert not (tmp_path / "data").exists()  # deriving a location creates nothing


def test_saved_locations_are_relative_and_resolve_in_a_moved_folder(tmp_path: Path) -> None:
    old = Layout(str(tmp_path / "old"))
    saved = old.relative(old.manifest("abc"))
    assert saved == "manifests/abc.parquet"
    assert Layout(str(tmp_path / "new")).resolve(saved) == str(
        tmp_path / "new" / "manifests" / "abc.parquet"
    )
    assert old.relative("/elsewhere/x.csv") == "/elsewhere/x.csv"
    assert old.resolve("s3://bucket/x") == "s3://bucket/x"


def test_url_data_folders_keep_local_state_in_a_per_user_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a, b = Layout("memory://bucket/a"), Layout("memory://bucket/b")
    assert a.manifest("m") == "memory://bucket/a/manifests/m.parquet"
    assert a.local_root.parent == tmp_path / "cache" / "melflow"
    assert a.local_root != b.local_root
    assert Path(a.run("d")).is_relative_to(a.local_root)
    assert oct((tmp_path / "cache" / "melflow").stat().st_mode & 0o777) == oct(0o700)


def test_stage_digests_ignore_where_and_how_the_data_folder_is_spelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    manifest = StageRef("m" * 16, "unused")
    relative = plan_stages(small_config(tmp_path, "paths.data_dir=data"), manifest)
    absolute = plan_stages(small_config(tmp_path, f"paths.data_dir={tmp_path / 'data'}"), manifest)
    moved = plan_stages(small_config(tmp_path, f"paths.data_dir={tmp_path / 'copy'}"), manifest)
    assert relative == absolute
    for plan in (relative, moved):
        assert plan.features.digest == relative.features.digest
        assert (plan.train.digest, plan.evaluate.digest) == (
            relative.train.digest,
            relative.evaluate.digest,
        )
    assert relative.train.location == str(tmp_path / "data" / "runs" / relative.train.digest)


def test_storage_settings_change_no_digest_but_feature_settings_do(tmp_path: Path) -> None:
    manifest = StageRef("m" * 16, "unused")
    base = plan_stages(small_config(tmp_path), manifest)
    storage_only = plan_stages(
        small_config(tmp_path, "features.batch_size=7", "features.compression_level=5"), manifest
    )
    assert storage_only == base
    other = plan_stages(small_config(tmp_path, "features.n_mels=16"), manifest)
    assert other.features.digest != base.features.digest
    assert other.train.digest != base.train.digest
    with_init = plan_stages(small_config(tmp_path), manifest, init_bundle_digest="b" * 16)
    assert with_init.train.digest != base.train.digest
    assert with_init.features == base.features


def test_read_only_commands_create_nothing_on_a_missing_data_folder(tmp_path: Path) -> None:
    from melflow.flows.status import pipeline_status
    from melflow.registry import champion_info, list_versions

    cfg = small_config(tmp_path)
    assert list_versions(cfg=cfg).empty
    assert champion_info(cfg=cfg) is None
    assert [r.state for r in pipeline_status(cfg)] == ["missing"]
    assert not (tmp_path / "data").exists()

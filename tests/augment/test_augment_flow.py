"""The augment task and flow on a real (temporary) Prefect API: computed, cached, skipped."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import manifest_for, small_config

from melflow.augment.offline import AugmentResult, augmented_store_url
from melflow.config import PipelineConfig
from melflow.features.store import RowStore
from melflow.flows.augment import augment_flow
from melflow.layout import StageRef
from melflow.manifest import manifest_digest, write_manifest
from melflow.tasks.augment import augment_task

pytestmark = pytest.mark.integration


def test_flow_augments_then_serves_the_cache_then_skips_when_disabled(
    small_cfg: PipelineConfig, small_corpus: Path, prefect_harness: None, tmp_path: Path
) -> None:
    manifest = manifest_for(small_corpus)
    path, digest = str(tmp_path / "manifest.parquet"), manifest_digest(manifest)
    write_manifest(manifest, path)
    ref = StageRef(digest, path)
    key = augment_task.cache_key_fn
    assert key is not None
    assert key(None, {"cfg": small_cfg, "manifest": ref}) is None  # type: ignore[arg-type]

    first = augment_flow(small_cfg, ref)
    assert isinstance(first, AugmentResult)
    assert (first.rows, first.batches_computed, first.cached) == (72, 5, False)
    assert first.store_url == augmented_store_url(small_cfg)
    assert len(RowStore(first.store_url).pending_batches()) == 0
    assert key(None, {"cfg": small_cfg, "manifest": ref}) is not None  # type: ignore[arg-type]

    # Prefect's cache serves the rerun (the result was stored as soon as the output
    # existed): it says cached with no batch computed, and the store is unchanged.
    again = augment_flow(small_cfg, ref)
    assert again == replace(first, batches_computed=0, cached=True)
    assert RowStore(first.store_url).next_batch() == 5

    disabled = small_config(tmp_path, "augment.enabled=false")
    skipped = augment_flow(disabled, ref)
    assert skipped.skipped and skipped.rows == 0

"""The end-to-end flow on the small profile, under a throwaway Prefect API."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import small_config

from flows.pipeline import STAGES, pipeline_flow
from flows.retrain import retrain_flow
from flows.status import pipeline_status
from melflow.demo_corpus import generate_demo_corpus
from melflow.registry import list_versions, show

pytestmark = pytest.mark.integration


def test_pipeline_runs_end_to_end_then_everything_is_cached(
    tmp_path: Path, prefect_harness: None
) -> None:
    cfg = small_config(tmp_path)
    first = pipeline_flow(cfg)
    assert [s.stage for s in first.stages] == list(STAGES)
    assert not any(s.cached for s in first.stages if s.stage != "register")
    assert first.decision is not None and first.decision.promoted
    champion = show(cfg=cfg, ref="champion")
    assert champion.metrics["accuracy"] > 0.5  # 6 classes: chance is 0.17

    second = pipeline_flow(cfg)
    assert second.all_cached, [(s.stage, s.cached) for s in second.stages]
    numbers = {s.stage: s.numbers for s in second.stages}
    assert numbers["extract"]["batches computed"] == 0
    assert len(list_versions(cfg=cfg)) == 1
    assert {r.stage: r.state for r in pipeline_status(cfg)} == {
        "ingest": "complete",
        "extract": "complete",
        "augment": "complete",
        "train": "complete",
        "evaluate": "complete",
        "champion": "complete",
    }
    changed = {
        r.stage: r.state for r in pipeline_status(small_config(tmp_path, "features.n_mels=16"))
    }
    assert (changed["extract"], changed["augment"], changed["train"]) == ("stale", "stale", "stale")


def test_retrain_processes_only_new_clips_and_gates_promotion(
    tmp_path: Path, prefect_harness: None
) -> None:
    cfg = small_config(tmp_path)
    pipeline_flow(cfg)
    unchanged = retrain_flow(cfg)
    assert unchanged.pipeline is None and not unchanged.changes.any

    demo = cfg.corpus.demo
    assert demo is not None
    generate_demo_corpus(root=cfg.corpus.root, per_class=demo.per_class + 2, sr=demo.sr)
    result = retrain_flow(cfg)
    assert (result.changes.added, result.changes.changed, result.changes.removed) == (12, 0, 0)
    assert result.pipeline is not None
    stages = {s.stage: s for s in result.pipeline.stages}
    assert stages["extract"].numbers["batches computed"] == 1  # 12 new clips, 16 per batch
    assert not stages["train"].cached
    versions = list_versions(cfg=cfg)
    assert len(versions) == 2
    decision = result.pipeline.decision
    assert decision is not None
    champion = show(cfg=cfg, ref="champion").version
    assert champion == ("2" if decision.promoted else "1")

"""The end-to-end flow on the small profile, under a throwaway Prefect API."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import small_config

from melflow.demo_corpus import generate_demo_corpus
from melflow.evaluation.evaluate import evaluate_bundle
from melflow.flows.pipeline import STAGES, pipeline_flow
from melflow.flows.retrain import retrain_flow
from melflow.flows.status import pipeline_status
from melflow.ingest import latest_manifest, load_manifest
from melflow.registry import download_bundle, list_versions, show

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
    storage_only = small_config(tmp_path, "features.batch_size=5", "features.compression_level=3")
    assert all(r.state == "complete" for r in pipeline_status(storage_only) if r.stage != "augment")
    assert pipeline_flow(storage_only, until="evaluate").all_cached


def test_a_copied_data_folder_stays_cached_spelled_relative_or_absolute(
    tmp_path: Path, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline_flow(small_config(tmp_path))
    shutil.copytree(tmp_path / "data", tmp_path / "copy" / "data")
    shutil.rmtree(tmp_path / "data")  # moved: nothing may still point at the old folder
    monkeypatch.chdir(tmp_path / "copy")
    corpus = f"corpus.root={tmp_path / 'corpus'}"
    for spelling, data_dir in enumerate(("data", str(tmp_path / "copy" / "data"))):
        cfg = small_config(tmp_path, f"paths.data_dir={data_dir}", corpus)
        assert {r.stage: r.state for r in pipeline_status(cfg)} == {
            stage: "complete" for stage in (*STAGES[:-1], "champion")
        }
        summary = pipeline_flow(cfg, until="evaluate")
        assert summary.all_cached, [(s.stage, s.cached) for s in summary.stages]
        assert all(str(tmp_path / "copy") in s.output for s in summary.stages if s.output)
        # The registry followed the folder: the champion's artifacts are found in the copy.
        bundle = download_bundle(cfg=cfg, version="1", dest=str(tmp_path / f"v1-{spelling}"))
        assert Path(bundle, "meta.json").is_file()
    assert not (tmp_path / "data").exists()


def test_status_agrees_with_the_pipeline_when_fine_tuning_from_the_champion(
    tmp_path: Path, prefect_harness: None
) -> None:
    pipeline_flow(small_config(tmp_path))
    cfg = small_config(tmp_path, "train.init_from_champion=true")
    assert {r.stage: r.state for r in pipeline_status(cfg)}["train"] == "stale"
    first = pipeline_flow(cfg)
    assert not {s.stage: s for s in first.stages}["train"].cached
    said = {r.stage: r.state for r in pipeline_status(cfg)}["train"]
    # Complete unless the fine-tuned model became champion: then a new one starts from it.
    assert said == ("stale" if first.decision and first.decision.promoted else "complete")
    again = {s.stage: s for s in pipeline_flow(cfg).stages}
    assert again["train"].cached == (said == "complete")


def test_retrain_on_an_unchanged_corpus_finishes_a_run_that_stopped_early(
    tmp_path: Path, prefect_harness: None
) -> None:
    cfg = small_config(tmp_path, "augment.enabled=false")
    pipeline_flow(cfg, until="train")  # e.g. killed before evaluation
    assert len(list_versions(cfg=cfg)) == 0
    finished = retrain_flow(cfg)
    assert not finished.changes.any and finished.pipeline is not None
    assert {s.stage: s.cached for s in finished.pipeline.stages}["train"]
    assert len(list_versions(cfg=cfg)) == 1
    assert show(cfg=cfg, ref="champion").version == "1"
    assert retrain_flow(cfg).pipeline is None  # now there is nothing left to do


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
    # Both were judged on the new test split: v1's bundle was scored again on it.
    assert decision.champion_rescored and decision.eval_digest == show(cfg=cfg, ref="2").eval_digest
    new_split = load_manifest(latest_manifest(cfg=cfg) or "")
    bundle = download_bundle(cfg=cfg, version="1", dest=str(tmp_path / "v1"))
    direct = evaluate_bundle(
        cfg=cfg, manifest=new_split, bundle_dir=bundle, split="test", out_dir=str(tmp_path / "e")
    )
    assert decision.champion_value == pytest.approx(direct.report[cfg.registry.metric])
    tags = show(cfg=cfg, ref="2").tags
    assert tags["melflow.promotion.eval_digest"] == decision.eval_digest
    assert tags["melflow.promotion.champion_rescored"] == "True"

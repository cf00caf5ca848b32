"""The retrain flow: detect corpus changes, process only what is new, train a challenger,
and promote it only if it beats the champion on the same evaluation set.
"""

from __future__ import annotations

from dataclasses import dataclass

from melflow.config import PipelineConfig
from melflow.flows.deferred_flow import melflow_flow
from melflow.flows.fastpath import finished_for
from melflow.flows.observe import observed_run
from melflow.flows.orchestration import call
from melflow.flows.pipeline import PipelineSummary, pipeline_flow
from melflow.ingest import latest_manifest, load_manifest
from melflow.manifest import CorpusChanges, corpus_changes
from melflow.runlock import run_lock
from melflow.tasks.progress import note


@dataclass
class RetrainSummary:
    """What a retrain run found and did; ``pipeline`` is ``None`` when nothing changed."""

    changes: CorpusChanges
    pipeline: PipelineSummary | None


@melflow_flow(name="retrain", flow_run_name="retrain/{cfg.name}", log_prints=False)
def retrain_flow(cfg: PipelineConfig, wait: bool = True) -> RetrainSummary:
    """Retrain when the corpus changed since the last manifest, or when the last run on it
    stopped before the registry's decision; promotion is gated.

    Holds the data folder's run lock from the first look at the manifest to the decision.
    """
    with (
        observed_run(cfg, "retrain"),
        run_lock(cfg, wait=wait, on_wait=lambda message: note("run", message)),
    ):
        return _retrain(cfg)


def _retrain(cfg: PipelineConfig) -> RetrainSummary:
    previous = latest_manifest(cfg=cfg)
    options = cfg.paths.storage_options
    before = load_manifest(previous, storage_options=options) if previous is not None else None
    call(pipeline_flow, cfg, until="ingest")
    current = latest_manifest(cfg=cfg)
    assert current is not None  # ingest always writes the pointer
    changes = corpus_changes(before, load_manifest(current, storage_options=options))
    unchanged = previous is not None and previous.manifest_digest == current.manifest_digest
    # An unchanged corpus still needs the stages a stopped or failed run left undone.
    if unchanged and finished_for(cfg, current.manifest):
        return RetrainSummary(changes=changes, pipeline=None)
    summary = call(pipeline_flow, cfg, until="register")
    return RetrainSummary(changes=changes, pipeline=summary)

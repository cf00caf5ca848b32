"""The retrain flow: detect corpus changes, process only what is new, train a challenger,
and promote it only if it beats the champion on the same evaluation set.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from prefect import flow

from flows.orchestration import call
from flows.pipeline import PipelineSummary, pipeline_flow
from melflow.config import PipelineConfig
from melflow.ingest import latest_manifest, load_manifest


@dataclass(frozen=True)
class CorpusChanges:
    """How the manifest differs from the previous one, by ``clip_id``."""

    added: int
    changed: int
    removed: int

    @property
    def any(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def __str__(self) -> str:
        return f"{self.added} new, {self.changed} changed, {self.removed} removed clips"


def corpus_changes(before: pd.DataFrame | None, after: pd.DataFrame) -> CorpusChanges:
    """Compare two manifests (``None`` = no previous manifest: everything is new)."""
    if before is None:
        return CorpusChanges(added=len(after), changed=0, removed=0)
    old = before.set_index("clip_id")["sha256"]
    new = after.set_index("clip_id")["sha256"]
    common = old.index.intersection(new.index)
    return CorpusChanges(
        added=int((~new.index.isin(old.index)).sum()),
        changed=int((old[common] != new[common]).sum()),
        removed=int((~old.index.isin(new.index)).sum()),
    )


@dataclass
class RetrainSummary:
    """What a retrain run found and did; ``pipeline`` is ``None`` when nothing changed."""

    changes: CorpusChanges
    pipeline: PipelineSummary | None


@flow(name="retrain", log_prints=False)
def retrain_flow(cfg: PipelineConfig) -> RetrainSummary:
    """Retrain only when the corpus changed since the last manifest; promotion is gated."""
    previous = latest_manifest(cfg=cfg)
    options = cfg.paths.storage_options
    before = load_manifest(previous, storage_options=options) if previous is not None else None
    summary = call(pipeline_flow, cfg, until="ingest")
    current = latest_manifest(cfg=cfg)
    assert current is not None  # ingest always writes the pointer
    changes = corpus_changes(before, load_manifest(current, storage_options=options))
    if previous is not None and previous.manifest_digest == current.manifest_digest:
        return RetrainSummary(changes=changes, pipeline=None)
    summary = call(pipeline_flow, cfg, until="register")
    return RetrainSummary(changes=changes, pipeline=summary)

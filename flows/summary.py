"""The run summary: one row per stage (cached or computed, seconds, numbers, output).

Its own module so that the fast path (:mod:`melflow.flows.fastpath`) builds one without loading
the pipeline, Prefect or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from melflow.promotion import PromotionDecision


@dataclass
class StageSummary:
    """One row of the run summary."""

    stage: str
    cached: bool
    seconds: float
    numbers: dict[str, Any] = field(default_factory=dict)
    output: str = ""


@dataclass
class PipelineSummary:
    """What a pipeline run did, stage by stage."""

    stages: list[StageSummary] = field(default_factory=list)
    decision: PromotionDecision | None = None
    links: dict[str, str] = field(default_factory=dict)  # label -> URL, path or command

    def add(
        self, stage: str, cached: bool, seconds: float, numbers: dict[str, Any], output: str
    ) -> None:
        self.stages.append(StageSummary(stage, cached, seconds, numbers, output))

    @property
    def all_cached(self) -> bool:
        return all(s.cached for s in self.stages)


def fmt(value: Any) -> str:
    """A metric for the summary: three decimals, ``-`` when missing."""
    return "-" if value is None else f"{float(value):.3f}"

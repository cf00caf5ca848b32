"""The promotion gate against the registry, and manual promotion; every decision is recorded.

Aliases: every new version becomes ``challenger``; ``champion`` moves only through
:func:`promote_if_better` (gated, see :mod:`melflow.promotion`) or :func:`promote`
(manual, with a reason).
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from melflow.config import PipelineConfig
from melflow.errors import ParameterError
from melflow.lineage import METRIC_PREFIX, eval_set_digest, report_metrics
from melflow.promotion import PREDICTED_COLUMN, Candidate, PromotionDecision, decide, rescored
from melflow.registry import versions
from melflow.registry.names import (
    CHALLENGER,
    CHAMPION,
    EVAL_DIGEST_TAG,
    PREDICTIONS_ARTIFACT,
    PROMOTION_TAG,
)
from melflow.registry.session import session
from melflow.registry.versions import known_model, run_id, test_metrics, version_of


def _read_predictions(client: MlflowClient, run: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run, PREDICTIONS_ARTIFACT, tmp)
        return pd.read_csv(path, dtype={"clip_id": str, "label": str, PREDICTED_COLUMN: str})


def _record(client: MlflowClient, mv: ModelVersion, record: dict[str, Any]) -> None:
    """Tag the version with the decision and keep the full record as a JSON artifact."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    for key in [k for k in mv.tags if k.startswith(f"{PROMOTION_TAG}.")]:
        client.delete_model_version_tag(mv.name, str(mv.version), key)
    for key, value in record.items():
        if value is not None:
            text = f"{value:.6g}" if isinstance(value, float) else str(value)
            client.set_model_version_tag(mv.name, str(mv.version), f"{PROMOTION_TAG}.{key}", text)
    client.log_dict(run_id(mv), {**record, "at": stamp}, f"promotion/{stamp}.json")


def _set_champion(client: MlflowClient, mv: ModelVersion) -> None:
    client.set_registered_model_alias(mv.name, CHAMPION, str(mv.version))
    challenger = client.get_registered_model(mv.name).aliases.get(CHALLENGER)
    if str(challenger) == str(mv.version):
        client.delete_registered_model_alias(mv.name, CHALLENGER)


def _candidate(client: MlflowClient, mv: ModelVersion) -> Candidate:
    return Candidate(
        version=str(mv.version),
        metrics=test_metrics(client, mv),
        eval_digest=mv.tags.get(EVAL_DIGEST_TAG),
        predictions=lambda: _read_predictions(client, run_id(mv)),
    )


@dataclass(frozen=True)
class ChampionRescore:
    """The champion ``version``'s bundle scored again on the challenger's evaluation set.

    ``report`` is a :func:`~melflow.evaluation.metrics.classification_report`;
    ``predictions`` has one row per clip (``clip_id``, ``label``, ``pred``...).
    """

    version: str
    report: dict[str, Any]
    predictions: pd.DataFrame

    def candidate(self, champion: Candidate) -> Candidate:
        """``champion`` as the gate sees it after re-scoring."""
        metrics = {k.removeprefix(METRIC_PREFIX): v for k, v in report_metrics(self.report).items()}
        return rescored(
            champion,
            metrics=metrics,
            eval_digest=eval_set_digest(self.predictions),
            predictions=self.predictions,
        )


def promote_if_better(
    *,
    cfg: PipelineConfig,
    version: str,
    eval_predictions: pd.DataFrame | None = None,
    champion_rescore: ChampionRescore | None = None,
) -> PromotionDecision:
    """Make ``version`` the champion only if it beats the current one on the same data.

    The gate: no champion yet -> promote. Otherwise both versions must carry the same
    evaluation-set digest, ``registry.metric`` must improve by more than
    ``registry.margin``, and with ``registry.mcnemar`` the paired exact McNemar test on
    per-clip predictions must give ``p < registry.alpha`` in the challenger's favour.
    The decision is recorded as ``melflow.promotion.*`` tags on the version and as
    ``promotion/<utc>.json`` in its run, whatever it is.

    Parameters
    ----------
    version : str
        Version number or alias of the challenger.
    eval_predictions : DataFrame, optional
        The challenger's per-clip predictions (``clip_id``, ``label``, ``pred``) on the
        set it was registered with, to spare reading them back for McNemar; by default
        the stored ``predictions/predictions.csv``.
    champion_rescore : ChampionRescore, optional
        The current champion re-scored on the challenger's evaluation set; the gate then
        compares the two on that set (ignored when it is not the current champion's).
    """
    name = cfg.registry.model_name
    with session(cfg) as client:
        known_model(client, name)
        challenger = version_of(client, name, version)
        current = versions.champion(client, name)
        candidate = _candidate(client, challenger)
        if eval_predictions is not None:
            if eval_set_digest(eval_predictions) != candidate.eval_digest:
                raise ParameterError(
                    f"eval_predictions are not on the set v{candidate.version} was evaluated on"
                )
            candidate = dataclasses.replace(candidate, predictions=lambda: eval_predictions)
        champion = None if current is None else _candidate(client, current)
        if (
            champion is not None
            and champion_rescore is not None
            and champion_rescore.version == champion.version
        ):
            champion = champion_rescore.candidate(champion)
        decision = decide(challenger=candidate, champion=champion, rules=cfg.registry)
        if decision.champion_version != decision.challenger_version:  # else a rerun: no news
            _record(client, challenger, {"kind": "gate", **dataclasses.asdict(decision)})
        if decision.promoted:
            _set_champion(client, challenger)
        return decision


def promote(*, cfg: PipelineConfig, version: str, reason: str) -> str:
    """Manually make ``version`` the champion, bypassing the gate; ``reason`` is recorded.

    Returns
    -------
    str
        The version number now champion (``version`` may be an alias that moves).
    """
    if not reason.strip():
        raise ParameterError("a manual promotion needs a reason")
    name = cfg.registry.model_name
    with session(cfg) as client:
        known_model(client, name)
        mv = version_of(client, name, version)
        previous = versions.champion(client, name)
        _record(
            client,
            mv,
            {
                "kind": "manual",
                "promoted": True,
                "challenger_version": str(mv.version),
                "champion_version": str(previous.version) if previous else None,
                "reason": reason,
            },
        )
        _set_champion(client, mv)
        return str(mv.version)

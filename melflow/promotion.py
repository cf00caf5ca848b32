"""The promotion gate: when a challenger may replace the champion. Pure; no MLflow here.

A worse model never becomes champion: both must be scored on the *same* evaluation set
(same digest), and the challenger must improve ``registry.metric`` by more than
``registry.margin`` and, with ``registry.mcnemar``, win a paired exact McNemar test at
``registry.alpha``. Only the absence of a champion waives these checks.

When the corpus grew, the challenger's test split differs from the set the champion was
scored on; the caller then re-scores the champion's bundle on the challenger's split and
passes that score (:func:`rescored`), so the two are compared clip for clip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from melflow.config import RegistryConfig
from melflow.evaluation.significance import mcnemar_exact, paired_correctness

PREDICTED_COLUMN = "pred"


@dataclass(frozen=True)
class Candidate:
    """A registered version as the gate sees it.

    ``metrics`` are test metrics by plain name (``macro_f1``); ``predictions`` loads the
    per-clip table (``clip_id``, ``label``, ``pred``) and is called only for McNemar.
    """

    version: str
    metrics: dict[str, float]
    eval_digest: str | None
    predictions: Callable[[], pd.DataFrame]
    rescored: bool = False


def rescored(
    champion: Candidate, *, metrics: dict[str, float], eval_digest: str, predictions: pd.DataFrame
) -> Candidate:
    """``champion`` as scored again, by its registered bundle, on another evaluation set."""
    return Candidate(
        version=champion.version,
        metrics=metrics,
        eval_digest=eval_digest,
        predictions=lambda: predictions,
        rescored=True,
    )


@dataclass(frozen=True)
class PromotionDecision:
    """What the gate decided and why; ``champion_version`` is the champion before.

    ``eval_digest`` names the set both values were measured on; ``champion_rescored`` says
    the champion's value comes from re-scoring its bundle on that set.
    """

    promoted: bool
    challenger_version: str
    champion_version: str | None
    metric: str
    challenger_value: float
    champion_value: float | None
    margin: float
    mcnemar_p: float | None
    reason: str
    eval_digest: str | None = None
    champion_rescored: bool = False


def decide(
    *, challenger: Candidate, champion: Candidate | None, rules: RegistryConfig
) -> PromotionDecision:
    """Apply the gate of ``rules`` to ``challenger`` against the current ``champion``."""
    value = challenger.metrics[rules.metric]

    def decision(promoted: bool, reason: str, *, p: float | None = None) -> PromotionDecision:
        return PromotionDecision(
            promoted=promoted,
            challenger_version=challenger.version,
            champion_version=champion.version if champion else None,
            metric=rules.metric,
            challenger_value=value,
            champion_value=champion.metrics[rules.metric] if champion else None,
            margin=rules.margin,
            mcnemar_p=p,
            reason=reason,
            eval_digest=challenger.eval_digest,
            champion_rescored=bool(champion and champion.rescored),
        )

    if champion is None:
        return decision(True, "no champion yet")
    if champion.version == challenger.version:
        return decision(False, f"v{challenger.version} is already the champion")
    if challenger.eval_digest is None or challenger.eval_digest != champion.eval_digest:
        return decision(
            False,
            f"evaluated on a different set than champion v{champion.version} "
            f"(eval digest {challenger.eval_digest} vs {champion.eval_digest}); "
            "re-scoring the champion was not possible; promote manually if wanted",
        )
    gain = value - champion.metrics[rules.metric]
    if gain <= rules.margin:
        return decision(
            False,
            f"{rules.metric} {value:.4f} does not beat champion v{champion.version}'s "
            f"{champion.metrics[rules.metric]:.4f} by more than {rules.margin:g}",
        )
    over = f"v{champion.version}" + (" (re-scored on this test split)" if champion.rescored else "")
    if not rules.mcnemar:
        return decision(True, f"{rules.metric} +{gain:.4f} over {over}")
    test = mcnemar_exact(
        *paired_correctness(challenger.predictions(), champion.predictions(), pred=PREDICTED_COLUMN)
    )
    if test.p_value >= rules.alpha or test.only_a <= test.only_b:
        return decision(
            False,
            f"{rules.metric} +{gain:.4f} is not significant: McNemar "
            f"p={test.p_value:.4g} (alpha {rules.alpha:g}; {test.only_a} clips only "
            f"v{challenger.version} got right, {test.only_b} only v{champion.version})",
            p=test.p_value,
        )
    return decision(
        True,
        f"{rules.metric} +{gain:.4f} over {over}, McNemar p={test.p_value:.4g}",
        p=test.p_value,
    )

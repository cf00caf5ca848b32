"""The promotion gate as a pure function: every rule, and that a worse model never wins."""

from __future__ import annotations

import pandas as pd
import pytest

from melflow.config import RegistryConfig
from melflow.promotion import Candidate, decide


def candidate(version: str, f1: float, *, digest: str | None = "e1", wrong: int = 0) -> Candidate:
    labels = ["a", "b"] * 10
    preds = [
        ("b" if label == "a" else "a") if i < wrong else label for i, label in enumerate(labels)
    ]
    table = pd.DataFrame({"clip_id": [f"c{i}" for i in range(20)], "label": labels, "pred": preds})
    return Candidate(version, {"macro_f1": f1, "accuracy": 1 - wrong / 20}, digest, lambda: table)


def test_without_champion_the_first_model_is_promoted() -> None:
    decision = decide(challenger=candidate("1", 0.1), champion=None, rules=RegistryConfig())
    assert decision.promoted and decision.champion_value is None


@pytest.mark.parametrize(
    ("f1", "margin", "promoted"),
    [
        (0.79, 0.0, False),
        (0.80, 0.0, False),
        (0.81, 0.0, True),
        (0.82, 0.05, False),
        (0.86, 0.05, True),
    ],
)
def test_metric_must_beat_the_champion_by_more_than_the_margin(
    f1: float, margin: float, promoted: bool
) -> None:
    rules = RegistryConfig(margin=margin)
    decision = decide(challenger=candidate("2", f1), champion=candidate("1", 0.80), rules=rules)
    assert decision.promoted is promoted
    assert (decision.challenger_value, decision.champion_value) == (f1, 0.80)


def test_other_metric_and_eval_set_rules() -> None:
    champion = candidate("1", 0.9, wrong=4)
    by_accuracy = decide(
        challenger=candidate("2", 0.5, wrong=2),
        champion=champion,
        rules=RegistryConfig(metric="accuracy"),
    )
    assert by_accuracy.promoted and by_accuracy.metric == "accuracy"
    other_set = decide(
        challenger=candidate("2", 0.99, digest="e2"), champion=champion, rules=RegistryConfig()
    )
    assert not other_set.promoted and "different set" in other_set.reason
    itself = decide(challenger=champion, champion=champion, rules=RegistryConfig())
    assert not itself.promoted and "already the champion" in itself.reason


def test_mcnemar_blocks_gains_that_are_not_significant() -> None:
    rules = RegistryConfig(mcnemar=True, alpha=0.05)
    champion = candidate("1", 0.6, wrong=8)
    slight = decide(challenger=candidate("2", 0.7, wrong=6), champion=champion, rules=rules)
    assert not slight.promoted and slight.mcnemar_p == pytest.approx(0.5)  # 2 vs 0 discordant
    clear = decide(challenger=candidate("3", 1.0, wrong=0), champion=champion, rules=rules)
    assert clear.promoted and clear.mcnemar_p == pytest.approx(2 * 0.5**8)
    # The test is not even run when the metric does not improve.
    worse = decide(challenger=candidate("4", 0.5, wrong=20), champion=champion, rules=rules)
    assert not worse.promoted and worse.mcnemar_p is None

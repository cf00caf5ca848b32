"""The exact McNemar test against hand-computed binomial tails, and prediction pairing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from melflow.errors import ParameterError
from melflow.evaluation.significance import mcnemar_exact, paired_correctness


def test_mcnemar_counts_discordant_pairs_and_gives_exact_two_sided_p() -> None:
    # 6 clips only a got right, 1 only b: p = 2 * P(X <= 1), X ~ Bin(7, 0.5) = 2 * 8 / 128.
    a = np.array([1, 1, 1, 1, 1, 1, 0, 1, 0, 1], dtype=bool)
    b = np.array([0, 0, 0, 0, 0, 0, 1, 1, 0, 1], dtype=bool)
    result = mcnemar_exact(a, b)
    assert (result.n, result.only_a, result.only_b) == (10, 6, 1)
    assert result.p_value == pytest.approx(16 / 128)
    assert mcnemar_exact(b, a).p_value == pytest.approx(16 / 128)  # symmetric


def test_mcnemar_without_disagreement_is_one_and_shapes_must_match() -> None:
    same = np.array([True, False, True])
    assert mcnemar_exact(same, same).p_value == 1.0
    with pytest.raises(ParameterError):
        mcnemar_exact(same, same[:2])


def test_paired_correctness_aligns_on_clip_id_and_label_types() -> None:
    a = pd.DataFrame({"clip_id": ["x", "y", "z"], "label": [1, 2, 3], "pred": [1, 0, 3]})
    b = pd.DataFrame(
        {"clip_id": ["z", "x", "y"], "label": ["3", "1", "2"], "pred": ["0", "1", "2"]}
    )
    a_ok, b_ok = paired_correctness(a, b)
    assert a_ok.tolist() == [True, False, True] and b_ok.tolist() == [True, True, False]
    with pytest.raises(ParameterError, match="same clips"):
        paired_correctness(a, b.iloc[:2])
    with pytest.raises(ParameterError, match="lack columns"):
        paired_correctness(a.drop(columns="pred"), b)

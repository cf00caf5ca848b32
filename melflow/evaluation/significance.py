"""Paired significance tests for two classifiers scored on the same evaluation clips."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from melflow.errors import ParameterError


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test: only clips where exactly one model is right carry information.

    ``only_a`` counts clips model *a* classifies correctly and *b* does not; ``only_b`` the
    reverse; ``p_value`` is two-sided.
    """

    n: int
    only_a: int
    only_b: int
    p_value: float


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> McNemarResult:
    """Exact (binomial) McNemar test on paired per-clip correctness.

    Parameters
    ----------
    a_correct, b_correct : np.ndarray of bool, shape ``(n_clips,)``
        Whether each model classified clip ``i`` correctly; the same clip order in both.

    Returns
    -------
    McNemarResult
        ``p_value`` is 1.0 when the models never disagree.
    """
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ParameterError(
            f"paired correctness needs two 1-D arrays of one length, got {a.shape} and {b.shape}"
        )
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    discordant = only_a + only_b
    p_value = 1.0 if discordant == 0 else float(binomtest(only_a, discordant, 0.5).pvalue)
    return McNemarResult(n=int(a.size), only_a=only_a, only_b=only_b, p_value=p_value)


def paired_correctness(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    key: str = "clip_id",
    truth: str = "label",
    pred: str = "pred",
) -> tuple[np.ndarray, np.ndarray]:
    """Align two per-clip prediction tables on ``key`` and return both correctness vectors.

    Raises
    ------
    ParameterError
        A column is missing, or the two tables do not cover the same clips with the same
        true labels (then they were not scored on the same evaluation set).
    """
    for name, frame in (("a", a), ("b", b)):
        missing = [c for c in (key, truth, pred) if c not in frame.columns]
        if missing:
            raise ParameterError(f"predictions {name} lack columns {missing}")
    # As text, so labels read back from CSV ("3") match labels given as numbers (3).
    columns = [key, truth, pred]
    merged = (
        a[columns]
        .astype(str)
        .merge(b[columns].astype(str), on=key, how="outer", suffixes=("_a", "_b"), indicator=True)
    )
    if (merged["_merge"] != "both").any() or (merged[f"{truth}_a"] != merged[f"{truth}_b"]).any():
        raise ParameterError("the two prediction tables are not on the same clips and labels")
    a_correct = (merged[f"{pred}_a"] == merged[f"{truth}_a"]).to_numpy()
    b_correct = (merged[f"{pred}_b"] == merged[f"{truth}_b"]).to_numpy()
    return a_correct, b_correct

"""Metrics match scikit-learn's on fixed predictions, including undefined ratios."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from melflow.errors import ParameterError
from melflow.evaluation.metrics import classification_report

CLASSES = ["cat", "dog", "owl", "yak"]
# "yak" is never predicted (precision undefined) and "owl" never occurs (recall undefined).
Y_TRUE = ["cat", "cat", "cat", "dog", "dog", "yak", "yak", "yak", "cat", "dog"]
Y_PRED = ["cat", "dog", "cat", "dog", "owl", "cat", "dog", "dog", "cat", "dog"]


def test_report_equals_scikit_learn() -> None:
    report = classification_report(y_true=Y_TRUE, y_pred=Y_PRED, classes=CLASSES)
    kw = {"labels": CLASSES, "zero_division": 0}
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(Y_TRUE, Y_PRED)) == 0.5
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(Y_TRUE, Y_PRED, average=average, **kw)
        assert report[f"{average}_precision"] == pytest.approx(p)
        assert report[f"{average}_recall"] == pytest.approx(r)
        assert report[f"{average}_f1"] == pytest.approx(f)
    p, r, f, s = skm.precision_recall_fscore_support(Y_TRUE, Y_PRED, **kw)
    for i, name in enumerate(CLASSES):
        assert report["per_class"][name] == pytest.approx(
            {"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]}
        )
    assert (
        report["confusion_matrix"] == skm.confusion_matrix(Y_TRUE, Y_PRED, labels=CLASSES).tolist()
    )
    assert report["support"] == 10 and report["classes"] == CLASSES


def test_indices_and_names_agree(rng: np.random.Generator) -> None:
    truth = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.7, truth, rng.integers(0, 4, 200))
    by_index = classification_report(y_true=truth, y_pred=pred, classes=CLASSES)
    names = np.array(CLASSES)
    by_name = classification_report(y_true=names[truth], y_pred=names[pred], classes=CLASSES)
    assert by_index == by_name
    assert by_index["macro_f1"] == pytest.approx(skm.f1_score(truth, pred, average="macro"))


def test_bad_labels_raise() -> None:
    with pytest.raises(ParameterError, match="not among the classes"):
        classification_report(y_true=["cat"], y_pred=["emu"], classes=CLASSES)
    with pytest.raises(ParameterError, match="indices"):
        classification_report(y_true=[0], y_pred=[4], classes=CLASSES)
    with pytest.raises(ParameterError, match="entries"):
        classification_report(y_true=[0, 1], y_pred=[0], classes=CLASSES)

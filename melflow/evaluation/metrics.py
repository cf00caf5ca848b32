"""Classification metrics from a confusion matrix (identical to scikit-learn's definitions).

Undefined ratios (a class never predicted, or absent from ``y_true``) count as 0, as
scikit-learn's ``zero_division=0``; macro averages include every class in ``classes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from melflow.errors import ParameterError


def _indices(values: Sequence[Any] | np.ndarray, classes: Sequence[str]) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind in "iu":
        if array.size and (array.min() < 0 or array.max() >= len(classes)):
            raise ParameterError(f"class indices must lie in 0..{len(classes) - 1}")
        return array.astype(np.int64)
    lookup = {name: i for i, name in enumerate(classes)}
    unknown = sorted({str(v) for v in array.tolist()} - lookup.keys())
    if unknown:
        raise ParameterError(f"labels {unknown[:5]} are not among the classes {list(classes)[:10]}")
    return np.array([lookup[str(v)] for v in array.tolist()], dtype=np.int64)


def confusion_matrix(*, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``cm[i, j]`` of class-``i`` examples predicted as ``j``; int64 ``(n, n)``."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def classification_report(
    *,
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    classes: Sequence[str],
) -> dict[str, Any]:
    """Accuracy, precision/recall/F1 (macro, weighted, per class), confusion matrix, support.

    Parameters
    ----------
    y_true, y_pred : sequence, shape ``(n,)``
        Class names from ``classes``, or integer indices into ``classes``.
    classes : sequence of str
        Class order of the per-class entries and of the confusion matrix rows/columns.

    Returns
    -------
    dict
        JSON-ready: ``accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1``,
        ``weighted_precision``, ``weighted_recall``, ``weighted_f1``, ``support`` (n),
        ``classes``, ``per_class`` (name -> precision, recall, f1, support) and
        ``confusion_matrix`` (list of rows: true class; columns: predicted class).
    """
    truth, pred = _indices(y_true, classes), _indices(y_pred, classes)
    if truth.shape != pred.shape:
        raise ParameterError(f"y_true has {truth.size} entries but y_pred has {pred.size}")
    cm = confusion_matrix(y_true=truth, y_pred=pred, n_classes=len(classes))
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    precision = _ratio(tp, cm.sum(axis=0).astype(np.float64))
    recall = _ratio(tp, support.astype(np.float64))
    f1 = _ratio(2 * tp, (cm.sum(axis=0) + support).astype(np.float64))
    total = int(support.sum())
    weights = support / total if total else np.zeros(len(classes))
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "weighted_precision": float(weights @ precision),
        "weighted_recall": float(weights @ recall),
        "weighted_f1": float(weights @ f1),
        "support": total,
        "classes": list(classes),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": cm.tolist(),
    }

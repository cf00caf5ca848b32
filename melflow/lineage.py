"""What identifies a logged model run: config params, test metrics, bundle and eval-set digests.

Pure helpers for :mod:`melflow.registry`, kept free of MLflow so they are testable alone.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

import melflow
from melflow.digest import digest_file, digest_of
from melflow.errors import ParameterError

METRIC_PREFIX = "test_"
PER_CLASS_PREFIX = f"{METRIC_PREFIX}f1_"
SUMMARY_METRICS = (
    "accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "weighted_precision",
    "weighted_recall",
    "weighted_f1",
)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``; lists and scalars become JSON text."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, str) else json.dumps(value)
    return flat


def metric_key(name: str) -> str:
    """A metric name MLflow accepts (letters, digits, ``_-. /:``), whatever the class name."""
    return re.sub(r"[^\w\-. /:]", "_", name)


def report_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Test metrics from a :func:`~melflow.evaluation.metrics.classification_report`.

    Returns
    -------
    dict
        ``test_<name>`` for accuracy and the macro/weighted precision, recall and F1;
        ``test_f1_<class>`` per class.
    """
    missing = [k for k in SUMMARY_METRICS if k not in report]
    if missing:
        raise ParameterError(f"evaluation report lacks {missing}")
    metrics = {f"{METRIC_PREFIX}{k}": float(report[k]) for k in SUMMARY_METRICS}
    for name, scores in report.get("per_class", {}).items():
        metrics[metric_key(f"{PER_CLASS_PREFIX}{name}")] = float(scores["f1"])
    return metrics


def eval_set_digest(predictions: pd.DataFrame) -> str:
    """Identity of an evaluation set: its clips and true labels (and bytes, when known)."""
    columns = [c for c in ("clip_id", "label", "sha256") if c in predictions.columns]
    if "clip_id" not in columns:
        raise ParameterError("predictions need a 'clip_id' column to identify the evaluation set")
    rows = predictions[columns].astype(str).sort_values(columns).to_numpy().tolist()
    return digest_of("eval-set", columns, rows)


def bundle_digest(bundle_dir: str) -> str:
    """Identity of a local model bundle: the names and SHA-256 of its files."""
    files = sorted(p for p in Path(bundle_dir).iterdir() if p.is_file())
    return digest_of("bundle", [(p.name, digest_file(p)) for p in files])


def git_commit() -> str | None:
    """The commit of the running melflow code, or ``None`` outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(melflow.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None

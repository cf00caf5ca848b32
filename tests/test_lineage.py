"""Run identity helpers: flattened params, report metrics, eval-set and bundle digests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from melflow.errors import ParameterError
from melflow.lineage import (
    SUMMARY_METRICS,
    bundle_digest,
    eval_set_digest,
    flatten,
    metric_key,
    report_metrics,
)


def test_flatten_nests_with_dots_and_keeps_json_values() -> None:
    flat = flatten({"a": {"b": 1, "c": [1, 2], "d": {}}, "e": "text", "f": None})
    assert flat == {"a.b": "1", "a.c": "[1, 2]", "a.d": "{}", "e": "text", "f": "null"}


def test_report_metrics_prefixes_and_sanitizes_class_names() -> None:
    report: dict[str, Any] = dict.fromkeys(SUMMARY_METRICS, 0.5)
    report["per_class"] = {"dog bark": {"f1": 0.25}, "car(horn)": {"f1": 0.75}}
    metrics = report_metrics(report)
    assert metrics["test_macro_f1"] == 0.5
    assert metrics["test_f1_dog bark"] == 0.25 and metrics["test_f1_car_horn_"] == 0.75
    assert metric_key("a/b:c-d.e") == "a/b:c-d.e"
    with pytest.raises(ParameterError, match="lacks"):
        report_metrics({"accuracy": 1.0})


def test_eval_set_digest_ignores_order_and_predictions_but_not_labels() -> None:
    frame = pd.DataFrame({"clip_id": ["x", "y"], "label": ["a", "b"], "pred": ["a", "a"]})
    shuffled = frame.iloc[::-1].assign(pred=["b", "b"])
    assert eval_set_digest(frame) == eval_set_digest(shuffled)
    assert eval_set_digest(frame) != eval_set_digest(frame.assign(label=["a", "a"]))
    with pytest.raises(ParameterError):
        eval_set_digest(frame.drop(columns="clip_id"))


def test_bundle_digest_follows_file_bytes(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"weights")
    (tmp_path / "meta.json").write_text("{}")
    before = bundle_digest(str(tmp_path))
    assert bundle_digest(str(tmp_path)) == before
    (tmp_path / "model.pt").write_bytes(b"weights2")
    assert bundle_digest(str(tmp_path)) != before

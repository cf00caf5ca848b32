"""The sweep table: Pareto front on hand-made points, and the CSV, JSON and PNG it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from melflow.errors import ParameterError
from melflow.sweep.table import MEASURED_COLUMNS, pareto_front, results_frame, write_results


def test_pareto_front_on_a_hand_made_table() -> None:
    # (latency ms, accuracy): b beats a on both; c is faster but worse than b; d is
    # dominated by b; e is slowest but most accurate; f ties b exactly.
    latency = [2.0, 1.0, 0.5, 1.5, 3.0, 1.0]
    accuracy = [0.80, 0.90, 0.70, 0.85, 0.95, 0.90]
    front = pareto_front(latency=latency, accuracy=accuracy)
    assert front.tolist() == [False, True, True, False, True, True]


def test_pareto_front_of_one_point_and_of_a_chain() -> None:
    assert pareto_front(latency=[1.0], accuracy=[0.5]).tolist() == [True]
    # Each faster point is less accurate: all on the front.
    assert pareto_front(latency=[1, 2, 3], accuracy=[0.1, 0.2, 0.3]).all()
    # Same accuracy, different speed: only the fastest.
    assert pareto_front(latency=[1, 2, 3], accuracy=[0.5, 0.5, 0.5]).tolist() == [1, 0, 0]


def test_pareto_front_rejects_bad_input() -> None:
    with pytest.raises(ParameterError, match="equal 1-D"):
        pareto_front(latency=[1.0, 2.0], accuracy=[0.5])
    with pytest.raises(ParameterError, match="NaN"):
        pareto_front(latency=[np.nan], accuracy=[0.5])


def _row(point: str, arch: str, latency: float, accuracy: float) -> dict[str, object]:
    figures = dict.fromkeys(MEASURED_COLUMNS, 1.0)
    return {
        **figures,
        "point": point,
        "train.model.arch": arch,
        "train.model.channels": [8, 16],
        "latency_b1_ms": latency,
        "accuracy_mean": accuracy,
    }


def test_results_are_written_as_csv_json_and_png(tmp_path: Path) -> None:
    rows = [_row("aaa", "cnn", 1.0, 0.9), _row("bbb", "vgg", 2.0, 0.8)]
    frame = results_frame(rows, fields=["train.model.arch", "train.model.channels"])
    assert frame["pareto"].tolist() == [True, False]
    files = write_results(frame, out_dir=str(tmp_path), about={"profile": "small"})
    csv = pd.read_csv(files.csv)
    assert csv["point"].tolist() == ["aaa", "bbb"]
    assert csv["train.model.channels"].tolist() == ["[8, 16]", "[8, 16]"]
    document = json.loads(Path(files.json).read_text())
    assert document["profile"] == "small"
    assert document["points"][0]["train.model.channels"] == [8, 16]
    assert document["points"][1]["pareto"] is False
    assert Path(files.plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

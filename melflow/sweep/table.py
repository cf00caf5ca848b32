"""The sweep's results: one row per point, its Pareto front, and the CSV, JSON and PNG files.

The front is taken on accuracy (higher is better) against CPU latency per clip at batch 1
(lower is better): a point is on it when no other point is at least as accurate *and* at
least as fast while strictly better in one of the two.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from melflow import storage
from melflow.errors import ParameterError
from melflow.sweep.grid import format_value

ACCURACY = "accuracy_mean"
LATENCY = "latency_b1_ms"
# Columns whose values depend only on the data, the config and the seeds (CPU training is
# deterministic), not on how busy the machine was: a resumed sweep must reproduce them.
_SCORES = ("accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std", "params", "macs")
DETERMINISTIC_COLUMNS = ("point", *_SCORES, "folds")
MEASURED_COLUMNS = (*_SCORES, LATENCY, "latency_b64_ms", "train_s", "peak_train_mb", "folds")
CSV_FILE, JSON_FILE, PLOT_FILE = "sweep.csv", "sweep.json", "sweep.png"


@dataclass(frozen=True)
class SweepFiles:
    """Where the table and the plot were written."""

    csv: str
    json: str
    plot: str


def pareto_front(*, latency: Sequence[float], accuracy: Sequence[float]) -> np.ndarray:
    """Which points no other point dominates (as fast or faster *and* as accurate or more).

    Parameters
    ----------
    latency : sequence of float, shape ``(n,)``
        Lower is better (ms per clip).
    accuracy : sequence of float, shape ``(n,)``
        Higher is better.

    Returns
    -------
    ndarray of bool, shape ``(n,)``
        ``True`` on the front; equal points are both on it.
    """
    lat = np.asarray(latency, dtype=np.float64)
    acc = np.asarray(accuracy, dtype=np.float64)
    if lat.shape != acc.shape or lat.ndim != 1:
        raise ParameterError(f"latency {lat.shape} and accuracy {acc.shape} must be equal 1-D")
    if np.isnan(lat).any() or np.isnan(acc).any():
        raise ParameterError("latency and accuracy must not contain NaN")
    no_worse = (lat[None, :] <= lat[:, None]) & (acc[None, :] >= acc[:, None])
    better = (lat[None, :] < lat[:, None]) | (acc[None, :] > acc[:, None])
    dominated = np.any(no_worse & better, axis=1)  # row i: does some j dominate i?
    return np.logical_not(dominated)


def results_frame(rows: Sequence[dict[str, Any]], *, fields: Sequence[str]) -> pd.DataFrame:
    """The sweep table: ``point``, one column per grid field, the figures, ``pareto``.

    Parameters
    ----------
    rows : sequence of dict
        One per point: ``point`` (its id), each of ``fields`` and every name in
        :data:`MEASURED_COLUMNS`.
    fields : sequence of str
        The grid's dotted fields, in axis order.
    """
    columns = ["point", *fields, *MEASURED_COLUMNS]
    frame = pd.DataFrame(list(rows), columns=columns)
    frame["pareto"] = pareto_front(latency=frame[LATENCY], accuracy=frame[ACCURACY])
    return frame


def _cell(value: Any) -> Any:
    """Grid values in CSV cells as YAML flow text (lists stay one cell)."""
    return format_value(value) if isinstance(value, list | tuple | dict) else value


def pareto_figure(frame: pd.DataFrame, *, path: str | Path, title: str = "") -> str:
    """Accuracy (mean ± std) against latency per clip at batch 1, the front joined by a line;
    each point labelled with its id and grid values."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    ax.errorbar(
        frame[LATENCY],
        frame[ACCURACY],
        yerr=frame["accuracy_std"],
        fmt="o",
        color="tab:gray",
        ecolor="lightgray",
        capsize=3,
        label="point",
    )
    front = frame[frame["pareto"]].sort_values(LATENCY)
    ax.plot(
        front[LATENCY],
        front[ACCURACY],
        "-o",
        color="tab:red",
        markersize=8,
        label="Pareto front",
    )
    fields = [c for c in frame.columns if c not in ("point", "pareto", *MEASURED_COLUMNS)]
    for row in frame.to_dict("records"):
        values = " ".join(format_value(row[f]).replace(", ", ",") for f in fields)
        ax.annotate(
            f"{row['point']} {values}",
            (row[LATENCY], row[ACCURACY]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    ax.set_xlabel("CPU latency per clip, batch 1 (ms)")
    ax.set_ylabel("accuracy (mean over folds)")
    ax.set_title(title or "Accuracy against latency")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return str(path)


def write_results(
    frame: pd.DataFrame, *, out_dir: str, about: dict[str, Any], title: str = ""
) -> SweepFiles:
    """Write ``sweep.csv``, ``sweep.json`` (``about`` + ``points``) and ``sweep.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = str(out / CSV_FILE), str(out / JSON_FILE)
    storage.write_bytes_atomic(csv_path, frame.map(_cell).to_csv(index=False).encode())
    points = json.loads(frame.to_json(orient="records"))
    document = json.dumps({**about, "points": points}, indent=2).encode()
    storage.write_bytes_atomic(json_path, document)
    plot = pareto_figure(frame, path=out / PLOT_FILE, title=title)
    return SweepFiles(csv=csv_path, json=json_path, plot=plot)

"""``melflow sweep`` and ``melflow models register-sweep``.

Mounted by :mod:`melflow.flows.cli`; torch, Prefect and MLflow are imported inside the commands,
so ``melflow --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from melflow.flows.console import (
    DaskOpt,
    ProfileOpt,
    SetOpt,
    config_for_work,
    config_from_cli,
    console,
    melflow_errors,
    run_quietly,
)

GridOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--grid",
        "-g",
        help="A train.* field and its values, e.g. -g train.model.arch=cnn,vgg,resnet "
        "(repeatable; every combination is a point). Default: the profile's sweep.grid.",
    ),
]


def _short(value: Any) -> str:
    from melflow.sweep.grid import format_value

    return format_value(value).replace(", ", ",")


def _spread(mean: float, std: float, folds: int) -> str:
    return f"{mean:.3f}" if folds == 1 else f"{mean:.3f}±{std:.3f}"


def _print_table(frame: Any, fields: list[str]) -> None:
    table = Table(title="melflow sweep", box=box.SIMPLE_HEAD, pad_edge=False)
    headers = [
        "point",
        *(f.removeprefix("train.").removeprefix("model.") for f in fields),
        "accuracy",
        "macro-F1",
        "params",
        "MMAC",
        "ms b1",
        "ms b64",
        "train s",
        "peak MB",
        "front",
    ]
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i <= len(fields) else "right", no_wrap=True)
    for row in frame.to_dict("records"):
        table.add_row(
            row["point"],
            *(_short(row[f]) for f in fields),
            _spread(row["accuracy_mean"], row["accuracy_std"], row["folds"]),
            _spread(row["macro_f1_mean"], row["macro_f1_std"], row["folds"]),
            f"{row['params'] / 1e3:.1f}k",
            f"{row['macs'] / 1e6:.2f}",
            f"{row['latency_b1_ms']:.2f}",
            f"{row['latency_b64_ms']:.3f}",
            f"{row['train_s']:.1f}",
            f"{row['peak_train_mb']:.0f}",
            "*" if row["pareto"] else "",
        )
    # Piped output keeps whole rows (a terminal wraps at its own width).
    out = console if console.is_terminal else Console(file=console.file, width=160)
    out.print(table)
    out.print(
        "ms b1 / ms b64: CPU latency per clip (one thread, median) at batch 1 / 64; "
        "front: on the Pareto front of accuracy vs ms b1",
        soft_wrap=True,
    )


def sweep(
    grid: GridOpt = None,
    profile: ProfileOpt = "default",
    sets: SetOpt = None,
    dask_address: DaskOpt = None,
) -> None:
    """Train every combination of a grid; table, CSV/JSON, accuracy-vs-latency plot, MLflow."""
    cfg = config_from_cli(profile, sets, dask_address)
    from melflow.flows.orchestration import run_flow
    from melflow.flows.preflight import check_for_work
    from melflow.flows.sweep import sweep_flow
    from melflow.sweep.grid import axes_from, grid_points

    with melflow_errors():  # a bad grid or data folder stops here, before any work
        points = grid_points(cfg, axes_from(cfg, grid or []))
        check_for_work(cfg, registry=True)
    result = run_quietly(lambda: run_flow(sweep_flow, cfg, list(grid or [])))
    _print_table(result.frame, [name for name, _ in points[0].assignments])
    console.print(
        f"points trained: {len(result.computed)}, cached: {len(result.cached)}\n"
        f"table: {escape(result.files.csv)}\n       {escape(result.files.json)}\n"
        f"plot:  {escape(result.files.plot)}\n"
        f"MLflow: run {result.run_id} (one nested run per point; nothing registered)",
        soft_wrap=True,
    )
    front = result.frame[result.frame["pareto"]].sort_values("accuracy_mean")
    best = str(front.iloc[-1]["point"])
    console.print(
        f"Register a point (through the promotion gate): "
        f"[bold]melflow models register-sweep {best} -p {profile}[/]",
        soft_wrap=True,
    )


def register_sweep(
    point: Annotated[str, typer.Argument(help="A point id: the 'point' column of the sweep.")],
    profile: ProfileOpt = "default",
    sets: SetOpt = None,
) -> None:
    """Train a sweep point as `melflow run` would, register it, promote it only through the gate."""
    cfg = config_from_cli(profile, sets)
    from melflow.flows.pipeline import pipeline_flow
    from melflow.layout import Layout
    from melflow.sweep.run import find_point

    with melflow_errors():
        found = find_point(str(Layout.of(cfg).sweeps() / "points"), point)
    point_cfg = config_for_work(profile, [*(sets or []), *found.overrides], registry=True)
    summary = run_quietly(lambda: pipeline_flow(point_cfg))
    decision = summary.decision
    assert decision is not None  # the pipeline ran up to registration
    outcome = "now champion" if decision.promoted else "not promoted"
    console.print(
        f"point {found.point} ({escape(', '.join(found.overrides))}) is "
        f"v{decision.challenger_version} of {cfg.registry.model_name}, {outcome}: "
        f"{escape(decision.reason)}",
        soft_wrap=True,
    )

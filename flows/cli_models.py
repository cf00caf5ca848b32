"""``melflow models list|show|compare|promote`` and ``melflow predict``.

``models_app`` is mounted by :mod:`flows.cli` as ``models``; :func:`predict` as ``predict``.
MLflow is imported inside the commands, so ``melflow --help`` stays fast.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from flows.console import ProfileOpt, SetOpt, config_from_cli, console, melflow_errors, run_quietly

models_app = typer.Typer(
    help="Registered models: list, show, compare, promote.",
    no_args_is_help=True,
    add_completion=False,
)


def _fmt(value: Any, *, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _delta(value: float) -> str:
    text = _fmt(value, signed=True)
    if text == "-" or abs(value) < 5e-5:
        return text
    return f"[green]{text}[/green]" if value > 0 else f"[red]{text}[/red]"


@models_app.command("list")
def list_cmd(profile: ProfileOpt = "default", sets: SetOpt = None) -> None:
    """Every registered version with its aliases and test metrics, newest first."""
    from melflow.registry import list_versions, tracking_uri

    with melflow_errors():
        cfg = config_from_cli(profile, sets)
        versions = list_versions(cfg=cfg)
        if versions.empty:
            console.print(f"no versions of {cfg.registry.model_name!r} in {tracking_uri(cfg)}")
            return
        table = Table(title=f"{cfg.registry.model_name} ({tracking_uri(cfg)})")
        for column in (
            "version",
            "aliases",
            "accuracy",
            "macro F1",
            "weighted F1",
            "created (UTC)",
        ):
            table.add_column(column, justify="right" if column != "aliases" else "left")
        for row in versions.itertuples(index=False):
            table.add_row(
                row.version,
                row.aliases,
                _fmt(row.accuracy),
                _fmt(row.macro_f1),
                _fmt(row.weighted_f1),
                row.created,
            )
        console.print(table)


@models_app.command("show")
def show_cmd(
    ref: Annotated[str, typer.Argument(help="Version number or alias (champion, challenger).")],
    profile: ProfileOpt = "default",
    sets: SetOpt = None,
) -> None:
    """One version: aliases, lineage tags, promotion record and test metrics."""
    from melflow.registry import show

    with melflow_errors():
        info = show(cfg=config_from_cli(profile, sets), ref=ref)
    about = Table(title=f"{info['name']} v{info['version']}", show_header=False)
    about.add_column("field", style="bold")
    about.add_column("value")
    for key in ("aliases", "created", "run_id", "feature"):
        value = info[key]
        about.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
    for key, value in sorted({**info["run_tags"], **info["tags"]}.items()):
        about.add_row(key, value)
    console.print(about)
    metrics = Table(title="test metrics")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for key, value in info["metrics"].items():
        metrics.add_row(key, _fmt(value))
    console.print(metrics)


@models_app.command("compare")
def compare_cmd(
    a: Annotated[str, typer.Argument(help="Baseline version or alias.")],
    b: Annotated[str, typer.Argument(help="Version or alias compared with it.")],
    profile: ProfileOpt = "default",
    sets: SetOpt = None,
) -> None:
    """Test metrics of two versions and the per-class F1 deltas (b - a)."""
    from melflow.registry import compare

    with melflow_errors():
        frame = compare(cfg=config_from_cli(profile, sets), a=a, b=b)
    col_a, col_b = frame.columns[:2]
    per_class = frame.index.str.startswith("f1_")
    for title, part in (("metrics", frame[~per_class]), ("per-class F1", frame[per_class])):
        table = Table(title=title)
        for column in ("metric", col_a, col_b, "delta"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for metric, row in part.iterrows():
            table.add_row(
                str(metric).removeprefix("f1_"),
                _fmt(row[col_a]),
                _fmt(row[col_b]),
                _delta(row["delta"]),
            )
        console.print(table)
    if not frame.attrs.get("same_eval_set", False):
        console.print("[yellow]note:[/yellow] the two versions were evaluated on different sets")


@models_app.command("promote")
def promote_cmd(
    version: Annotated[str, typer.Argument(help="Version number or alias to make champion.")],
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why the gate is overridden (logged).")
    ],
    profile: ProfileOpt = "default",
    sets: SetOpt = None,
) -> None:
    """Make a version the champion by hand, bypassing the promotion gate."""
    from melflow.registry import promote, show

    with melflow_errors():
        cfg = config_from_cli(profile, sets)
        promote(cfg=cfg, version=version, reason=reason)
        info = show(cfg=cfg, ref=version)
    console.print(
        f"v{info['version']} of {info['name']} is now [bold]champion[/bold] ({escape(reason)})"
    )


def predict(
    inputs: Annotated[
        list[str], typer.Argument(help="Audio files and/or folders (walked recursively).")
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Version number or alias.")
    ] = "champion",
    out: Annotated[str, typer.Option("--out", "-o", help="CSV: path, label, prob_*, error.")] = (
        "predictions.csv"
    ),
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Files per batch.")] = 64,
    profile: ProfileOpt = "default",
    sets: SetOpt = None,
) -> None:
    """Classify audio files with a registered model; unreadable files get an error row."""
    from flows.predict import predict_flow
    from melflow.predict import find_audio_files
    from melflow.registry import show

    with melflow_errors():
        cfg = config_from_cli(profile, sets)
        # Bad inputs and unknown models fail here, in one line, before a flow run starts.
        files = find_audio_files(inputs, extensions=cfg.corpus.extensions)
        version = show(cfg=cfg, ref=model)["version"]
    summary = run_quietly(
        lambda: predict_flow(
            cfg=cfg, inputs=inputs, model_ref=version, out=out, batch_size=batch_size
        )
    )
    console.print(f"{summary['files']} files with {cfg.registry.model_name} v{summary['version']}")
    table = Table()
    table.add_column("label")
    table.add_column("files", justify="right")
    for label, count in summary["labels"].items():
        table.add_row(label, str(count))
    if summary["errors"]:
        table.add_row("[red]error[/red]", str(summary["errors"]))
    console.print(table)
    console.print(
        f"wrote {escape(summary['out'])}; classified in {summary['predict_s']:.1f} s "
        f"({len(files) / max(summary['predict_s'], 1e-9):.0f} files/s)"
    )

"""``melflow models list|show|compare|promote`` and ``melflow predict``.

``models_app`` is mounted by :mod:`melflow.flows.cli` as ``models``; :func:`predict` as ``predict``.
MLflow is imported inside the commands, so ``melflow --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from melflow.config import PipelineConfig
from melflow.flows.console import (
    JsonOpt,
    ProfileOpt,
    SetOpt,
    check_registry,
    config_from_cli,
    console,
    err_console,
    melflow_errors,
    print_json,
    progress_display,
)

models_app = typer.Typer(
    help="Registered models: list, show, compare, promote.",
    no_args_is_help=True,
    add_completion=False,
)


def registry_config(profile: str, sets: list[str] | None) -> PipelineConfig:
    """The validated profile, once its MLflow server (if one is configured) answers."""
    cfg = config_from_cli(profile, sets)
    check_registry(cfg)
    return cfg


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
def list_cmd(
    profile: ProfileOpt = "default", sets: SetOpt = None, as_json: JsonOpt = False
) -> None:
    """Every registered version with its aliases and test metrics, newest first."""
    cfg = registry_config(profile, sets)
    from melflow.registry import list_versions, tracking_uri

    with melflow_errors():
        versions = list_versions(cfg=cfg)
        if as_json:
            records = versions.astype(object).where(versions.notna(), None)
            print_json({"model": cfg.registry.model_name, "versions": records.to_dict("records")})
            return
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
    as_json: JsonOpt = False,
) -> None:
    """One version: aliases, lineage tags, promotion record and test metrics."""
    cfg = registry_config(profile, sets)
    from melflow.registry import show

    with melflow_errors():
        info = show(cfg=cfg, ref=ref)
    if as_json:
        print_json(dataclasses.asdict(info))
        return
    about = Table(title=f"{info.name} v{info.version}", show_header=False)
    about.add_column("field", style="bold")
    about.add_column("value")
    about.add_row("aliases", ", ".join(info.aliases))
    for field, text in (
        ("created", info.created),
        ("run_id", info.run_id),
        ("feature", str(info.feature)),
        *sorted({**info.run_tags, **info.tags}.items()),
    ):
        about.add_row(field, text)
    console.print(about)
    metrics = Table(title="test metrics")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for key, value in info.metrics.items():
        metrics.add_row(key, _fmt(value))
    console.print(metrics)


@models_app.command("compare")
def compare_cmd(
    a: Annotated[str, typer.Argument(help="Baseline version or alias.")],
    b: Annotated[str, typer.Argument(help="Version or alias compared with it.")],
    profile: ProfileOpt = "default",
    sets: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Test metrics of two versions and the per-class F1 deltas (b - a)."""
    cfg = registry_config(profile, sets)
    from melflow.registry import compare

    with melflow_errors():
        frame = compare(cfg=cfg, a=a, b=b)
    col_a, col_b = frame.columns[:2]
    if as_json:
        table = frame.astype(object).where(frame.notna(), None)
        print_json(
            {
                "a": str(col_a),
                "b": str(col_b),
                "same_eval_set": bool(frame.attrs.get("same_eval_set", False)),
                "metrics": table.to_dict("index"),
            }
        )
        return
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
    cfg = registry_config(profile, sets)
    from melflow.registry import promote

    with melflow_errors():
        # The number promote returns: an alias such as "challenger" moves with the promotion.
        number = promote(cfg=cfg, version=version, reason=reason)
    console.print(
        f"v{number} of {cfg.registry.model_name} is now [bold]champion[/bold] ({escape(reason)})"
    )


PARTIAL_FAILURE_EXIT = 1  # some inputs got an error row; the output was still written


def predict(
    inputs: Annotated[
        list[str], typer.Argument(help="Audio files and/or folders (walked recursively).")
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Version number or alias.")
    ] = "champion",
    out: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            help="path, label, prob_*, error as .csv, .json or .parquet; - for CSV on stdout.",
        ),
    ] = "predictions.csv",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Files per batch.")] = 64,
    profile: ProfileOpt = "default",
    sets: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Classify audio files with a registered model; unreadable files get an error row.

    Exit status 0 when every file was classified, 1 when some got an error row (the
    output is written all the same), 2 on bad input before any work.
    """
    import time

    from melflow.predict import (
        check_writable,
        find_audio_files,
        predict_files,
        summarize,
        write_predictions,
    )
    from melflow.tasks.progress import reporter

    cfg = registry_config(profile, sets)
    with melflow_errors():
        # Bad inputs, an unwritable --out and unknown models fail here, before any work.
        check_writable(out)
        files = find_audio_files(inputs, extensions=cfg.corpus.extensions)
        from melflow.registry import load_champion, show

        version = show(cfg=cfg, ref=model).version  # pin an alias once for the whole run
        loaded = load_champion(cfg=cfg, ref=version)
        start = time.perf_counter()
        with progress_display():
            predictions = predict_files(
                loaded.predict, files, batch_size=batch_size, on_progress=reporter("predict")
            )
        predict_s = time.perf_counter() - start
        write_predictions(predictions, out, storage_options=cfg.paths.storage_options)
    summary = {**summarize(predictions), "out": out, "version": version, "predict_s": predict_s}
    _report_predictions(summary, cfg.registry.model_name, as_json=as_json)
    if summary["errors"]:
        raise typer.Exit(PARTIAL_FAILURE_EXIT)


def _report_predictions(summary: dict[str, Any], model_name: str, *, as_json: bool) -> None:
    """The run summary: JSON or a table, on stderr when the predictions went to stdout."""
    to_stdout = summary["out"] == "-"
    if as_json and not to_stdout:
        print_json(summary)
        return
    where = err_console if to_stdout else console
    where.print(f"{summary['files']} files with {model_name} v{summary['version']}")
    table = Table()
    table.add_column("label")
    table.add_column("files", justify="right")
    for label, count in summary["labels"].items():
        table.add_row(label, str(count))
    if summary["errors"]:
        table.add_row("[red]error[/red]", str(summary["errors"]))
    where.print(table)
    rate = summary["files"] / max(summary["predict_s"], 1e-9)
    where.print(
        f"wrote {escape(summary['out'])}; classified in {summary['predict_s']:.1f} s "
        f"({rate:.0f} files/s)"
    )

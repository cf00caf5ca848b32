"""The ``melflow`` command line: every stage, the whole pipeline, status and the registry."""

from __future__ import annotations

import gc
import shlex
import sys
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from melflow import secrets
from melflow.config import list_profiles
from melflow.flows import stopping
from melflow.flows.cli_models import models_app, predict
from melflow.flows.cli_sweep import register_sweep, sweep
from melflow.flows.console import (
    DaskOpt,
    JsonOpt,
    NoWaitOpt,
    ProfileOpt,
    SetOpt,
    config_for_work,
    config_from_cli,
    console,
    fail,
    melflow_errors,
    print_json,
    quiet_runtime,
    run_quietly,
)

if TYPE_CHECKING:  # the pipeline imports torch and MLflow: keep `melflow --help` instant
    from melflow.config import PipelineConfig
    from melflow.flows.pipeline import Stage

DASK_STAGES: tuple[Stage, ...] = ("extract", "augment")
app = typer.Typer(
    name="melflow",
    help="From a labelled audio corpus to a registered, evaluated sound classifier.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        import melflow

        console.print(f"melflow {melflow.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Prefect and Dask logs (anywhere).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    quiet_runtime(verbose)


def _print_summary(summary: object) -> None:
    from melflow.flows.summary import PipelineSummary

    assert isinstance(summary, PipelineSummary)
    table = Table(title="melflow run summary", show_lines=False)
    for column in ("stage", "status", "time", "numbers", "output"):
        table.add_column(column, overflow="fold")
    for row in summary.stages:
        numbers = ", ".join(f"{k} {v}" for k, v in row.numbers.items())
        status = "[green]cached[/]" if row.cached else "[yellow]computed[/]"
        table.add_row(row.stage, status, f"{row.seconds:.1f}s", numbers, row.output)
    console.print(table)
    for label, target in summary.links.items():
        if label != "MLflow UI":  # printed with the next steps
            console.print(f"{label + ':':<15} [bold]{target}[/]", soft_wrap=True)


def _print_next_steps(summary: object, profile: str, sets: list[str] | None) -> None:
    """Commands to copy: they name the same profile and overrides, so the same registry."""
    from melflow.flows.summary import PipelineSummary
    from melflow.tracking_ui import ui_command, ui_url

    assert isinstance(summary, PipelineSummary)
    uri = next(s.output for s in summary.stages if s.stage == "register")  # the tracking URI

    def melflow(*words: str) -> str:
        options = ["-p", profile, *(a for s in sets or [] for a in ("-s", s))]
        return escape(shlex.join(["melflow", *words, *options]))

    ui = ui_command(uri) or ui_url(uri)  # a tracking server is its own UI
    console.print(
        f"\nMLflow UI:      [bold]{escape(ui)}[/]\n"
        f"Registry:       [bold]{melflow('models', 'list')}[/]  |  "
        f"[bold]{melflow('models', 'show', 'champion')}[/]\n"
        f"Status:         [bold]{melflow('status')}[/]",
        soft_wrap=True,  # commands stay on one line, ready to copy
    )
    if any(secrets.is_secret_path(s.split("=", 1)[0].split(".")) for s in sets or []):
        console.print(f"({secrets.REDACTED} stands for a secret you gave with -s: give it again)")


def _run_until(
    stage: Stage,
    profile: str,
    sets: list[str] | None,
    dask_address: str | None,
    no_wait: bool = False,
) -> None:
    cfg = config_for_work(profile, sets, dask_address, registry=False)
    from melflow.tasks.cluster import prestarted_cluster

    # A command that ends with a Dask stage whose stores are incomplete will run batches:
    # its workers start and import while this process imports the flow and plans.
    early = (
        prestarted_cluster(cfg.dask, needed=lambda: _stores_incomplete(cfg, stage))
        if stage in DASK_STAGES
        else nullcontext()
    )
    with early:
        from melflow.flows.orchestration import run_flow
        from melflow.flows.pipeline import pipeline_flow

        summary = run_quietly(lambda: run_flow(pipeline_flow, cfg, until=stage, wait=not no_wait))
    _print_summary(summary)


def _stores_incomplete(cfg: PipelineConfig, stage: Stage) -> bool:
    """Whether a store up to ``stage`` is incomplete for the last ingested manifest (a
    corpus that changed since starts the cluster when its stage needs it)."""
    from melflow.features.extract import EXTRACT
    from melflow.ingest import latest_manifest

    last = latest_manifest(cfg=cfg)
    if last is None:
        return True
    stages = [EXTRACT]
    if stage == "augment":
        from melflow.augment.offline import AUGMENT

        stages.append(AUGMENT)
    return any(s.cached(cfg=cfg, manifest_digest=last.manifest_digest) is None for s in stages)


@app.command("demo-corpus")
def demo_corpus(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write <class>/<class>_<i>.wav into.")
    ],
    per_class: Annotated[int, typer.Option(min=1, help="Clips per class.")] = 60,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    sr: Annotated[int, typer.Option(min=4000, help="Sample rate in Hz.")] = 22050,
) -> None:
    """Write the seeded synthetic demo corpus (6 sound classes, variable durations)."""
    from melflow.demo_corpus import CLASSES, generate_demo_corpus

    with melflow_errors():
        paths = generate_demo_corpus(root=out, per_class=per_class, seed=seed, sr=sr)
    console.print(f"{len(paths)} clips of {len(CLASSES)} classes in [bold]{out}[/]")


@app.command()
def ingest(
    profile: ProfileOpt = "default", sets: SetOpt = None, no_wait: NoWaitOpt = False
) -> None:
    """Scan the corpus into a manifest; quarantine bad files with a reason."""
    _run_until("ingest", profile, sets, None, no_wait)


def _stage_command(stage: Stage, summary: str) -> None:
    """Add ``melflow <stage>``: the pipeline up to and including ``stage``, whose earlier
    stages are cache hits."""

    def command(
        profile: ProfileOpt = "default",
        sets: SetOpt = None,
        dask_address: DaskOpt = None,
        no_wait: NoWaitOpt = False,
    ) -> None:
        _run_until(stage, profile, sets, dask_address, no_wait)

    app.command(stage, help=summary)(command)


_stage_command(
    "extract",
    "Ingest, then extract features with Dask into the Zarr store (incremental, resumable).",
)
_stage_command(
    "augment", "Ingest and extract, then augment the train split offline into its own Zarr store."
)
_stage_command(
    "train", "Run the stages up to training (resumes from the last checkpoint if interrupted)."
)
_stage_command(
    "evaluate",
    "Run the stages up to evaluation on the test split (metrics, confusion matrix, figures).",
)


@app.command()
def run(
    profile: ProfileOpt = "default",
    sets: SetOpt = None,
    dask_address: DaskOpt = None,
    no_wait: NoWaitOpt = False,
) -> None:
    """The whole pipeline: ingest, extract, augment, train, evaluate, register + gated promotion."""
    cfg = config_for_work(profile, sets, dask_address, registry=True)
    from melflow.flows.fastpath import cached_summary

    with melflow_errors():
        summary = cached_summary(cfg)  # everything done: no Prefect, Dask or MLflow
    if summary is None:
        from melflow.flows.orchestration import run_flow
        from melflow.flows.pipeline import pipeline_flow

        summary = run_quietly(lambda: run_flow(pipeline_flow, cfg, wait=not no_wait))
    _print_summary(summary)
    _print_next_steps(summary, profile, sets)


@app.command()
def cv(
    profile: ProfileOpt = "default",
    sets: SetOpt = None,
    dask_address: DaskOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cross-validate (cv.*): train and test every fold, print per-fold and mean +- std scores."""
    cfg = config_for_work(profile, sets, dask_address, registry=True)
    from melflow.flows.cv import cv_flow
    from melflow.flows.orchestration import run_flow

    summary = run_quietly(lambda: run_flow(cv_flow, cfg))
    result = summary.result
    if as_json:
        folds = [
            {**asdict(f.score), "n_train": f.n_train, "n_val": f.n_val, "n_test": f.n_test}
            for f in result.folds
        ]
        print_json(
            {
                "profile": cfg.name,
                "folds": folds,
                **result.summary(),
                "classes": result.classes,
                "confusion_matrix": result.confusion,
                "mlflow_run_id": summary.run_id,
            }
        )
        return
    table = Table(title=f"melflow cv: profile {cfg.name}")
    for column in ("fold", "train", "val", "test", "epochs", "accuracy", "macro-F1"):
        table.add_column(column, justify="right")
    for f in result.folds:
        s = f.score
        table.add_row(
            s.fold,
            str(f.n_train),
            str(f.n_val),
            str(f.n_test),
            str(s.epochs),
            f"{s.accuracy:.3f}",
            f"{s.macro_f1:.3f}",
        )
    pooled = result.summary()
    table.add_row(
        "mean +- std",
        *[""] * 4,
        f"{pooled['accuracy_mean']:.3f} +- {pooled['accuracy_std']:.3f}",
        f"{pooled['macro_f1_mean']:.3f} +- {pooled['macro_f1_std']:.3f}",
    )
    console.print(table)
    console.print(
        f"MLflow parent run {summary.run_id}, one nested run per fold; no version registered"
    )


@app.command()
def retrain(
    profile: ProfileOpt = "default",
    sets: SetOpt = None,
    dask_address: DaskOpt = None,
    no_wait: NoWaitOpt = False,
) -> None:
    """Retrain if the corpus changed: new clips only, then train, evaluate, promote if better."""
    cfg = config_for_work(profile, sets, dask_address, registry=True)
    from melflow.flows.orchestration import run_flow
    from melflow.flows.retrain import retrain_flow

    result = run_quietly(lambda: run_flow(retrain_flow, cfg, wait=not no_wait))
    if result.pipeline is None:
        console.print(f"Corpus unchanged since the last run ({result.changes}): nothing to do.")
        return
    console.print(f"Corpus changed: {result.changes}.")
    _print_summary(result.pipeline)


@app.command()
def status(profile: ProfileOpt = "default", sets: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Which stages are complete, partial (k of n batches), stale or missing; the champion."""
    cfg = config_from_cli(profile, sets)
    from melflow.flows.status import pipeline_status

    with melflow_errors():
        rows = pipeline_status(cfg)
    if as_json:
        print_json({"profile": cfg.name, "stages": [asdict(row) for row in rows]})
        return
    colours = {"complete": "green", "partial": "yellow", "stale": "magenta", "missing": "red"}
    table = Table(title=f"melflow status: profile {cfg.name}")
    for column in ("stage", "state", "detail", "size", "output"):
        table.add_column(column, overflow="fold")
    for row in rows:
        colour = colours.get(row.state, "white")
        size = "" if row.size_mb is None else f"{row.size_mb:.1f} MB"
        table.add_row(row.stage, f"[{colour}]{row.state}[/]", row.detail, size, row.output)
    console.print(table)


def _check_cron(cron: str | None) -> None:
    if cron is None:
        return
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=cron)
    except ValueError:
        fail(
            f"--cron {cron!r} is not a valid cron schedule; "
            'e.g. "0 3 * * *" (minute hour day month weekday)'
        )


@app.command()
def schedule(
    profile: ProfileOpt = "default",
    sets: SetOpt = None,
    cron: Annotated[str | None, typer.Option(help='Cron schedule, e.g. "0 3 * * *".')] = None,
    interval: Annotated[int | None, typer.Option(min=10, help="Interval in seconds.")] = None,
    flow_name: Annotated[str, typer.Option("--flow", help="pipeline or retrain.")] = "retrain",
    list_: Annotated[bool, typer.Option("--list", help="List deployments and exit.")] = False,
    remove: Annotated[str | None, typer.Option(help="Delete a deployment (flow/name).")] = None,
) -> None:
    """Serve the pipeline or retrain flow on a schedule against the Prefect API (blocks)."""
    if list_:
        from melflow.flows.deployments import list_schedules

        table = Table(title="melflow deployments")
        table.add_column("deployment", no_wrap=True)
        for column in ("schedules", "parameters", "paused"):
            table.add_column(column, overflow="fold")
        for d in list_schedules():
            table.add_row(
                d["name"], ", ".join(d["schedules"]), str(d["parameters"]), str(d["paused"])
            )
        console.print(table)
        return
    if remove:
        from melflow.flows.deployments import remove_schedule

        if not remove_schedule(remove):
            fail(f"no deployment named {remove!r}; see `melflow schedule --list`")
        console.print(f"removed {remove}")
        return
    if flow_name not in ("pipeline", "retrain"):
        fail(f"--flow must be pipeline or retrain, got {flow_name!r}")
    if (cron is None) == (interval is None):
        fail("give exactly one of --cron or --interval (or --list / --remove)")
    _check_cron(cron)
    config_from_cli(profile, sets)  # validate now, not at 3 a.m.
    from melflow.flows.deployments import ScheduleSpec, serve_schedules

    spec = ScheduleSpec(flow_name, profile, tuple(sets or ()), cron, interval)  # type: ignore[arg-type]
    console.print(
        f"serving [bold]{spec.flow}[/] as deployment {spec.name!r} "
        f"({cron or f'every {interval}s'}); Ctrl+C stops"
    )
    serve_schedules([spec])


@app.command()
def profiles() -> None:
    """List the available config profiles."""
    for name in list_profiles():
        console.print(name)


app.add_typer(models_app, name="models")
app.command("predict")(predict)
app.command("sweep")(sweep)
models_app.command("register-sweep")(register_sweep)


VERBOSE_FLAGS = ("-v", "--verbose")


def hoist_verbose(args: list[str]) -> list[str]:
    """Move ``-v``/``--verbose`` given after a subcommand to the front, where click reads it."""
    end = args.index("--") if "--" in args else len(args)
    head, tail = args[:end], args[end:]
    rest = [a for a in head if a not in VERBOSE_FLAGS]
    return (["-v"] if len(rest) < len(head) else []) + rest + tail


def main() -> None:
    """Console-script entry point."""
    stopping.install()
    try:
        app(args=hoist_verbose(sys.argv[1:]), prog_name="melflow")
    finally:
        # The interpreter's last collection walks every object of every imported module
        # (~0.5 s after a pipeline command); frozen objects are skipped, and atexit
        # handlers still run.
        gc.freeze()


if __name__ == "__main__":
    main()

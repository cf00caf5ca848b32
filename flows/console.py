"""What every CLI command shares: config loading with clean errors, quiet Prefect, progress bars."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Annotated, Any, NoReturn, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from melflow import secrets
from melflow.config import PipelineConfig, load_config
from melflow.errors import MelflowError
from melflow.flows import stopping


class _ScrubbedStream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` as they are at each write, with every known secret
    hidden: whatever a command prints (a table cell, a command line to copy) cannot show
    a secret given with ``-s``.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def _stream(self) -> Any:
        return getattr(sys, self._name)

    def write(self, text: str) -> int:
        self._stream.write(secrets.scrub(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return bool(self._stream.isatty())

    def fileno(self) -> int:
        return int(self._stream.fileno())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self._stream, "encoding", None) or "utf-8")


console = Console(file=cast(IO[str], _ScrubbedStream("stdout")))
err_console = Console(file=cast(IO[str], _ScrubbedStream("stderr")), stderr=True)

ProfileOpt = Annotated[
    str, typer.Option("--profile", "-p", help="Profile name in pipeline_config/ or a YAML path.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Override a config field, e.g. -s features.n_mels=128 (repeatable)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
NoWaitOpt = Annotated[
    bool,
    typer.Option("--no-wait", help="Fail at once if another run is writing to the data folder."),
]
DaskOpt = Annotated[
    str | None,
    typer.Option("--dask-address", help="Use a running Dask scheduler, e.g. tcp://127.0.0.1:8786."),
]


def quiet_runtime(verbose: bool = False) -> None:
    """Keep the terminal for melflow's own output (progress bars, tables, one-line errors).

    Without ``--verbose`` Prefect's run logs are off (they stay in the Prefect UI/API when a
    server is used) and Dask/MLflow speak only at WARNING; melflow itself reports failures,
    so a bad input never shows a traceback twice.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    level = "INFO" if verbose else "WARNING"
    # distributed applies its own logging config on import; this is the knob it reads. Its
    # warnings at cluster shutdown ("worker still alive, killing") are routine, not news.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "info" if verbose else "error")
    for name in ("distributed", "mlflow", "alembic", "httpx", "numba"):
        logging.getLogger(name).setLevel(level)
    prefect_level = "INFO" if verbose else "CRITICAL"
    # Prefect reads these when it configures logging at its first flow run.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", prefect_level)
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_LEVEL", prefect_level)
    logging.getLogger("prefect").setLevel(prefect_level)
    # Remote servers that do not answer fail within seconds, not after minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    secrets.install_log_scrubber()


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear error line (no traceback, no secret of the config) and exit."""
    err_console.print(f"[bold red]error:[/] {secrets.scrub(message)}", soft_wrap=True)
    raise typer.Exit(code)


def config_from_cli(
    profile: str, sets: list[str] | None, dask_address: str | None = None
) -> PipelineConfig:
    """Load and validate the profile before any work; a bad field exits with its fix."""
    overrides = list(sets or [])
    if dask_address:
        overrides.append(f"dask.address={dask_address}")
    try:
        return load_config(profile, overrides=overrides)
    except MelflowError as exc:
        fail(str(exc))


def config_for_work(
    profile: str, sets: list[str] | None, dask_address: str | None = None, *, registry: bool
) -> PipelineConfig:
    """:func:`config_from_cli` plus the checks of :mod:`melflow.flows.preflight` (data
    folder, corpus root, Dask scheduler, MLflow server when ``registry``), all before any
    server starts."""
    from melflow.flows.preflight import check_for_work

    cfg = config_from_cli(profile, sets, dask_address)
    try:
        check_for_work(cfg, registry=registry)
    except MelflowError as exc:
        fail(str(exc))
    return cfg


def check_registry(cfg: PipelineConfig) -> None:
    """A configured MLflow server answers (one error line within seconds if not)."""
    from melflow.flows.preflight import check_tracking, configured_tracking_uri

    try:
        check_tracking(configured_tracking_uri(cfg))
    except MelflowError as exc:
        fail(str(exc))


@contextmanager
def melflow_errors() -> Iterator[None]:
    """Turn melflow's own errors into one-line messages with exit code 2."""
    try:
        yield
    except MelflowError as exc:
        fail(str(exc))


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (no markup, no wrapping), for scripts."""
    console.file.write(json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def progress_display() -> Iterator[None]:
    """Progress of the stages, fed by tasks through :mod:`melflow.tasks.progress`.

    On a terminal: a rich bar per stage. Otherwise (logs, pipes, CI) plain lines on stderr:
    every 10 % of a stage, and every note (one per training epoch).
    """
    from melflow.tasks.progress import set_sink

    if not err_console.is_terminal:
        lines = _LineSink()
        set_sink(lines, lines.note)
        try:
            yield
        finally:
            set_sink(None)
        return
    progress = Progress(
        TextColumn("[bold blue]{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    bars: dict[str, Any] = {}

    def sink(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = progress.add_task(stage, total=total)
        progress.update(bars[stage], completed=done, total=total)

    def note(stage: str, text: str) -> None:
        progress.console.print(f"[bold blue]{stage:>10}[/] {escape(text)}", highlight=False)

    with progress:
        set_sink(sink, note)
        try:
            yield
        finally:
            set_sink(None)


class _LineSink:
    """``stage: done/total`` lines at most every 10 % of a stage, and every note (a stage
    that writes notes, like training's epoch lines, needs no count lines besides)."""

    def __init__(self) -> None:
        self.deciles: dict[str, int] = {}
        self.noted: set[str] = set()

    def note(self, stage: str, text: str) -> None:
        self.noted.add(stage)
        err_console.print(f"{stage}: {escape(text)}", highlight=False)

    def __call__(self, stage: str, done: int, total: int) -> None:
        decile = 10 * done // max(total, 1)
        if stage not in self.noted and self.deciles.get(stage) != decile:
            self.deciles[stage] = decile
            err_console.print(f"{stage}: {done}/{total}", highlight=False)


EPHEMERAL_TIMEOUT = "Timed out while attempting to connect to ephemeral Prefect API server"


def run_quietly(fn: Callable[[], Any]) -> Any:
    """Run a flow with progress bars and clean errors; a stop signal ends it at once."""
    try:
        with melflow_errors(), progress_display():
            return fn()
    except RuntimeError as exc:
        if str(exc).startswith(EPHEMERAL_TIMEOUT):
            fail(
                "the temporary Prefect server did not start in time (a busy machine?); "
                "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or set PREFECT_API_URL "
                "to a running server (prefect server start)"
            )
        raise
    except BaseException as exc:
        # KeyboardInterrupt, or Prefect's TerminationSignal for SIGTERM: the flow has
        # unwound as far as it will; worker threads must not hold the process open.
        if stopping.installed() and (
            isinstance(exc, KeyboardInterrupt) or stopping.interrupted() is not None
        ):
            stopping.stop_now(stopping.interrupted() or signal.SIGINT)
        raise

"""Progress reporting from tasks to whoever is listening (the CLI's display, or logs).

Tasks run in the flow's process, so a process-wide sink is enough; without one, progress
goes to the Prefect run logger (or melflow's logger outside a run) at most every 10 %.
Prefect is imported only when a line is logged, so read-only commands never load it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

Sink = Callable[[str, int, int], None]
NoteSink = Callable[[str, str], None]
_sink: Sink | None = None
_note_sink: NoteSink | None = None


def set_sink(sink: Sink | None, note_sink: NoteSink | None = None) -> None:
    """Route ``(stage, done, total)`` updates to ``sink`` and ``(stage, text)`` notes to
    ``note_sink`` (``None`` restores logging)."""
    global _sink, _note_sink
    _sink, _note_sink = sink, note_sink


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("melflow")


def note(stage: str, text: str) -> None:
    """A line worth reading as it happens, e.g. one per training epoch."""
    if _note_sink is not None:
        _note_sink(stage, text)
    else:
        _logger().info("%s: %s", stage, text)


def reporter(stage: str) -> Callable[[int, int], None]:
    """An ``on_progress(done, total)`` callback for a domain function."""
    last_decile = -1

    def report(done: int, total: int) -> None:
        nonlocal last_decile
        if _sink is not None:
            _sink(stage, done, total)
            return
        decile = 10 * done // max(total, 1)
        if decile != last_decile:
            last_decile = decile
            _logger().info("%s: %d/%d", stage, done, total)

    return report

"""Progress reporting from tasks to whoever is listening (the CLI's rich display, or logs).

Tasks run in the flow's process, so a process-wide sink is enough; without one,
progress goes to the Prefect run logger at most every 10 %.
"""

from __future__ import annotations

from collections.abc import Callable

from prefect.logging import get_run_logger

Sink = Callable[[str, int, int], None]
_sink: Sink | None = None


def set_sink(sink: Sink | None) -> None:
    """Route ``(stage, done, total)`` updates to ``sink`` (``None`` restores logging)."""
    global _sink
    _sink = sink


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
            get_run_logger().info("%s: %d/%d", stage, done, total)

    return report

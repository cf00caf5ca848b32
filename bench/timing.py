"""One way to time things in ``make bench``: the median of repeats, with min and max.

A 1-2 s timing on this shared 2-core machine moves by +-25 % between runs, so a single run
cannot judge a 15 % target (DESIGN.md section 6). Every section times through :func:`timed`
and writes ``key``, ``key_min`` and ``key_max`` with :meth:`Timing.figures`::

    t = timed(lambda: extract(manifest), setup=lambda: shutil.rmtree(data_dir), repeats=3)
    results.update(t.figures("cold_s"))
    results.update(t.figures("clips_per_s", value=lambda s: len(manifest) / s))
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REPEATS = 3


@dataclass(frozen=True)
class Timing:
    """Seconds of each repeat of one measurement."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def figures(self, key: str, *, value: Callable[[float], float] = float) -> dict[str, float]:
        """``{key: median, key_min: ..., key_max: ...}`` of ``value(seconds)`` over the repeats.

        ``value`` turns seconds into the reported figure (``lambda s: n / s`` for a rate);
        min and max are taken after it, so a rate's min comes from the slowest run.
        """
        return spread(key, [value(s) for s in self.runs])


def timed(
    fn: Callable[[], Any],
    *,
    repeats: int = REPEATS,
    setup: Callable[[], Any] | None = None,
) -> Timing:
    """Time ``fn`` ``repeats`` times; ``setup`` runs untimed before each repeat.

    A full garbage collection precedes each repeat: earlier benchmarks leave garbage
    behind, and a gen-2 collection inside a sub-second timing adds ~0.1 s that belongs to
    them.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    runs = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        gc.collect()
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return Timing(tuple(runs))


def spread(key: str, values: list[float]) -> dict[str, float]:
    """Median, min and max of figures measured once per repeat (a ratio within one repeat)."""
    ordered = sorted(values)
    return {key: statistics.median(ordered), f"{key}_min": ordered[0], f"{key}_max": ordered[-1]}

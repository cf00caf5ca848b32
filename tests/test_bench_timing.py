"""bench.timing: medians of repeats with min and max, setup outside the timed part."""

from __future__ import annotations

import itertools

import pytest

from bench import timing
from bench.timing import Timing, spread, timed


def test_figures_are_median_min_max_of_the_value() -> None:
    t = Timing((2.0, 1.0, 4.0))
    assert t.median == 2.0
    assert t.figures("wall_s") == {"wall_s": 2.0, "wall_s_min": 1.0, "wall_s_max": 4.0}
    # A rate's minimum comes from the slowest run.
    assert t.figures("clips_per_s", value=lambda s: 100 / s) == {
        "clips_per_s": 50.0,
        "clips_per_s_min": 25.0,
        "clips_per_s_max": 100.0,
    }
    assert spread("f", [0.3, 0.1, 0.2, 0.4]) == {"f": 0.25, "f_min": 0.1, "f_max": 0.4}


def test_timed_repeats_and_keeps_setup_out_of_the_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = itertools.count(step=1.0)
    calls: list[str] = []
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))

    def setup() -> None:
        calls.append("setup")
        next(clock)  # a setup that takes time on the clock must not count

    t = timed(lambda: calls.append("fn"), setup=setup, repeats=3)
    assert calls == ["setup", "fn"] * 3
    assert t.runs == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        timed(lambda: None, repeats=0)


def test_a_misspelt_section_is_refused_before_any_work(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.run import main

    with pytest.raises(SystemExit) as info:
        main(["--only", "extrct"])
    assert info.value.code == 2
    assert "invalid choice: 'extrct'" in capsys.readouterr().err

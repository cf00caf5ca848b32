"""Cache keys that exist only with the output: Cached from the second run, never stale;
retries of transient errors only."""

from __future__ import annotations

from pathlib import Path

import pytest
from distributed import KilledWorker
from distributed.comm.core import CommClosedError
from prefect import flow
from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings
from prefect.states import Failed

from melflow.errors import ConfigError
from melflow.tasks.caching import keyed_task, transient_only

calls: list[str] = []


def _key(*, out: str, n: int = 2) -> str | None:
    return f"{Path(out).name}-{n}" if Path(out).exists() else None


@keyed_task("toy", _key, name="toy-stage")
def _stage(out: str, n: int = 2) -> str:
    calls.append(out)
    Path(out).write_text("x" * n)
    return f"wrote {n}"


@flow
def _run(out: str) -> tuple[str, str]:
    state = _stage(out, return_state=True)
    return state.name, state.result()


def test_cached_from_the_second_run_and_recomputed_when_output_is_gone(
    tmp_path: Path, prefect_harness: None
) -> None:
    out = str(tmp_path / "output.txt")
    calls.clear()
    with temporary_settings(updates={PREFECT_LOCAL_STORAGE_PATH: str(tmp_path / "results")}):
        runs = [_run(out) for _ in range(3)]
        assert runs == [("Completed", "wrote 2"), ("Cached", "wrote 2"), ("Cached", "wrote 2")]
        assert calls == [out]
        Path(out).unlink()  # a stale result must not stand in for the missing output
        assert _run(out)[0] == "Completed" and calls == [out, out]
        assert Path(out).exists()


def test_body_alone_runs_without_prefect(tmp_path: Path) -> None:
    assert _stage.fn(str(tmp_path / "o.txt"), n=3) == "wrote 3"
    assert (tmp_path / "o.txt").read_text() == "xxx"


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (OSError("connection reset"), True),
        (TimeoutError("slow disk"), True),
        (CommClosedError("worker gone"), True),
        (KilledWorker("batch-1", None, 3), True),
        (ConfigError("features.n_mels: must be > 0"), False),
        (ValueError("bad array"), False),
    ],
)
def test_only_transient_errors_are_retried(error: Exception, retried: bool) -> None:
    assert transient_only(None, None, Failed(data=error)) is retried

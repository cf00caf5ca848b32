"""The ingest task and flow on a real (temporary) Prefect API: result, retries, no retries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.testing.utilities import prefect_test_harness

import melflow.tasks.ingest as ingest_tasks
from melflow.config import PipelineConfig
from melflow.errors import ConfigError
from melflow.flows.ingest import ingest_flow
from melflow.ingest import IngestResult, latest_manifest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def prefect_api() -> Iterator[None]:
    with prefect_test_harness():
        yield


def test_flow_writes_the_manifest_and_pointer(
    small_cfg: PipelineConfig, small_corpus: Path
) -> None:
    result = ingest_flow(small_cfg)
    assert isinstance(result, IngestResult)
    assert (result.n_clips, result.n_ok) == (72, 72)
    assert latest_manifest(cfg=small_cfg) == result
    assert ingest_flow(small_cfg).cached


def flaky(error: Exception, calls: list[int]) -> Any:
    real = ingest_tasks.ingest_corpus

    def ingest_corpus(**kwargs: Any) -> IngestResult:
        calls.append(1)
        if len(calls) == 1:
            raise error
        return real(**kwargs)

    return ingest_corpus


def test_transient_io_error_is_retried(
    small_cfg: PipelineConfig, small_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(ingest_tasks, "ingest_corpus", flaky(ConnectionResetError("s3"), calls))
    assert ingest_flow(small_cfg).n_ok == 72
    assert len(calls) == 2


def test_bad_input_is_not_retried(
    small_cfg: PipelineConfig, small_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(ingest_tasks, "ingest_corpus", flaky(ConfigError("no corpus"), calls))
    with pytest.raises(ConfigError, match="no corpus"):
        ingest_flow(small_cfg)
    assert len(calls) == 1

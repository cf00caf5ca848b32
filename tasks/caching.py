"""Cache keys and result storage shared by every task.

A task's key is built from the domain's digest chain (input content digests, the digest of
the config sections it reads, its code version), never from Python object identity, so
Prefect skips done work across processes and machines that share ``data_dir``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from distributed import KilledWorker
from distributed.comm.core import CommClosedError
from prefect.client.schemas.objects import State
from prefect.context import TaskRunContext
from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

from melflow import storage
from melflow.config import PipelineConfig
from melflow.errors import MelflowError

CacheKeyFn = Callable[[TaskRunContext, dict[str, Any]], str | None]


def keyed_by(stage: str, key_of: Callable[..., str | None]) -> CacheKeyFn:
    """A ``cache_key_fn`` returning ``<stage>-<key_of(**task parameters)>``.

    ``key_of`` returns ``None`` while the stage's output is missing or incomplete (e.g. a
    deleted store), so a stale cached result can never stand in for absent data.
    """

    def cache_key(_context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
        key = key_of(**parameters)
        return None if key is None else f"{stage}-{key}"

    return cache_key


def transient_only(_task: Any, _task_run: Any, state: State[Any]) -> bool:
    """Retry condition: I/O hiccups and lost workers, never bad input or bad config."""
    try:
        state.result()
    except MelflowError:
        return False
    except (OSError, TimeoutError, KilledWorker, CommClosedError):
        return True
    except Exception:
        return False
    return False


def results_dir(cfg: PipelineConfig) -> str:
    """Where Prefect persists task results for this profile (under ``data_dir``)."""
    return storage.join(cfg.paths.data_dir, "prefect-results")


@contextmanager
def persisted_results(cfg: PipelineConfig) -> Iterator[None]:
    """Persist task results under ``data_dir`` for the duration of a flow call."""
    with temporary_settings(updates={PREFECT_LOCAL_STORAGE_PATH: results_dir(cfg)}):
        yield

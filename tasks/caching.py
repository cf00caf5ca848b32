"""Cache keys and result storage shared by every task.

A task's key is built from the domain's digest chain (input content digests, the digest of
the config sections it reads, its code version), never from Python object identity, so
Prefect skips done work across processes and machines that share ``data_dir``.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from melflow.config import PipelineConfig
from melflow.errors import MelflowError
from melflow.layout import Layout
from melflow.tasks.deferred import Deferred, deferred_task

if TYPE_CHECKING:  # Prefect is imported only by a run that uses it (see tasks.deferred)
    from prefect import Task
    from prefect.client.schemas.objects import State
    from prefect.context import TaskRunContext

CacheKeyFn = Callable[["TaskRunContext", dict[str, Any]], str | None]
P = ParamSpec("P")
R = TypeVar("R")


def _stage_key(
    stage: str, key_of: Callable[..., str | None], parameters: dict[str, Any]
) -> str | None:
    key = key_of(**parameters)
    return None if key is None else f"{stage}-{key}"


def keyed_by(stage: str, key_of: Callable[..., str | None]) -> CacheKeyFn:
    """A ``cache_key_fn`` returning ``<stage>-<key_of(**task parameters)>``.

    ``key_of`` returns ``None`` while the stage's output is missing or incomplete (e.g. a
    deleted store), so a stale cached result can never stand in for absent data.
    """

    def cache_key(_context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
        return _stage_key(stage, key_of, parameters)

    return cache_key


def keyed_task(
    stage: str,
    key_of: Callable[..., str | None],
    *,
    as_cached: Callable[[Any], Any] | None = None,
    **options: Any,
) -> Callable[[Callable[P, R]], Deferred[P, R]]:
    """``@task`` (built on first use, see :mod:`melflow.tasks.deferred`) cached under
    :func:`keyed_by`'s key, with the result stored as soon as the stage's output exists.

    Prefect computes a task's key once, before the task runs. A key that exists only with
    the output is ``None`` on the run that creates the output, so Prefect would store that
    result under no key and the next run would recompute it just to store it: the task
    would show Cached only from the third run. Writing the result under the key the moment
    the body returns makes the second run a cache hit.

    ``as_cached`` turns the result into what a later cache hit should say (a store's
    "0 batches computed, cached" instead of this run's work); by default the hit returns
    the result unchanged. ``options`` go to :func:`prefect.task` (``name``, ``retries``,
    ``tags``...).
    """

    def decorate(fn: Callable[P, R]) -> Deferred[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def body(*args: P.args, **kwargs: P.kwargs) -> R:
            result = fn(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            stored = result if as_cached is None else as_cached(result)
            _remember(stored, key=_stage_key(stage, key_of, dict(bound.arguments)))
            return result

        keyed = deferred_task(cache_key_fn=keyed_by(stage, key_of), persist_result=True, **options)
        return keyed(body)

    return decorate


def _remember(result: Any, *, key: str | None) -> None:
    # Looked up, not imported: a body called directly, without Prefect, has no transaction.
    transactions = sys.modules.get("prefect.transactions")
    transaction = None if transactions is None else transactions.get_transaction()
    if key is None or transaction is None or transaction.key == key:
        return  # no output, no Prefect run, or Prefect stores the result under this key itself
    from prefect.results import get_result_store

    get_result_store().write(obj=result, key=key)


def transient_only(_task: Any, _task_run: Any, state: State[Any]) -> bool:
    """Retry condition: I/O hiccups and lost workers, never bad input or bad config."""
    try:
        state.result()
    except MelflowError:
        return False
    except (OSError, TimeoutError):  # Dask's CommClosedError is an OSError
        return True
    except Exception as exc:
        return _lost_worker(exc)
    return False


def _lost_worker(exc: Exception) -> bool:
    # Looked up, not imported: a process that never loaded Dask has lost no worker, and a
    # cached command should not pay for importing it (~0.3 s).
    distributed = sys.modules.get("distributed")
    return distributed is not None and isinstance(exc, distributed.KilledWorker)


def results_dir(cfg: PipelineConfig) -> str:
    """Where Prefect persists task results for this profile: ``<data_dir>/prefect-results``."""
    return Layout.of(cfg).prefect_results()


def with_results(task: Task[P, R], cfg: PipelineConfig) -> Task[P, R]:
    """``task`` persisting its result under the data folder of ``cfg``.

    A flow's tasks take their result storage from the flow run, fixed before the flow body
    runs; naming it per call is what keeps results out of ``~/.prefect/storage``.
    """
    return task.with_options(result_storage=Path(results_dir(cfg)))


@contextmanager
def persisted_results(cfg: PipelineConfig) -> Iterator[None]:
    """Default result storage under ``data_dir`` for the duration of a flow call."""
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    with temporary_settings(updates={PREFECT_LOCAL_STORAGE_PATH: results_dir(cfg)}):
        yield

from __future__ import annotations

import copy

from prefect import Task
from prefect.cache_policies import NO_CACHE

from melflow.tasks.deferred import Deferred, deferred_task


def _double(n: int) -> int:
    return 2 * n


def test_the_plain_function_is_used_without_building_and_the_object_is_built_once() -> None:
    builds: list[int] = []

    def build() -> object:
        builds.append(1)
        return lambda n: n + 100

    deferred = Deferred(_double, build)
    assert deferred.fn(4) == 8
    copy.copy(deferred)  # copy and pickle look up dunders: none of them builds
    assert builds == []
    assert deferred(4) == 104
    assert deferred(5) == 105
    assert builds == [1]


def test_a_deferred_task_becomes_the_prefect_task_it_describes() -> None:
    deferred = deferred_task(name="double-it", retries=3, uncached=True)(_double)
    assert deferred.fn is _double
    assert isinstance(deferred.built, Task)
    assert deferred.name == "double-it"  # attributes come from the built task
    assert deferred.retries == 3
    assert deferred.cache_policy is NO_CACHE
    assert deferred_task(name="cached")(_double).cache_policy is not NO_CACHE

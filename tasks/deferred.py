"""Prefect tasks and flows that are built on first use.

A command with no Prefect server runs its stages directly: it calls their plain functions
(see :mod:`melflow.flows.orchestration`). Building the Prefect objects when a module is
imported would make such a command import Prefect, about 0.7 s, for objects it never uses.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Deferred(Generic[P, R]):
    """A plain function ``fn`` and the Prefect task or flow made from it on first use.

    ``fn`` is the function itself, as on a Prefect task. Calling the object, or reading
    any other attribute (``cache_key_fn``, ``with_options``...), builds the Prefect object
    once and uses it.
    """

    def __init__(self, fn: Callable[P, R], build: Callable[[], Any]) -> None:
        self.fn = fn
        self._build = build

    @cached_property
    def built(self) -> Any:
        """The Prefect ``Task`` or ``Flow`` (built now if it is not yet)."""
        return self._build()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.built(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy and pickle probe dunders: never build for them
            raise AttributeError(name)
        return getattr(self.built, name)


def deferred_task(
    *, uncached: bool = False, **options: Any
) -> Callable[[Callable[P, R]], Deferred[P, R]]:
    """``@prefect.task(**options)``, built on first use; ``uncached`` sets the
    ``NO_CACHE`` policy (a Prefect object, so it is looked up only then too)."""

    def decorate(fn: Callable[P, R]) -> Deferred[P, R]:
        def build() -> Any:
            from prefect import task
            from prefect.cache_policies import NO_CACHE

            policy: dict[str, Any] = {"cache_policy": NO_CACHE} if uncached else {}
            return task(**options, **policy)(fn)

        return Deferred(fn, build)

    return decorate

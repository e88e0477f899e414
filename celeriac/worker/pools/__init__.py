"""Worker pools, chosen by name (``-P``)."""

from __future__ import annotations

from celeriac.exceptions import ImproperlyConfigured
from celeriac.worker.pools.base import Pool
from celeriac.worker.pools.solo import SoloPool
from celeriac.worker.pools.threads import ThreadPool

__all__ = ["POOLS", "Pool", "pool_class"]

POOLS: dict[str, type[Pool]] = {"solo": SoloPool, "threads": ThreadPool}

#: Pools Celery offers that this version of celeriac does not have yet.
_NOT_YET = ("prefork", "processes", "gevent", "eventlet", "asyncio")


def pool_class(name: str) -> type[Pool]:
    """The pool class for ``-P NAME``.

    Raises:
        ImproperlyConfigured: an unknown pool, or one not available in this version.
    """
    try:
        return POOLS[name]
    except KeyError:
        pass
    if name in _NOT_YET:
        raise ImproperlyConfigured(
            f"The {name!r} pool is not available in this version of celeriac; "
            f"use -P threads or -P solo."
        )
    raise ImproperlyConfigured(f"Unknown pool {name!r}; choose one of: {', '.join(POOLS)}")

"""Worker pools, chosen by name (``-P``); each implementation is imported only when chosen."""

from __future__ import annotations

from collections.abc import Callable

from celeriac.exceptions import ImproperlyConfigured
from celeriac.worker.pools.base import Pool

__all__ = ["POOL_NAMES", "Pool", "pool_class"]


def _solo() -> type[Pool]:
    from celeriac.worker.pools.solo import SoloPool

    return SoloPool


def _threads() -> type[Pool]:
    from celeriac.worker.pools.threads import ThreadPool

    return ThreadPool


def _asyncio() -> type[Pool]:
    from celeriac.worker.pools.asyncio import AsyncioPool

    return AsyncioPool


def _gevent() -> type[Pool]:
    from celeriac.worker.pools.gevent import GeventPool

    return GeventPool


def _eventlet() -> type[Pool]:
    from celeriac.worker.pools.eventlet import EventletPool

    return EventletPool


def _prefork() -> type[Pool]:
    from celeriac.worker.pools.prefork import PreforkPool

    return PreforkPool


_LOADERS: dict[str, Callable[[], type[Pool]]] = {
    "solo": _solo,
    "threads": _threads,
    "asyncio": _asyncio,
    "gevent": _gevent,
    "eventlet": _eventlet,
    "prefork": _prefork,
    "processes": _prefork,
}

#: Every pool name ``-P`` accepts (Celery's names).
POOL_NAMES = ("prefork", "processes", "threads", "solo", "asyncio", "gevent", "eventlet")


def pool_class(name: str) -> type[Pool]:
    """The pool class for ``-P NAME``.

    Raises:
        ImproperlyConfigured: an unknown pool, or one not available in this version.
    """
    loader = _LOADERS.get(name)
    if loader is not None:
        return loader()
    if name in POOL_NAMES:
        raise ImproperlyConfigured(
            f"The {name!r} pool is not available in this version of celeriac; "
            f"use one of: {', '.join(_LOADERS)}."
        )
    raise ImproperlyConfigured(f"Unknown pool {name!r}; choose one of: {', '.join(POOL_NAMES)}")

"""The eventlet pool: each job runs in a green thread, up to ``concurrency`` at once (``-c``).

Needs ``pip install celeriac[eventlet]`` and a monkey-patched process: ``celeriac worker -P
eventlet`` patches (``eventlet.monkey_patch()``) in ``main()`` before the app is imported;
the ``worker_pool`` setting cannot (see :mod:`celeriac.worker.pools.gevent`, which also
describes how the C sqlite3 module blocks the hub). Eventlet itself is in maintenance mode
upstream; prefer gevent or asyncio for new deployments.
"""

from __future__ import annotations

from typing import Any

from celeriac.exceptions import ImproperlyConfigured
from celeriac.worker.pools.base import Job, Pool, run_inline

__all__ = ["EventletPool", "patch"]

INSTALL_HINT = "The eventlet pool needs eventlet: pip install celeriac[eventlet]"


def patch() -> None:
    """Monkey-patch the standard library for eventlet (call before anything else runs)."""
    try:
        import eventlet
    except ImportError as exc:
        raise ImproperlyConfigured(INSTALL_HINT) from exc
    eventlet.monkey_patch()


class EventletPool(Pool):
    """An eventlet ``GreenPool`` of ``concurrency`` green threads."""

    name = "eventlet"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self._greenthreads: Any = None

    def start(self) -> None:
        try:
            import eventlet
            from eventlet import patcher
        except ImportError as exc:
            raise ImproperlyConfigured(INSTALL_HINT) from exc
        if not patcher.is_monkey_patched("thread"):
            # Unpatched, the consumer is a real thread and green threads would not run.
            raise ImproperlyConfigured(
                "The eventlet pool needs a monkey-patched process: start the worker with "
                "`celeriac worker -P eventlet` (the worker_pool setting cannot patch in time), "
                "or call eventlet.monkey_patch() before importing anything else."
            )
        self._greenthreads = eventlet.GreenPool(self.concurrency)

    def submit(self, job: Job) -> None:
        # Blocks the caller (the consumer green thread) while every slot is busy: backpressure.
        self._greenthreads.spawn_n(run_inline, job)

    def stop(self, *, wait: bool) -> None:
        if wait and self._greenthreads is not None:
            self._greenthreads.waitall()

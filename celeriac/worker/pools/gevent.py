"""The gevent pool: each job runs in a greenlet, up to ``concurrency`` at once (``-c``).

Needs ``pip install celeriac[gevent]`` and a monkey-patched process: ``celeriac worker -P
gevent`` patches (``gevent.monkey.patch_all()``) in ``main()`` before the app is imported.
As in Celery, the ``worker_pool`` setting cannot do that (settings are read after the app,
and so socket and threading, were imported), so the pool refuses to start unpatched.

Under patching the worker's own threads (consumer, settler, lease renewal) are greenlets
too. The embedded SQLite broker and backend work, but sqlite3 is C code gevent cannot make
cooperative: each query blocks the hub for its duration, and a wait on SQLite's busy timeout
(another process holding the write lock) stalls every greenlet for that long. Measured with
a greenlet timing ``gevent.sleep(0.001)`` beside a ``-c 100`` worker: idle, the extra delay
was 0.1 ms median and 1.7 ms at p99; while draining 5,000 no-op tasks (about 6,000/s) it was
6 ms median and 44 ms at p99, the tasks' own CPU work included. Acceptable for I/O-bound
tasks, which is what this pool is for; CPU-bound bodies stall the hub the same way (use
prefork for those).
"""

from __future__ import annotations

from typing import Any

from celeriac.exceptions import ImproperlyConfigured
from celeriac.worker.pools.base import Job, Pool, run_inline

__all__ = ["GeventPool", "patch"]

INSTALL_HINT = "The gevent pool needs gevent: pip install celeriac[gevent]"


def patch() -> None:
    """Monkey-patch the standard library for gevent (call before anything else runs)."""
    try:
        from gevent import monkey
    except ImportError as exc:
        raise ImproperlyConfigured(INSTALL_HINT) from exc
    monkey.patch_all()


class GeventPool(Pool):
    """A gevent ``Pool`` of ``concurrency`` greenlets."""

    name = "gevent"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self._greenlets: Any = None

    def start(self) -> None:
        try:
            from gevent import monkey
            from gevent.pool import Pool as GreenletPool
        except ImportError as exc:
            raise ImproperlyConfigured(INSTALL_HINT) from exc
        if not monkey.is_module_patched("threading"):
            # Unpatched, the consumer is a real thread: greenlets spawned from it would
            # only run while it blocks on gevent, i.e. practically never.
            raise ImproperlyConfigured(
                "The gevent pool needs a monkey-patched process: start the worker with "
                "`celeriac worker -P gevent` (the worker_pool setting cannot patch in time), "
                "or call gevent.monkey.patch_all() before importing anything else."
            )
        self._greenlets = GreenletPool(self.concurrency)

    def submit(self, job: Job) -> None:
        # Blocks the caller (the consumer greenlet) while every slot is busy: backpressure.
        self._greenlets.spawn(run_inline, job)

    def stop(self, *, wait: bool) -> None:
        if wait and self._greenlets is not None:
            self._greenlets.join()

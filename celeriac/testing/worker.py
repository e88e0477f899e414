"""Run a real worker inside the test process (Celery's ``start_worker``).

The worker runs in a background thread with the app's own broker and backend, so a test
can call ``task.delay(...).get()`` against it; typically with ``memory://`` for both.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from celeriac.worker.worker import Worker, WorkerOptions

if TYPE_CHECKING:
    from celeriac.app import Celery

__all__ = ["start_worker"]


@contextlib.contextmanager
def start_worker(
    app: Celery,
    *,
    pool: str = "threads",
    concurrency: int = 1,
    queues: list[str] | None = None,
    hostname: str | None = None,
    prefetch_multiplier: int | None = None,
    shutdown_timeout: float = 10.0,
    ready_timeout: float = 10.0,
) -> Iterator[Worker]:
    """Start a worker for ``app`` in a thread; stop it (warm) when the block ends.

    Raises:
        RuntimeError: the worker did not start, or did not stop within ``shutdown_timeout``.
    """
    node = Worker(
        app,
        WorkerOptions(
            concurrency=concurrency,
            pool=pool,
            queues=list(queues or []),
            hostname=hostname or "test@%h",
            prefetch_multiplier=prefetch_multiplier,
        ),
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            node.start()
        except BaseException as exc:  # reported to the test below
            failure.append(exc)

    thread = threading.Thread(target=run, name="TestWorker", daemon=True)
    thread.start()
    _wait_until_ready(node, thread, failure, ready_timeout)
    try:
        yield node
    finally:
        node.stop()
        thread.join(shutdown_timeout)
        if thread.is_alive():
            raise RuntimeError(f"worker did not stop within {shutdown_timeout}s")
    if failure:
        raise RuntimeError(f"worker crashed: {failure[0]!r}") from failure[0]


def _wait_until_ready(
    node: Worker, thread: threading.Thread, failure: list[BaseException], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.ready.is_set():
            return
        if failure or not thread.is_alive():
            raise RuntimeError(f"worker failed to start: {failure[0] if failure else 'exited'!r}")
        time.sleep(0.005)
    raise RuntimeError(f"worker not ready within {timeout}s")

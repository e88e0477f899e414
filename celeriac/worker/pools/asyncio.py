"""The asyncio pool: ``async def`` tasks run natively, thousands at once, on one event loop.

One thread runs the loop. Each submitted job becomes an asyncio task that waits for one of
``concurrency`` slots (``-c``; as in Celery, the default is the CPU count, so pass ``-c``
with the number of coroutines you want in flight, e.g. ``-P asyncio -c 1000``). In a slot:

* an ``async def`` body is awaited on the loop (:func:`~celeriac.worker.execution.execute_async`);
* a plain ``def`` body runs in a thread executor so that it cannot block the loop;
* the worker-side edges of a job (``begin``: decode, early ack, STARTED; ``finish``: log,
  store, settle) run in a small executor too, because they may write to the broker or the
  backend (a STARTED state is written synchronously) or block on a log handler.

An ``async def`` body that blocks (``time.sleep``, a synchronous client) holds up every
coroutine in the pool: use the ``asyncio`` equivalents there, or a plain ``def`` task. Time
limits are not enforced here (as with the threads pool; the worker says so at start).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from celeriac.worker.execution import execute_async
from celeriac.worker.pools.base import Job, Pool, Prepared

if TYPE_CHECKING:
    from celeriac.worker.execution import Outcome

__all__ = ["AsyncioPool"]

logger = logging.getLogger("celeriac.worker")

T = TypeVar("T")

#: Threads running the worker-side edges of jobs (begin/finish): they are short, and more
#: threads would only contend for the GIL with the loop.
EDGE_THREADS = 4


class AsyncioPool(Pool):
    """One event loop thread running up to ``concurrency`` jobs at once."""

    name = "asyncio"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="AsyncioPool", daemon=True)
        # Threads are created on demand, so a mostly-async workload never starts them all.
        self._bodies = ThreadPoolExecutor(concurrency, thread_name_prefix="AsyncioPoolSync")
        self._edges = ThreadPoolExecutor(EDGE_THREADS, thread_name_prefix="AsyncioPoolEdge")
        # Jobs handed over by other threads, taken in one batch per loop wake-up: one
        # self-pipe write per batch instead of one per job.
        self._inbox: deque[Job] = deque()
        self._inbox_lock = threading.Lock()
        self._wakeup_pending = False
        self._running: set[asyncio.Task[None]] = set()
        self._pending = 0  # submitted and not yet finished; guarded by _pending_lock
        self._pending_lock = threading.Lock()
        self._closing = False
        self._slots = asyncio.Semaphore(concurrency)  # bound to the loop on first use
        self._serializers: dict[int, str] = {}

    # --- life cycle (any thread) -------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._pending_lock:
            self._pending += 1
        with self._inbox_lock:
            self._inbox.append(job)
            if self._wakeup_pending:
                return
            self._wakeup_pending = True
        self._loop.call_soon_threadsafe(self._take_inbox)

    def stop(self, *, wait: bool) -> None:
        with self._pending_lock:
            self._closing = True
            drained = self._pending == 0
        if drained:
            self._stop_loop()
        if not wait:
            return  # the loop stops by itself once the last job has finished
        self._thread.join()
        self._edges.shutdown(wait=True)
        self._bodies.shutdown(wait=True)

    def _stop_loop(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)

    # --- the loop thread ---------------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _take_inbox(self) -> None:
        with self._inbox_lock:
            jobs = list(self._inbox)
            self._inbox.clear()
            self._wakeup_pending = False
        for job in jobs:
            task = self._loop.create_task(self._run(job))
            self._running.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._running.discard)

    async def _run(self, job: Job) -> None:
        try:
            async with self._slots:
                await self._run_in_slot(job)
        finally:
            self._job_done()

    async def _run_in_slot(self, job: Job) -> None:
        """:func:`~celeriac.worker.pools.base.run_inline`, with the body awaited."""
        try:
            prepared = await self._on_edge(job.begin)
            if prepared is None:
                return
            if inspect.iscoroutinefunction(prepared.task.run):
                outcome = await self._await_body(prepared)
                await self._on_edge(job.finish, outcome)
            else:
                # One hop for body and finish: a thread switch costs as much as a no-op task.
                await self._loop.run_in_executor(self._bodies, _run_and_finish, job, prepared)
        except Exception as error:
            await self._fail(job, error)

    async def _await_body(self, prepared: Prepared) -> Outcome:
        return await execute_async(
            prepared.task,
            prepared.request,
            prepared.args,
            prepared.kwargs,
            result_serializer=self._result_serializer(prepared),
        )

    async def _fail(self, job: Job, error: BaseException) -> None:
        try:
            await self._on_edge(job.fail, error)
        except Exception:  # a job must never take the loop down with it
            logger.exception("asyncio pool: reporting a failed job failed")

    async def _on_edge(self, function: Callable[..., T], *args: Any) -> T:
        return await self._loop.run_in_executor(self._edges, function, *args)

    def _job_done(self) -> None:
        with self._pending_lock:
            self._pending -= 1
            drained = self._closing and self._pending == 0
        if drained:
            self._loop.stop()

    def _result_serializer(self, prepared: Prepared) -> str:
        """The app's result serializer, read once (``execute`` gets it from the consumer)."""
        app = prepared.task.app
        serializer = self._serializers.get(id(app))
        if serializer is None:
            serializer = self._serializers[id(app)] = str(app.conf.result_serializer)
        return serializer


def _run_and_finish(job: Job, prepared: Prepared) -> None:
    job.finish(job.run(prepared))

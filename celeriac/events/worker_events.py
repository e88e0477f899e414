"""A worker's events: its task events and its ``worker-online/heartbeat/offline``.

As in Celery, worker events are sent unless the worker runs ``--without-heartbeat``
(``worker-online`` at start, ``worker-heartbeat`` every ``--heartbeat-interval`` seconds,
``worker-offline`` at shutdown), and task events only with ``-E`` /
``worker_send_task_events`` or after the remote command ``enable_events``.

Task events are buffered and published in batches by the worker's ``Events`` thread (a
list body every :data:`FLUSH_INTERVAL` seconds, or as soon as :data:`BUFFER_LIMIT` wait), so
the consumer and the pool only append to a list. The consumer calls the ``task_*`` methods
only while task events are on: with them off, a task costs one ``is None`` check.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celeriac import __version__, states
from celeriac.events.dispatcher import Dispatcher
from celeriac.utils.saferepr import saferepr

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.protocol import TaskEnvelope
    from celeriac.task import Task
    from celeriac.worker.execution import Outcome

__all__ = ["BUFFER_LIMIT", "FLUSH_INTERVAL", "SOFTWARE_INFO", "WorkerEvents"]

logger = logging.getLogger("celeriac.events")

#: Longest time a task event waits in the buffer (seconds).
FLUSH_INTERVAL = 0.1
#: Task events buffered before the Events thread is woken to publish them at once.
BUFFER_LIMIT = 200
#: The software fields of worker events (Celery sends ``py-celery`` and its version).
SOFTWARE_INFO: dict[str, Any] = {
    "sw_ident": "py-celeriac",
    "sw_ver": __version__,
    "sw_sys": platform.system(),
}

#: ``(active, processed)``: tasks running now, tasks finished since start.
Stats = Callable[[], tuple[int, int]]


class WorkerEvents:
    """The worker's event sender and the thread that flushes it and sends heartbeats.

    Args:
        app: the worker's app.
        hostname: the worker's node name.
        task_events: send task events from the start (``-E``).
        heartbeat: seconds between ``worker-heartbeat`` events; None sends no worker events.
        stats: reads the numbers a heartbeat carries.
    """

    def __init__(
        self,
        app: Celery,
        hostname: str,
        *,
        task_events: bool,
        heartbeat: float | None,
        stats: Stats,
    ) -> None:
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.dispatcher = Dispatcher(
            app=app,
            hostname=hostname,
            groups={"worker", "task"} if task_events else {"worker"},
            buffer_group={"task"},
            buffer_limit=BUFFER_LIMIT,
            on_send_buffered=self._wake.set,
        )
        self.heartbeat = heartbeat
        self.stats = stats
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def task_events(self) -> bool:
        groups = self.dispatcher.groups
        return groups is not None and "task" in groups

    @property
    def needed(self) -> bool:
        """Whether anything is to be sent at all (else the worker never starts this)."""
        return self.task_events or self.heartbeat is not None

    # --- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """``worker-online``, then the Events thread (flushing, heartbeats)."""
        self.worker_event("worker-online")
        self._start_thread()

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="Events", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Send what is buffered, then ``worker-offline`` (after the last task event)."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        self._flush()
        self.worker_event("worker-offline")

    def _run(self) -> None:
        interval = self.heartbeat
        next_beat = time.monotonic() + interval if interval else None
        while not self._stopping.is_set():
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            self._flush()
            if next_beat is not None and interval and time.monotonic() >= next_beat:
                self.worker_event("worker-heartbeat")
                next_beat = time.monotonic() + interval

    def _flush(self) -> None:
        try:
            self.dispatcher.flush()
        except Exception as exc:  # events are best effort: never stop the worker for them
            logger.error("Could not send events: %r", exc)

    # --- switching (remote control) ----------------------------------------------------------

    def enable_task_events(self) -> bool:
        """Start sending task events; False when they were on already."""
        groups = self.dispatcher.groups
        if groups is not None and "task" in groups:
            return False
        self.dispatcher.groups = (groups or set()) | {"task"}
        self._start_thread()
        return True

    def disable_task_events(self) -> bool:
        """Stop sending task events; False when they were off already."""
        groups = self.dispatcher.groups
        if groups is None or "task" not in groups:
            return False
        self.dispatcher.groups = groups - {"task"}
        return True

    # --- worker events -----------------------------------------------------------------------

    def worker_event(self, type_: str) -> None:
        """Send ``worker-online``/``-heartbeat``/``-offline`` now (with heartbeats on)."""
        if self.heartbeat is None:
            return
        active, processed = self.stats()
        try:
            self.dispatcher.send(
                type_,
                freq=self.heartbeat,
                active=active,
                processed=processed,
                loadavg=_loadavg(),
                **SOFTWARE_INFO,
            )
        except Exception as exc:
            logger.error("Could not send %s: %r", type_, exc)

    # --- task events (the consumer calls these only while task events are on) ---------------

    def task_received(self, envelope: TaskEnvelope, task: Task[Any, Any]) -> None:
        if not task.send_events:
            return
        headers = envelope.headers
        self.dispatcher.send(
            "task-received",
            uuid=envelope.id,
            name=envelope.name,
            args=envelope.argsrepr,
            kwargs=envelope.kwargsrepr,
            root_id=envelope.root_id,
            parent_id=envelope.parent_id,
            retries=envelope.retries,
            eta=headers.get("eta"),
            expires=headers.get("expires"),
        )

    def task_started(self, envelope: TaskEnvelope, task: Task[Any, Any]) -> None:
        if task.send_events:
            self.dispatcher.send("task-started", uuid=envelope.id)

    def task_finished(self, envelope: TaskEnvelope, task: Task[Any, Any], outcome: Outcome) -> None:
        """The event of how the body ended (none for IGNORED, as in Celery)."""
        if not task.send_events:
            return
        state, task_id, send = outcome.state, envelope.id, self.dispatcher.send
        if state == states.SUCCESS:
            result = saferepr(outcome.retval, task.resultrepr_maxsize)
            send("task-succeeded", uuid=task_id, result=result, runtime=outcome.runtime)
        elif state == states.FAILURE:
            exception = saferepr(outcome.retval)
            send("task-failed", uuid=task_id, exception=exception, traceback=outcome.traceback)
        elif state == states.RETRY:
            exception = saferepr(getattr(outcome.retval, "exc", None))
            send("task-retried", uuid=task_id, exception=exception, traceback=outcome.traceback)
        elif state == states.REJECTED:
            send("task-rejected", uuid=task_id, requeue=outcome.requeue)

    def task_revoked(
        self,
        task_id: str,
        task: Task[Any, Any] | None,
        *,
        terminated: bool = False,
        signum: int | None = None,
        expired: bool = False,
    ) -> None:
        if task is not None and not task.send_events:
            return
        self.dispatcher.send(
            "task-revoked", uuid=task_id, terminated=terminated, signum=signum, expired=expired
        )


def _loadavg() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:  # not available on this platform
        return [0.0, 0.0, 0.0]

"""Time limits: which limits apply to a task, and the soft limit's two enforcers.

A *soft* limit raises :class:`~celeriac.exceptions.SoftTimeLimitExceeded` inside the task so
it can clean up. A *hard* limit ends the task with
:class:`~celeriac.exceptions.TimeLimitExceeded`; only the prefork pool can enforce it, by
killing the child process that runs the task (see :mod:`celeriac.worker.pools.prefork`).

Limits resolve as in Celery: the message's own (``apply_async(time_limit=...)``, the
``timelimit`` header) over the task's (``@app.task(time_limit=...)``) over the settings
(``task_time_limit``, ``task_soft_time_limit``, or the worker's ``--time-limit``).

Two soft-limit enforcers:

* :class:`AlarmSoftLimit`, for a process that runs one task at a time in its main thread
  (a prefork child): ``signal.setitimer`` and a ``SIGALRM`` handler that raises. Python runs
  the handler between bytecodes; a blocking call such as ``time.sleep`` is interrupted by
  the signal and raises at once. A long C call that never returns to Python cannot be
  interrupted (the hard limit is the answer to that).
* :class:`ThreadSoftLimit`, for the threads and solo pools: a timer thread asks CPython
  (``PyThreadState_SetAsyncExc``) to raise the exception in the task's thread. This is
  best effort: the exception is delivered only when that thread next runs Python bytecode,
  so a task blocked in ``time.sleep(60)`` or in a socket read sees it only after the call
  returns.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import SoftTimeLimitExceeded

if TYPE_CHECKING:
    from celeriac.task import Context, Task

__all__ = [
    "AlarmSoftLimit",
    "ThreadSoftLimit",
    "log_hard_limit",
    "log_soft_limit",
    "resolve_limits",
]

logger = logging.getLogger("celeriac.worker")


def resolve_limits(
    request: Context, task: Task[Any, Any], defaults: tuple[float | None, float | None]
) -> tuple[float | None, float | None]:
    """(hard, soft) seconds: the message's, else the task's (which ``time_limit`` remote
    control changes), else ``defaults``, the settings as the worker read them at start."""
    hard = _first(request.time_limit, task.time_limit, defaults[0])
    soft = _first(request.soft_time_limit, task.soft_time_limit, defaults[1])
    return hard, soft


def _first(*values: Any) -> float | None:
    for value in values:
        if value is not None:
            return float(value)
    return None


def _seconds(value: float) -> str:
    # Celery prints the limit as given: "1" for 1.0, "0.5" for 0.5.
    return f"{value:g}"


def log_soft_limit(limit: float, name: str, task_id: str) -> None:
    """Celery's warning when a soft limit fires."""
    logger.warning("Soft time limit (%ss) exceeded for %s[%s]", _seconds(limit), name, task_id)


def log_hard_limit(limit: float, name: str, task_id: str) -> None:
    """Celery's error when a hard limit ends a task."""
    logger.error("Hard time limit (%ss) exceeded for %s[%s]", _seconds(limit), name, task_id)


class AlarmSoftLimit:
    """Soft limit for a process running one task at a time in its main thread.

    Use as a context manager around the task. ``on_fire`` runs (in the signal handler) just
    before the exception is raised; the prefork child uses it to tell the parent.
    """

    def __init__(self, limit: float | None, on_fire: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.on_fire = on_fire
        self._armed = False

    def __enter__(self) -> AlarmSoftLimit:
        if self.limit is not None and self.limit > 0:
            signal.signal(signal.SIGALRM, self._handler)
            self._armed = True
            signal.setitimer(signal.ITIMER_REAL, self.limit)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._armed:
            # Disarm before anything else: an alarm after the task must not hit the caller.
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if not self._armed:
            return  # fired in the gap between the task's end and the disarm
        self._armed = False
        if self.on_fire is not None:
            self.on_fire()
        raise SoftTimeLimitExceeded()


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exc.restype = ctypes.c_int


class ThreadSoftLimit:
    """Best-effort soft limit for a task running in a pool thread (threads, solo pools).

    Use as a context manager in the thread that runs the task.
    """

    def __init__(self, limit: float | None, name: str, task_id: str) -> None:
        self.limit = limit
        self.name = name
        self.task_id = task_id
        self._lock = threading.Lock()
        self._running = False
        self._fired = False
        self._thread_id = 0
        self._timer: threading.Timer | None = None

    def __enter__(self) -> ThreadSoftLimit:
        if self.limit is None or self.limit <= 0:
            return self
        self._thread_id = threading.get_ident()
        self._running = True
        self._timer = threading.Timer(self.limit, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is None:
            return
        self._timer.cancel()
        with self._lock:
            self._running = False
            if self._fired:
                # Withdraw an exception not delivered yet, so it cannot surface in the
                # pool's own code after the task returned.
                _set_async_exc(self._thread_id, ctypes.py_object())  # NULL: clear

    def _fire(self) -> None:
        with self._lock:
            if not self._running:
                return
            self._fired = True
            assert self.limit is not None
            log_soft_limit(self.limit, self.name, self.task_id)
            _set_async_exc(self._thread_id, SoftTimeLimitExceeded)

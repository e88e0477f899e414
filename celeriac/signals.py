"""Signals: Celery's public hooks, with the same names, senders and keyword arguments.

Connect with ``@task_prerun.connect`` or ``@task_prerun.connect(sender=add)``; receivers
get ``signal=`` and ``sender=`` plus the signal's keyword arguments (accept ``**kwargs``).
A receiver that raises is logged with its name and does not stop the task or the worker.

Where each is sent:

================================  ======================  ==========================================
signal                            sender                  keyword arguments
================================  ======================  ==========================================
before_task_publish               task name               body, exchange, routing_key, headers,
                                                          properties, declare, retry_policy
after_task_publish                task name               body, exchange, routing_key, headers
task_received                     consumer                request
task_prerun                       task                    task_id, task, args, kwargs
task_postrun                      task                    task_id, task, args, kwargs, retval, state
task_success                      task                    result
task_retry                        task                    request, reason, einfo
task_failure                      task                    task_id, exception, args, kwargs,
                                                          traceback, einfo
task_internal_error               task                    task_id, args, kwargs, request, exception,
                                                          traceback, einfo
task_revoked                      task                    request, terminated, signum, expired
task_rejected                     consumer                message, exc
task_unknown                      consumer                name, id, message, exc
celeryd_init                      node name               instance, conf, options
celeryd_after_setup               node name               instance, conf
worker_init                       worker                  (none)
worker_before_create_process      pool                    (none)
worker_ready                      consumer                (none)
heartbeat_sent                    heart                   (none)
worker_shutting_down              node name               sig, how, exitcode
worker_process_init               (none)                  (none)
worker_process_shutdown           (none)                  pid, exitcode
worker_shutdown                   worker                  (none)
import_modules                    app                     (none)
setup_logging                     (none)                  loglevel, logfile, format, colorize
after_setup_logger                (none)                  logger, loglevel, logfile, format,
                                                          colorize
after_setup_task_logger           (none)                  logger, loglevel, logfile, format,
                                                          colorize
beat_init / beat_embedded_init    beat service            (none)
user_preload_options              app                     app, options
================================  ======================  ==========================================

The eventlet pool signals exist with Celery's names for code that connects to them.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = [
    "Signal",
    "after_setup_logger",
    "after_setup_task_logger",
    "after_task_publish",
    "beat_embedded_init",
    "beat_init",
    "before_task_publish",
    "celeryd_after_setup",
    "celeryd_init",
    "eventlet_pool_apply",
    "eventlet_pool_postshutdown",
    "eventlet_pool_preshutdown",
    "eventlet_pool_started",
    "heartbeat_sent",
    "import_modules",
    "setup_logging",
    "task_failure",
    "task_internal_error",
    "task_postrun",
    "task_prerun",
    "task_received",
    "task_rejected",
    "task_retry",
    "task_revoked",
    "task_sent",
    "task_success",
    "task_unknown",
    "user_preload_options",
    "worker_before_create_process",
    "worker_init",
    "worker_process_init",
    "worker_process_shutdown",
    "worker_ready",
    "worker_shutdown",
    "worker_shutting_down",
]

logger = logging.getLogger("celeriac.signals")

Receiver = Callable[..., Any]


class Signal:
    """A hook receivers connect to; :meth:`send` calls each with ``sender`` and keywords.

    Args:
        name: the signal's name (for logs and repr).
        providing_args: the keyword arguments it sends (documentation only).
    """

    def __init__(self, name: str = "", providing_args: frozenset[str] | None = None) -> None:
        self.name = name
        self.providing_args = providing_args or frozenset()
        self._receivers: list[tuple[Any, Callable[[], Receiver | None], Any]] = []
        self._lock = threading.Lock()

    def connect(
        self,
        receiver: Receiver | None = None,
        *,
        sender: Any = None,
        weak: bool = True,
        dispatch_uid: Any = None,
    ) -> Any:
        """Connect ``receiver``; usable as ``@signal.connect`` or ``@signal.connect(sender=x)``."""
        if receiver is None:

            def decorate(function: Receiver) -> Receiver:
                self.connect(function, sender=sender, weak=weak, dispatch_uid=dispatch_uid)
                return function

            return decorate
        key = dispatch_uid if dispatch_uid is not None else _receiver_key(receiver)
        getter = _weak_getter(receiver) if weak else (lambda: receiver)
        with self._lock:
            if not any(existing == key and s is sender for existing, _, s in self._receivers):
                self._receivers.append((key, getter, sender))
        return receiver

    def disconnect(
        self, receiver: Receiver | None = None, *, sender: Any = None, dispatch_uid: Any = None
    ) -> bool:
        """Remove a receiver; returns whether one was connected."""
        key = dispatch_uid if dispatch_uid is not None else _receiver_key(receiver)
        with self._lock:
            before = len(self._receivers)
            self._receivers = [
                entry for entry in self._receivers if not (entry[0] == key and entry[2] is sender)
            ]
            return len(self._receivers) != before

    @property
    def receivers(self) -> list[Receiver]:
        """The live receivers (dead weak references are dropped)."""
        return [r for _, getter, _ in self._snapshot() if (r := getter()) is not None]

    def has_receivers(self) -> bool:
        return bool(self._receivers)

    def _snapshot(self) -> list[tuple[Any, Callable[[], Receiver | None], Any]]:
        with self._lock:
            return list(self._receivers)

    def send(self, sender: Any = None, **named: Any) -> list[tuple[Receiver, Any]]:
        """Call every receiver connected for ``sender`` (or for any sender).

        A receiver that raises is logged and its exception is returned in its place.
        """
        if not self._receivers:
            return []
        responses: list[tuple[Receiver, Any]] = []
        for _, getter, wanted in self._snapshot():
            receiver = getter()
            if receiver is None or not _matches(wanted, sender):
                continue
            try:
                response = receiver(signal=self, sender=sender, **named)
            except Exception as exc:
                logger.exception("Signal handler %r raised: %r", receiver, exc)
                response = exc
            responses.append((receiver, response))
        return responses

    send_robust = send

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"


def _matches(wanted: Any, sender: Any) -> bool:
    if wanted is None or wanted is sender:
        return True
    try:
        return bool(wanted == sender)
    except Exception:
        return False


def _receiver_key(receiver: Any) -> Any:
    if hasattr(receiver, "__self__") and hasattr(receiver, "__func__"):
        return (id(receiver.__self__), id(receiver.__func__))
    return id(receiver)


def _weak_getter(receiver: Receiver) -> Callable[[], Receiver | None]:
    if hasattr(receiver, "__self__") and hasattr(receiver, "__func__"):
        return weakref.WeakMethod(receiver)
    try:
        return weakref.ref(receiver)
    except TypeError:  # not weakly referenceable (a builtin): keep it alive
        return lambda: receiver


def _signal(name: str, *args: str) -> Signal:
    return Signal(name, frozenset(args))


# Tasks
before_task_publish = _signal(
    "before_task_publish",
    "body", "exchange", "routing_key", "headers", "properties", "declare", "retry_policy",
)  # fmt: skip
after_task_publish = _signal("after_task_publish", "body", "exchange", "routing_key", "headers")
task_received = _signal("task_received", "request")
task_prerun = _signal("task_prerun", "task_id", "task", "args", "kwargs")
task_postrun = _signal("task_postrun", "task_id", "task", "args", "kwargs", "retval", "state")
task_success = _signal("task_success", "result")
task_retry = _signal("task_retry", "request", "reason", "einfo")
task_failure = _signal(
    "task_failure", "task_id", "exception", "args", "kwargs", "traceback", "einfo"
)
task_internal_error = _signal(
    "task_internal_error",
    "task_id", "args", "kwargs", "request", "exception", "traceback", "einfo",
)  # fmt: skip
task_revoked = _signal("task_revoked", "request", "terminated", "signum", "expired")
task_rejected = _signal("task_rejected", "message", "exc")
task_unknown = _signal("task_unknown", "name", "id", "message", "exc")
#: Deprecated in Celery (use after_task_publish); kept so imports keep working.
task_sent = _signal("task_sent", "task_id", "task", "args", "kwargs", "eta", "taskset")

# Workers
celeryd_init = _signal("celeryd_init", "instance", "conf", "options")
celeryd_after_setup = _signal("celeryd_after_setup", "instance", "conf")
worker_init = _signal("worker_init")
worker_before_create_process = _signal("worker_before_create_process")
worker_ready = _signal("worker_ready")
heartbeat_sent = _signal("heartbeat_sent")
worker_shutting_down = _signal("worker_shutting_down", "sig", "how", "exitcode")
worker_process_init = _signal("worker_process_init")
worker_process_shutdown = _signal("worker_process_shutdown", "pid", "exitcode")
worker_shutdown = _signal("worker_shutdown")

# The app, logging, beat, command line
import_modules = _signal("import_modules")
setup_logging = _signal("setup_logging", "loglevel", "logfile", "format", "colorize")
after_setup_logger = _signal(
    "after_setup_logger", "logger", "loglevel", "logfile", "format", "colorize"
)
after_setup_task_logger = _signal(
    "after_setup_task_logger", "logger", "loglevel", "logfile", "format", "colorize"
)
beat_init = _signal("beat_init")
beat_embedded_init = _signal("beat_embedded_init")
user_preload_options = _signal("user_preload_options", "app", "options")

# The eventlet pool
eventlet_pool_started = _signal("eventlet_pool_started")
eventlet_pool_preshutdown = _signal("eventlet_pool_preshutdown")
eventlet_pool_postshutdown = _signal("eventlet_pool_postshutdown")
eventlet_pool_apply = _signal("eventlet_pool_apply", "target", "args", "kwargs")

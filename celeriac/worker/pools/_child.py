"""The prefork child: load the app, then run task bodies sent by the parent until told to stop.

Wire format (both directions, one pickled object per ``send_bytes``; results come back in
the order the jobs were sent, so the parent matches them by position):

* parent -> child: a list of :data:`JobSpec` tuples (a batch), or ``None`` (finish and exit).
* child -> parent: ``("ready", pid)`` once, after start-up; ``("soft", seq)`` when a soft time
  limit fires; ``("done", seq, ResultSpec, exiting)`` per job, where ``exiting`` names why
  the child leaves right after it (``"max-tasks"``, ``"max-memory"``) or is ``None``.

Only the task body runs here (with its signals and handlers, through
:func:`celeriac.worker.execution.execute`): the message, its ack and the result store stay
in the parent.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import signal
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from celeriac import signals, states
from celeriac.exceptions import EncodeError, NotRegistered, SoftTimeLimitExceeded
from celeriac.task import Context
from celeriac.utils.einfo import ExceptionInfo
from celeriac.utils.saferepr import saferepr
from celeriac.worker.execution import Outcome, execute
from celeriac.worker.time_limits import AlarmSoftLimit

__all__ = ["ChildSettings", "JobSpec", "ResultSpec", "child_main", "load_app"]

logger = logging.getLogger("celeriac.worker")

#: (seq, task name, request fields, args, kwargs, soft limit)
JobSpec = tuple[int, str, dict[str, Any], list[Any], dict[str, Any], float | None]
#: (state, retval, traceback text, runtime, requeue, expected)
ResultSpec = tuple[str, Any, str | None, float, bool, bool]

_PLAIN = (type(None), bool, int, float, str, bytes)


@dataclass(frozen=True)
class ChildSettings:
    """What a child needs to know, sent once when it starts."""

    app_path: str
    loglevel: str
    logfile: str | None
    #: ``worker_redirect_stdouts``: print() in a task goes to the log, as in the worker.
    redirect_stdouts: bool
    result_serializer: str
    max_tasks: int | None
    max_memory_kib: int | None
    #: The parent's settings as changed after import (``-b``, ``--result-backend``,
    #: ``--config``, worker flags), so the child's app matches the worker's.
    conf_changes: dict[str, Any]


def load_app(app_path: str) -> Any:
    """The app ``app_path`` names (the ``-A`` value), with its task modules imported."""
    from celeriac.cli.app_loader import find_app

    app = find_app(app_path)
    # The worker's import_modules signal was sent once, in the worker: import them quietly.
    for name in [*tuple(app.conf.imports or ()), *tuple(app.conf.include or ())]:
        importlib.import_module(name)
    return app


def child_main(conn: Connection, settings: ChildSettings) -> None:
    """The child process' entry point."""
    # The parent owns our lifetime: Ctrl-C in a terminal or a SIGTERM sent to the whole
    # process group must not kill tasks that a warm shutdown lets finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    app = load_app(settings.app_path)
    app.conf.update(settings.conf_changes)
    from celeriac.utils.log import configure_worker_logging, redirect_stdouts

    configure_worker_logging(app.conf, settings.loglevel, settings.logfile)
    if settings.redirect_stdouts:
        redirect_stdouts(app.conf.worker_redirect_stdouts_level)
    signals.worker_process_init.send(sender=None)
    exitcode = 0
    try:
        conn.send_bytes(pickle.dumps(("ready", os.getpid())))
        _serve(conn, app, settings)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        exitcode = 0  # the parent went away: nothing left to do
    finally:
        signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=exitcode)
        sys.stdout.flush()


def _die_with_parent() -> None:
    """Linux: be killed when the process that forked us (the fork server) exits.

    The fork server exits when the worker does, so a worker killed with SIGKILL does not
    leave children running tasks that another worker will run again.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # best effort; EOF on the pipe is the fallback
        pass


def _serve(conn: Connection, app: Any, settings: ChildSettings) -> None:
    done = 0
    while True:
        batch: list[JobSpec] | None = pickle.loads(conn.recv_bytes())
        if batch is None:
            return
        for spec in batch:
            result = _run(conn, app, spec, settings)
            done += 1
            exiting = _exit_reason(done, settings)
            conn.send_bytes(_encode_done(spec[0], result, exiting))
            if exiting is not None:
                return


def _run(conn: Connection, app: Any, spec: JobSpec, settings: ChildSettings) -> Outcome:
    seq, name, fields, args, kwargs, soft = spec
    task = app.tasks.get(name)
    if task is None:
        exc = NotRegistered(name)
        return Outcome(states.FAILURE, exc, ExceptionInfo(exc), 0.0)

    def tell_parent() -> None:
        conn.send_bytes(pickle.dumps(("soft", seq)))

    request = Context(**fields)
    try:
        with AlarmSoftLimit(soft, tell_parent):
            return execute(
                task, request, args, kwargs, result_serializer=settings.result_serializer
            )
    except SoftTimeLimitExceeded as exc:  # fired outside the body, in execute's bookkeeping
        return Outcome(states.FAILURE, exc, ExceptionInfo(exc), 0.0)


def _exit_reason(done: int, settings: ChildSettings) -> str | None:
    if settings.max_tasks is not None and done >= settings.max_tasks:
        return "max-tasks"
    if settings.max_memory_kib is not None and _max_rss_kib() > settings.max_memory_kib:
        return "max-memory"
    return None


def _max_rss_kib() -> int:
    """Peak resident memory of this process, in KiB (Celery checks the same figure)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS reports bytes


def _encode_done(seq: int, outcome: Outcome, exiting: str | None) -> bytes:
    """Pickle a result; a value or exception that will not survive the trip becomes a FAILURE."""
    result: ResultSpec = (
        outcome.state,
        outcome.retval,
        outcome.traceback,
        outcome.runtime,
        outcome.requeue,
        outcome.expected,
    )
    try:
        data = pickle.dumps(("done", seq, result, exiting))
        if not isinstance(outcome.retval, _PLAIN):
            # Some exceptions pickle but cannot be unpickled (an __init__ with other
            # arguments): find out here, where the error can still be reported clearly.
            pickle.loads(data)
        return data
    except Exception as error:
        what = "return value" if outcome.state == states.SUCCESS else "exception"
        exc = EncodeError(
            f"The task's {what} could not be sent back from the pool process: "
            f"{saferepr(outcome.retval, 200)} ({type(error).__name__}: {error})"
        )
        failure: ResultSpec = (
            states.FAILURE,
            exc,
            outcome.traceback or ExceptionInfo(exc).traceback,
            outcome.runtime,
            False,
            False,
        )
        return pickle.dumps(("done", seq, failure, exiting))

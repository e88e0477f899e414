"""The prefork pool: task bodies run in reused child processes; ``-P prefork`` (or ``processes``).

Design (see also :mod:`celeriac.worker.pools._child` for the wire format):

* **Clean children.** Children come from a ``forkserver``: a small single-threaded process
  started with a fresh interpreter (fork + exec), which imports the app once and then forks
  every child, the first ones and every replacement. The worker process itself runs threads
  (consumer, settler, lease renewal) and holds SQLite connections, so forking *it* would copy
  locks held by other threads and shared connections into the child: the fork-after-threads
  hangs of Celery's prefork pool (anchors.md, row 3). ``spawn`` would be just as clean but
  pays a fresh interpreter and an app import per child; the fork server pays it once. Where
  ``forkserver`` does not exist (Windows) the pool uses ``spawn``. Either way a child finds
  the app by its ``-A`` path (``WorkerOptions.app_path``).
* **IPC.** One socket pair per child. The parent sends batches of jobs (pickled
  ``(name, request, args, kwargs, soft limit)``); the child sends one result per job, in
  order, so the parent matches results by position. Jobs of tasks that have been quick so
  far are pipelined (up to :data:`FAST_WINDOW` per child) so that a child never waits for
  the parent between no-op tasks; any other job goes only to an idle child, so a long task
  never holds a short one hostage.
* **One supervisor thread** in the parent does all the pool's work: it calls ``begin()``
  when it hands a job to a child, ``finish()`` when the result arrives, watches the
  children's pipes and exit sentinels in one ``select`` and enforces hard time limits.
* **Hard time limits** are kept by the parent, because a child stuck in C code cannot
  police itself: the job at the head of a child's queue started when the child finished the
  job before it (or when it was handed to an idle child); past ``start + time_limit`` the
  parent logs ``Hard time limit (Ns) exceeded``, kills the child with SIGKILL, finishes the
  job as FAILURE with ``TimeLimitExceeded`` and starts a replacement. Soft limits are kept
  by the child itself (``setitimer``; see :mod:`celeriac.worker.time_limits`).
* **A child that dies** (SIGKILL, OOM killer, a crash in C code) wakes the supervisor
  through its sentinel at once. The job it was running ends as FAILURE with
  ``WorkerLostError``; jobs queued behind it had not started and go to other children.

Settling a lost or timed-out job follows Celery (``celery.worker.request``): with
``acks_late`` and ``reject_on_worker_lost`` a job lost with its process is rejected with
requeue (no result stored; it runs again); with ``acks_late`` and
``acks_on_timeout``/``acks_on_failure_or_timeout`` off, a job that hit its hard limit is
requeued the same way; otherwise it is a FAILURE, stored, and the message is acked (or
rejected without requeue when ``acks_on_failure`` is off). Without ``acks_late`` the
message was acked before the task started and the FAILURE stands.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import selectors
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from celeriac import signals, states
from celeriac.exceptions import (
    EncodeError,
    ImproperlyConfigured,
    TimeLimitExceeded,
    WorkerLostError,
)
from celeriac.utils.einfo import ExceptionInfo
from celeriac.worker.consumer import TaskJob
from celeriac.worker.execution import Outcome
from celeriac.worker.pools._child import ChildSettings, JobSpec, ResultSpec, child_main
from celeriac.worker.pools.base import Job, Pool, Prepared
from celeriac.worker.time_limits import log_hard_limit, log_soft_limit

if TYPE_CHECKING:
    from celeriac.app import Celery

__all__ = ["PreforkPool"]

logger = logging.getLogger("celeriac.worker")

#: Most jobs queued in one child at once, for tasks that have been quick so far.
FAST_WINDOW = 4
#: A task is "quick" when its average run time stays under this many seconds.
FAST_RUNTIME = 0.005
#: Results of a task seen before its average is trusted for pipelining.
FAST_MIN_SAMPLES = 3
#: Longest the supervisor sleeps without looking at the clock (hard limits, respawns).
MAX_SLEEP = 1.0
#: How long start() waits for the first children to load the app.
START_TIMEOUT = 60.0
#: How long a warm shutdown waits for an idle child to exit before killing it.
EXIT_TIMEOUT = 10.0


@dataclass(slots=True, eq=False)
class _Work:
    """A job handed (or about to be handed) to a child: begun, with its limits."""

    job: Job
    prepared: Prepared
    seq: int
    hard: float | None
    soft: float | None

    @property
    def label(self) -> tuple[str, str]:
        return self.prepared.task.name, self.prepared.request.id or ""


@dataclass(eq=False)
class _Child:
    """One child process as the supervisor sees it."""

    process: BaseProcess
    conn: Connection
    ready: bool = False
    #: Jobs sent and not finished, oldest (the running one) first.
    inflight: deque[_Work] = field(default_factory=deque)
    #: When the head of ``inflight`` started (monotonic), for its hard limit.
    head_since: float = 0.0
    #: Jobs sent over its life (for max_tasks_per_child).
    sent: int = 0
    #: Why it takes no more work: it said it is leaving, or we killed it.
    retiring: str | None = None
    #: Its exit has been handled and its pipe closed (one select can report both of its
    #: descriptors; the second report must then be ignored).
    forgotten: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid or 0


@dataclass(slots=True)
class _Speed:
    """Running average of a task's run time, to decide whether to pipeline it."""

    average: float = 0.0
    samples: int = 0

    def add(self, runtime: float) -> None:
        self.samples += 1
        weight = 1.0 / min(self.samples, 10)
        self.average += (runtime - self.average) * weight

    @property
    def fast(self) -> bool:
        return self.samples >= FAST_MIN_SAMPLES and self.average < FAST_RUNTIME


class PreforkPool(Pool):
    """``concurrency`` child processes forked from a clean fork server."""

    name = "prefork"

    def __init__(
        self,
        concurrency: int,
        *,
        app: Celery | None = None,
        app_path: str | None = None,
        loglevel: str = "WARNING",
        logfile: str | None = None,
        redirect_stdouts: bool = False,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        start_method: str | None = None,
    ) -> None:
        super().__init__(concurrency)
        self._app = app
        self._app_path = app_path
        self._loglevel = loglevel
        self._logfile = logfile
        self._redirect_stdouts = redirect_stdouts
        self._max_tasks = max_tasks_per_child or None
        self._max_memory = max_memory_per_child or None
        self._start_method = start_method
        self._ctx: BaseContext | None = None
        self._settings: ChildSettings | None = None
        self._children: list[_Child] = []
        self._submitted: deque[Job] = deque()  # from submit(), any thread
        self._pending: deque[Job | _Work] = deque()  # the supervisor's own queue
        self._speeds: dict[str, _Speed] = {}
        self._seq = 0
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._closing = False
        self._cold = False
        self._respawn_at = 0.0
        self._start_failures = 0
        self._created = 0
        self._thread: threading.Thread | None = None

    # --- the Pool interface ------------------------------------------------------------------

    def start(self) -> None:
        app = self._resolve_app()
        self._settings = ChildSettings(
            app_path=self._resolve_app_path(app),
            loglevel=self._loglevel,
            logfile=self._logfile,
            redirect_stdouts=self._redirect_stdouts,
            result_serializer=str(app.conf.result_serializer),
            max_tasks=self._max_tasks,
            max_memory_kib=self._max_memory,
            conf_changes=_picklable(app.conf.changes),
        )
        self._ctx = self._context(self._settings.app_path)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        for _ in range(self.concurrency):
            self._spawn()
        self._await_ready()
        self._thread = threading.Thread(target=self._supervise, name="PreforkPool", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._submitted.append(job)
        self._wake()

    def stop(self, *, wait: bool) -> None:
        """Warm (``wait``): running and queued jobs finish, then children exit. Cold: kill."""
        if wait:
            self._closing = True
        else:
            self._cold = True
            self._kill_all()
        self._wake()
        if self._thread is not None:
            self._thread.join(None if wait else 5.0)

    # --- autoscaling (see celeriac.worker.autoscale.Scalable) --------------------------------

    @property
    def size(self) -> int:
        return self.concurrency

    @property
    def busy(self) -> int:
        return sum(1 for child in list(self._children) if child.inflight)

    @property
    def waiting(self) -> int:
        return len(self._submitted) + len(self._pending)

    def grow(self, n: int) -> None:
        self.concurrency += n  # the supervisor starts the missing children
        self._wake()

    def shrink(self, n: int) -> None:
        self.concurrency = max(self.concurrency - n, 1)  # idle extras are retired
        self._wake()

    @property
    def child_pids(self) -> list[int]:
        """The pids of the current children (for tests and ``inspect``)."""
        return [child.pid for child in self._children]

    # --- remote control ----------------------------------------------------------------------

    def running(self) -> dict[str, int]:
        """Task id -> pid of the child running it (read from another thread: a snapshot)."""
        found = {}
        for child in list(self._children):
            inflight = list(child.inflight)
            if inflight and child.retiring is None:
                found[inflight[0].prepared.request.id or ""] = child.pid
        return found

    def terminate(self, task_id: str, signum: int) -> bool:
        """Send ``signum`` to the child running ``task_id``; False when none runs it.

        Children ignore SIGTERM and SIGINT (a warm shutdown lets their tasks finish), so
        those two are sent as SIGKILL. The child's exit then ends the job as it ends any lost
        job, and a replacement child is started.
        """
        pid = self.running().get(task_id)
        if pid is None:
            return False
        if signum in (signal.SIGTERM, signal.SIGINT):
            signum = signal.SIGKILL
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return False
        return True

    # --- start-up ----------------------------------------------------------------------------

    def _resolve_app(self) -> Celery:
        if self._app is None:
            from celeriac._context import get_current_app

            self._app = get_current_app()
        return self._app

    def _resolve_app_path(self, app: Celery) -> str:
        """The children load the app by its ``-A`` path; in-process, by its main module."""
        if self._app_path:
            return self._app_path
        main = app.main
        if main and main != "__main__":
            return str(main)
        raise ImproperlyConfigured(
            "The prefork pool loads the app in each child by its import path: start the "
            "worker with -A, or give the app its module name (Celery('proj.tasks'))."
        )

    def _context(self, app_path: str) -> BaseContext:
        method = self._start_method
        if method is None:
            available = multiprocessing.get_all_start_methods()
            method = "forkserver" if "forkserver" in available else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            # Imported once in the fork server, so each child starts with the app loaded.
            module = app_path.partition(":")[0]
            ctx.set_forkserver_preload(["celeriac.worker.pools._child", module])
        return ctx

    def _spawn(self) -> None:
        assert self._ctx is not None and self._settings is not None
        signals.worker_before_create_process.send(sender=self)
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        self._created += 1
        process = self._ctx.Process(  # type: ignore[attr-defined]
            target=child_main,
            args=(child_end, self._settings),
            name=f"ForkPoolWorker-{self._created}",
        )
        process.start()
        child_end.close()  # ours; the child holds its own copy, so EOF reaches it when we exit
        child = _Child(process, parent_end)
        self._children.append(child)
        self._selector.register(parent_end.fileno(), selectors.EVENT_READ, child)
        self._selector.register(process.sentinel, selectors.EVENT_READ, child)

    def _await_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not all(child.ready for child in self._children):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill_all()
                raise ImproperlyConfigured("The prefork pool's children did not start in time.")
            for key, _ in self._selector.select(min(remaining, MAX_SLEEP)):
                if isinstance(key.data, _Child):
                    self._on_readable(key.data, key.fd)
            for child in self._children:
                if not child.ready and not child.process.is_alive():
                    self._kill_all()
                    raise ImproperlyConfigured(
                        f"A prefork child exited during start-up (exit code "
                        f"{child.process.exitcode}); can it import the app "
                        f"{self._settings.app_path if self._settings else ''!r}? "
                        "See its error above."
                    )

    # --- the supervisor ----------------------------------------------------------------------

    def _supervise(self) -> None:
        try:
            while not self._finished_all():
                self._take_submitted()
                self._dispatch()
                for key, _ in self._selector.select(self._sleep_time()):
                    if key.data is None:
                        self._drain_wake()
                    else:
                        self._on_readable(key.data, key.fd)
                self._enforce_hard_limits()
                self._replace_children()
        except Exception:
            logger.critical("prefork pool: supervisor failed", exc_info=True)
            if self.on_failure is not None:
                self.on_failure()
        finally:
            self._shutdown_children()

    def _finished_all(self) -> bool:
        if self._cold:
            return True
        if not self._closing:
            return False
        self._take_submitted()
        return not self._pending and not any(child.inflight for child in self._children)

    def _take_submitted(self) -> None:
        submitted = self._submitted
        while submitted:
            self._pending.append(submitted.popleft())

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:  # already full of wake-ups: the supervisor will look
            pass

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _sleep_time(self) -> float:
        now = time.monotonic()
        sleep = MAX_SLEEP
        for child in self._children:
            if child.inflight and child.retiring is None:
                hard = child.inflight[0].hard
                if hard is not None:
                    sleep = min(sleep, child.head_since + hard - now)
        if len(self._children) < self.concurrency:
            sleep = min(sleep, self._respawn_at - now)
        return max(sleep, 0.0)

    # --- handing out work --------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Give every idle child one job, then pipeline quick jobs into busy children."""
        if not self._pending:
            return
        batches: dict[_Child, list[_Work]] = {}
        for child in self._children:
            if self._pending and self._accepting(child) and not child.inflight:
                work = self._next_work()
                if work is not None:
                    batches[child] = [work]
        for child in self._children:
            batch = batches.setdefault(child, [])
            while self._pending and self._accepting(child) and self._can_pipeline(child, batch):
                work = self._next_work()
                if work is None:
                    break
                batch.append(work)
        for child, batch in batches.items():
            if batch:
                self._send(child, batch)

    def _accepting(self, child: _Child) -> bool:
        if not child.ready or child.retiring is not None:
            return False
        return self._max_tasks is None or child.sent < self._max_tasks

    def _can_pipeline(self, child: _Child, batch: list[_Work]) -> bool:
        """Only quick tasks queue behind others: a slow one would hold them up."""
        queued = len(child.inflight) + len(batch)
        if queued == 0 or queued >= FAST_WINDOW:
            return False
        if self._max_tasks is not None and child.sent + len(batch) >= self._max_tasks:
            return False
        ahead = [*child.inflight, *batch]
        if not all(self._speed(work.prepared.task.name).fast for work in ahead):
            return False
        upcoming = self._pending[0]
        name = _job_task_name(upcoming.job if isinstance(upcoming, _Work) else upcoming)
        return name is not None and self._speed(name).fast

    def _speed(self, name: str) -> _Speed:
        speed = self._speeds.get(name)
        if speed is None:
            speed = self._speeds[name] = _Speed()
        return speed

    def _next_work(self) -> _Work | None:
        """The next pending job, begun (None when nothing pending will run)."""
        while self._pending:
            item = self._pending.popleft()
            if isinstance(item, _Work):
                return item  # begun before, then given back by a child that left
            try:
                prepared = item.begin()
            except Exception as exc:
                _fail(item, exc)
                continue
            if prepared is None:
                continue
            self._seq += 1
            return _Work(item, prepared, self._seq, prepared.time_limit, prepared.soft_time_limit)
        return None

    def _send(self, child: _Child, batch: list[_Work]) -> None:
        specs = [_spec(work) for work in batch]
        try:
            data = pickle.dumps(specs)
        except Exception:
            batch, data = self._picklable(batch)
            if not batch:
                return
        try:
            child.conn.send_bytes(data)
        except OSError:
            # The child is gone: nothing was started; its sentinel tells the rest.
            self._pending.extendleft(reversed(batch))
            child.retiring = "gone"
            return
        if not child.inflight:
            child.head_since = time.monotonic()
        child.inflight.extend(batch)
        child.sent += len(batch)

    def _picklable(self, batch: list[_Work]) -> tuple[list[_Work], bytes]:
        """Drop (as FAILURE) the jobs whose arguments cannot be pickled for the child."""
        kept: list[_Work] = []
        for work in batch:
            try:
                pickle.dumps(_spec(work))
            except Exception as exc:
                error = EncodeError(f"Cannot hand the task to a pool process: {exc!r}")
                _finish(work, Outcome(states.FAILURE, error, ExceptionInfo(error), 0.0))
            else:
                kept.append(work)
        return kept, pickle.dumps([_spec(work) for work in kept])

    # --- what the children say ---------------------------------------------------------------

    def _on_readable(self, child: _Child, fd: int) -> None:
        if child.forgotten:
            return
        if fd == child.conn.fileno():
            self._read_messages(child)
        else:
            self._on_exit(child)

    def _read_messages(self, child: _Child) -> None:
        conn = child.conn
        try:
            while True:
                data = conn.recv_bytes()
                self._on_message(child, data)
                if not conn.poll(0):
                    return
        except (EOFError, OSError):
            return  # it exited; its sentinel follows

    def _on_message(self, child: _Child, data: bytes) -> None:
        try:
            message = pickle.loads(data)
        except Exception as exc:
            self._on_undecodable(child, exc)
            return
        kind = message[0]
        if kind == "done":
            self._on_done(child, message[2], message[3])
        elif kind == "soft" and child.inflight:
            head = child.inflight[0]
            if head.soft is not None:
                log_soft_limit(head.soft, *head.label)
        elif kind == "ready":
            child.ready = True
            self._start_failures = 0

    def _on_done(self, child: _Child, result: ResultSpec, exiting: str | None) -> None:
        work = child.inflight.popleft()
        child.head_since = time.monotonic()
        outcome = _outcome(result)
        self._speed(work.prepared.task.name).add(outcome.runtime)
        if exiting is not None:
            child.retiring = exiting
            _log_retiring(child, exiting)
        _finish(work, outcome)

    def _on_undecodable(self, child: _Child, exc: Exception) -> None:
        if not child.inflight:
            logger.error("prefork pool: unreadable message from pid %d: %r", child.pid, exc)
            return
        work = child.inflight.popleft()
        child.head_since = time.monotonic()
        error = EncodeError(f"The task's result could not be read from its pool process: {exc!r}")
        _finish(work, Outcome(states.FAILURE, error, ExceptionInfo(error), 0.0))

    def _on_exit(self, child: _Child) -> None:
        """A child exited: settle what it held, forget it (a replacement follows)."""
        if child.conn.poll(0):
            self._read_messages(child)  # results it wrote before it died still count
        child.process.join(1.0)
        status, name, pid = _exit_text(child), child.process.name, child.pid
        self._forget(child)
        leftover = list(child.inflight)
        if child.retiring is None and not (self._closing and not leftover):
            logger.error("Process %r pid:%d exited with %r", name, pid, status)
        if leftover and child.retiring is None:
            head = leftover.pop(0)
            lost = WorkerLostError(f"Worker exited prematurely: {status} Job: {head.seq}.")
            _finish(head, _settle_as(head, lost, time.monotonic() - child.head_since))
        # Queued behind the head, these never started: another child runs them.
        self._pending.extendleft(reversed(leftover))
        if not child.ready:
            self._start_failures += 1
            self._respawn_at = time.monotonic() + min(self._start_failures, 10)

    def _forget(self, child: _Child) -> None:
        for fd in (child.conn.fileno(), child.process.sentinel):
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass
        child.forgotten = True
        child.conn.close()
        self._children.remove(child)
        if child.process.exitcode is not None:
            child.process.close()

    # --- limits and replacements -------------------------------------------------------------

    def _enforce_hard_limits(self) -> None:
        now = time.monotonic()
        for child in self._children:
            if not child.inflight or child.retiring is not None:
                continue
            head = child.inflight[0]
            if head.hard is None or now < child.head_since + head.hard:
                continue
            log_hard_limit(head.hard, *head.label)
            child.retiring = "killed"
            _kill(child)
            child.inflight.popleft()
            exc = TimeLimitExceeded(head.hard)
            _finish(head, _settle_as(head, exc, now - child.head_since))

    def _replace_children(self) -> None:
        self._retire_extra_children()
        if self._cold or len(self._children) >= self.concurrency:
            return
        if self._closing and not self._pending:
            return  # no more work to run: do not start children only to stop them
        if time.monotonic() < self._respawn_at:
            return
        while len(self._children) < self.concurrency:
            self._spawn()

    def _retire_extra_children(self) -> None:
        """After a shrink: idle children beyond ``concurrency`` are told to exit."""
        active = [child for child in self._children if child.retiring is None]
        extra = len(active) - self.concurrency
        for child in active:
            if extra <= 0:
                return
            if child.ready and not child.inflight:
                child.retiring = "shrink"
                try:
                    child.conn.send_bytes(pickle.dumps(None))
                except OSError:
                    pass  # already gone: its sentinel will say so
                extra -= 1

    # --- shutdown ----------------------------------------------------------------------------

    def _shutdown_children(self) -> None:
        if self._cold:
            self._kill_all()
        for child in self._children:
            try:
                child.conn.send_bytes(pickle.dumps(None))
            except OSError:
                pass
        deadline = time.monotonic() + EXIT_TIMEOUT
        for child in list(self._children):
            child.process.join(max(deadline - time.monotonic(), 0.0))
            if child.process.exitcode is None:
                logger.warning("prefork pool: killing child %d, it did not exit", child.pid)
                _kill(child)
                child.process.join(5.0)
            self._forget(child)

    def _kill_all(self) -> None:
        for child in list(self._children):
            _kill(child)


# --- helpers ----------------------------------------------------------------------------------


def _job_task_name(job: Job) -> str | None:
    """The task a job will run, known before ``begin()`` for the consumer's jobs."""
    return job.task.name if isinstance(job, TaskJob) else None


def _picklable(changes: dict[str, Any]) -> dict[str, Any]:
    """The settings that can travel to a child (a lambda in task_routes cannot)."""
    kept = {}
    for name, value in changes.items():
        try:
            pickle.dumps(value)
        except Exception:
            logger.debug("prefork pool: setting %s stays in the parent (not picklable)", name)
        else:
            kept[name] = value
    return kept


def _spec(work: _Work) -> JobSpec:
    prepared = work.prepared
    return (
        work.seq,
        prepared.task.name,
        prepared.request.as_dict(),
        prepared.args,
        prepared.kwargs,
        work.soft,
    )


def _outcome(result: ResultSpec) -> Outcome:
    state, retval, traceback, runtime, requeue, expected = result
    einfo = None
    if traceback is not None and isinstance(retval, BaseException):
        einfo = ExceptionInfo(retval)
        einfo.traceback = traceback  # the child's, with the task's frames
    return Outcome(state, retval, einfo, runtime, requeue, expected)


def _settle_as(work: _Work, exc: Exception, runtime: float) -> Outcome:
    """The outcome of a job whose process died or was killed (Celery's semantics)."""
    task = work.prepared.task
    conf = task.app.conf
    if _first(task.acks_late, conf.task_acks_late):
        if isinstance(exc, WorkerLostError):
            requeue = _first(task.reject_on_worker_lost, conf.task_reject_on_worker_lost)
        else:
            acks_on_timeout = _first(
                conf.task_acks_on_timeout,
                task.acks_on_failure_or_timeout,
                conf.task_acks_on_failure_or_timeout,
            )
            requeue = not acks_on_timeout
        if requeue:
            return Outcome(states.REJECTED, exc, None, runtime, requeue=True)
    return Outcome(states.FAILURE, exc, ExceptionInfo(exc), runtime)


def _first(*values: Any) -> bool:
    for value in values:
        if value is not None:
            return bool(value)
    return False


def _finish(work: _Work, outcome: Outcome) -> None:
    try:
        work.job.finish(outcome)
    except Exception as exc:
        _fail(work.job, exc)


def _fail(job: Job, exc: BaseException) -> None:
    try:
        job.fail(exc)
    except Exception:
        logger.critical("prefork pool: a job failed while reporting a failure", exc_info=True)


def _kill(child: _Child) -> None:
    try:
        child.process.kill()
    except (OSError, ValueError):  # already gone, or already closed
        pass


def _exit_text(child: _Child) -> str:
    code = child.process.exitcode
    if code is None:
        return "unknown exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"signal {-code} ({name})"
    return f"exitcode {code}"


def _log_retiring(child: _Child, reason: str) -> None:
    why = {
        "max-tasks": "it ran worker_max_tasks_per_child tasks",
        "max-memory": "its memory exceeded worker_max_memory_per_child",
    }.get(reason, reason)
    logger.info("Replacing pool process %d: %s", child.pid, why)

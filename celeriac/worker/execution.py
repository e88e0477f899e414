"""Running one task: the single place a task body runs, for workers and for ``apply()``.

The steps, in order: push the request context -> ``task_prerun`` -> ``before_start`` -> the
body -> decide the state (SUCCESS, RETRY, FAILURE, IGNORED, REJECTED) -> handler and signal
of that state (``on_success`` + ``task_success``, ``on_retry`` + ``task_retry``,
``on_failure`` + ``task_failure``) -> ``after_return`` -> ``task_postrun``. What to store and
how to settle the message is decided by the caller from the returned :class:`Outcome`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac import serialization, signals, states
from celeriac.exceptions import EncodeError, Ignore, Reject, Retry
from celeriac.task import Context
from celeriac.utils.einfo import ExceptionInfo

if TYPE_CHECKING:
    from celeriac.result import EagerResult
    from celeriac.task import Task

__all__ = ["Outcome", "execute", "execute_async", "run_eagerly"]

logger = logging.getLogger("celeriac.worker")

#: Return values of these types always serialize; no trial encoding is needed for them.
_PLAIN_TYPES = (type(None), bool, int, float, str)


@dataclass(slots=True)
class Outcome:
    """How one execution ended.

    Attributes:
        state: SUCCESS, FAILURE, RETRY, IGNORED or REJECTED.
        retval: the return value, or the exception for the other states.
        traceback: the formatted traceback for FAILURE and RETRY.
        runtime: seconds spent in the body and handlers.
        requeue: for REJECTED, whether the task asked for its message to be requeued.
        expected: for FAILURE, whether the exception was in the task's ``throws``.
    """

    state: str
    retval: Any
    einfo: ExceptionInfo | None
    runtime: float
    requeue: bool = False
    expected: bool = False

    @property
    def traceback(self) -> str | None:
        return self.einfo.traceback if self.einfo is not None else None


def execute(
    task: Task[Any, Any],
    request: Context,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    result_serializer: str | None = None,
) -> Outcome:
    """Run the task body with ``request`` as its context and classify how it ended.

    An ``async def`` body runs to completion on this thread's own event loop. With
    ``result_serializer``, a return value that cannot be serialized turns the outcome into
    a FAILURE carrying the ``EncodeError`` (so the stored state tells the truth).
    """
    started = time.perf_counter()
    with task.request_context(request):
        _send_prerun(task, request, args, kwargs)
        outcome = _run_body(task, request, args, kwargs, result_serializer)
        _finish(task, request, args, kwargs, outcome)
    outcome.runtime = time.perf_counter() - started
    return outcome


async def execute_async(
    task: Task[Any, Any],
    request: Context,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    result_serializer: str | None = None,
) -> Outcome:
    """:func:`execute` for an event loop: an ``async def`` body is awaited, not blocked on."""
    started = time.perf_counter()
    with task.request_context(request):
        _send_prerun(task, request, args, kwargs)
        try:
            task.before_start(request.id or "", args, kwargs)
            retval = task(*args, **kwargs)
            if inspect.isawaitable(retval):
                retval = await retval
            outcome = _success(retval, result_serializer)
        except Exception as exc:
            outcome = _classify_error(task, request, exc)
        _finish(task, request, args, kwargs, outcome)
    outcome.runtime = time.perf_counter() - started
    return outcome


def _send_prerun(task: Task[Any, Any], request: Context, args: Any, kwargs: Any) -> None:
    signals.task_prerun.send(
        sender=task, task_id=request.id or "", task=task, args=args, kwargs=kwargs
    )


def _finish(
    task: Task[Any, Any],
    request: Context,
    args: list[Any],
    kwargs: dict[str, Any],
    outcome: Outcome,
) -> None:
    _run_handlers(task, request, args, kwargs, outcome)
    signals.task_postrun.send(
        sender=task,
        task_id=request.id or "",
        task=task,
        args=args,
        kwargs=kwargs,
        retval=outcome.retval,
        state=outcome.state,
    )


def _run_body(
    task: Task[Any, Any],
    request: Context,
    args: list[Any],
    kwargs: dict[str, Any],
    result_serializer: str | None,
) -> Outcome:
    try:
        task.before_start(request.id or "", args, kwargs)
        retval = task(*args, **kwargs)
        # The type check first: isawaitable's ABC check costs more than a no-op task body.
        if type(retval) not in _PLAIN_TYPES and inspect.isawaitable(retval):
            retval = _thread_loop().run_until_complete(retval)
        return _success(retval, result_serializer)
    except Exception as exc:
        return _classify_error(task, request, exc)


def _success(retval: Any, result_serializer: str | None) -> Outcome:
    if result_serializer is not None:
        _ensure_encodable(retval, result_serializer)
    return Outcome(states.SUCCESS, retval, None, 0.0)


def _classify_error(task: Task[Any, Any], request: Context, exc: Exception) -> Outcome:
    if isinstance(exc, Retry):
        return Outcome(states.RETRY, exc, ExceptionInfo(exc), 0.0)
    if isinstance(exc, Ignore):
        return Outcome(states.IGNORED, exc, None, 0.0)
    if isinstance(exc, Reject):
        return Outcome(states.REJECTED, exc, None, 0.0, requeue=exc.requeue)
    return _failure_or_autoretry(task, request, exc)


_loops = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop for ``async def`` tasks under a non-async pool (kept open)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop
    return loop


def _ensure_encodable(value: Any, serializer: str) -> None:
    if isinstance(value, _PLAIN_TYPES):
        return
    serialization.dumps(value, serializer)  # raises EncodeError, caught as a failure


def _failure_or_autoretry(task: Task[Any, Any], request: Context, exc: Exception) -> Outcome:
    if _should_autoretry(task, exc):
        try:
            task.retry(exc=exc, countdown=_retry_countdown(task, request), **_retry_options(task))
        except Retry as retry:
            return Outcome(states.RETRY, retry, ExceptionInfo(exc), 0.0)
        except Exception as final:  # max retries exceeded: the original error stands
            exc = final
    expected = bool(task.throws) and isinstance(exc, task.throws)
    if isinstance(exc, EncodeError):
        expected = False
    return Outcome(states.FAILURE, exc, ExceptionInfo(exc), 0.0, expected=expected)


def _should_autoretry(task: Task[Any, Any], exc: Exception) -> bool:
    if not task.autoretry_for or not isinstance(exc, tuple(task.autoretry_for)):
        return False
    return not (task.dont_autoretry_for and isinstance(exc, tuple(task.dont_autoretry_for)))


def _retry_countdown(task: Task[Any, Any], request: Context) -> float | None:
    """Exponential backoff (``retry_backoff``), capped and jittered as Celery does."""
    explicit = task.retry_kwargs.get("countdown")
    if not task.retry_backoff:
        return float(explicit) if explicit is not None else None
    factor = 1.0 if task.retry_backoff is True else float(task.retry_backoff)
    countdown = min(float(task.retry_backoff_max), factor * (2**request.retries))
    if task.retry_jitter:
        countdown = random.randrange(int(countdown) + 1)
    return float(countdown)


def _retry_options(task: Task[Any, Any]) -> dict[str, Any]:
    return {key: value for key, value in task.retry_kwargs.items() if key != "countdown"}


def _run_handlers(
    task: Task[Any, Any],
    request: Context,
    args: list[Any],
    kwargs: dict[str, Any],
    outcome: Outcome,
) -> None:
    task_id = request.id or ""
    einfo = outcome.einfo
    try:
        if outcome.state == states.SUCCESS:
            task.on_success(outcome.retval, task_id, args, kwargs)
            signals.task_success.send(sender=task, result=outcome.retval)
        elif outcome.state == states.RETRY:
            exc = outcome.retval.exc if isinstance(outcome.retval, Retry) else outcome.retval
            if not isinstance(exc, BaseException):
                exc = outcome.retval
            task.on_retry(exc, task_id, args, kwargs, einfo)
            signals.task_retry.send(
                sender=task, request=request, reason=outcome.retval, einfo=einfo
            )
        elif outcome.state == states.FAILURE:
            task.on_failure(outcome.retval, task_id, args, kwargs, einfo)
            signals.task_failure.send(
                sender=task,
                task_id=task_id,
                exception=outcome.retval,
                args=args,
                kwargs=kwargs,
                traceback=einfo.tb if einfo else None,
                einfo=einfo,
            )
        task.after_return(outcome.state, outcome.retval, task_id, args, kwargs, einfo)
    except Exception:
        # A broken handler must not turn a finished task into a lost one.
        logger.exception("Handler of task %s[%s] raised", task.name, task_id)


# --- eager execution (``apply()``, ``task_always_eager``) --------------------------------------


def run_eagerly(
    task: Task[Any, Any],
    args: list[Any],
    kwargs: dict[str, Any],
    task_id: str | None,
    options: Mapping[str, Any],
) -> EagerResult[Any]:
    """Run a task here, as a worker would, and wrap the outcome in an EagerResult.

    A retry re-runs the task here with ``retries + 1`` (until ``max_retries``), as Celery's
    eager mode does.
    """
    from celeriac.result import EagerResult

    app = task.app
    task_id = task_id or str(uuid.uuid4())
    retries = int(options.get("retries") or 0)
    while True:
        request = _eager_request(task, task_id, args, kwargs, retries, options)
        outcome = execute(task, request, args, kwargs)
        if outcome.state != states.RETRY:
            break
        retries += 1
    _eager_followups(task, request, outcome)
    if outcome.state == states.FAILURE and app.conf.task_eager_propagates:
        raise outcome.retval
    if app.conf.task_store_eager_result or task.store_eager_result:
        _store_eager(task, task_id, outcome, request)
    return EagerResult(
        task_id,
        outcome.retval,
        outcome.state,
        outcome.traceback,
        name=task.name,
        args=args,
        kwargs=kwargs,
        app=app,
    )


def _eager_request(
    task: Task[Any, Any],
    task_id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    retries: int,
    options: Mapping[str, Any],
) -> Context:
    return Context(
        id=task_id,
        task=task.name,
        args=args,
        kwargs=kwargs,
        retries=retries,
        is_eager=True,
        called_directly=False,
        root_id=options.get("root_id") or task_id,
        parent_id=options.get("parent_id"),
        delivery_info={"is_eager": True, "routing_key": options.get("queue")},
        hostname=None,
        ignore_result=bool(options.get("ignore_result", False)),
        headers=dict(options.get("headers") or {}),
        eta=None,
        expires=None,
        group=options.get("group_id"),
        group_index=options.get("group_index"),
        callbacks=_as_list(options.get("link")),
        errbacks=_as_list(options.get("link_error")),
        chain=options.get("chain"),
        chord=options.get("chord"),
    )


def _as_list(value: Any) -> list[Any] | None:
    if value is None:
        return None
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _eager_followups(task: Task[Any, Any], request: Context, outcome: Outcome) -> None:
    """Callbacks, chain steps and errbacks of an eager run run eagerly too."""
    from celeriac.worker import followups

    if not followups.has_followups(request):
        return
    if outcome.state == states.SUCCESS:
        followups.send_next(task.app, request, outcome.retval)
    followups.after_stored(task.app, request, outcome.state, outcome.retval, outcome.traceback)


def _store_eager(task: Task[Any, Any], task_id: str, outcome: Outcome, request: Context) -> None:
    if outcome.state not in (states.SUCCESS, states.FAILURE):
        return
    task.app.backend.store_result(
        task_id, outcome.retval, outcome.state, traceback=outcome.traceback, request=request
    )

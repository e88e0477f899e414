"""What a finished task sets in motion: callbacks, the next chain step, chords, errbacks.

The worker calls these after a task's body ended, in the process that settles the task:

- on success, :func:`send_next` sends the ``link`` callbacks and the next chain step with
  the return value as their first argument (before the result is stored, as Celery does,
  so nothing waiting on this result sees it before its successors exist);
- after the result is stored, :func:`after_stored` counts a chord header part (sending the
  chord's body, or failing it, when the part completes the header), and on failure marks
  the rest of the chain failed (so waiting on a chain's result never hangs) and runs the
  errbacks.

A failure here must not lose the finished task: each step logs what went wrong and the
others still run.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from celeriac import states
from celeriac.backends.base import ChordPart, ChordPartDone, StoreRequest
from celeriac.canvas import Signature, group, maybe_signature, signature
from celeriac.exceptions import ChordError, NotRegistered
from celeriac.task import Context

if TYPE_CHECKING:
    from celeriac.app import Celery

__all__ = ["after_stored", "has_followups", "send_next"]

logger = logging.getLogger("celeriac.worker")


def has_followups(request: Context) -> bool:
    """Whether a finished task has anything to set in motion (the common case: no)."""
    return bool(request.callbacks or request.chain or request.chord or request.errbacks)


def send_next(app: Celery, request: Context, retval: Any) -> None:
    """A task succeeded: send its callbacks and the next step of its chain."""
    parent: dict[str, Any] = {"parent_id": request.id, "root_id": request.root_id or request.id}
    for callback in request.callbacks or ():
        sig = signature(callback, app=app)
        _guarded(
            f"callback {sig.get('task')} of {request.task}[{request.id}]",
            lambda sig=sig: _apply(app, sig, (retval,), parent, request),  # type: ignore[misc]
        )
    if request.chain:
        steps = list(request.chain)
        following = maybe_signature(steps.pop(), app=app)
        options: dict[str, Any] = dict(parent)
        if steps:
            options["chain"] = steps
        _guarded(
            f"next chain step after {request.task}[{request.id}]",
            lambda: _apply(app, following, (retval,), options, request),
        )


class Writes(Protocol):
    """Where follow-ups write: the worker's settler (batched, after the task's own result),
    or :class:`WritesNow` (at once, for eager runs and chord bodies failed by a part)."""

    def store(self, request: StoreRequest) -> None: ...

    def chord_part(
        self, part: ChordPartDone, completed: Callable[[list[ChordPart]], None]
    ) -> None: ...


class WritesNow:
    """:class:`Writes` straight to the app's result backend."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def store(self, request: StoreRequest) -> None:
        self.app.backend.store_results([request])

    def chord_part(self, part: ChordPartDone, completed: Callable[[list[ChordPart]], None]) -> None:
        parts = self.app.backend.chord_parts_done([part])[0]
        if parts is not None:
            completed(parts)


def after_stored(
    app: Celery,
    request: Context,
    state: str,
    retval: Any,
    traceback: str | None,
    writes: Writes | None = None,
) -> None:
    """The task's final state is stored: count its chord part; on failure, propagate it.

    With ``writes`` (the worker's settler) chord parts and the failures of later chain
    steps are written in its next batch, after the task's own result; without, at once.
    """
    writes = writes or WritesNow(app)
    if state not in states.READY_STATES:
        return
    if request.chord and request.group:
        _guarded(
            f"chord part {request.task}[{request.id}]",
            lambda: _chord_part_done(app, request, state, retval, writes),
        )
    if state in states.PROPAGATE_STATES and isinstance(retval, BaseException):
        if request.chain:
            _guarded(
                f"chain failure after {request.task}[{request.id}]",
                lambda: _fail_chain(app, request, state, retval, traceback, writes),
            )
        if request.errbacks:
            call_errbacks(app, request, retval, traceback)


# --- sending -----------------------------------------------------------------------------------


def _apply(
    app: Celery,
    sig: Signature,
    args: tuple[Any, ...],
    options: dict[str, Any],
    request: Context,
) -> None:
    send = sig.apply if request.is_eager else sig.apply_async
    result = send(args, **options)
    if result is not None:
        request.children.append(result)  # stored with the task's result (``children``)


def _guarded(what: str, step: Callable[[], Any]) -> None:
    try:
        step()
    except Exception:
        logger.exception("Could not send the %s", what)


# --- chords ------------------------------------------------------------------------------------


def _chord_part_done(
    app: Celery,
    request: Context,
    state: str,
    retval: Any,
    writes: Writes,
) -> None:
    body = maybe_signature(request.chord, app=app)
    size = body.get("chord_size") if isinstance(body, dict) else None
    part = ChordPartDone(
        str(request.group), request.id or "", state, retval, request.group_index, size
    )

    def completed(parts: list[ChordPart]) -> None:
        _complete_chord(app, request, body, parts)

    writes.chord_part(part, completed)


def _complete_chord(app: Celery, request: Context, body: Signature, parts: list[ChordPart]) -> None:
    """The last header part is in: send the body with the results, or fail it."""
    failed = next((part for part in parts if part.state in states.PROPAGATE_STATES), None)
    if failed is not None:
        error = ChordError(f"Dependency {failed.task_id} raised {failed.result!r}")
        fail_chord_body(app, body, error)
        return
    values = [part.result for part in parts]
    try:
        body.apply_async((values,), parent_id=request.id, root_id=request.root_id)
    except Exception as exc:
        logger.exception("Chord %s: sending its body raised", request.group)
        fail_chord_body(app, body, ChordError(f"Callback error: {exc!r}"))


def fail_chord_body(app: Celery, body: Signature, error: BaseException) -> None:
    """A chord cannot complete: its body is stored FAILED with ``error`` and its errbacks run."""
    body_id = body.id
    logger.error("Chord callback %s[%s] failed: %r", body.get("task"), body_id, error)
    errbacks = list(body.options.get("link_error") or ())
    request = Context(
        id=body_id,
        task=body.get("task"),
        args=list(body.args),
        kwargs=dict(body.kwargs),
        errbacks=errbacks,
        delivery_info={},
        called_directly=False,
        root_id=body.options.get("root_id"),
        group=body.options.get("group_id"),
        chord=body.options.get("chord"),
    )
    if body_id is not None:
        app.backend.store_result(body_id, error, states.FAILURE, request=request)
    if errbacks:
        call_errbacks(app, request, error, None)
    if request.chord and request.group:
        # The body is itself a member of an outer chord: that one must not wait forever.
        _chord_part_done(app, request, states.FAILURE, error, WritesNow(app))


# --- chains ------------------------------------------------------------------------------------


def _fail_chain(
    app: Celery,
    request: Context,
    state: str,
    exc: BaseException,
    traceback: str | None,
    writes: Writes,
) -> None:
    """Mark every remaining step of a failed chain with the same failure.

    Waiting on a chain waits on its last step; without this, that wait would never end.
    """
    for step in request.chain or ():
        sig = maybe_signature(step, app=app)
        step_id = sig.options.get("task_id") if isinstance(sig, Signature) else None
        if step_id is None:
            step_id = sig.id if isinstance(sig, Signature) else None
        if step_id is None:
            continue
        step_request = Context(
            id=step_id,
            task=sig.get("task"),
            group=sig.options.get("group_id"),
            group_index=sig.options.get("group_index"),
            chord=sig.options.get("chord"),
            root_id=request.root_id,
            delivery_info={},
            called_directly=False,
        )
        writes.store(StoreRequest(step_id, exc, state, traceback, step_request))
        if step_request.chord and step_request.group:
            _chord_part_done(app, step_request, state, exc, writes)


# --- errbacks ----------------------------------------------------------------------------------


def call_errbacks(app: Celery, request: Context, exc: BaseException, traceback: str | None) -> None:
    """Run a failed task's errbacks, as Celery does.

    An errback whose function takes more than one argument is called here, now, with
    ``(request, exc, traceback)``; one that takes a single argument is sent as a task with
    the failed task's id.
    """
    by_id: list[Signature] = []
    for item in request.errbacks or ():
        errback = signature(item, app=app)
        try:
            inline = _takes_request(errback)
        except NotRegistered:
            inline = False  # not known here: another worker may know it
        if inline:
            _guarded(
                f"errback {errback.get('task')} of {request.task}[{request.id}]",
                lambda eb=errback: eb(request, exc, traceback),  # type: ignore[misc]
            )
        else:
            by_id.append(errback)
    if by_id:
        task_id = request.id
        options: dict[str, Any] = {"parent_id": task_id, "root_id": request.root_id or task_id}
        callers = group(by_id, app=app)
        if request.is_eager or (request.delivery_info or {}).get("is_eager"):
            _guarded("errbacks", lambda: callers.apply((task_id,), **options))
        else:
            _guarded("errbacks", lambda: callers.apply_async((task_id,), **options))


def _takes_request(errback: Signature) -> bool:
    if errback.subtask_type:
        return False
    task = errback.type
    run = task.run
    try:
        params = inspect.signature(run).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    if any(p.kind == p.VAR_POSITIONAL for p in positional):
        return True
    return len(positional) > 1

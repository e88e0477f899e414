"""``Task.replace``: a running task hands its place (id, callbacks, chain, chord) to a signature."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celeriac.canvas.chain import _chain
from celeriac.canvas.chord import _chord
from celeriac.canvas.group import group
from celeriac.canvas.signature import maybe_signature

if TYPE_CHECKING:
    from celeriac.task import Task

__all__ = ["replace_task"]


def replace_task(task: Task[Any, Any], sig: Any) -> Any:
    """:meth:`Task.replace`: send ``sig`` in the running task's place, then raise Ignore."""
    from celeriac.exceptions import Ignore

    app = task.app
    request = task.request
    replacement = maybe_signature(sig, app=app).clone()
    if isinstance(replacement, group):
        # A group has no single result: a chord whose body hands back the header's list.
        replacement = _chord(replacement, body=app.tasks["celery.accumulate"].s(index=-1), app=app)
    for callback in request.callbacks or ():
        replacement.link(maybe_signature(callback, app=app))
    for errback in request.errbacks or ():
        replacement.link_error(maybe_signature(errback, app=app))
    replacement.freeze(
        request.id,
        group_id=request.group,
        chord=request.chord,
        root_id=request.root_id,
        parent_id=request.parent_id,
        group_index=request.group_index,
    )
    if request.chain:
        rest = [maybe_signature(step, app=app) for step in reversed(request.chain)]
        replacement = _chain(replacement, *rest, app=app)
    if request.is_eager:
        return replacement.apply().get(disable_sync_subtasks=False)
    nesting = int(request.replaced_task_nesting or 0) + 1
    replacement.apply_async(headers={"replaced_task_nesting": nesting})
    raise Ignore("Replaced by new task")

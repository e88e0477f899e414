"""Abortable tasks: a cooperative stop signal through the result backend.

The caller marks the task ``ABORTED`` with :meth:`AbortableAsyncResult.abort`; the task
checks :meth:`AbortableTask.is_aborted` at convenient points and stops itself. Nothing is
killed: a task that never checks runs to the end.

    from celeriac.contrib.abortable import AbortableTask

    @app.task(bind=True, base=AbortableTask)
    def long_job(self):
        for chunk in work():
            if self.is_aborted():
                return "aborted"
            process(chunk)
"""

from __future__ import annotations

from typing import Any

from celeriac.result import AsyncResult
from celeriac.task import Task

__all__ = ["ABORTED", "AbortableAsyncResult", "AbortableTask"]

#: The state an aborted task is marked with (Celery's name).
ABORTED = "ABORTED"


class AbortableAsyncResult(AsyncResult[Any]):
    """A result handle that can ask its task to abort."""

    def is_aborted(self) -> bool:
        """Whether the task has been asked to abort."""
        return self.state == ABORTED

    def abort(self) -> None:
        """Ask the task to stop (it must check ``is_aborted()`` itself)."""
        self.backend.store_result(self.id, None, ABORTED)


class AbortableTask(Task[Any, Any]):
    """A task that can be asked to stop while it runs."""

    abstract = True

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AbortableAsyncResult:
        return AbortableAsyncResult(task_id, app=self.app, task_name=self.name, **kwargs)

    def is_aborted(self, **kwargs: Any) -> bool:
        """Whether the current call (or ``task_id=``) has been asked to abort."""
        task_id = kwargs.get("task_id", self.request.id)
        if task_id is None:
            return False
        return AbortableAsyncResult(task_id, app=self.app).is_aborted()

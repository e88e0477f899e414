"""Result handles: ``AsyncResult`` (a task sent to workers) and ``EagerResult`` (run here).

A handle holds only the task id; every question (``state``, ``result``, ``get()``) asks the
app's result backend. Once a ready state is seen it is cached, since it can no longer change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from celeriac import states
from celeriac._context import get_current_app, get_current_task
from celeriac.exceptions import TaskRevokedError

if TYPE_CHECKING:
    from celeriac.app import Celery

__all__ = ["AsyncResult", "EagerResult", "result_from_tuple"]

R = TypeVar("R")


def assert_will_not_block() -> None:
    """Refuse to wait for a result inside a running task (a classic deadlock)."""
    task = get_current_task()
    if task is not None and not task.request.called_directly and not task.request.is_eager:
        raise RuntimeError(
            "Never call result.get() within a task! Waiting for another task inside a task "
            "can deadlock the worker. Use a chain or a callback, or pass "
            "disable_sync_subtasks=False if you accept the risk."
        )


class AsyncResult(Generic[R]):
    """The result of a task sent to the workers.

    Args:
        id: the task id.
        app: the app whose result backend holds the result (the current app by default).
    """

    def __init__(
        self,
        id: str,
        backend: Any = None,
        task_name: str | None = None,
        app: Celery | None = None,
        parent: AsyncResult[Any] | None = None,
    ) -> None:
        if not isinstance(id, str) or not id:
            raise ValueError(f"AsyncResult needs a task id string, got {id!r}")
        self.app = app or get_current_app()
        self.id = id
        self._backend = backend
        self.task_name = task_name
        self.parent = parent
        self._cache: dict[str, Any] | None = None

    @property
    def task_id(self) -> str:
        return self.id

    @property
    def backend(self) -> Any:
        return self._backend if self._backend is not None else self.app.backend

    # --- reading state -----------------------------------------------------------------------

    def _get_task_meta(self) -> dict[str, Any]:
        if self._cache is not None:
            return self._cache
        meta: dict[str, Any] = self.backend.get_task_meta(self.id)
        if meta.get("status") in states.READY_STATES:
            self._cache = meta
        return meta

    @property
    def state(self) -> str:
        """The task's state name (``PENDING`` when unknown)."""
        return str(self._get_task_meta()["status"])

    status = state

    @property
    def result(self) -> Any:
        """The return value, or the exception for failed tasks, or the meta of custom states."""
        return self._get_task_meta().get("result")

    info = result

    @property
    def traceback(self) -> str | None:
        return self._get_task_meta().get("traceback")

    @property
    def date_done(self) -> dt.datetime | None:
        value = self._get_task_meta().get("date_done")
        if isinstance(value, str):
            return dt.datetime.fromisoformat(value)
        return value

    @property
    def children(self) -> list[Any]:
        return list(self._get_task_meta().get("children") or [])

    def _extended(self, name: str) -> Any:
        return self._get_task_meta().get(name)

    name = property(lambda self: self._extended("name"))
    args = property(lambda self: self._extended("args"))
    kwargs = property(lambda self: self._extended("kwargs"))
    worker = property(lambda self: self._extended("worker"))
    retries = property(lambda self: self._extended("retries"))
    queue = property(lambda self: self._extended("queue"))

    def ready(self) -> bool:
        """True once the task succeeded, failed or was revoked."""
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    # --- waiting -----------------------------------------------------------------------------

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        no_ack: bool = True,
        follow_parents: bool = True,
        callback: Callable[..., Any] | None = None,
        on_message: Callable[..., Any] | None = None,
        on_interval: Callable[[], Any] | None = None,
        disable_sync_subtasks: bool = True,
        EXCEPTION_STATES: frozenset[str] = states.EXCEPTION_STATES,
        PROPAGATE_STATES: frozenset[str] = states.PROPAGATE_STATES,
    ) -> R:
        """Wait for the task to finish and return its value.

        Raises:
            TimeoutError: (celeriac's) ``timeout`` seconds passed first.
            Exception: the task's own exception, when it failed and ``propagate`` is true.
        """
        if disable_sync_subtasks:
            assert_will_not_block()
        meta = self._cache or self.backend.wait_for(self.id, timeout=timeout, interval=interval)
        self._cache = meta
        if on_message is not None:
            on_message(meta)
        if callback is not None:
            callback(self.id, meta.get("result"))
        value: R = self._value_of(meta, propagate, PROPAGATE_STATES)
        return value

    wait = get

    def _value_of(self, meta: dict[str, Any], propagate: bool, propagate_states: Any) -> Any:
        state = meta["status"]
        value = meta.get("result")
        if propagate and state in propagate_states:
            raise self._as_exception(state, value)
        return value

    @staticmethod
    def _as_exception(state: str, value: Any) -> BaseException:
        if isinstance(value, BaseException):
            return value
        if state == states.REVOKED:
            return TaskRevokedError(value or "revoked")
        return Exception(value)

    def maybe_throw(self, propagate: bool = True, callback: Any = None) -> None:
        meta = self._get_task_meta()
        self._value_of(meta, propagate, states.PROPAGATE_STATES)

    def forget(self) -> None:
        """Delete the stored result."""
        self._cache = None
        self.backend.forget(self.id)

    # --- odds and ends -----------------------------------------------------------------------

    def as_tuple(self) -> tuple[tuple[str, Any], None]:
        parent = self.parent.as_tuple() if self.parent is not None else None
        return (self.id, parent), None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id}>"

    def __reduce__(self) -> Any:
        return _rebuild_result, (type(self), self.id, self.task_name)


def _rebuild_result(cls: type[AsyncResult[Any]], task_id: str, task_name: str | None) -> Any:
    return cls(task_id, task_name=task_name)


class EagerResult(AsyncResult[R]):
    """The result of a task that ran here (``apply()`` or ``task_always_eager``)."""

    def __init__(
        self,
        id: str,
        ret_value: Any,
        state: str,
        traceback: str | None = None,
        name: str | None = None,
        args: Any = None,
        kwargs: Any = None,
        app: Celery | None = None,
    ) -> None:
        super().__init__(id, app=app, task_name=name)
        self._cache = {
            "status": state,
            "result": ret_value,
            "traceback": traceback,
            "children": [],
            "date_done": dt.datetime.now(dt.timezone.utc),
            "task_id": id,
            "name": name,
            "args": args,
            "kwargs": kwargs,
        }

    def _get_task_meta(self) -> dict[str, Any]:
        assert self._cache is not None
        return self._cache

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        no_ack: bool = True,
        follow_parents: bool = True,
        callback: Callable[..., Any] | None = None,
        on_message: Callable[..., Any] | None = None,
        on_interval: Callable[[], Any] | None = None,
        disable_sync_subtasks: bool = True,
        EXCEPTION_STATES: frozenset[str] = states.EXCEPTION_STATES,
        PROPAGATE_STATES: frozenset[str] = states.PROPAGATE_STATES,
    ) -> R:
        """The value the task returned here (its exception is raised with ``propagate``)."""
        value: R = self._value_of(self._get_task_meta(), propagate, PROPAGATE_STATES)
        return value

    wait = get

    def forget(self) -> None:
        """Nothing is stored for an eager result (unless task_store_eager_result)."""
        if self.app.conf.task_store_eager_result:
            self.backend.forget(self.id)

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id}>"


def result_from_tuple(value: Any, app: Celery | None = None) -> AsyncResult[Any]:
    """Rebuild a result handle from ``as_tuple()`` output (``[[id, parent], None]``)."""
    if isinstance(value, AsyncResult):
        return value
    (task_id, parent), _children = value
    parent_result = result_from_tuple(parent, app) if parent else None
    return AsyncResult(task_id, app=app, parent=parent_result)

"""Result handles: ``AsyncResult`` (a task sent to workers) and ``EagerResult`` (run here).

A handle holds only the task id; every question (``state``, ``result``, ``get()``) asks the
app's result backend. Once a ready state is seen it is cached, since it can no longer change.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from celeriac import states
from celeriac._context import get_current_app, get_current_task
from celeriac.exceptions import TaskRevokedError

if TYPE_CHECKING:
    from celeriac.app import Celery

__all__ = ["AsyncResult", "EagerResult", "GroupResult", "ResultSet", "result_from_tuple"]

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
        """Results of what this task sent while it ran (callbacks, the next chain step...)."""
        return [
            result_from_tuple(child, self.app)
            for child in self._get_task_meta().get("children") or []
        ]

    def collect(self, intermediate: bool = False, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
        """``(result, value)`` for this result and, once each is ready, its children.

        Raises:
            IncompleteStream: a result on the way is not ready (unless ``intermediate``).
        """
        for _, node in self.iterdeps(intermediate=intermediate):
            yield node, node.get(disable_sync_subtasks=False, **kwargs)

    def iterdeps(self, intermediate: bool = False) -> Iterator[tuple[Any, Any]]:
        """``(parent, result)`` pairs of the result graph, parents first."""
        from collections import deque

        from celeriac.exceptions import IncompleteStream

        pending: deque[tuple[Any, Any]] = deque([(None, self)])
        while pending:
            parent, node = pending.popleft()
            yield parent, node
            if node.ready():
                pending.extend((node, child) for child in node.children)
            elif not intermediate:
                raise IncompleteStream()

    def get_leaf(self) -> Any:
        """The value of the last result in the graph (the end of a chain of callbacks)."""
        value = None
        for _, node in self.iterdeps():
            value = node.get(disable_sync_subtasks=False)
        return value

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

    def revoke(
        self,
        connection: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Ask every worker not to run this task (with ``terminate``, to kill it if running).

        ``connection`` is accepted for Celery's signature and ignored. With ``wait``, waits
        up to ``timeout`` seconds for the workers' replies.
        """
        self.app.control.revoke(
            self.id,
            terminate=terminate,
            signal=signal or "SIGTERM",
            reply=wait,
            timeout=timeout if timeout is not None else 1.0,
        )

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


class ResultSet:
    """Several results, waited for together.

    Args:
        results: the member results (AsyncResult, or nested GroupResult).
        app: the app whose backend holds them (the current app by default).
    """

    def __init__(self, results: Iterable[Any], app: Celery | None = None, **_: Any) -> None:
        self.app = app or get_current_app()
        self.results: list[Any] = list(results)

    @property
    def backend(self) -> Any:
        return self.app.backend

    # --- membership --------------------------------------------------------------------------

    def add(self, result: Any) -> None:
        if result not in self.results:
            self.results.append(result)

    def update(self, results: Iterable[Any]) -> None:
        for result in results:
            self.add(result)

    def remove(self, result: Any) -> None:
        if isinstance(result, str):
            result = AsyncResult(result, app=self.app)
        self.results.remove(result)

    def discard(self, result: Any) -> None:
        try:
            self.remove(result)
        except ValueError:
            pass

    def clear(self) -> None:
        self.results.clear()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.results)

    def __getitem__(self, index: int) -> Any:
        return self.results[index]

    def __len__(self) -> int:
        return len(self.results)

    # --- state -------------------------------------------------------------------------------

    def _metas(self) -> list[dict[str, Any]]:
        """Every member's meta, read in one batch from the backend (nested sets flattened)."""
        leaves = list(_leaves(self.results))
        pending = [r.id for r in leaves if r._cache is None]
        found = self.backend.get_many(pending) if pending else {}
        metas: list[dict[str, Any]] = []
        for result in leaves:
            meta = result._cache if result._cache is not None else found[result.id]
            if meta.get("status") in states.READY_STATES:
                result._cache = meta
            metas.append(meta)
        return metas

    def successful(self) -> bool:
        """True when every member succeeded."""
        return all(m["status"] == states.SUCCESS for m in self._metas())

    def failed(self) -> bool:
        """True when any member failed."""
        return any(m["status"] == states.FAILURE for m in self._metas())

    def ready(self) -> bool:
        """True when every member is ready."""
        return all(m["status"] in states.READY_STATES for m in self._metas())

    def waiting(self) -> bool:
        """True while any member is not ready."""
        return not self.ready()

    def completed_count(self) -> int:
        """How many members succeeded."""
        return sum(1 for m in self._metas() if m["status"] == states.SUCCESS)

    def maybe_throw(self, callback: Any = None, propagate: bool = True) -> None:
        for result in _leaves(self.results):
            result.maybe_throw(propagate=propagate)

    def forget(self) -> None:
        for result in _leaves(self.results):
            result.forget()

    def revoke(self, terminate: bool = False, signal: Any = None, **kwargs: Any) -> None:
        """Revoke every member (through remote control)."""
        control = self.app.control
        control.revoke([r.id for r in _leaves(self.results)], terminate=terminate, signal=signal)

    # --- waiting -----------------------------------------------------------------------------

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[..., Any] | None = None,
        no_ack: bool = True,
        on_message: Callable[..., Any] | None = None,
        disable_sync_subtasks: bool = True,
        on_interval: Callable[[], Any] | None = None,
    ) -> list[Any]:
        """:meth:`join`."""
        return self.join(
            timeout=timeout,
            propagate=propagate,
            interval=interval,
            callback=callback,
            on_message=on_message,
            disable_sync_subtasks=disable_sync_subtasks,
        )

    def join(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[..., Any] | None = None,
        no_ack: bool = True,
        on_message: Callable[..., Any] | None = None,
        disable_sync_subtasks: bool = True,
        on_interval: Callable[[], Any] | None = None,
    ) -> list[Any]:
        """Wait for every member and return their values, in order.

        Ready members are read in batches; the wait for the others is woken by the
        backend (pub/sub on Redis, change polling on SQLite), never a sleep loop.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            Exception: the first failed member's exception (with ``propagate``).
        """
        if disable_sync_subtasks:
            assert_will_not_block()
        deadline = None if timeout is None else time.monotonic() + timeout
        self._metas()
        for result in _leaves(self.results):
            if result._cache is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("The operation timed out.")
                result.get(
                    timeout=remaining,
                    propagate=False,
                    interval=interval,
                    disable_sync_subtasks=False,
                )
                self._metas()  # one batch read for whatever finished meanwhile
        values: list[Any] = []
        for result in self.results:
            if isinstance(result, ResultSet):
                values.append(result.join(propagate=propagate, disable_sync_subtasks=False))
                continue
            meta = result._get_task_meta()
            if on_message is not None:
                on_message(meta)
            value = result._value_of(meta, propagate, states.PROPAGATE_STATES)
            if callback is not None:
                callback(result.id, value)
            else:
                values.append(value)
        return values

    join_native = join

    def supports_native_join(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(str(r.id) for r in self.results)}]>"


class GroupResult(ResultSet):
    """The results of a group: its id and its members' results, in order.

    Args:
        id: the group id (``group_id`` of every member).
        results: the members' results.
        parent: the result of what ran before the group in a chain.
    """

    def __init__(
        self,
        id: str | None = None,
        results: Iterable[Any] | None = None,
        parent: Any = None,
        app: Celery | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(results or (), app=app)
        self.id = id
        self.parent = parent

    @property
    def children(self) -> list[Any]:
        return self.results

    def save(self, backend: Any = None) -> GroupResult:
        """Store the group (``GroupResult.restore(id)`` rebuilds it later)."""
        (backend or self.backend).save_group(self.id, self)
        return self

    def delete(self, backend: Any = None) -> None:
        (backend or self.backend).delete_group(self.id)

    @classmethod
    def restore(cls, id: str, backend: Any = None, app: Celery | None = None) -> GroupResult | None:
        """The saved group of ``id``, or None."""
        app = app or get_current_app()
        meta = (backend or app.backend).restore_group(id)
        if meta is None or meta.get("result") is None:
            return None
        restored = result_from_tuple(meta["result"], app)
        return restored if isinstance(restored, GroupResult) else None

    def as_tuple(self) -> Any:
        parent = self.parent.as_tuple() if self.parent is not None else None
        return (self.id, parent), [r.as_tuple() for r in self.results]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(str(r.id) for r in self.results)}]>"


def _leaves(results: Iterable[Any]) -> Iterator[AsyncResult[Any]]:
    for result in results:
        if isinstance(result, ResultSet):
            yield from _leaves(result.results)
        else:
            yield result


def result_from_tuple(value: Any, app: Celery | None = None) -> Any:
    """Rebuild a result handle from ``as_tuple()`` output.

    A task's tuple is ``[[id, parent], None]``; a group's is ``[[id, parent], [members]]``.
    """
    if isinstance(value, (AsyncResult, ResultSet)):
        return value
    (result_id, parent), members = value
    parent_result = result_from_tuple(parent, app) if parent else None
    if members is not None:
        children = [result_from_tuple(m, app) for m in members]
        return GroupResult(result_id, children, parent=parent_result, app=app)
    return AsyncResult(result_id, app=app, parent=parent_result)

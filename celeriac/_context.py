"""``current_app`` and ``current_task``: the only two proxies, because users import them.

The current app is the last one created (or set with ``app.set_current()``); the current task
is the one whose body is running in this thread or asyncio task (a stack, so a task that
calls another directly sees the inner one while it runs).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.task import Task

__all__ = ["current_app", "current_task", "get_current_app", "get_current_task"]

T = TypeVar("T")

_default_app: Celery | None = None
_current_app: contextvars.ContextVar[Celery | None] = contextvars.ContextVar(
    "celeriac_current_app", default=None
)
_task_stack: contextvars.ContextVar[tuple[Task[Any, Any], ...]] = contextvars.ContextVar(
    "celeriac_task_stack", default=()
)


def set_current_app(app: Celery) -> None:
    """Make ``app`` the process-wide current app."""
    global _default_app
    _default_app = app
    _current_app.set(app)


def get_current_app() -> Celery:
    """The current app, creating a default one (embedded SQLite) when none exists yet."""
    app = _current_app.get() or _default_app
    if app is None:
        from celeriac.app import Celery

        app = Celery("default")
    return app


def get_current_task() -> Task[Any, Any] | None:
    """The task whose body is running here, or None."""
    stack = _task_stack.get()
    return stack[-1] if stack else None


def push_task(task: Task[Any, Any]) -> contextvars.Token[tuple[Task[Any, Any], ...]]:
    return _task_stack.set((*_task_stack.get(), task))


def pop_task(token: contextvars.Token[tuple[Task[Any, Any], ...]]) -> None:
    _task_stack.reset(token)


class Proxy(Generic[T]):
    """Forwards attribute access to whatever ``getter`` returns at the time of access."""

    __slots__ = ("_getter",)

    def __init__(self, getter: Callable[[], T]) -> None:
        object.__setattr__(self, "_getter", getter)

    def _get_current_object(self) -> T:
        getter: Callable[[], T] = object.__getattribute__(self, "_getter")
        return getter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get_current_object(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._get_current_object(), name, value)

    def __bool__(self) -> bool:
        return bool(self._get_current_object())

    def __eq__(self, other: object) -> bool:
        return self._get_current_object() == other

    def __hash__(self) -> int:
        return hash(self._get_current_object())

    def __repr__(self) -> str:
        return repr(self._get_current_object())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._get_current_object()(*args, **kwargs)  # type: ignore[operator]


current_app: Celery = Proxy(get_current_app)  # type: ignore[assignment]
current_task: Task[Any, Any] | None = Proxy(get_current_task)  # type: ignore[assignment]

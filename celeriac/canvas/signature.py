"""Signatures: one task call written down, as a ``dict`` with Celery's keys.

A :class:`Signature` holds the task's name, partial arguments and calling options
(``task``, ``args``, ``kwargs``, ``options``, ``subtask_type``, ``immutable``), so it crosses
the wire to and from Celery unchanged: callbacks, chain steps and chord bodies travel inside
task messages in this form. The workflow kinds register themselves by ``subtask_type`` so a
dict from the wire becomes the right class.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from celeriac._context import get_current_app
from celeriac.task import Task as TaskClass
from celeriac.utils.ids import new_id

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.result import AsyncResult
    from celeriac.task import Task

__all__ = [
    "Signature",
    "check_options",
    "maybe_signature",
    "sendable_options",
    "signature",
    "subtask",
    "tasks_of",
]

S = TypeVar("S", bound="Signature")

#: Options a later merge may not change once set: a frozen group id keeps its members together.
_KEPT_OPTIONS = frozenset({"group_id", "stamped_headers"})


class Signature(dict[str, Any]):
    """One task call, written down: ``add.s(2, 2)``, ``signature('tasks.add', args=(2, 2))``.

    Args:
        task: the task (or its name), or a signature dict to copy.
        args: positional arguments (partial: arguments given when it is applied come first).
        kwargs: keyword arguments (those given when it is applied are merged over these).
        options: calling options (``countdown``, ``queue``, ``link``, ...).
        subtask_type: the workflow kind (``chain``, ``group``, ...), None for a task.
        immutable: when true, arguments given when applied (a parent's result) are ignored.
        app: the app to send through (the current app by default).
        **ex: more calling options.
    """

    #: Workflow classes by ``subtask_type``, so a dict from the wire becomes the right class.
    TYPES: ClassVar[dict[str, type[Signature]]] = {}

    _app: Celery | None = None
    _type: Task[Any, Any] | None = None

    @classmethod
    def register_type(cls, name: str) -> Any:
        def register(klass: type[S]) -> type[S]:
            cls.TYPES[name] = klass
            return klass

        return register

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Signature:
        """The signature a dict describes, as the class its ``subtask_type`` names."""
        kind = d.get("subtask_type")
        if kind:
            target = cls.TYPES.get(kind)
            if target is None:
                raise ValueError(f"Unknown signature type {kind!r} in {dict(d)!r:.200}")
            # Every registered type rebuilds itself from its own dict layout.
            return target.from_dict(d, app=app)
        return Signature(d, app=app)

    def __init__(
        self,
        task: Any = None,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        type: Any = None,
        subtask_type: str | None = None,
        immutable: bool = False,
        app: Celery | None = None,
        **ex: Any,
    ) -> None:
        self._app = app
        if isinstance(task, Mapping):
            super().__init__(copy.deepcopy(dict(task)))
            self.setdefault("args", ())
            self.setdefault("kwargs", {})
            self.setdefault("options", {})
            self.setdefault("subtask_type", None)
            self.setdefault("immutable", False)
            return
        if isinstance(task, TaskClass):
            self._type = task
            self._app = app or task.app
            name = task.name
        elif type is not None and isinstance(type, TaskClass):
            self._type = type
            name = task or type.name
        else:
            name = task
        super().__init__(
            task=name,
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}, **ex),
            subtask_type=subtask_type,
            immutable=immutable,
        )

    # --- fields ----------------------------------------------------------------------------

    @property
    def task(self) -> str:
        return str(self["task"])

    name = task

    @property
    def args(self) -> tuple[Any, ...]:
        return tuple(self.get("args") or ())

    @args.setter
    def args(self, value: Iterable[Any]) -> None:
        self["args"] = tuple(value)

    @property
    def kwargs(self) -> dict[str, Any]:
        value: dict[str, Any] = self.setdefault("kwargs", {})
        return value

    @kwargs.setter
    def kwargs(self, value: Mapping[str, Any]) -> None:
        self["kwargs"] = dict(value)

    @property
    def options(self) -> dict[str, Any]:
        value: dict[str, Any] = self.setdefault("options", {})
        return value

    @options.setter
    def options(self, value: Mapping[str, Any]) -> None:
        self["options"] = dict(value)

    @property
    def subtask_type(self) -> str | None:
        return self.get("subtask_type")

    @property
    def immutable(self) -> bool:
        return bool(self.get("immutable"))

    @property
    def id(self) -> str | None:
        """The task id, once frozen (or set with ``set(task_id=...)``)."""
        return self.options.get("task_id")

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = get_current_app()
        return self._app

    @property
    def type(self) -> Task[Any, Any]:
        """The registered task this signature calls.

        Raises:
            NotRegistered: this app has no task of that name.
        """
        if self._type is None:
            self._type = self.app.tasks[self.task]
        return self._type

    # --- calling ---------------------------------------------------------------------------

    def __call__(self, *partial_args: Any, **partial_kwargs: Any) -> Any:
        """Run the task here, now, as a function call (with the partial arguments merged)."""
        args, kwargs, _ = self._merge(partial_args, partial_kwargs, None)
        return self.type(*args, **kwargs)

    def delay(self, *partial_args: Any, **partial_kwargs: Any) -> Any:
        """``apply_async(partial_args, partial_kwargs)``."""
        return self.apply_async(partial_args, partial_kwargs)

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> Any:
        """Send the task (arguments and options merged over the signature's own)."""
        check_options(options)
        args, kwargs, merged = self._merge(args, kwargs, options)
        task_id = merged.pop("task_id", None)
        sendable = sendable_options(merged)
        if self.app.conf.task_always_eager:
            return self.type.apply(args, kwargs, task_id=task_id, **sendable)
        task = self._type if self._type is not None else self.app.tasks.get(self.task)
        if task is not None:
            return task.apply_async(args, kwargs, task_id=task_id, **sendable)
        return self.app.send_task(self.task, args, kwargs, task_id=task_id, **sendable)

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run the task here through the worker's execution path (an EagerResult)."""
        args, kwargs, merged = self._merge(args, kwargs, options)
        task_id = merged.pop("task_id", None)
        return self.type.apply(args, kwargs, task_id=task_id, **sendable_options(merged))

    def _merge(
        self,
        args: Iterable[Any] | None,
        kwargs: Mapping[str, Any] | None,
        options: Mapping[str, Any] | None,
        force: bool = False,
    ) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
        """Partial arguments first, then the signature's; options over the signature's."""
        merged = dict(self.options)
        for key, value in (options or {}).items():
            if key not in _KEPT_OPTIONS or key not in merged:
                merged[key] = value
        if self.immutable and not force:
            return self.args, dict(self.kwargs), merged
        return (
            tuple(args or ()) + self.args,
            {**self.kwargs, **(kwargs or {})},
            merged,
        )

    # --- building --------------------------------------------------------------------------

    def clone(
        self: S,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **opts: Any,
    ) -> S:
        """A copy with more partial arguments and options (the original is unchanged)."""
        new_args, new_kwargs, new_options = self._merge(args, kwargs, opts, force=True)
        data = copy.deepcopy(dict(self))
        data.update(args=new_args, kwargs=new_kwargs, options=copy.deepcopy(new_options))
        clone = type(self).from_dict(data, app=self._app)
        clone._type = self._type
        return clone  # type: ignore[return-value]

    partial = clone

    def replace(
        self: S,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> S:
        """A copy with these fields replaced (not merged)."""
        data = copy.deepcopy(dict(self))
        if args is not None:
            data["args"] = tuple(args)
        if kwargs is not None:
            data["kwargs"] = dict(kwargs)
        if options is not None:
            data["options"] = dict(options)
        new = type(self).from_dict(data, app=self._app)
        new._type = self._type
        return new  # type: ignore[return-value]

    def set(self: S, immutable: bool | None = None, **options: Any) -> S:
        """Set calling options (``countdown``, ``queue``, ...) in place; returns the signature."""
        if immutable is not None:
            self.set_immutable(immutable)
        check_options(options)
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = bool(immutable)

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Any = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> Any:
        """Fix the task id (and group/chord membership) now; returns the future result."""
        options = self.options
        task_id = options.get("task_id") or _id or new_id()
        options["task_id"] = task_id
        for key, value in (
            ("group_id", group_id),
            ("chord", chord),
            ("root_id", root_id),
            ("parent_id", parent_id),
            ("group_index", group_index),
        ):
            if value is not None:
                options[key] = value
        return self.AsyncResult(task_id)

    def AsyncResult(self, task_id: str) -> AsyncResult[Any]:
        from celeriac.result import AsyncResult

        return AsyncResult(task_id, app=self.app, task_name=self.get("task"))

    def link(self, callback: Any) -> Any:
        """Run ``callback`` with this task's result when it succeeds; returns the callback."""
        return self._append_option("link", callback)

    def link_error(self, errback: Any) -> Any:
        """Run ``errback`` when this task fails; returns the errback.

        An errback whose function takes ``(request, exc, traceback)`` runs in the worker
        that ran the failed task; one taking a single argument is sent with the task id.
        """
        return self._append_option("link_error", errback)

    def on_error(self: S, errback: Any) -> S:
        """:meth:`link_error`, returning this signature (for fluent building)."""
        self.link_error(errback)
        return self

    def _append_option(self, key: str, value: Any) -> Any:
        items = self.options.get(key)
        if items is None:
            items = []
        elif not isinstance(items, list):
            items = [items]
        if value not in items:
            items.append(value)
        self.options[key] = items
        return value

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]
        from celeriac.canvas.chain import _chain

        if isinstance(other, _chain):
            return _chain(self, *other.tasks, app=self._app)
        if isinstance(other, Signature):
            return _chain(self, other, app=self._app)
        return NotImplemented

    def __invert__(self) -> Any:
        return self.apply_async().get()

    # --- copying and representation --------------------------------------------------------

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        new = type(self).from_dict(copy.deepcopy(dict(self), memo), app=self._app)
        new._type = self._type
        return new

    def __reduce__(self) -> Any:
        return signature, (dict(self),)

    def __json__(self) -> dict[str, Any]:
        return dict(self)

    def reprcall(self, *args: Any, **kwargs: Any) -> str:
        args, kwargs, _ = self._merge(args, kwargs, None, force=True)
        parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
        return f"{self.get('task')}({', '.join(parts)})"

    def __repr__(self) -> str:
        return self.reprcall()


def sendable_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The calling options ``apply_async`` accepts; others (from Celery's dicts) are dropped.

    Signatures that arrive from the wire may carry bookkeeping keys that are not calling
    options (``subtask_type`` of a nested dict, ``chord_size``, Celery-internal keys).
    """
    from celeriac.task import CALL_OPTIONS

    return {key: value for key, value in options.items() if key in CALL_OPTIONS}


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse a calling option celeriac does not know (a typo must not be dropped silently)."""
    from celeriac.task import check_call_options

    check_call_options({k: v for k, v in options.items() if k not in _SIGNATURE_KEYS})


#: Options a signature may hold besides calling options.
_SIGNATURE_KEYS = frozenset({"task_id", "chord_size"})


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """A signature from a task, a task name, or a signature dict (kept as is if one already)."""
    app = kwargs.get("app")
    if isinstance(varies, dict):
        if isinstance(varies, Signature):
            return varies.clone()
        return Signature.from_dict(varies, app=app)
    return Signature(varies, *args, **kwargs)


subtask = signature


def maybe_signature(d: Any, app: Celery | None = None, clone: bool = False) -> Any:
    """``d`` as a signature when it is a dict, None when it is None, else unchanged."""
    if d is None:
        return None
    if isinstance(d, Signature):
        if clone:
            d = d.clone()
        if app is not None:
            d._app = app
        return d
    if isinstance(d, dict):
        return Signature.from_dict(d, app=app)
    if isinstance(d, (list, tuple)):
        return [maybe_signature(s, app=app, clone=clone) for s in d]
    return d


def tasks_of(tasks: tuple[Any, ...]) -> list[Any]:
    """``chain(a, b)``, ``chain([a, b])`` and ``group(gen)`` forms to a list of items."""
    if len(tasks) == 1 and not isinstance(tasks[0], Mapping):
        return list(tasks[0])
    return list(tasks)

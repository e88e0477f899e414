"""Map, starmap and chunks: many calls of one task in few messages.

``task.map(it)`` and ``task.starmap(it)`` are one message each (the built-in ``celery.map`` /
``celery.starmap`` tasks run the calls in order); ``task.chunks(it, n)`` is a group of
``starmap`` messages of ``n`` calls each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from celeriac.canvas.group import group
from celeriac.canvas.signature import Signature, maybe_signature, sendable_options, signature

if TYPE_CHECKING:
    from celeriac.app import Celery

__all__ = ["chunks", "xmap", "xstarmap"]


@Signature.register_type("xmap")
class xmap(Signature):
    """One message that runs ``task`` once per item of ``it`` (``task.map(it)``)."""

    _task_name = "celery.map"
    _subtask_type = "xmap"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Signature:
        kw = dict(d.get("kwargs") or {})
        return cls(kw["task"], kw["it"], app=app, **dict(d.get("options") or {}))

    def __init__(self, task: Any, it: Iterable[Any], **options: Any) -> None:
        app = options.pop("app", None)
        sig = maybe_signature(task, app=app) if isinstance(task, dict) else signature(task, app=app)
        super().__init__(
            self._task_name,
            (),
            {"task": sig, "it": list(it)},
            options,
            subtask_type=self._subtask_type,
            immutable=True,
            app=app,
        )

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> Any:
        task_name = self.kwargs["task"]["task"]
        merged = {**self.options, **options}
        task_id = merged.pop("task_id", None)
        route = merged.pop("queue", None)
        if route is None:
            route = self.app.router.route(task_name, (), {}, {}, None).get("queue")
        sig = Signature(
            self._task_name,
            (),
            {"task": dict(self.kwargs["task"]), "it": self.kwargs["it"]},
            app=self.app,
        )
        return sig.apply_async(task_id=task_id, queue=route, **sendable_options(merged))

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        sig = Signature(
            self._task_name,
            (),
            {"task": dict(self.kwargs["task"]), "it": self.kwargs["it"]},
            app=self.app,
        )
        return sig.apply(**options)

    def __repr__(self) -> str:
        task = self.kwargs["task"]
        return f"[{task.get('task')}(x) for x in {self.kwargs['it']!r:.60}]"


@Signature.register_type("xstarmap")
class xstarmap(xmap):
    """One message that runs ``task(*item)`` for each item of ``it`` (``task.starmap(it)``)."""

    _task_name = "celery.starmap"
    _subtask_type = "xstarmap"

    def __repr__(self) -> str:
        task = self.kwargs["task"]
        return f"[{task.get('task')}(*x) for x in {self.kwargs['it']!r:.60}]"


@Signature.register_type("chunks")
class chunks(Signature):
    """``it`` split into parts of ``n`` items, each part one ``starmap`` message, as a group.

    ``add.chunks(zip(range(100), range(100)), 10)`` sends 10 messages; the GroupResult's
    values are 10 lists of 10 sums.
    """

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Signature:
        kw = dict(d.get("kwargs") or {})
        return cls(kw["task"], kw["it"], kw["n"], app=app, **dict(d.get("options") or {}))

    def __init__(self, task: Any, it: Iterable[Any], n: int, **options: Any) -> None:
        app = options.pop("app", None)
        if int(n) < 1:
            raise ValueError(f"chunks() needs a chunk size of at least 1, not {n!r}")
        sig = maybe_signature(task, app=app) if isinstance(task, dict) else signature(task, app=app)
        super().__init__(
            "celery.chunks",
            (),
            {"task": sig, "it": [list(item) for item in it], "n": int(n)},
            options,
            subtask_type="chunks",
            immutable=True,
            app=app,
        )

    def __call__(self, **options: Any) -> Any:
        return self.apply_async(**options)

    def group(self) -> group:
        """The group of ``starmap`` messages this stands for."""
        task = maybe_signature(self.kwargs["task"], app=self._app)
        items = self.kwargs["it"]
        size = self.kwargs["n"]
        parts = [items[i : i + size] for i in range(0, len(items), size)]
        return group([xstarmap(task, part, app=self._app) for part in parts], app=self._app)

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> Any:
        return self.group().apply_async(args, kwargs, **{**self.options, **options})

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        return self.group().apply(args, kwargs, **options)

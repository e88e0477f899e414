"""Chains: tasks run one after another, each result the next one's first argument.

The first task is sent with the remaining steps, reversed, in its message (Celery's layout:
the worker pops the last element); the worker that finishes a step sends the next one. A
group followed by a step becomes a chord; steps after a chord run after its body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from celeriac.canvas.signature import Signature, maybe_signature, tasks_of

if TYPE_CHECKING:
    from celeriac.app import Celery

__all__ = ["_chain", "chain"]


@Signature.register_type("chain")
class _chain(Signature):
    """Tasks run one after another, each result passed to the next as its first argument."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Signature:
        tasks = d.get("kwargs", {}).get("tasks") or ()
        steps = [maybe_signature(t, app=app) for t in tasks]
        new = _chain(*steps, app=app, **dict(d.get("options") or {}))
        if d.get("args") and steps:
            new.tasks[0].args = tuple(d["args"]) + tuple(new.tasks[0].args)
        new["immutable"] = bool(d.get("immutable"))
        return new

    def __init__(self, *tasks: Any, **options: Any) -> None:
        app = options.pop("app", None)
        steps = [maybe_signature(t, app=app) for t in tasks_of(tasks)]
        super().__init__(
            "celery.chain", (), {"tasks": steps}, options, subtask_type="chain", app=app
        )

    @property
    def tasks(self) -> list[Signature]:
        value: list[Signature] = self.kwargs["tasks"]
        return value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> Any:
        """Send the first step with the rest in its message; returns the last step's result."""
        if self.app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        options = {**self.options, **options}
        steps = _prepare_steps([s.clone() for s in self.tasks], app=self.app)
        if not steps:
            return None
        results = _freeze_steps(steps, options.pop("task_id", None), options)
        first, rest = steps[0], steps[1:]
        inherited: dict[str, Any] = {
            k: options.pop(k) for k in ("chord", "group_id", "group_index") if k in options
        }
        if inherited and rest:
            # Chord/group membership belongs to the last step: it is the chain's result.
            rest[-1].options.update(inherited)
        elif inherited:
            options.update(inherited)
        if rest:
            options["chain"] = [dict(s) for s in reversed(rest)]
        first.apply_async(args, kwargs, **options)
        return results[-1]

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run every step here, in order (eager)."""
        steps = _prepare_steps([s.clone() for s in self.tasks], app=self.app)
        result: Any = None
        previous: Any = None
        for index, step in enumerate(steps):
            step_args: tuple[Any, ...] = tuple(args or ()) if index == 0 else (previous,)
            step_kwargs = kwargs if index == 0 else None
            result = step.apply(step_args, step_kwargs, **options)
            if not result.successful():
                return result
            previous = result.get(disable_sync_subtasks=False)
        return result

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Any = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> Any:
        steps = _prepare_steps(self.tasks, app=self.app)
        self.kwargs["tasks"] = steps
        options = {"root_id": root_id, "parent_id": parent_id}
        results = _freeze_steps(steps, _id, {k: v for k, v in options.items() if v})
        if steps:
            last = steps[-1]
            for key, value in (
                ("group_id", group_id),
                ("chord", chord),
                ("group_index", group_index),
            ):
                if value is not None:
                    last.options[key] = value
        return results[-1] if results else None

    @property
    def id(self) -> str | None:
        return self.tasks[-1].id if self.tasks else None

    def link(self, callback: Any) -> Any:
        """Linked to the last step: it runs with the chain's result."""
        return self.tasks[-1].link(callback) if self.tasks else super().link(callback)

    def link_error(self, errback: Any) -> Any:
        """Linked to every step: whichever fails runs it."""
        for step in self.tasks:
            step.link_error(errback)
        return errback

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]
        if isinstance(other, _chain):
            return _chain(*self.tasks, *other.tasks, app=self._app, **self.options)
        if isinstance(other, Signature):
            return _chain(*self.tasks, other, app=self._app, **self.options)
        return NotImplemented

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks) if self.tasks else "chain()"


#: ``chain(a.s(), b.s())`` or ``chain([a.s(), b.s()])``.
chain = _chain


def _prepare_steps(steps: list[Any], app: Celery) -> list[Signature]:
    """Flatten nested chains and turn "group, then a step" into a chord (as Celery does)."""
    from celeriac.canvas.chord import _chord
    from celeriac.canvas.group import group

    flat: list[Signature] = []
    for step in steps:
        step = maybe_signature(step, app=app)
        if isinstance(step, _chain):
            flat.extend(_prepare_steps(step.tasks, app))
        else:
            flat.append(step)
    prepared: list[Signature] = []
    for step in flat:
        if prepared and isinstance(prepared[-1], group) and not isinstance(step, group):
            header = prepared.pop()
            prepared.append(_chord(header, body=step, app=app))
        else:
            prepared.append(step)
    return prepared


def _freeze_steps(
    steps: list[Signature], last_id: str | None, options: Mapping[str, Any]
) -> list[Any]:
    """Give every step its id, in order, linking each result to the one before it."""
    results: list[Any] = []
    root_id = options.get("root_id")
    parent: Any = None
    for index, step in enumerate(steps):
        step_id = last_id if index == len(steps) - 1 else None
        result = step.freeze(step_id, root_id=root_id)
        if root_id is None:
            root_id = _first_id(result)
            if root_id is not None:
                step.options.setdefault("root_id", root_id)
        if parent is not None and hasattr(result, "parent") and result.parent is None:
            result.parent = parent
        parent = result
        results.append(result)
    for step in steps[1:]:
        step.options.setdefault("root_id", root_id)
    return results


def _first_id(result: Any) -> str | None:
    if result is None:
        return None
    return getattr(result, "id", None)

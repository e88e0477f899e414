"""Groups: tasks run in parallel, their results a :class:`~celeriac.result.GroupResult`.

Every member is frozen (task id, ``group_id``, ``group_index``) and the simple members are
published in one batch: a single broker round trip for the whole group.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.canvas.signature import Signature, maybe_signature, sendable_options, tasks_of
from celeriac.utils.ids import new_id

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.result import GroupResult

__all__ = ["group", "send_members"]


@Signature.register_type("group")
class group(Signature):
    """Tasks run in parallel; the result is a :class:`~celeriac.result.GroupResult`.

    ``group(add.s(i, i) for i in range(10))`` and ``group([a.s(), b.s()])`` both work.
    """

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Signature:
        tasks = d.get("kwargs", {}).get("tasks") or ()
        new = group(
            [maybe_signature(t, app=app) for t in tasks], app=app, **dict(d.get("options") or {})
        )
        if d.get("args"):
            new["args"] = tuple(d["args"])
        new["immutable"] = bool(d.get("immutable"))
        return new

    def __init__(self, *tasks: Any, **options: Any) -> None:
        app = options.pop("app", None)
        members = [maybe_signature(t, app=app) for t in tasks_of(tasks)]
        for member in members:
            if not isinstance(member, Signature):
                raise TypeError(f"group() takes signatures, not {member!r}")
        super().__init__(
            "celery.group", (), {"tasks": members}, options, subtask_type="group", app=app
        )

    @property
    def tasks(self) -> list[Signature]:
        value: list[Signature] = self.kwargs["tasks"]
        return value

    def __call__(self, *partial_args: Any, **options: Any) -> Any:
        return self.apply_async(partial_args, **options)

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Signature]:  # type: ignore[override]
        return iter(self.tasks)

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> GroupResult:
        """Send every member (simple tasks in one batch); returns the GroupResult."""
        if self.app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        options = {**self.options, **options}
        options.pop("add_to_parent", None)
        group_id = options.pop("group_id", None) or options.pop("task_id", None) or new_id()
        options.pop("task_id", None)
        partial_args = tuple(args or ()) + tuple(self.get("args") or ())
        results = send_members(self.app, self.tasks, group_id, partial_args, kwargs, options)
        from celeriac.result import GroupResult

        return GroupResult(group_id, results, app=self.app)

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        """Run every member here (eager)."""
        from celeriac.result import GroupResult

        options = {**self.options, **options}
        group_id = options.pop("group_id", None) or options.pop("task_id", None) or new_id()
        options.pop("task_id", None)
        partial_args = tuple(args or ()) + tuple(self.get("args") or ())
        results = []
        for index, member in enumerate(self.tasks):
            member_options = {**options, "group_id": group_id, "group_index": index}
            results.append(member.clone().apply(partial_args, kwargs, **member_options))
        return GroupResult(group_id, results, app=self.app)

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Any = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> GroupResult:
        from celeriac.result import GroupResult

        gid = self.options.get("task_id") or group_id or _id or new_id()
        self.options["task_id"] = gid
        self.options["group_id"] = gid
        results = []
        for index, member in enumerate(self.tasks):
            results.append(
                member.freeze(
                    group_id=gid,
                    chord=chord,
                    root_id=root_id,
                    parent_id=parent_id,
                    group_index=index,
                )
            )
        return GroupResult(gid, results, app=self.app)

    def link(self, callback: Any) -> Any:
        """Linked (immutable) to the first member only, as in Celery: use a chord to run
        something after the whole group."""
        sig = maybe_signature(callback, app=self._app).clone().set(immutable=True)
        return self.tasks[0].link(sig) if self.tasks else sig

    def link_error(self, errback: Any) -> Any:
        """Linked (immutable) to every member: any of them may fail."""
        sig = maybe_signature(errback, app=self._app)
        for member in self.tasks:
            member.link_error(sig.clone().set(immutable=True))
        return errback

    def skew(self, start: float = 1.0, stop: float | None = None, step: float = 1.0) -> group:
        """Spread the members' start: countdowns start, start + step, ... (up to stop)."""
        countdowns = itertools.count(start, step)
        for member in self.tasks:
            value = next(countdowns)
            if stop is not None and value > stop:
                value = stop
            member.set(countdown=value)
        return self

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]
        from celeriac.canvas.chain import _chain
        from celeriac.canvas.chord import _chord

        if isinstance(other, (group, _chain)):
            return _chain(self, other, app=self._app)
        if isinstance(other, Signature):
            return _chord(self, body=other, app=self._app)
        return NotImplemented

    def __repr__(self) -> str:
        return f"group({self.tasks!r})"


def send_members(
    app: Celery,
    members: Sequence[Signature],
    group_id: str,
    partial_args: tuple[Any, ...],
    partial_kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
) -> list[Any]:
    """Freeze and send a group's members: simple tasks in one batch, workflows one by one."""
    from celeriac.app import PendingSend

    results: list[Any] = []
    batch: list[PendingSend] = []
    positions: list[int] = []
    shared = sendable_options(options)
    for index, member in enumerate(members):
        if member.subtask_type:
            member_options = {**options, "group_id": group_id, "group_index": index}
            results.append(
                member.clone().apply_async(partial_args, partial_kwargs, **member_options)
            )
            continue
        if member.options or partial_kwargs:
            member_options = {**options, "group_id": group_id, "group_index": index}
            args, kwargs, merged = member._merge(partial_args, partial_kwargs, member_options)
            task_id = merged.pop("task_id", None) or new_id()
            send_options = sendable_options(merged)
        else:  # the common case, kept cheap: a plain task signature
            args = member.args if member.immutable else partial_args + member.args
            kwargs, task_id = member.kwargs, new_id()
            send_options = {**shared, "group_id": group_id, "group_index": index}
        batch.append(PendingSend(member.task, args, kwargs, task_id, send_options))
        positions.append(len(results))
        results.append(None)
    if batch:
        for position, result in zip(positions, app.send_tasks(batch), strict=True):
            results[position] = result
    return results

"""Chords: a group (the header) whose results, in order, are passed to a body task.

The header's messages carry the body. Each finished header task adds its result to an atomic
counter in the result backend; the worker whose part completes the header sends the body
with every result in header order, or fails it with a ``ChordError``. Nothing polls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.canvas.chain import _chain
from celeriac.canvas.group import group, send_members
from celeriac.canvas.signature import Signature, maybe_signature, sendable_options
from celeriac.utils.ids import new_id

if TYPE_CHECKING:
    from celeriac.app import Celery

__all__ = ["_chord", "chord"]


@Signature.register_type("chord")
class _chord(Signature):
    """A group (the header) whose results, in order, are passed to a body task.

    ``chord(header)(body)`` and ``chord(header, body)()`` both send it; the result is the
    body's, with ``.parent`` the header's GroupResult.
    """

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Signature:
        kw = dict(d.get("kwargs") or {})
        members = kw.get("header") or ()
        if isinstance(members, Mapping):
            # A frozen Celery chord holds its header as a group signature.
            members = members.get("kwargs", {}).get("tasks") or ()
        header = [maybe_signature(t, app=app) for t in members]
        body = maybe_signature(kw.get("body"), app=app)
        new = _chord(header, body, app=app, **dict(d.get("options") or {}))
        if d.get("args"):
            new["args"] = tuple(d["args"])
        new["immutable"] = bool(d.get("immutable"))
        return new

    def __init__(
        self,
        header: Any,
        body: Any = None,
        task: str = "celery.chord",
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        app: Celery | None = None,
        **options: Any,
    ) -> None:
        if isinstance(header, group):
            members = list(header.tasks)
            options = {**header.options, **options}
            options.pop("task_id", None)
        elif isinstance(header, Signature):
            members = [header]
        else:
            members = [maybe_signature(t, app=app) for t in header]
        body_sig = maybe_signature(body, app=app) if body is not None else None
        super().__init__(
            task,
            args or (),
            {"header": members, "body": body_sig, "kwargs": dict(kwargs or {})},
            options,
            subtask_type="chord",
            app=app,
        )

    @property
    def tasks(self) -> list[Signature]:
        value: list[Signature] = self.kwargs["header"]
        return value

    header = tasks

    @property
    def body(self) -> Signature | None:
        value: Signature | None = self.kwargs.get("body")
        return value

    @body.setter
    def body(self, value: Signature | None) -> None:
        self.kwargs["body"] = value

    def __call__(self, body: Any = None, **options: Any) -> Any:
        return self.apply_async((), {"body": body} if body is not None else {}, **options)

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> Any:
        """Send the header with the body in its messages; returns the body's result."""
        extra = dict(kwargs or {})
        body = maybe_signature(extra.pop("body", None), app=self.app) or self.body
        if body is None:
            raise ValueError("chord() needs a body: chord(header)(body) or chord(header, body)")
        if self.app.conf.task_always_eager:
            return self._apply_here(body, args, extra, options)
        body = body.clone()
        options = {**self.options, **options}
        return _run_chord(
            self.app, self.tasks, body, tuple(args or ()) + tuple(self.get("args") or ()), options
        )

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        extra = dict(kwargs or {})
        body = maybe_signature(extra.pop("body", None), app=self.app) or self.body
        if body is None:
            raise ValueError("chord() needs a body")
        return self._apply_here(body, args, extra, options)

    def _apply_here(
        self,
        body: Signature,
        args: Iterable[Any] | None,
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> Any:
        """Eager: run the header, then the body with the header's values."""
        partial_args = tuple(args or ()) + tuple(self.get("args") or ())
        header = group(self.tasks, app=self.app).apply(partial_args, kwargs or None)
        values = header.get(propagate=True, disable_sync_subtasks=False)
        result = body.clone().apply((values,), **sendable_options(options))
        result.parent = header
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
        body = self.body
        if body is None:
            return None
        result = body.freeze(_id, root_id=root_id, parent_id=parent_id)
        if group_id is not None:
            body.options["group_id"] = group_id
        if group_index is not None:
            body.options["group_index"] = group_index
        if chord is not None:
            body.options["chord"] = chord
        return result

    @property
    def id(self) -> str | None:
        return self.body.id if self.body is not None else None

    def link(self, callback: Any) -> Any:
        """Linked to the body: it runs with the chord's result."""
        if self.body is None:
            raise ValueError("chord has no body to link to")
        return self.body.link(callback)

    def link_error(self, errback: Any) -> Any:
        """Linked to the body (a failed header fails the body, which runs it); also to each
        header task when ``task_allow_error_cb_on_chord_header`` is set."""
        if self.body is None:
            raise ValueError("chord has no body to link to")
        if self.app.conf.task_allow_error_cb_on_chord_header:
            for member in self.tasks:
                member.link_error(errback)
        return self.body.link_error(errback)

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]
        if isinstance(other, Signature):
            return _chain(self, other, app=self._app)
        return NotImplemented

    def __repr__(self) -> str:
        return f"chord({self.tasks!r}, {self.body!r})"


chord = _chord


def _flatten_header(members: Sequence[Any], app: Celery) -> list[Signature]:
    """Nested groups in a chord header count as their members (the body gets one flat list)."""
    flat: list[Signature] = []
    for member in members:
        member = maybe_signature(member, app=app)
        if isinstance(member, group):
            flat.extend(_flatten_header(member.tasks, app))
        else:
            flat.append(member)
    return flat


def _run_chord(
    app: Celery,
    header: Sequence[Any],
    body: Signature,
    partial_args: tuple[Any, ...],
    options: dict[str, Any],
) -> Any:
    from celeriac.result import GroupResult

    members = _flatten_header(header, app)
    remaining = options.pop("chain", None)
    if remaining:
        # Steps after the chord in a chain run after the body: the body carries them.
        body = _chain(body, *[maybe_signature(s, app=app) for s in reversed(remaining)], app=app)
    body_id = options.pop("task_id", None)
    for key in ("group_id", "group_index", "chord"):
        # The chord's own membership (a chord inside a group or chord) is the body's.
        if key in options:
            body.options[key] = options.pop(key)
    root_id = options.get("root_id")
    body_result = body.freeze(body_id, root_id=root_id)
    group_id = new_id()
    if not members:
        body.apply_async(([],), **sendable_options(options))
        body_result.parent = GroupResult(group_id, [], app=app)
        return body_result
    body["chord_size"] = len(members)
    app.backend.set_chord_size(group_id, len(members))
    header_options = {**options, "chord": dict(body)}
    header_options.pop("link", None)
    header_options.pop("link_error", None)
    results = send_members(app, members, group_id, partial_args, None, header_options)
    header_result = GroupResult(group_id, results, app=app)
    body_result.parent = header_result
    return body_result

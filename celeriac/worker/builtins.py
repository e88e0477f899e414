"""Tasks every app has because Celery clients and schedules send them by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app import Celery

__all__ = ["register_builtins"]


def register_builtins(app: Celery) -> None:
    """Register celeriac's built-in tasks (under Celery's names) in ``app``."""

    @app.task(name="celery.backend_cleanup", shared=False, ignore_result=True)
    def backend_cleanup() -> int:
        """Delete expired results (beat sends this daily when results expire)."""
        return int(app.backend.cleanup())

    _register_canvas_builtins(app)


def _register_canvas_builtins(app: Celery) -> None:
    """The tasks Celery's canvas sends by name (``celery.map``, ``celery.chord_unlock``, ...)."""
    from celeriac.canvas import Signature, chunks, group, maybe_signature, signature
    from celeriac.exceptions import ChordError
    from celeriac.result import GroupResult, result_from_tuple
    from celeriac.worker.followups import fail_chord_body

    @app.task(name="celery.accumulate", shared=False)
    def accumulate(*args: Any, **kwargs: Any) -> Any:
        """A replaced group's stand-in body: hands back the header's results."""
        index = kwargs.get("index")
        return args[index] if index is not None else args

    @app.task(name="celery.map", shared=False)
    def xmap(task: dict[str, Any], it: list[Any]) -> list[Any]:
        """``task`` called on each item, here, in order."""
        fun = signature(task, app=app).type
        return [fun(item) for item in it]

    @app.task(name="celery.starmap", shared=False)
    def xstarmap(task: dict[str, Any], it: list[Any]) -> list[Any]:
        """``task`` called with each item as its arguments, here, in order."""
        fun = signature(task, app=app).type
        return [fun(*item) for item in it]

    @app.task(name="celery.chunks", shared=False)
    def send_chunks(task: dict[str, Any], it: list[Any], n: int) -> Any:
        """Split ``it`` and send the parts as a group (a chunks call sent as a task)."""
        return chunks(task, it, n, app=app).apply_async()

    @app.task(name="celery.group", bind=True, shared=False)
    def send_group(
        self: Any,
        tasks: list[Any],
        result: Any = None,
        group_id: str | None = None,
        partial_args: Any = (),
        add_to_parent: bool = True,
    ) -> Any:
        """Send a group that arrived as a task message."""
        sigs = [maybe_signature(t, app=app) for t in tasks]
        return group(sigs, app=app).apply_async(tuple(partial_args or ()), group_id=group_id)

    @app.task(name="celery.chain", shared=False)
    def send_chain(*args: Any, **kwargs: Any) -> Any:
        """Chains travel inside task messages; a message for this name is a mistake."""
        raise NotImplementedError("chain is not meant to be sent as a task")

    @app.task(name="celery.chord", bind=True, shared=False)
    def send_chord(
        self: Any,
        /,
        header: Any,
        body: Any,
        partial_args: Any = (),
        interval: float | None = None,
        countdown: float = 1,
        max_retries: int | None = None,
        eager: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Send a chord that arrived as a task message."""
        from celeriac.canvas import chord

        members = [maybe_signature(t, app=app) for t in header]
        return chord(members, maybe_signature(body, app=app), app=app).apply_async(
            tuple(partial_args or ())
        )

    @app.task(
        name="celery.chord_unlock",
        bind=True,
        shared=False,
        max_retries=None,
        default_retry_delay=1,
        ignore_result=True,
    )
    def chord_unlock(
        self: Any,
        /,
        group_id: str,
        callback: Any,
        interval: float | None = None,
        max_retries: int | None = None,
        result: Any = None,
        **kwargs: Any,
    ) -> None:
        """Celery's polling chord completion, for chords a Celery client sent that way.

        celeriac's own chords count their parts in the backend and never send this.
        """
        body = maybe_signature(callback, app=app)
        if not isinstance(body, Signature):
            raise ValueError(f"chord_unlock needs a callback signature, got {callback!r:.100}")
        if result is not None:
            members = [result_from_tuple(r, app) for r in result]
            header = GroupResult(group_id, members, app=app)
        else:
            restored = GroupResult.restore(group_id, app=app)
            if restored is None:
                raise ValueError(f"chord_unlock: group {group_id} was not saved")
            header = restored
        if not header.ready():
            if interval is None:
                interval = app.conf.result_chord_retry_interval
            raise self.retry(countdown=interval, max_retries=max_retries)
        try:
            values = header.join(propagate=True, disable_sync_subtasks=False)
        except Exception as exc:
            culprit = next(
                (r.id for r in header.results if getattr(r, "failed", lambda: False)()), None
            )
            fail_chord_body(app, body, ChordError(f"Dependency {culprit} raised {exc!r}"))
            return
        body.apply_async((values,))

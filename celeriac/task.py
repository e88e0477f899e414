"""Tasks: the ``Task`` class (generic over parameters and return type) and its request context.

A task is an instance of ``Task`` (or of a user's ``base=`` subclass) registered by name in an
app. Calling it runs the function here; ``delay``/``apply_async`` send a message; ``apply``
runs it here through the same execution path a worker uses.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, ParamSpec, TypeVar

from celeriac import states
from celeriac._context import pop_task, push_task
from celeriac.exceptions import MaxRetriesExceededError, Reject, Retry

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.canvas import Signature
    from celeriac.result import AsyncResult, EagerResult

__all__ = ["Context", "Task"]

P = ParamSpec("P")
R = TypeVar("R")

#: Every calling option ``apply_async`` accepts (Celery's names). Anything else is refused.
CALL_OPTIONS = frozenset(
    {
        "countdown", "eta", "expires", "queue", "exchange", "routing_key", "exchange_type",
        "priority", "serializer", "compression", "headers", "delivery_mode", "retry",
        "retry_policy", "link", "link_error", "time_limit", "soft_time_limit", "ignore_result",
        "shadow", "add_to_parent", "producer", "connection", "publisher", "router",
        "result_cls", "root_id", "parent_id", "group_id", "group_index", "chord", "chain",
        "reply_to", "stamped_headers", "stamps", "mandatory", "immediate", "timeout",
        "confirm_timeout", "retries", "task_type", "replaced_task_nesting", "declare",
    }
)  # fmt: skip


def check_call_options(options: Mapping[str, Any]) -> None:
    """Refuse calling options celeriac does not know, naming the closest known one."""
    for name in options:
        if name not in CALL_OPTIONS:
            close = difflib.get_close_matches(name, CALL_OPTIONS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"apply_async() got an unknown option {name!r}.{hint}")


class Context:
    """``task.request``: what the running task knows about its own call.

    Attribute names are Celery's; unknown attributes read as None.
    """

    id: str | None = None
    args: list[Any] | tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    retries: int = 0
    is_eager: bool = False
    eta: str | None = None
    expires: str | None = None
    hostname: str | None = None
    delivery_info: dict[str, Any] | None = None
    group: str | None = None
    group_index: int | None = None
    chord: Any = None
    chain: Any = None
    callbacks: Any = None
    errbacks: Any = None
    root_id: str | None = None
    parent_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    origin: str | None = None
    timelimit: tuple[float | None, float | None] | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    called_directly: bool = True
    ignore_result: bool = False
    properties: dict[str, Any] | None = None
    headers: dict[str, Any] | None = None
    shadow: str | None = None
    stamps: dict[str, Any] | None = None
    stamped_headers: list[str] | None = None
    replaced_task_nesting: int = 0
    utc: bool = True
    logfile: str | None = None
    loglevel: int | None = None
    task: str | None = None

    def __init__(self, **fields: Any) -> None:
        self.kwargs = {}
        self.children: list[Any] = []
        self.__dict__.update(fields)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return f"<Context: {self.__dict__!r}>"


class Task(Generic[P, R]):
    """A task type. Class attributes are the defaults every option falls back on.

    Subclass it and pass ``base=`` to ``@app.task`` to share options and handlers.
    """

    #: Registered name; set by ``@app.task`` (``module.function`` unless ``name=``).
    name: str = ""
    #: The app this task is registered in.
    app: Celery
    #: A base class that is never registered itself.
    abstract: ClassVar[bool] = True
    typing: bool = True
    max_retries: int | None = 3
    default_retry_delay: float = 180
    rate_limit: str | None = None
    ignore_result: bool | None = None
    trail: bool = True
    send_events: bool = True
    store_errors_even_if_ignored: bool | None = None
    serializer: str | None = None
    compression: str | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    acks_late: bool | None = None
    acks_on_failure_or_timeout: bool | None = None
    reject_on_worker_lost: bool | None = None
    track_started: bool | None = None
    throws: tuple[type[BaseException], ...] = ()
    expires: float | dt.datetime | None = None
    priority: int | None = None
    queue: str | None = None
    resultrepr_maxsize: int = 1024
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_kwargs: dict[str, Any] = {}
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600
    retry_jitter: bool = True
    store_eager_result: bool | None = None

    def __init__(self) -> None:
        self._request_var: contextvars.ContextVar[tuple[Context, ...]] = contextvars.ContextVar(
            f"celeriac_request_{id(self)}", default=()
        )

    # --- the body ----------------------------------------------------------------------------

    def run(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The task body; ``@app.task`` replaces it with the decorated function."""
        raise NotImplementedError(f"Task {self.name!r} has no run() method")

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the body here, now, as a plain function call."""
        if self._request_var.get():
            return self.run(*args, **kwargs)  # already inside this task's own execution
        request = Context(id=None, args=args, kwargs=kwargs, called_directly=True, task=self.name)
        with self.request_context(request):
            return self.run(*args, **kwargs)

    # --- request context ---------------------------------------------------------------------

    @property
    def request(self) -> Context:
        """The context of the current call (an empty one outside any call)."""
        stack = self._request_var.get()
        return stack[-1] if stack else Context()

    def request_context(self, request: Context) -> _RequestScope:
        """A ``with`` block in which ``self.request`` is ``request`` and this is current_task."""
        return _RequestScope(self, request)

    # --- calling -----------------------------------------------------------------------------

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Send the task with these arguments (``apply_async`` with defaults)."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Send the task; ``task_always_eager`` runs it here instead (returning EagerResult).

        Options are Celery's calling options (``countdown``, ``eta``, ``expires``, ``queue``,
        ``priority``, ``serializer``, ``headers``, ``ignore_result``, ...); an unknown option
        raises TypeError.
        """
        # apply() and send_task() check the options; checking here too would do it twice.
        app = self.app
        if app._sending().always_eager:  # the settings as last read, unless they changed
            return self.apply(args, kwargs, task_id=task_id, **options)
        result = app.send_task(self.name, args, kwargs, task_id=task_id, _task=self, **options)
        if type(self).AsyncResult is not Task.AsyncResult:
            return self.AsyncResult(result.id)  # a base class with its own result handle
        return result

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        **options: Any,
    ) -> EagerResult[R]:
        """Run the task here and now, through the worker's execution path."""
        from celeriac.worker.execution import run_eagerly

        check_call_options(options)
        return run_eagerly(self, list(args or ()), dict(kwargs or {}), task_id, options)

    # --- signatures ------------------------------------------------------------------------

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature of a call of this task: ``add.s(2, 2)``."""
        from celeriac.canvas import Signature

        return Signature(self, args, kwargs, app=self.app)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: a parent's result is not passed to it in a chain."""
        from celeriac.canvas import Signature

        return Signature(self, args, kwargs, immutable=True, app=self.app)

    def signature(
        self, args: Sequence[Any] | None = None, *starargs: Any, **starkwargs: Any
    ) -> Signature:
        """``signature(args, kwargs, countdown=..., ...)``: a signature with calling options."""
        from celeriac.canvas import Signature

        starkwargs.setdefault("app", self.app)
        return Signature(self, args, *starargs, **starkwargs)

    subtask = signature

    def map(self, it: Any) -> Any:
        """One message running this task on each item of ``it``."""
        from celeriac.canvas import xmap

        return xmap(self.s(), it, app=self.app)

    def starmap(self, it: Any) -> Any:
        """One message running this task with each item of ``it`` as its arguments."""
        from celeriac.canvas import xstarmap

        return xstarmap(self.s(), it, app=self.app)

    def chunks(self, it: Any, n: int) -> Any:
        """``it`` in parts of ``n`` argument tuples, one message per part (a group)."""
        from celeriac.canvas import chunks

        return chunks(self.s(), it, n, app=self.app)

    def replace(self, sig: Any) -> Any:
        """Replace this running task with ``sig``, which takes over its id and its place.

        Callbacks, errbacks, the rest of a chain and chord membership move to ``sig``; a
        group becomes a chord whose body keeps this task's id. This task ends without a
        result of its own (``Ignore``).

        Raises:
            Ignore: always, once ``sig`` was sent.
        """
        from celeriac.canvas.replace import replace_task

        return replace_task(self, sig)

    def retry(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: dt.datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Send this task again with ``retries + 1`` and raise ``Retry`` (unless ``throw=False``).

        Raises:
            MaxRetriesExceededError: past ``max_retries`` (``exc`` is raised instead if given).
        """
        request = self.request
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and request.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{request.args} "
                f"kwargs:{request.kwargs}",
                task_args=request.args,
                task_kwargs=request.kwargs,
            )
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        when: Any = eta if eta is not None else countdown
        if request.called_directly:
            # A plain function call cannot be re-sent: the error (or Retry) goes to the caller.
            raise exc if exc is not None else Retry("Task can be retried", None, when)
        if request.is_eager:
            # apply() runs the task again here with retries + 1 when it sees this Retry.
            eager_retry = Retry(exc=exc, when=when, is_eager=True)
            if throw:
                raise eager_retry
            return eager_retry
        check_call_options(options)  # a wrong option is the caller's error, not a Reject
        try:
            self._send_retry(request, args, kwargs, countdown, eta, options)
        except Exception as send_error:
            # The next attempt could not be sent: drop the message rather than loop (Celery).
            raise Reject(send_error, requeue=False) from send_error
        retry = Retry(exc=exc, when=when)
        if throw:
            raise retry
        return retry

    def _send_retry(
        self,
        request: Context,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        countdown: float | None,
        eta: dt.datetime | None,
        options: Mapping[str, Any],
    ) -> None:
        # The next attempt goes where this one came from, unless the call says otherwise.
        defaults = {
            "root_id": request.root_id,
            "parent_id": request.parent_id,
            "group_id": request.group,
            "group_index": request.group_index,
            "queue": (request.delivery_info or {}).get("routing_key"),
        }
        self.app.send_task(
            self.name,
            request.args if args is None else args,
            request.kwargs if kwargs is None else kwargs,
            task_id=request.id,
            retries=request.retries + 1,
            countdown=countdown,
            eta=eta,
            _task=self,
            **{**defaults, **options},
        )

    # --- results -----------------------------------------------------------------------------

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult[R]:
        """The result handle of a call of this task."""
        from celeriac.result import AsyncResult

        return AsyncResult(task_id, app=self.app, task_name=self.name, **kwargs)

    @property
    def backend(self) -> Any:
        return self.app.backend

    def update_state(
        self,
        task_id: str | None = None,
        state: str | None = None,
        meta: Any = None,
        **kwargs: Any,
    ) -> None:
        """Record a custom state (``PROGRESS`` with ``meta``) for this or another task."""
        task_id = task_id or self.request.id
        if task_id is None:
            return
        self.app.backend.store_result(task_id, meta, state or states.PENDING, request=self.request)

    def send_event(
        self, type_: str, retry: bool = True, retry_policy: Any = None, **fields: Any
    ) -> None:
        """Send a custom event (``task-progress``, ...) about the current request.

        It carries ``uuid`` (the request's id), the sender's ``hostname`` (the worker's) and
        ``fields``; monitors (``celeriac events``, Flower) show it. It is sent whether or not
        the worker sends task events, as in Celery.
        """
        request = self.request
        with self.app.events.default_dispatcher(hostname=request.hostname) as dispatcher:
            dispatcher.send(
                type_, uuid=request.id, retry=retry, retry_policy=retry_policy, **fields
            )

    # --- handlers users override -------------------------------------------------------------

    def before_start(self, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Called before the body runs."""

    def on_success(
        self, retval: Any, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        """Called when the body returned."""

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        """Called when the body raised (and will not be retried)."""

    def on_retry(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        """Called when the task is to be retried."""

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        """Called after the task ended, whatever its state."""

    # --- odds and ends -----------------------------------------------------------------------

    def __reduce__(self) -> tuple[Callable[[str], Task[Any, Any]], tuple[str]]:
        # Tasks travel by name: unpickling looks the name up in the current app.
        return _task_by_name, (self.name,)

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {getattr(self, 'app', None) and self.app.main}>"


def _task_by_name(name: str) -> Task[Any, Any]:
    from celeriac._context import get_current_app

    return get_current_app().tasks[name]


class _RequestScope:
    """Pushes a request on a task's stack and the task on the current-task stack."""

    __slots__ = ("_request", "_task", "_task_token", "_token")

    def __init__(self, task: Task[Any, Any], request: Context) -> None:
        self._task = task
        self._request = request

    def __enter__(self) -> Context:
        var = self._task._request_var
        self._token = var.set((*var.get(), self._request))
        self._task_token = push_task(self._task)
        return self._request

    def __exit__(self, *exc_info: object) -> None:
        pop_task(self._task_token)
        self._task._request_var.reset(self._token)

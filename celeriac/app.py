"""The application: settings, the task registry, and sending tasks.

The broker and the result backend are created on first use, from the settings as they are
then, so ``app.conf.update(...)`` after ``Celery(...)`` takes effect (as in Celery).
With no broker URL the app uses the embedded SQLite file for both.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import inspect
import operator
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar, overload

from celeriac import _context, protocol, signals
from celeriac.brokers import broker_for_url
from celeriac.brokers.base import Outgoing
from celeriac.config import ENV_VARS, Settings, load_object_settings, resolve_config_source
from celeriac.exceptions import ImproperlyConfigured, NotRegistered
from celeriac.result import AsyncResult
from celeriac.routing import Router
from celeriac.task import Task, check_call_options
from celeriac.utils.ids import new_id

if TYPE_CHECKING:
    from celeriac.backends.base import ResultBackend
    from celeriac.brokers.base import Broker
    from celeriac.canvas import Signature
    from celeriac.connection import Connection
    from celeriac.control.client import Control
    from celeriac.events import Events
    from celeriac.result import GroupResult

__all__ = ["Celery", "shared_task"]

P = ParamSpec("P")
R = TypeVar("R")

#: Decorator options that set task attributes (anything else given to ``@app.task`` is refused).
_TASK_ATTRIBUTES = frozenset(
    name for name in vars(Task) if not name.startswith("_") and not callable(vars(Task)[name])
) | {"name", "typing", "queue"}

#: Result backend URL schemes whose backend reads the ``redis_*`` settings.
_REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "sentinel"})

#: Constructors of ``@shared_task`` tasks, applied to every app (existing and future).
_shared_tasks: list[Callable[[Celery], Task[Any, Any]]] = []
_all_apps: list[Celery] = []
_shared_lock = threading.Lock()


class TaskRegistry(dict[str, Task[Any, Any]]):
    """Registered tasks by name; a missing name raises ``NotRegistered``."""

    def __missing__(self, name: str) -> Task[Any, Any]:
        raise NotRegistered(name)

    def regular(self) -> dict[str, Task[Any, Any]]:
        """The user's tasks (without celeriac's built-ins)."""
        return {name: task for name, task in self.items() if not name.startswith("celery.")}


class Celery:
    """A celeriac application (Celery's API: ``Celery('proj', broker=..., backend=...)``).

    Args:
        main: the name of the main module (used to name tasks defined in ``__main__``).
        broker: broker URL; none means the embedded SQLite file (``sqlite_path``).
        backend: result backend URL; none means the embedded SQLite file when no broker
            URL is set either, otherwise no result backend (as in Celery).
        include: modules the worker imports at start to register their tasks.
        config_source: an object or module path to load settings from.
        **settings: any setting, by its lowercase name.
    """

    def __init__(
        self,
        main: str | None = None,
        loader: Any = None,
        backend: str | None = None,
        amqp: Any = None,
        events: Any = None,
        log: Any = None,
        control: Any = None,
        set_as_current: bool = True,
        tasks: Any = None,
        broker: str | None = None,
        include: Iterable[str] | None = None,
        changes: Mapping[str, Any] | None = None,
        config_source: Any = None,
        fixups: Any = None,
        task_cls: type[Task[Any, Any]] | str | None = None,
        autofinalize: bool = True,
        namespace: str | None = None,
        strict_typing: bool = True,
        **settings: Any,
    ) -> None:
        self.main = main
        self.namespace = namespace
        self.strict_typing = strict_typing
        self.task_cls: type[Task[Any, Any]] = _resolve_task_cls(task_cls)
        self.conf = Settings()
        self.conf.update(changes or {}, **settings)
        if broker:
            self.conf.broker_url = broker
        if backend:
            self.conf.result_backend = backend
        if include:
            self.conf.include = tuple(self.conf.include) + tuple(include)
        if config_source is not None:
            self.config_from_object(config_source)
        self.tasks = TaskRegistry()
        self._broker: Broker | None = None
        self._backend: ResultBackend | None = None
        self._lock = threading.RLock()
        self._send_state: SendState | None = None
        self.thread_oid = protocol.thread_oid()
        from celeriac.worker.builtins import register_builtins

        register_builtins(self)
        with _shared_lock:
            _all_apps.append(self)
            for make in _shared_tasks:
                make(self)
        if set_as_current:
            self.set_current()

    # --- configuration -----------------------------------------------------------------------

    def config_from_object(
        self, obj: Any, silent: bool = False, force: bool = False, namespace: str | None = None
    ) -> None:
        """Load settings from an object, a module, or a ``'module'``/``'module:attr'`` path."""
        try:
            source = resolve_config_source(obj)
        except ImportError:
            if silent:
                return
            raise
        self.conf.update(load_object_settings(source, namespace=namespace or self.namespace))
        self._reset_connections()

    def config_from_envvar(
        self, variable_name: str, silent: bool = False, force: bool = False
    ) -> None:
        """Load settings from the module named by an environment variable."""
        module_name = os.environ.get(variable_name)
        if not module_name:
            if silent:
                return
            raise ImproperlyConfigured(
                f"The environment variable {variable_name!r} is not set, and as such the "
                "configuration could not be loaded. Set it to a module path."
            )
        self.config_from_object(module_name, silent=silent, force=force)

    def _reset_connections(self) -> None:
        # Settings changed before first use take effect; after first use, on next creation.
        self._send_state = None

    def set_current(self) -> None:
        _context.set_current_app(self)

    def set_default(self) -> None:
        _context.set_current_app(self)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    @property
    def timezone(self) -> dt.tzinfo:
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.conf.timezone or "UTC")

    # --- broker and backend --------------------------------------------------------------------

    @property
    def broker_url(self) -> str:
        """The broker URL in use (the embedded SQLite file when none is set)."""
        url = self.conf.broker_url
        return str(url) if url else f"sqlite:///{self.conf.sqlite_path}"

    @property
    def result_backend_url(self) -> str | None:
        """The result backend URL in use, or None when results are disabled."""
        url = self.conf.result_backend
        if url:
            return str(url)
        if not self.conf.broker_url:
            return f"sqlite:///{self.conf.sqlite_path}"
        return None

    @property
    def broker(self) -> Broker:
        """The broker, created on first use."""
        if self._broker is None:
            with self._lock:
                if self._broker is None:
                    self._broker = self._make_broker(self.broker_url)
        return self._broker

    def _make_broker(self, url: str, transport_options: Mapping[str, Any] | None = None) -> Broker:
        options = dict(self.conf.broker_transport_options or {})
        options.update(transport_options or {})
        if self.conf.broker_use_ssl:
            options["broker_use_ssl"] = self.conf.broker_use_ssl
        return broker_for_url(url, options=options, conf=self.conf)

    def connection(
        self,
        hostname: str | None = None,
        transport_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Connection:
        """A broker connection, as Celery's (``with app.connection() as conn: ...``).

        Without arguments it is a handle on the app's own broker, which ``release()``
        leaves open for the app. ``hostname`` may be another broker URL (and
        ``transport_options`` its options): that connection has a broker of its own.

        Raises:
            ImproperlyConfigured: a connection argument given separately (``userid``,
                ``port``...): celeriac takes them in the URL.
        """
        from celeriac.connection import Connection

        given = sorted(name for name, value in kwargs.items() if value is not None)
        if given:
            raise ImproperlyConfigured(
                f"app.connection() takes the broker URL (hostname=...) and transport_options;"
                f" put {', '.join(given)} in the URL instead"
            )
        if hostname is None and transport_options is None:
            return Connection(self.broker, owned=False)
        return Connection(
            self._make_broker(hostname or self.broker_url, transport_options), owned=True
        )

    def connection_for_read(self, url: str | None = None, **kwargs: Any) -> Connection:
        """A connection to consume from (the app's broker unless ``url`` names another)."""
        return self.connection(url, **kwargs)

    def connection_for_write(self, url: str | None = None, **kwargs: Any) -> Connection:
        """A connection to publish on (the app's broker unless ``url`` names another)."""
        return self.connection(url, **kwargs)

    @contextmanager
    def connection_or_acquire(
        self, connection: Connection | None = None, **kwargs: Any
    ) -> Iterator[Connection]:
        """``connection`` itself, or a new one released on exit."""
        if connection is not None:
            yield connection
            return
        with self.connection(**kwargs) as fresh:
            yield fresh

    @property
    def backend(self) -> ResultBackend:
        """The result backend, created on first use."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = self._make_backend()
        return self._backend

    def _make_backend(self) -> ResultBackend:
        from celeriac.backends import backend_for_url

        conf = self.conf
        url = self.result_backend_url
        options = dict(conf.result_backend_transport_options or {})
        if url is not None and url.split("://", 1)[0] in _REDIS_SCHEMES:
            from celeriac.backends.redis import SETTING_OPTIONS

            options.update({name: conf[name] for name in SETTING_OPTIONS if conf[name] is not None})
        if url is not None and url.split("://", 1)[0] == "rpc":
            # rpc:// replies travel over the broker, to this caller's reply queue.
            options.update(
                broker_url=self.broker_url,
                broker_use_ssl=conf.broker_use_ssl,
                reply_to=self.thread_oid,
                persistent=bool(conf.result_persistent),
                conf=conf,
            )
        return backend_for_url(
            url,
            serializer=conf.result_serializer,
            accept=conf.result_accept_content or conf.accept_content,
            expires=conf.seconds("result_expires"),
            extended=bool(conf.result_extended),
            options=options,
        )

    @functools.cached_property
    def control(self) -> Control:
        """Remote control of this app's workers (``app.control.inspect().ping()``, ...)."""
        from celeriac.control.client import Control

        return Control(self)

    @functools.cached_property
    def events(self) -> Events:
        """Events of this app (``app.events.Receiver(...)``, ``.State()``, ``.Dispatcher()``)."""
        from celeriac.events import Events

        return Events(self)

    @property
    def router(self) -> Router:
        """The router of the current settings (made again when they change)."""
        return self._sending().router()

    def close(self) -> None:
        """Close the broker and backend connections of this thread."""
        with self._lock:
            if self._broker is not None:
                self._broker.close()
            if self._backend is not None:
                self._backend.close()
            self._broker = self._backend = None

    # --- tasks ---------------------------------------------------------------------------------

    @overload
    def task(self, fun: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        bind: Literal[True],
        name: str | None = None,
        base: type[Task[Any, Any]] | None = None,
        shared: bool = True,
        **options: Any,
    ) -> Callable[[Callable[Concatenate[Any, P], R]], Task[P, R]]: ...

    @overload
    def task(
        self,
        *,
        bind: Literal[False] = False,
        name: str | None = None,
        base: type[Task[Any, Any]] | None = None,
        shared: bool = True,
        **options: Any,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(self, *args: Any, **options: Any) -> Any:
        """Register a function as a task (``@app.task`` or ``@app.task(name=..., bind=True)``)."""
        if args and callable(args[0]) and len(args) == 1 and not options:
            return self._task_from_fun(args[0], {})
        if args:
            raise TypeError("@app.task takes the function alone, or only keyword options")

        def decorate(fun: Callable[..., Any]) -> Task[Any, Any]:
            return self._task_from_fun(fun, options)

        return decorate

    def _task_from_fun(self, fun: Callable[..., Any], options: dict[str, Any]) -> Task[Any, Any]:
        options = dict(options)
        options.pop("shared", None)
        bind = bool(options.pop("bind", False))
        base = options.pop("base", None) or self.task_cls
        name = options.pop("name", None) or self.gen_task_name(fun.__name__, fun.__module__)
        if name in self.tasks and getattr(self.tasks[name], "__wrapped__", None) is fun:
            return self.tasks[name]
        unknown = set(options) - _TASK_ATTRIBUTES
        if unknown:
            raise TypeError(f"@app.task got unknown option(s): {', '.join(sorted(unknown))}")
        task = _make_task(base, fun, bind, name, self, options)
        self.register_task(task)
        return task

    def register_task(self, task: Task[Any, Any] | type[Task[Any, Any]]) -> Task[Any, Any]:
        """Register a task instance (or class-based task) under its name."""
        if isinstance(task, type):
            task = task()
        if not task.name:
            task.name = self.gen_task_name(type(task).__name__, type(task).__module__)
        task.app = self
        self.tasks[task.name] = task
        return task

    def gen_task_name(self, name: str, module: str) -> str:
        """``module.name``; a function in ``__main__`` takes the app's main module name."""
        if module == "__main__" and self.main:
            module = self.main
        return f"{module}.{name}"

    def loader_import_modules(self) -> list[str]:
        """Import ``imports`` and ``include`` (what the worker does at start); returns them."""
        names = [*tuple(self.conf.imports or ()), *tuple(self.conf.include or ())]
        signals.import_modules.send(sender=self)
        for module_name in names:
            importlib.import_module(module_name)
        return names

    def autodiscover_tasks(
        self,
        packages: Iterable[str] | Callable[[], Iterable[str]] | None = None,
        related_name: str = "tasks",
        force: bool = False,
    ) -> None:
        """Import ``<package>.<related_name>`` for each package (missing ones are skipped)."""
        if callable(packages):
            packages = packages()
        for package in packages or ():
            try:
                importlib.import_module(f"{package}.{related_name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{related_name}":
                    raise

    # --- sending -------------------------------------------------------------------------------

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        countdown: float | None = None,
        eta: dt.datetime | None = None,
        task_id: str | None = None,
        expires: float | dt.datetime | None = None,
        retries: int = 0,
        _task: Task[Any, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        """Send a task by name, without needing its code; returns its AsyncResult."""
        if countdown is not None:
            options["countdown"] = countdown
        if eta is not None:
            options["eta"] = eta
        if expires is not None:
            options["expires"] = expires
        if retries:
            options["retries"] = retries
        send = PendingSend(name, args, kwargs, task_id or new_id(), options, _task)
        state = self._sending()
        prepared = self._prepare_send(state, send, None, self._parent_request(), self._origin())
        self._publish(state, prepared)
        result: AsyncResult[Any] = AsyncResult(send.task_id, app=self, task_name=name)
        _add_to_parent([result], options)
        return result

    def send_tasks(self, sends: Sequence[PendingSend]) -> list[AsyncResult[Any]]:
        """Send many tasks in one broker round trip; returns their results, in order.

        The bulk form of :meth:`send_task` (groups and chunks use it): every message is
        built first, then all are published together, so a bad option or argument in any
        of them means none is sent.
        """
        state = self._sending()
        now = self.now()
        parent, origin = self._parent_request(), self._origin()
        prepared = [self._prepare_send(state, send, now, parent, origin) for send in sends]
        self._publish_many(state, prepared)
        results: list[AsyncResult[Any]] = [
            AsyncResult(send.task_id, app=self, task_name=send.name) for send in sends
        ]
        if sends:
            _add_to_parent(results, sends[0].options)
        return results

    def _sending(self) -> SendState:
        """What sending reads from the settings, read again only once they changed."""
        state = self._send_state
        conf = self.conf
        if state is None or state.conf is not conf or state.version != conf.version:
            state = self._send_state = SendState(conf)
        return state

    def _prepare_send(
        self,
        state: SendState,
        send: PendingSend,
        now: dt.datetime | None,
        parent: Any,
        origin: str,
    ) -> PreparedSend:
        """Check the options and build the message of one send (nothing is published).

        ``now`` is the batch's time; None: read the clock if the send needs it (a send
        without options and expiry does not).
        """
        options = send.options
        if options:
            check_call_options(options)
        plan = self._plan(state, send, origin)
        if not options and plan.expires is None:
            # delay(): nothing but the ids and the arguments differ from the template.
            message = plan.template.build(
                send.task_id,
                send.args,
                send.kwargs,
                root_id=parent.root_id if parent else None,
                parent_id=parent.id if parent else None,
                reply_to=self.thread_oid,
            )
            return PreparedSend(send, plan.queue, message, None, plan.exchange, plan.routing_key)
        if now is None:
            now = self.now()
        get = options.get
        eta = _eta_of(now, get("countdown"), get("eta"))
        expires = get("expires")
        expires_at = _expires_of(now, expires if expires is not None else plan.expires)
        link, link_error, steps, chord = get("link"), get("link_error"), get("chain"), get("chord")
        message = plan.template.build(
            send.task_id,
            send.args,
            send.kwargs,
            eta=eta,
            expires=expires_at,
            retries=int(get("retries") or 0),
            root_id=get("root_id") or (parent.root_id if parent else None),
            parent_id=get("parent_id") or (parent.id if parent else None),
            group_id=get("group_id"),
            group_index=get("group_index"),
            reply_to=get("reply_to") or self.thread_oid,
            shadow=get("shadow"),
            callbacks=_signatures(link) if link else None,
            errbacks=_signatures(link_error) if link_error else None,
            chain=_signatures(steps) if steps else None,
            chord=dict(chord) if chord else None,
            headers=get("headers"),
            now=now,
        )
        return PreparedSend(send, plan.queue, message, eta, plan.exchange, plan.routing_key)

    def _plan(self, state: SendState, send: PendingSend, origin: str) -> CallPlan:
        """The resolved options of ``send``: remembered per task, options and settings.

        A router that looks at arguments makes every send resolve its own.
        """
        task = send.task or self.tasks.get(send.name)
        if not state.router().static:
            return self._make_plan(state, send, task, origin)
        key = _plan_key(send.name, task, send.options, origin)
        try:
            plan = state.plans.get(key)
        except TypeError:  # an unhashable option value: resolved for this send only
            return self._make_plan(state, send, task, origin)
        if plan is None:
            plan = self._make_plan(state, send, task, origin)
            if len(state.plans) >= _PLANS_KEPT:
                state.plans.clear()  # many distinct options (queue names made per call)
            state.plans[key] = plan
        return plan

    def _make_plan(
        self, state: SendState, send: PendingSend, task: Task[Any, Any] | None, origin: str
    ) -> CallPlan:
        options = send.options
        call = self._call_options(
            state, send.name, send.args or (), send.kwargs or {}, options, task
        )
        template = protocol.MessageTemplate(
            name=send.name,
            serializer=call["serializer"],
            compression=call["compression"],
            time_limit=call["time_limit"],
            soft_time_limit=call["soft_time_limit"],
            origin=origin,
            ignore_result=call["ignore_result"],
            priority=call["priority"],
            delivery_mode=_delivery_mode(options.get("delivery_mode", state.delivery_mode)),
        )
        return CallPlan(
            call["queue"], call["exchange"], call["routing_key"], call["expires"], template
        )

    def _publish_many(self, state: SendState, prepared: Sequence[PreparedSend]) -> None:
        """Publish built messages in one batch, with the publish signals around each."""
        if not prepared:
            return
        before = signals.before_task_publish.has_receivers()
        if before:
            for item in prepared:
                signals.before_task_publish.send(
                    sender=item.send.name,
                    body=_signal_body(item.send),
                    exchange=item.exchange or "",
                    routing_key=item.routing_key or item.queue,
                    headers=item.message.headers,
                    properties=item.message.properties,
                    declare=[],
                    retry_policy=item.send.options.get("retry_policy"),
                )
        self._prepare_replies(state)
        # One batch, one broker: the first send's connection= option names it.
        self._broker_for(prepared[0].send.options).publish_many(
            [
                Outgoing(
                    item.queue,
                    item.message,
                    item.eta.timestamp() if item.eta else None,
                    item.exchange,
                    item.routing_key,
                )
                for item in prepared
            ]
        )
        if state.sent_event:
            for item in prepared:
                self.events.task_sent(item.queue, item.message, item.exchange, item.routing_key)
        if signals.after_task_publish.has_receivers():
            for item in prepared:
                signals.after_task_publish.send(
                    sender=item.send.name,
                    body=_signal_body(item.send),
                    exchange=item.exchange or "",
                    routing_key=item.routing_key or item.queue,
                    headers=item.message.headers,
                )

    def _publish(self, state: SendState, prepared: PreparedSend) -> None:
        """Publish one message with the before/after_task_publish signals around it (headers
        editable); the explicit AMQP route (``exchange``/``routing_key``), if any, goes along.
        """
        send, queue, message = prepared.send, prepared.queue, prepared.message
        exchange, routing_key = prepared.exchange, prepared.routing_key
        # The signals' body is made only for receivers (both see the same object).
        body = _signal_body(send) if signals.before_task_publish.has_receivers() else None
        if body is not None:
            signals.before_task_publish.send(
                sender=send.name,
                body=body,
                exchange=exchange or "",
                routing_key=routing_key or queue,
                headers=message.headers,
                properties=message.properties,
                declare=[],
                retry_policy=send.options.get("retry_policy"),
            )
        self._prepare_replies(state)
        due = prepared.eta.timestamp() if prepared.eta else None
        broker = self._broker_for(send.options)
        if exchange is None and routing_key is None:
            broker.publish(queue, message, eta=due)
        else:
            broker.publish_many([Outgoing(queue, message, due, exchange, routing_key)])
        if state.sent_event:
            self.events.task_sent(queue, message, exchange, routing_key)
        if signals.after_task_publish.has_receivers():
            signals.after_task_publish.send(
                sender=send.name,
                body=body if body is not None else _signal_body(send),
                exchange=exchange or "",
                routing_key=routing_key or queue,
                headers=message.headers,
            )

    def _broker_for(self, options: Mapping[str, Any]) -> Broker:
        """The broker of a ``connection=`` (or ``producer=``) calling option that is an
        ``app.connection()``, else the app's (Celery's producers and kombu connections
        have no meaning here and are ignored)."""
        if not options:
            return self.broker
        from celeriac.connection import Connection

        for name in ("connection", "producer"):
            given = options.get(name)
            if isinstance(given, Connection):
                return given.broker
        return self.broker

    def _prepare_replies(self, state: SendState) -> None:
        """rpc:// results come to this caller's reply queue: it must exist before the task."""
        if str(state.result_backend() or "").startswith("rpc://"):
            self.backend.on_task_call()  # type: ignore[attr-defined]

    def _call_options(
        self,
        state: SendState,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
        task: Task[Any, Any] | None,
    ) -> dict[str, Any]:
        """Merge call options over route over task attributes over settings."""
        conf = self.conf
        route = state.router().route(name, args, kwargs, options, getattr(task, "queue", None))

        def pick(option: str, attribute: str, setting: str) -> Any:
            if options.get(option) is not None:
                return options[option]
            if option in route and route[option] is not None:
                return route[option]
            value = getattr(task, attribute, None) if task is not None else None
            return value if value is not None else conf[setting]

        ignore_result = options.get("ignore_result")
        if ignore_result is None:
            task_value = getattr(task, "ignore_result", None) if task is not None else None
            ignore_result = task_value if task_value is not None else conf.task_ignore_result
        return {
            "queue": route["queue"],
            "exchange": _route_value(options, route, "exchange"),
            "routing_key": _route_value(options, route, "routing_key"),
            "serializer": pick("serializer", "serializer", "task_serializer"),
            "compression": pick("compression", "compression", "task_compression"),
            "priority": pick("priority", "priority", "task_default_priority"),
            "time_limit": pick("time_limit", "time_limit", "task_time_limit"),
            "soft_time_limit": pick("soft_time_limit", "soft_time_limit", "task_soft_time_limit"),
            "expires": getattr(task, "expires", None) if task is not None else None,
            "ignore_result": bool(ignore_result),
        }

    def _parent_request(self) -> Any:
        task = _context.get_current_task()
        if task is None:
            return None
        request = task.request
        return request if request.id and not request.called_directly else None

    def _origin(self) -> str:
        hostname = getattr(self, "_worker_hostname", None)
        return hostname or protocol.anon_nodename()

    def signature(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature bound to this app (``app.signature('tasks.add', args=(2, 2))``)."""
        from celeriac.canvas import signature

        kwargs["app"] = self
        return signature(*args, **kwargs)

    def GroupResult(self, *args: Any, **kwargs: Any) -> GroupResult:
        """A group's result handle bound to this app."""
        from celeriac.result import GroupResult

        kwargs["app"] = self
        return GroupResult(*args, **kwargs)

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult[Any]:
        """The result handle of ``task_id``."""
        return AsyncResult(task_id, app=self, **kwargs)

    def __repr__(self) -> str:
        return f"<Celery {self.main or '__main__'} at {id(self):#x}>"

    def __reduce__(self) -> Any:
        return Celery, (self.main,), None


#: Celery's alternative name for the app class.
Celeriac = Celery


def _resolve_task_cls(task_cls: type[Task[Any, Any]] | str | None) -> type[Task[Any, Any]]:
    if task_cls is None:
        return Task
    if isinstance(task_cls, str):
        from celeriac.utils.imports import symbol_by_name

        resolved: type[Task[Any, Any]] = symbol_by_name(task_cls)
        return resolved
    return task_cls


def _make_task(
    base: type[Task[Any, Any]],
    fun: Callable[..., Any],
    bind: bool,
    name: str,
    app: Celery,
    options: Mapping[str, Any],
) -> Task[Any, Any]:
    """An instance of ``base`` whose body is ``fun`` (bound to the instance with ``bind``)."""
    task = base()
    task.name = name
    task.app = app
    for attribute, value in options.items():
        setattr(task, attribute, value)
    task.run = fun.__get__(task) if bind else fun  # type: ignore[method-assign]
    task.__wrapped__ = fun  # type: ignore[attr-defined]
    task.__doc__ = fun.__doc__
    task.__module__ = fun.__module__
    task.__name__ = fun.__name__  # type: ignore[attr-defined]
    task.__qualname__ = getattr(fun, "__qualname__", fun.__name__)  # type: ignore[attr-defined]
    task._signature = inspect.signature(fun)  # type: ignore[attr-defined]
    return task


def _eta_of(
    now: dt.datetime, countdown: float | None, eta: dt.datetime | None
) -> dt.datetime | None:
    if countdown is not None:
        return now + dt.timedelta(seconds=float(countdown))
    if eta is not None and eta.tzinfo is None:
        return eta.replace(tzinfo=dt.timezone.utc)
    return eta


def _expires_of(now: dt.datetime, expires: float | dt.datetime | None) -> dt.datetime | None:
    if expires is None:
        return None
    if isinstance(expires, dt.datetime):
        return expires if expires.tzinfo else expires.replace(tzinfo=dt.timezone.utc)
    if isinstance(expires, dt.timedelta):
        return now + expires
    return now + dt.timedelta(seconds=float(expires))


def _delivery_mode(value: Any) -> int:
    if value in ("transient", 1):
        return 1
    return 2


@dataclass(slots=True)
class PendingSend:
    """One task to send (:meth:`Celery.send_tasks`): name, arguments, id and calling options."""

    name: str
    args: Sequence[Any] | None
    kwargs: Mapping[str, Any] | None
    task_id: str
    options: dict[str, Any] = field(default_factory=dict)
    task: Task[Any, Any] | None = None


@dataclass(slots=True)
class CallPlan:
    """The resolved calling options of a kind of send: route, defaults, message template."""

    queue: str
    exchange: str | None
    routing_key: str | None
    expires: float | dt.datetime | None
    template: protocol.MessageTemplate


class SendState:
    """What sending reads from one version of the settings (see ``Settings.version``), and
    the calling options resolved under it: reading a setting costs more than a send's own
    work, and the settings a send needs rarely change from one send to the next."""

    __slots__ = (
        "_backend", "_backend_default", "_router", "always_eager", "conf", "delivery_mode",
        "plans", "sent_event", "version",
    )  # fmt: skip

    def __init__(self, conf: Settings) -> None:
        self.conf = conf
        self.version = conf.version
        self.always_eager = bool(conf.task_always_eager)
        self.sent_event = bool(conf.task_send_sent_event)
        self.delivery_mode = conf.task_default_delivery_mode
        # result_backend may come from the environment, which is read at each send.
        self._backend = conf.changes.get("result_backend")
        self._backend_default = conf.defaults.get("result_backend")
        self._router: Router | None = None
        self.plans: dict[tuple[Any, ...], CallPlan] = {}

    def router(self) -> Router:
        """The router of these settings, made at the first send that needs one."""
        if self._router is None:
            conf = self.conf
            self._router = Router(
                conf.task_routes,
                conf.task_queues,
                conf.task_default_queue,
                bool(conf.task_create_missing_queues),
            )
        return self._router

    def result_backend(self) -> Any:
        """``conf.result_backend`` as it reads now."""
        if self._backend is not None:
            return self._backend
        return os.environ.get(ENV_VARS["result_backend"]) or self._backend_default


@dataclass(slots=True)
class PreparedSend:
    """A send whose message is built: where it goes and when it is due."""

    send: PendingSend
    queue: str
    message: Any
    eta: dt.datetime | None
    exchange: str | None = None
    routing_key: str | None = None


def _route_value(options: Mapping[str, Any], route: Mapping[str, Any], name: str) -> Any:
    """An explicit ``exchange``/``routing_key`` of the call, else of its route (else None)."""
    value = options.get(name)
    if value is None:
        value = route.get(name)
    return getattr(value, "name", value)


#: The calling options that decide a send's merged call options (see ``_call_options``).
_CALL_KEY_SET = frozenset(
    {
        "queue", "exchange", "routing_key", "serializer", "compression", "priority",
        "time_limit", "soft_time_limit", "ignore_result", "delivery_mode",
    }
)  # fmt: skip


#: What ``_call_options`` reads of a task: its calling defaults.
_TASK_CALL_ATTRIBUTES = (
    "queue", "serializer", "compression", "priority", "time_limit", "soft_time_limit",
    "expires", "ignore_result",
)  # fmt: skip
_task_call_attributes = operator.attrgetter(*_TASK_CALL_ATTRIBUTES)

#: The most resolved calling options an app keeps (it forgets them all past this).
_PLANS_KEPT = 1024


def _plan_key(
    name: str, task: Task[Any, Any] | None, options: Mapping[str, Any], origin: str
) -> tuple[Any, ...]:
    """Everything a send's resolved options depend on besides the settings: the task's
    name and calling defaults (read each time: a task attribute may change), the calling
    options and the message origin. Hashing it raises TypeError for an unhashable value."""
    try:
        attributes = _task_call_attributes(task) if task is not None else None
    except AttributeError:  # an object without Task's class attributes
        attributes = tuple(getattr(task, key, None) for key in _TASK_CALL_ATTRIBUTES)
    if not options:
        return (name, origin, attributes)
    # Only the options the resolution reads (a group's members differ in others).
    chosen = [item for item in options.items() if item[0] in _CALL_KEY_SET]
    return (name, origin, attributes, *chosen)


def _add_to_parent(results: list[Any], options: Mapping[str, Any]) -> None:
    """Results sent by a running task become its children (``AsyncResult.children``)."""
    if not options.get("add_to_parent", True):
        return
    task = _context.get_current_task()
    if task is None or not task.trail:
        return
    request = task.request
    if request.id and not request.called_directly:
        request.children.extend(results)


def _signal_body(send: PendingSend) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    return list(send.args or ()), dict(send.kwargs or {}), {}


def _signatures(value: Any) -> list[Any] | None:
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    return [dict(item) for item in items]


@overload
def shared_task(fun: Callable[P, R], /) -> Task[P, R]: ...


@overload
def shared_task(
    *, bind: Literal[True], **options: Any
) -> Callable[[Callable[Concatenate[Any, P], R]], Task[P, R]]: ...


@overload
def shared_task(
    *, bind: Literal[False] = False, **options: Any
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def shared_task(*args: Any, **options: Any) -> Any:
    """Define a task for every app (those existing and those created later).

    Returns the task of the current app; it follows the current app when that changes.
    """

    def decorate(fun: Callable[..., Any]) -> Task[Any, Any]:
        def make(app: Celery) -> Task[Any, Any]:
            return app._task_from_fun(fun, options)

        with _shared_lock:
            _shared_tasks.append(make)
            apps = list(_all_apps)
        for app in apps:
            make(app)
        # Resolved at each use, so the task follows the current app (and its naming).
        return _context.Proxy(lambda: make(_context.get_current_app()))  # type: ignore[return-value]

    if args and callable(args[0]) and len(args) == 1 and not options:
        return decorate(args[0])
    return decorate

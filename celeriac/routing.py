"""Routing: ``Queue`` and ``Exchange`` declarations and ``task_routes`` → the queue of a call.

The order of precedence is Celery's: an explicit ``queue=`` on the call, then the routers of
``task_routes`` (in order), then the task's own ``queue`` attribute, then
``task_default_queue``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from celeriac.exceptions import QueueNotFound
from celeriac.utils.imports import symbol_by_name

__all__ = ["Exchange", "Queue", "Router"]


@dataclass(frozen=True)
class Exchange:
    """An exchange declaration (meaningful on AMQP; on other brokers it only names routes)."""

    name: str = ""
    type: str = "direct"
    durable: bool = True
    auto_delete: bool = False
    delivery_mode: int | None = None
    arguments: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Queue:
    """A queue declaration, as Celery users write them with kombu's ``Queue``."""

    name: str = ""
    exchange: Exchange | str | None = None
    routing_key: str | None = None
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False
    queue_arguments: Mapping[str, Any] | None = None
    max_priority: int | None = None
    expires: float | None = None
    message_ttl: float | None = None
    max_length: int | None = None
    bindings: Sequence[Any] = field(default_factory=tuple)

    @property
    def exchange_name(self) -> str:
        if isinstance(self.exchange, Exchange):
            return self.exchange.name
        return self.exchange or self.name

    @property
    def key(self) -> str:
        return self.routing_key or self.name


RouteFunction = Callable[..., Any]


def _glob_route(pattern: str | re.Pattern[str], target: Any) -> RouteFunction:
    regex = pattern if isinstance(pattern, re.Pattern) else re.compile(fnmatch.translate(pattern))

    def route(name: str, *_: Any, **__: Any) -> Any:
        return target if regex.match(name) else None

    return route


def _only_patterns(setting: Any) -> bool:
    if setting is None or isinstance(setting, Mapping):
        return True
    if isinstance(setting, str) or callable(setting):
        return False
    return all(isinstance(item, Mapping) for item in setting)


def _routers_from_setting(setting: Any) -> list[RouteFunction]:
    if setting is None:
        return []
    items = [setting] if isinstance(setting, (Mapping, str)) or callable(setting) else setting
    routers: list[RouteFunction] = []
    for item in items:
        if isinstance(item, Mapping):
            routers.extend(_glob_route(pattern, target) for pattern, target in item.items())
        elif isinstance(item, str):
            routers.append(symbol_by_name(item))
        elif hasattr(item, "route_for_task"):
            routers.append(item.route_for_task)
        elif callable(item):
            routers.append(item)
        else:
            raise TypeError(f"task_routes entry {item!r} is not a mapping, router or path")
    return routers


class Router:
    """Resolves the queue (and priority, if a route sets one) of every outgoing task."""

    def __init__(
        self,
        routes: Any,
        queues: Iterable[Queue] | Mapping[str, Any] | None,
        default_queue: str,
        create_missing: bool,
    ) -> None:
        self._routers = _routers_from_setting(routes)
        #: True when routes are only name patterns: a task's route does not depend on its
        #: arguments, so a batch of sends may resolve it once per task name.
        self.static = _only_patterns(routes)
        self.queues = _queues_by_name(queues)
        self.default_queue = default_queue
        self.create_missing = create_missing

    def route(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
        task_queue: str | None = None,
    ) -> dict[str, Any]:
        """The routing options of one call: at least ``queue``; maybe ``priority`` etc."""
        if options.get("queue"):
            return {"queue": self._queue_name(options["queue"])}
        for router in self._routers:
            found = _call_router(router, name, args, kwargs, options)
            if found:
                return self._normalize(found)
        return {"queue": self._queue_name(task_queue or self.default_queue)}

    def _normalize(self, found: Any) -> dict[str, Any]:
        if isinstance(found, (str, Queue)):
            return {"queue": self._queue_name(found)}
        route = dict(found)
        route["queue"] = self._queue_name(route.get("queue") or self.default_queue)
        return route

    def _queue_name(self, queue: str | Queue) -> str:
        name = queue.name if isinstance(queue, Queue) else str(queue)
        if self.queues and name not in self.queues and not self.create_missing:
            raise QueueNotFound(
                f"Queue {name!r} missing from task_queues (and task_create_missing_queues is off)"
            )
        return name


def _call_router(router: RouteFunction, name: str, args: Any, kwargs: Any, options: Any) -> Any:
    try:
        return router(name, args, kwargs, options, task=None)
    except TypeError:
        return router(name, args, kwargs, options)


def _queues_by_name(queues: Iterable[Queue] | Mapping[str, Any] | None) -> dict[str, Queue]:
    if not queues:
        return {}
    if isinstance(queues, Mapping):
        return {name: Queue(name, **dict(options or {})) for name, options in queues.items()}
    if isinstance(queues, Queue):
        queues = [queues]
    return {queue.name: queue for queue in queues}

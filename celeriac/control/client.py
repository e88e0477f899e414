"""``app.control``: send remote-control commands to workers and collect their replies.

The API is Celery's: :meth:`Control.broadcast` is the one primitive (publish a request on
the mailbox, then, when replies are wanted, read the client's reply queue until ``limit``
replies came or ``timeout`` passed); every other method names a command. ``inspect()``
returns an :class:`Inspect` whose methods answer ``{nodename: reply}``, or None when no
worker answered in time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.brokers.base import Subscription
from celeriac.control.mailbox import Clock, MailboxNames, parse_body, request_message

if TYPE_CHECKING:
    from celeriac.app import Celery

__all__ = ["Control", "Inspect"]

Reply = dict[str, Any]
Callback = Callable[[Reply], Any]


class Control:
    """Remote control of the workers of ``app`` (``app.control``)."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.clock = Clock()

    @property
    def names(self) -> MailboxNames:
        return MailboxNames(str(self.app.conf.control_exchange))

    def inspect(
        self,
        destination: Sequence[str] | None = None,
        timeout: float = 1.0,
        callback: Callback | None = None,
        connection: Any = None,
        app: Celery | None = None,
        limit: int | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> Inspect:
        """An :class:`Inspect` for these nodes (all when ``destination`` is None)."""
        return Inspect(
            self.app if app is None else app,
            destination=destination,
            timeout=timeout,
            callback=callback,
            limit=limit,
            pattern=pattern,
            matcher=matcher,
        )

    # --- the primitive -----------------------------------------------------------------------

    def broadcast(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        destination: Sequence[str] | None = None,
        connection: Any = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
        callback: Callback | None = None,
        channel: Any = None,
        pattern: str | None = None,
        matcher: str | None = None,
        **extra: Any,
    ) -> list[Reply] | None:
        """Send ``command`` to the workers; with ``reply``, the replies that came in time.

        ``connection`` and ``channel`` are accepted for Celery's signature and ignored.
        Extra keyword arguments are added to ``arguments``, as in Celery.

        Raises:
            ValueError: ``destination`` is a string rather than a list of node names.
        """
        if destination is not None and not isinstance(destination, (list, tuple)):
            raise ValueError(f"destination must be a list/tuple not {type(destination).__name__}")
        body: dict[str, Any] = {
            "method": command,
            "arguments": {**(arguments or {}), **extra},
            "destination": list(destination) if destination else None,
            "pattern": pattern,
            "matcher": matcher,
        }
        if limit is None and destination:
            limit = len(destination)
        if not reply:
            self._publish(body, timeout)
            return None
        return self._ask(body, timeout, limit, callback)

    def _publish(self, body: dict[str, Any], timeout: float) -> None:
        message = request_message(
            body,
            clock=self.clock.forward(),
            expires=time.time() + timeout if timeout else 0,
            serializer=str(self.app.conf.task_serializer),
        )
        self.app.broker.fanout_publish(self.names.exchange, message)

    def _ask(
        self, body: dict[str, Any], timeout: float, limit: int | None, callback: Callback | None
    ) -> list[Reply]:
        names = self.names
        client_id = str(uuid.uuid4())
        ticket = str(uuid.uuid4())
        body["ticket"] = ticket
        body["reply_to"] = {"exchange": names.reply_exchange, "routing_key": client_id}
        expires = float(self.app.conf.control_queue_expires or 10.0)
        broker = self.app.broker
        subscription = broker.direct_subscribe(
            names.reply_exchange, client_id, names.reply_queue(client_id), expires=expires
        )
        try:
            self._publish(body, timeout)
            return self._collect(subscription, ticket, timeout, limit, callback)
        finally:
            subscription.close()

    def _collect(
        self,
        subscription: Subscription,
        ticket: str,
        timeout: float,
        limit: int | None,
        callback: Callback | None,
    ) -> list[Reply]:
        replies: list[Reply] = []
        deadline = time.monotonic() + timeout
        while limit is None or len(replies) < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for message in subscription.get(remaining):
                if message.headers.get("ticket") != ticket:
                    continue  # a late reply to an earlier request
                self.clock.adjust(message.headers.get("clock"))
                reply = parse_body(message)
                if reply is not None:
                    replies.append(reply)
                    if callback is not None:
                        callback(reply)
        return replies[:limit] if limit is not None else replies

    # --- commands ----------------------------------------------------------------------------

    def ping(
        self, destination: Sequence[str] | None = None, timeout: float = 1.0, **kwargs: Any
    ) -> list[Reply]:
        """``[{nodename: {"ok": "pong"}}, ...]`` from the workers that answered in time."""
        return (
            self.broadcast("ping", destination=destination, reply=True, timeout=timeout, **kwargs)
            or []
        )

    def revoke(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int | None = "SIGTERM",
        **kwargs: Any,
    ) -> list[Reply] | None:
        """Tell the workers not to run ``task_id`` (one id or several); ``terminate`` also
        kills it where it runs (see the remote-control documentation for each pool)."""
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        arguments = {"task_id": ids, "terminate": terminate, "signal": signal or "SIGTERM"}
        return self.broadcast("revoke", arguments, destination, **kwargs)

    def terminate(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        signal: str | int = "SIGTERM",
        **kwargs: Any,
    ) -> list[Reply] | None:
        """``revoke(task_id, terminate=True)``."""
        return self.revoke(task_id, destination, terminate=True, signal=signal, **kwargs)

    def rate_limit(
        self,
        task_name: str,
        rate_limit: str | int | float | None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[Reply] | None:
        """Set a task's rate limit on the workers (``"10/m"``; None or 0 removes it)."""
        arguments = {"task_name": task_name, "rate_limit": rate_limit}
        return self.broadcast("rate_limit", arguments, destination, **kwargs)

    def time_limit(
        self,
        task_name: str,
        soft: float | None = None,
        hard: float | None = None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[Reply] | None:
        """Set a task's soft and hard time limits (seconds) on the workers."""
        arguments = {"task_name": task_name, "soft": soft, "hard": hard}
        return self.broadcast("time_limit", arguments, destination, **kwargs)

    def pool_grow(
        self, n: int = 1, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[Reply] | None:
        """Add ``n`` workers to each pool."""
        return self.broadcast("pool_grow", {"n": n}, destination, **kwargs)

    def pool_shrink(
        self, n: int = 1, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[Reply] | None:
        """Retire ``n`` workers of each pool (each once idle)."""
        return self.broadcast("pool_shrink", {"n": n}, destination, **kwargs)

    def add_consumer(
        self,
        queue: str,
        exchange: str | None = None,
        exchange_type: str = "direct",
        routing_key: str | None = None,
        options: dict[str, Any] | None = None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[Reply] | None:
        """Make the workers take tasks from ``queue`` too."""
        arguments = {
            "queue": queue,
            "exchange": exchange,
            "exchange_type": exchange_type,
            "routing_key": routing_key,
            **(options or {}),
        }
        return self.broadcast("add_consumer", arguments, destination, **kwargs)

    def cancel_consumer(
        self, queue: str, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[Reply] | None:
        """Make the workers stop taking tasks from ``queue``."""
        return self.broadcast("cancel_consumer", {"queue": queue}, destination, **kwargs)

    def shutdown(
        self, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[Reply] | None:
        """Warm-shut the workers down (they send no reply)."""
        return self.broadcast("shutdown", {}, destination, **kwargs)

    def purge(self, connection: Any = None) -> int:
        """Delete every waiting message of the app's known queues; returns how many."""
        app = self.app
        queues = list(app.router.queues) or [app.conf.task_default_queue]
        return sum(app.broker.purge(queue) for queue in queues)

    discard_all = purge


class Inspect:
    """Questions to the workers; each answers ``{nodename: reply}``, or None if none did."""

    def __init__(
        self,
        app: Celery,
        *,
        destination: Sequence[str] | None = None,
        timeout: float = 1.0,
        callback: Callback | None = None,
        limit: int | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> None:
        self.app = app
        self.destination = destination
        self.timeout = timeout
        self.callback = callback
        self.limit = limit
        self.pattern = pattern
        self.matcher = matcher

    def _request(self, command: str, **arguments: Any) -> dict[str, Any] | None:
        destination = self.destination
        if isinstance(destination, str):
            destination = [destination]
        replies = self.app.control.broadcast(
            command,
            arguments,
            destination,
            reply=True,
            timeout=self.timeout,
            limit=self.limit,
            callback=self.callback,
            pattern=self.pattern,
            matcher=self.matcher,
        )
        if not replies:
            return None
        by_node: dict[str, Any] = {}
        for reply in replies:
            by_node.update(reply)
        if isinstance(self.destination, str):
            return by_node.get(self.destination)
        return by_node

    def ping(self, destination: Sequence[str] | None = None) -> dict[str, Any] | None:
        return self._request("ping")

    def active(self, safe: bool | None = None) -> dict[str, Any] | None:
        return self._request("active", safe=safe)

    def reserved(self, safe: bool | None = None) -> dict[str, Any] | None:
        return self._request("reserved", safe=safe)

    def scheduled(self, safe: bool | None = None) -> dict[str, Any] | None:
        return self._request("scheduled", safe=safe)

    def registered(self, *taskinfoitems: str) -> dict[str, Any] | None:
        return self._request("registered", taskinfoitems=list(taskinfoitems))

    registered_tasks = registered

    def revoked(self) -> dict[str, Any] | None:
        return self._request("revoked")

    def stats(self) -> dict[str, Any] | None:
        return self._request("stats")

    def active_queues(self) -> dict[str, Any] | None:
        return self._request("active_queues")

    def query_task(self, *ids: str | Sequence[str]) -> dict[str, Any] | None:
        """Where each task id is: ``{node: {id: [state, info]}}``."""
        flat: list[str] = []
        for item in ids:
            flat.extend([item] if isinstance(item, str) else item)
        return self._request("query_task", ids=flat)

    def conf(self, with_defaults: bool = False) -> dict[str, Any] | None:
        return self._request("conf", with_defaults=with_defaults)

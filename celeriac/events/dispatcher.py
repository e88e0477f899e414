"""Sending events: :class:`Dispatcher` (Celery's ``app.events.Dispatcher``).

A dispatcher stamps each event with the sender's fields (``hostname``, ``utcoffset``,
``pid``, a Lamport ``clock``, ``timestamp``) and publishes it to the event exchange. Events
of the groups in ``buffer_group`` are not published one by one: they wait in a buffer that
goes out as one message (a list body, routing key ``<group>.multi``) when it holds
``buffer_limit`` events or when :meth:`Dispatcher.flush` is called. The worker buffers its
task events this way, so three events per task cost one publish per batch of tasks.

A dispatcher is safe to use from several threads; events buffered by one thread keep their
order when flushed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from celeriac.control.mailbox import Clock
from celeriac.events.event import Event, event_message, group_from, routing_key_for, utcoffset

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.brokers.base import Broker

__all__ = ["Dispatcher"]

logger = logging.getLogger("celeriac.events")

#: Events kept while the broker cannot be reached (the oldest go first beyond this).
OFFLINE_BUFFER = 1000


class Dispatcher:
    """Sends events through the app's broker (Celery's ``EventDispatcher``).

    Args:
        connection: a broker to publish with (Celery passes a connection here; anything
            that is not a celeriac broker means: the app's broker).
        hostname: the sender's node name (default ``gen<pid>@<host>``, as a Celery client).
        enabled: when False, :meth:`send` does nothing until :meth:`enable`.
        channel: accepted for Celery's signature; unused.
        buffer_while_offline: keep events that could not be published and send them with
            the next :meth:`flush` (else the publish error propagates).
        app: the app (default: the current app).
        serializer: ``event_serializer`` unless given.
        groups: send only events of these groups (None: all).
        delivery_mode: accepted for Celery's signature; events are always transient.
        buffer_group: groups whose events are buffered and sent as lists.
        buffer_limit: a buffer this long is flushed at once.
        on_send_buffered: when given, called instead of flushing once a buffer is full
            (an owner with its own flushing thread takes over the publish).
    """

    def __init__(
        self,
        connection: Any = None,
        hostname: str | None = None,
        enabled: bool = True,
        channel: Any = None,
        buffer_while_offline: bool = True,
        app: Celery | None = None,
        serializer: str | None = None,
        groups: Iterable[str] | None = None,
        delivery_mode: int = 1,
        buffer_group: Iterable[str] | None = None,
        buffer_limit: int = 24,
        on_send_buffered: Callable[[], None] | None = None,
    ) -> None:
        self.app = app or _current_app()
        conf = self.app.conf
        self._broker: Broker | None = _broker_of(connection)
        self.hostname = hostname or f"gen{os.getpid()}@{socket.gethostname()}"
        self.enabled = enabled
        self.buffer_while_offline = buffer_while_offline
        self.serializer = serializer or str(conf.event_serializer)
        self.exchange = str(conf.event_exchange)
        self.groups: set[str] | None = set(groups) if groups is not None else None
        self.buffer_group: frozenset[str] = frozenset(buffer_group or ())
        self.buffer_limit = buffer_limit
        self.on_send_buffered = on_send_buffered
        self.pid = os.getpid()
        self.clock = Clock()
        self._utcoffset = utcoffset()
        self._buffers: dict[str, list[dict[str, Any]]] = {}
        self._buffer_lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._offline: deque[tuple[Any, str]] = deque(maxlen=OFFLINE_BUFFER)

    @property
    def broker(self) -> Broker:
        return self._broker if self._broker is not None else self.app.broker

    # --- switching ---------------------------------------------------------------------------

    def enable(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Send what is buffered; the dispatcher can still be used afterwards."""
        self.flush()

    # --- sending -----------------------------------------------------------------------------

    def send(
        self,
        type: str,
        blind: bool = False,
        utcoffset: Callable[[], int] | None = None,
        retry: bool = False,
        retry_policy: Any = None,
        Event: Callable[..., dict[str, Any]] = Event,
        **fields: Any,
    ) -> None:
        """Send one event of ``type`` with ``fields`` (buffered if its group is).

        ``retry``/``retry_policy`` are accepted for Celery's signature: the broker retries
        as it does for every publish.
        """
        if not self.enabled:
            return
        group = group_from(type)
        if self.groups is not None and group not in self.groups:
            return
        if group in self.buffer_group:
            self._buffer(group, self._stamp(type, fields, False, utcoffset, Event))
        else:
            self._publish_one(self._stamp(type, fields, blind, utcoffset, Event))

    def publish(
        self,
        type: str,
        fields: dict[str, Any],
        producer: Any = None,
        blind: bool = False,
        Event: Callable[..., dict[str, Any]] = Event,
        **kwargs: Any,
    ) -> None:
        """Publish one event now, whatever ``enabled`` and ``groups`` say (Celery's ``publish``)."""
        self._publish_one(self._stamp(type, fields, blind, None, Event))

    def _stamp(
        self,
        type_: str,
        fields: dict[str, Any],
        blind: bool,
        offset: Callable[[], int] | None,
        make: Callable[..., dict[str, Any]],
    ) -> dict[str, Any]:
        """The event with the sender's fields (a blind event carries no clock)."""
        return make(
            type_,
            fields,
            hostname=self.hostname,
            utcoffset=offset() if offset is not None else self._utcoffset,
            pid=self.pid,
            clock=None if blind else self.clock.forward(),
        )

    def _buffer(self, group: str, event: dict[str, Any]) -> None:
        with self._buffer_lock:
            buffer = self._buffers.setdefault(group, [])
            buffer.append(event)
            full = len(buffer) >= self.buffer_limit
        if full:
            if self.on_send_buffered is not None:
                self.on_send_buffered()
            else:
                self.flush()

    def _publish_one(self, event: dict[str, Any]) -> None:
        with self._publish_lock:
            self._send(event, routing_key_for(str(event["type"])))

    def flush(self, errors: bool = True, groups: bool = True) -> None:
        """Publish what waits: events kept while offline (``errors``) and buffers (``groups``)."""
        with self._publish_lock:
            if errors:
                self._resend_offline()
            if groups:
                with self._buffer_lock:
                    buffers, self._buffers = self._buffers, {}
                for group, events in buffers.items():
                    if events:
                        self._send(events, f"{group}.multi")
            self._utcoffset = utcoffset()  # follows daylight-saving changes

    def _resend_offline(self) -> None:
        for _ in range(len(self._offline)):
            body, routing_key = self._offline.popleft()
            self._send(body, routing_key)

    def _send(self, body: Any, routing_key: str) -> None:
        """Publish a body (one event or a list); called with the publish lock held."""
        message = event_message(body, hostname=self.hostname, serializer=self.serializer)
        try:
            self.broker.fanout_publish(
                self.exchange, message, routing_key=routing_key, exchange_type="topic"
            )
        except Exception as exc:
            if not self.buffer_while_offline:
                raise
            if not self._offline:
                logger.warning("Cannot send events (kept until the next flush): %r", exc)
            self._offline.append((body, routing_key))


def _broker_of(value: Any) -> Broker | None:
    """The broker of what Celery code passes as a connection: a celeriac broker, or an
    ``app.connection()``; None for anything else (the app's broker is used)."""
    from celeriac.brokers.base import Broker
    from celeriac.connection import Connection

    if isinstance(value, Connection):
        return value.broker
    return value if isinstance(value, Broker) else None


def _current_app() -> Celery:
    from celeriac._context import get_current_app

    return get_current_app()

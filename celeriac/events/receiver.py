"""Receiving events: :class:`Receiver` (Celery's ``app.events.Receiver``).

A receiver subscribes to the event exchange as the transient queue ``celeryev.<id>``
(``event_queue_prefix``), bound with ``#`` (every event), and calls a handler per event
type; the handler for ``*`` takes the types that have none of their own. It only sees what
is sent while it listens: events are never stored for monitors that are away.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from celeriac.control.mailbox import Clock
from celeriac.events.event import adjust_timestamp, events_from_message
from celeriac.serialization import normalize_accept

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.brokers.base import Broker, Subscription

__all__ = ["Receiver"]

logger = logging.getLogger("celeriac.events")

Handler = Callable[[dict[str, Any]], Any]

#: How long one read of the subscription blocks (the stop flag is checked in between).
POLL = 0.5
#: Lamport clock skew given to ``task-sent`` events: clients never sync their clocks.
CLIENT_CLOCK_SKEW = -1


class Receiver:
    """Captures events and hands them to ``handlers`` (event type -> callable).

    Args:
        channel: a broker or an ``app.connection()`` to read with (anything else means:
            the app's broker).
        handlers: event type -> callable taking the event; ``*`` for every other type.
        routing_key: binding key of the queue (``#``: all events; ``worker.#``: workers').
        node_id: the queue's id (random unless given).
        app: the app (default: the current app).
        queue_prefix: ``event_queue_prefix`` unless given.
        accept: content types accepted (default: ``accept_content`` plus the event
            serializer's).
        queue_ttl: ``event_queue_ttl`` unless given (seconds an unread event lives).
        queue_expires: ``event_queue_expires`` unless given (seconds an unread queue lives).
    """

    def __init__(
        self,
        channel: Any = None,
        handlers: Mapping[str, Handler] | None = None,
        routing_key: str = "#",
        node_id: str | None = None,
        app: Celery | None = None,
        queue_prefix: str | None = None,
        accept: Any = None,
        queue_ttl: float | None = None,
        queue_expires: float | None = None,
    ) -> None:
        from celeriac.events.dispatcher import _broker_of, _current_app

        self.app = app or _current_app()
        conf = self.app.conf
        self._broker: Broker | None = _broker_of(channel)
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.routing_key = routing_key
        self.node_id = node_id or str(uuid.uuid4())
        prefix = queue_prefix or str(conf.event_queue_prefix)
        self.queue = f"{prefix}.{self.node_id}"
        self.exchange = str(conf.event_exchange)
        self.queue_ttl = queue_ttl if queue_ttl is not None else conf.event_queue_ttl
        self.queue_expires = (
            queue_expires if queue_expires is not None else conf.event_queue_expires
        )
        self.accept = self._accept(accept)
        self.clock = Clock()
        #: Set to True (from a handler, or another thread) to make :meth:`capture` return.
        self.should_stop = False

    def _accept(self, accept: Any) -> frozenset[str]:
        from celeriac.serialization import codec_for

        names = set(normalize_accept(accept or self.app.conf.accept_content))
        names.add(codec_for(str(self.app.conf.event_serializer)).content_type)
        return frozenset(names)

    @property
    def broker(self) -> Broker:
        return self._broker if self._broker is not None else self.app.broker

    # --- capturing ---------------------------------------------------------------------------

    def capture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> None:
        """Hand events to the handlers until :attr:`should_stop`, or ``limit`` events.

        Raises:
            TimeoutError: ``timeout`` seconds went by without an event (as Celery's does).
        """
        for _ in self.itercapture(limit=limit, timeout=timeout, wakeup=wakeup):
            pass

    def itercapture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Like :meth:`capture`, yielding each event after its handler ran."""
        with self.subscribe() as subscription:
            if wakeup:
                self.wakeup_workers()
            yield from self._consume(subscription, limit, timeout)

    def subscribe(self) -> Subscription:
        """The subscription this receiver reads (declared now: later events only)."""
        return self.broker.fanout_subscribe(
            self.exchange,
            self.queue,
            binding_key=self.routing_key,
            exchange_type="topic",
            message_ttl=float(self.queue_ttl) if self.queue_ttl else None,
            expires=float(self.queue_expires) if self.queue_expires else None,
        )

    def _consume(
        self, subscription: Subscription, limit: int | None, timeout: float | None
    ) -> Iterator[dict[str, Any]]:
        count = 0
        quiet_since = time.monotonic()
        while not self.should_stop and (limit is None or count < limit):
            wait = POLL if timeout is None else max(min(POLL, timeout), 0.01)
            messages = subscription.get(wait)
            if not messages:
                if timeout is not None and time.monotonic() - quiet_since >= timeout:
                    raise TimeoutError(f"no event within {timeout} seconds")
                continue
            quiet_since = time.monotonic()
            for message in messages:
                for event in self._events_of(message):
                    type_, event = self.event_from_message(event)
                    self.process(type_, event)
                    count += 1
                    yield event
                    if self.should_stop or (limit is not None and count >= limit):
                        return

    def _events_of(self, message: Any) -> list[dict[str, Any]]:
        try:
            return list(events_from_message(message, self.accept))
        except Exception as exc:
            logger.warning("Ignoring an unreadable event message: %r", exc)
            return []

    def wakeup_workers(self) -> None:
        """Ask every worker for a heartbeat now, so a new monitor sees them at once."""
        try:
            self.app.control.broadcast("heartbeat", reply=False)
        except Exception as exc:
            logger.debug("Could not wake the workers up: %r", exc)

    # --- one event ---------------------------------------------------------------------------

    def process(self, type: str, event: dict[str, Any]) -> None:
        """Call the handler of ``type`` (or of ``*``)."""
        handler = self.handlers.get(type) or self.handlers.get("*")
        if handler is not None:
            handler(event)

    def event_from_message(
        self, body: dict[str, Any], localize: bool = True
    ) -> tuple[str, dict[str, Any]]:
        """``(type, event)`` with the clock synced and, with ``localize``, the timestamp in
        this host's time; ``local_received`` is when it arrived here."""
        type_ = str(body["type"])
        if type_ == "task-sent":
            body["clock"] = (self.clock.value or 1) + CLIENT_CLOCK_SKEW
            self.clock.adjust(body["clock"])
        elif "clock" in body:
            self.clock.adjust(body["clock"])
        else:
            body["clock"] = self.clock.forward()
        if localize and "utcoffset" in body and "timestamp" in body:
            try:
                body["timestamp"] = adjust_timestamp(
                    float(body["timestamp"]), float(body["utcoffset"])
                )
            except (TypeError, ValueError):
                pass
        body["local_received"] = time.time()
        return type_, body

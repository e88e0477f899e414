"""The broker seam: task-queue verbs every broker implements, and the claimed-message type.

A broker moves :class:`~celeriac.message.Message` objects between named queues. Consumers
*claim* messages: a claimed message is leased to the claiming broker instance until it is
acked, rejected, or its lease lapses (then it returns to its queue, marked redelivered).
A live consumer renews its leases, so only a dead consumer's messages come back.

Delayed messages (``eta``) wait inside the broker and become claimable when due; no
consumer holds them in memory.

Remote control and events need two more shapes of delivery, both transient and without
acks (kombu's pidbox, Celery's ``celeryev``): *fanout* (one message to every live
subscriber of an exchange; a subscriber that is not listening misses it) and *direct* (a
message routed by exchange and routing key to the transient queues bound with that key).
:class:`Subscription` is how a subscriber reads either. Events add routing keys to the
fanout shape: ``celeryev`` is a *topic* exchange on AMQP (subscribers bind with ``#`` or
``worker.#``) and a pattern subscription on Redis (``PSUBSCRIBE /0.celeryev/*``); brokers
without exchange routing (memory, SQLite) give every message to every subscriber.

Every implementation passes :mod:`celeriac.testing.broker_suite`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from celeriac.message import Message

__all__ = ["Broker", "DeadLetter", "Delivery", "ExchangeType", "Outgoing", "Subscription"]

#: The exchange types a broadcast can go through (``topic``: Celery's event exchange on AMQP).
ExchangeType = Literal["fanout", "topic"]

#: Lease length when the URL or ``broker_transport_options`` give no ``visibility_timeout``.
DEFAULT_LEASE_SECONDS = 30.0


@dataclass(slots=True)
class Outgoing:
    """One message to publish: its queue and, when delayed, its due time (UNIX seconds).

    ``exchange`` and ``routing_key`` are an explicit route (``apply_async(exchange=...,
    routing_key=...)`` or a ``task_routes`` entry); brokers with exchanges (AMQP) publish
    through them, the others deliver to ``queue``.
    """

    queue: str
    message: Message
    eta: float | None = None
    exchange: str | None = None
    routing_key: str | None = None


@dataclass(slots=True)
class Delivery:
    """One claimed message and the handle needed to settle it.

    Attributes:
        message: the message as published.
        queue: the queue it was claimed from.
        tag: the broker's handle for ack/reject/renew (opaque to callers).
        redelivered: True when the message was claimed before and came back
            (lease lapsed, requeued, or given back at shutdown).
    """

    message: Message
    queue: str
    tag: str
    redelivered: bool = False

    @property
    def delivery_info(self) -> dict[str, Any]:
        """Celery's ``request.delivery_info`` for this message."""
        return {
            "exchange": "",
            "routing_key": self.queue,
            "priority": self.message.properties.get("priority"),
            "redelivered": self.redelivered,
        }


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be run, kept for inspection and requeueing.

    Attributes:
        id: the dead-letter entry's id (used to requeue it).
        queue: the queue the message came from (and goes back to when requeued).
        reason: why it could not be run (``NotRegistered('tasks.x')``, ...).
        time: when it was dead-lettered (UNIX seconds).
        message: the message, unchanged.
    """

    id: str
    queue: str
    reason: str
    time: float
    message: Message = field(compare=False)


class Subscription(abc.ABC):
    """Messages arriving for one transient, no-ack queue (broadcast or direct).

    Not thread-safe: one thread reads a subscription. Messages are gone once returned.
    """

    @abc.abstractmethod
    def get(self, timeout: float) -> list[Message]:
        """The messages that arrived, oldest first; waits up to ``timeout`` seconds for one.

        Returns an empty list when nothing came in time.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Stop receiving and delete the queue; the instance is not used afterwards."""

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Broker(abc.ABC):
    """Abstract broker. Instances are safe to call from several threads at once.

    Args:
        url: the broker URL (its scheme chose the class).
        options: ``broker_transport_options``; ``visibility_timeout`` sets the lease length.
    """

    #: URL schemes this class serves (``broker_for_url`` dispatches on them).
    schemes: ClassVar[tuple[str, ...]] = ()
    #: The server stops delivering once a consumer holds its prefetch count of unacked
    #: messages (AMQP's basic.qos): an ack written later holds back the next delivery.
    acks_gate_delivery: ClassVar[bool] = False

    def __init__(self, url: str, *, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.options = dict(options or {})
        self.lease_seconds = float(self.options.get("visibility_timeout", DEFAULT_LEASE_SECONDS))

    # --- producing -------------------------------------------------------------------------

    def publish(self, queue: str, message: Message, *, eta: float | None = None) -> None:
        """Put one message on ``queue``; with ``eta`` (UNIX seconds) it waits until due."""
        self.publish_many([Outgoing(queue, message, eta)])

    @abc.abstractmethod
    def publish_many(self, items: Sequence[Outgoing]) -> None:
        """Put several messages, atomically where the broker can (one round trip)."""

    # --- consuming -------------------------------------------------------------------------

    def claim(self, queues: Sequence[str], *, limit: int, timeout: float) -> list[Delivery]:
        """Claim up to ``limit`` ready messages from ``queues``.

        Lower ``priority`` values come first (as on Celery's Redis transport), then
        publication order. Blocks up to ``timeout`` seconds while nothing is ready and
        returns an empty list if nothing became ready. Claiming and recording the lease
        is one atomic step: a message is never claimed twice at once.

        Raises:
            TypeError: ``queues`` is a single string rather than a sequence of names.
            ValueError: no queue, or ``limit`` below 1.
        """
        if isinstance(queues, str):
            raise TypeError(f"claim() takes a sequence of queue names, not the string {queues!r}")
        if not queues:
            raise ValueError("claim() needs at least one queue")
        if limit < 1:
            raise ValueError(f"claim() limit must be at least 1, not {limit}")
        return self._claim(list(dict.fromkeys(queues)), limit, timeout)

    @abc.abstractmethod
    def _claim(self, queues: list[str], limit: int, timeout: float) -> list[Delivery]:
        """:meth:`claim` after its arguments were checked (``queues`` without repeats)."""

    @abc.abstractmethod
    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Settle messages as done: they are removed for good."""

    @abc.abstractmethod
    def reject(self, deliveries: Sequence[Delivery], *, requeue: bool) -> None:
        """Settle messages as not done: back to their queue (``requeue``) or dropped."""

    @abc.abstractmethod
    def renew(self, deliveries: Sequence[Delivery]) -> None:
        """Extend the leases of messages this instance still holds."""

    # --- dead letters ----------------------------------------------------------------------

    @abc.abstractmethod
    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move a claimed message out of its queue into the dead-letter store."""

    @abc.abstractmethod
    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters, up to ``limit``."""

    @abc.abstractmethod
    def requeue_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Put dead letters (all, or those with ``ids``) back on their queues; returns how many."""

    # --- broadcast and direct (remote control) ----------------------------------------------

    def fanout_publish(
        self,
        exchange: str,
        message: Message,
        *,
        routing_key: str = "",
        exchange_type: ExchangeType = "fanout",
    ) -> None:
        """Send ``message`` to every live subscriber of ``exchange`` (fire and forget).

        ``exchange_type`` matters on brokers with typed exchanges (AMQP): ``topic`` routes
        by ``routing_key`` to the subscribers whose binding key matches it.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support broadcast messages")

    def fanout_subscribe(
        self,
        exchange: str,
        queue: str,
        *,
        binding_key: str = "",
        exchange_type: ExchangeType = "fanout",
        message_ttl: float | None = None,
        expires: float | None = None,
    ) -> Subscription:
        """Receive what is published to ``exchange`` from now on, as queue ``queue``.

        ``queue`` names the subscriber (``celery@host.celery.pidbox``) where the broker
        records bindings; messages published before this call are never received.
        ``binding_key`` selects routing keys where the broker routes by them (``#``: all,
        ``worker.#``: the worker events); ``message_ttl`` and ``expires`` (seconds) bound
        how long an unread message and an unread queue live where the broker keeps queues.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support broadcast messages")

    def direct_publish(self, exchange: str, routing_key: str, message: Message) -> None:
        """Route ``message`` to the queues bound to ``exchange`` with ``routing_key``.

        With no such queue the message is dropped, as an unroutable message is in kombu.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support direct replies")

    def direct_subscribe(
        self, exchange: str, routing_key: str, queue: str, *, expires: float | None = None
    ) -> Subscription:
        """Declare transient ``queue`` bound to ``exchange`` with ``routing_key``, and read it.

        ``expires`` (seconds) lets the broker delete the queue when nobody reads it for
        that long (a reader that died leaves nothing behind for good).
        """
        raise NotImplementedError(f"{type(self).__name__} does not support direct replies")

    # --- administration --------------------------------------------------------------------

    def connect(self) -> None:  # noqa: B027 - brokers without a start-up check keep it empty
        """Check that the broker is reachable and writable (the worker calls this at start).

        Raises:
            OperationalError: it is not, with a message naming the broker and the cause.
        """

    @abc.abstractmethod
    def purge(self, queue: str) -> int:
        """Delete every waiting (ready or delayed) message of ``queue``; returns how many."""

    @abc.abstractmethod
    def size(self, queue: str) -> int:
        """How many messages wait in ``queue`` (ready or delayed, not claimed)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files; the instance is not used afterwards."""

    def describe(self) -> str:
        """The URL as shown in logs and banners (passwords masked)."""
        return mask_url(self.url)


def mask_url(url: str) -> str:
    """``redis://:secret@host/0`` -> ``redis://:**@host/0``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':**' if colon else ''}@{host}"

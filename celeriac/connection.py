"""Broker connections as Celery's helpers hand them out (``app.connection()`` and friends).

Celery returns kombu connections; code written for it opens one to pass to
``app.events.Receiver``, or to ask a queue's length with
``conn.default_channel.queue_declare(name, passive=True).message_count``. A
:class:`Connection` here is a handle on a celeriac broker with that shape: the app's own
broker (shared, thread-safe, left open on release) or, for another URL, a broker of its own
that ``release()`` closes.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from celeriac.brokers.base import mask_url

if TYPE_CHECKING:
    from celeriac.brokers.base import Broker

__all__ = ["Channel", "Connection", "QueueDeclareOk"]


class QueueDeclareOk(NamedTuple):
    """What ``queue_declare`` answers, as kombu's ``queue_declare_ok_t``."""

    queue: str
    message_count: int
    consumer_count: int


class Channel:
    """The queue operations of a kombu channel that monitoring code uses."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def queue_declare(self, queue: str = "", passive: bool = False, **_: Any) -> QueueDeclareOk:
        """The number of messages waiting in ``queue``.

        Declaring options (``durable``, ``arguments``...) are the broker's business: queues
        are declared as routing says when tasks are sent or consumed. The consumer count is
        0, as kombu's Redis and SQL transports report it.
        """
        return QueueDeclareOk(queue, self.broker.size(queue), 0)

    def queue_purge(self, queue: str, **_: Any) -> int:
        """Delete the waiting messages of ``queue``; returns how many."""
        return self.broker.purge(queue)

    def close(self) -> None:
        """Nothing to release: the channel is a view on its connection's broker."""


class Connection:
    """A broker connection handle (a context manager; ``release()`` closes what it opened).

    Args:
        broker: the broker it talks to.
        owned: whether it opened that broker itself (then ``release()`` closes it).
    """

    def __init__(self, broker: Broker, *, owned: bool) -> None:
        self.broker = broker
        self._owned = owned
        self._channel: Channel | None = None

    def connect(self) -> Connection:
        """Check the broker is reachable (raises ``OperationalError`` if not)."""
        self.broker.connect()
        return self

    ensure_connection = connect

    @property
    def default_channel(self) -> Channel:
        if self._channel is None:
            self._channel = Channel(self.broker)
        return self._channel

    def channel(self) -> Channel:
        return Channel(self.broker)

    def as_uri(self, include_password: bool = False) -> str:
        return self.broker.url if include_password else mask_url(self.broker.url)

    def release(self) -> None:
        if self._owned:
            self.broker.close()

    close = release

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<Connection: {self.as_uri()}>"

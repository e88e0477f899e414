"""Broadcast and direct subscriptions on RabbitMQ, laid out as kombu's pidbox lays them out.

A fanout subscription is a transient queue bound to a non-durable fanout exchange
(``celery.pidbox`` and the worker's ``<nodename>.celery.pidbox`` queue); a direct one is a
transient queue bound to a non-durable direct exchange with a routing key (the reply queue
``<oid>.reply.celery.pidbox``); an event monitor's queue ``celeryev.<id>`` is bound to the
durable topic exchange ``celeryev`` with ``#``. All are read without acks, on their own
connection, by the one thread that owns the subscription, so no reader thread is needed:
:meth:`get` reads the socket itself.
"""

from __future__ import annotations

import time
from typing import Any

import amqp

from celeriac.brokers.amqp_connection import CONNECTION_ERRORS, ConnectionSettings
from celeriac.brokers.amqp_consumer import from_amqp
from celeriac.brokers.base import Subscription
from celeriac.message import Message

__all__ = ["MESSAGE_TTL", "AMQPSubscription"]

#: ``x-message-ttl`` of pidbox queues (Celery's ``control_queue_ttl``), milliseconds.
MESSAGE_TTL = 300_000
#: ``x-expires`` of a worker's pidbox queue (Celery's ``control_queue_expires``), milliseconds.
QUEUE_EXPIRES = 10_000


class AMQPSubscription(Subscription):
    """A transient no-ack queue bound to ``exchange`` (see the module docstring)."""

    def __init__(
        self,
        settings: ConnectionSettings,
        exchange: str,
        exchange_type: str,
        queue: str,
        routing_key: str,
        *,
        exclusive: bool,
        expires: float | None,
        message_ttl: float | None = None,
    ) -> None:
        self._queue = queue
        self._received: list[Message] = []
        self._connection = settings.open("subscription", heartbeat=False)
        try:
            channel = self._connection.channel()
            channel.auto_decode = False
            durable = exchange_type == "topic"  # Celery's event exchange is durable
            channel.exchange_declare(exchange, exchange_type, durable=durable, auto_delete=False)
            ttl = int(message_ttl * 1000) if message_ttl else MESSAGE_TTL
            arguments: dict[str, Any] = {"x-message-ttl": ttl}
            arguments["x-expires"] = int(expires * 1000) if expires else QUEUE_EXPIRES
            channel.queue_declare(
                queue, durable=False, exclusive=exclusive, auto_delete=True, arguments=arguments
            )
            channel.queue_bind(queue, exchange, routing_key)
            channel.basic_consume(queue, no_ack=True, callback=self._on_message)
        except BaseException:
            self._connection.collect()
            raise
        self._channel = channel

    def _on_message(self, raw: amqp.Message) -> None:
        self._received.append(from_amqp(raw)[0])

    def get(self, timeout: float) -> list[Message]:
        deadline = time.monotonic() + max(timeout, 0.0)
        while not self._received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                self._connection.drain_events(timeout=remaining)
            except TimeoutError:
                break
        while True:  # whatever else already arrived comes along
            try:
                self._connection.drain_events(timeout=0)
            except CONNECTION_ERRORS:
                break
        got, self._received = self._received, []
        return got

    def close(self) -> None:
        try:
            self._channel.queue_delete(self._queue)
            self._connection.close()
        except Exception:
            self._connection.collect()
